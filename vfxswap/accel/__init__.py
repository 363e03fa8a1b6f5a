"""Swap runners behind one protocol: eager PyTorch, torch.compile, TensorRT (torch-tensorrt) and ONNX Runtime."""
