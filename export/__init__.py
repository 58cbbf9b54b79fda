"""Exporters: checkpoint -> ONNX (to_onnx), int8 / fp16 graphs (quantize), TensorRT plan (to_trt)."""
