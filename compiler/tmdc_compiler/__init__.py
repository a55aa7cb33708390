"""TMDC model compiler: PyTorch definitions, training and ONNX export (build time only)."""
