"""ONNX export and the inference backends (torch, onnxruntime, TensorRT)."""
