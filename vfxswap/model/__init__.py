"""The dual-decoder face-swap model: ModelCard, network, checkpoints (import torch lazily via these modules)."""
