"""Training: face data and augmentation, losses, the training loop."""
