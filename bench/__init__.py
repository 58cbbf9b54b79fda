"""Benchmarks, run from the repository root as `python -m bench.<name>`: frontend, encoders,
quant_accuracy, stream, gpu_check."""
