"""Swap runners: one protocol, PyTorch / ONNX Runtime (and TensorRT later) behind it."""
