"""Audio-tower backends behind one interface: log-mel frames in, joint embeddings out.

Every engine is built as `Engine(model, threads=None, **options)` and exposes `name`,
`embed(mel_db) -> embeddings` and `close()`: mel_db is (B, n_mels, T) float32 dB frames; the
result is (B, dim) float32, unit norm.

    torch  eager PyTorch on the CPU (the reference)
    onnx   onnxruntime on the exported audio graph
    cuda   PyTorch on an NVIDIA GPU, fp16 autocast + CUDA graphs
    trt    TensorRT engine built from the exported graph
    auto   the fastest of those available here, measured once per model and machine (auto.py)
"""
from __future__ import annotations

import importlib

from ..errors import UserError

BACKENDS = ("auto", "torch", "onnx", "trt", "cuda")
ENGINES = {"torch": "torch_engine.TorchEngine", "onnx": "onnx_engine.OnnxEngine",
           "cuda": "cuda_engine.CudaEngine", "trt": "trt_engine.TrtEngine"}


def engine_class(backend: str) -> type:
    """The engine class of a concrete backend name (imports its module only)."""
    module, cls = ENGINES[backend].split(".")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def create_engine(model, backend: str = "auto", threads: int | None = None, compile: bool = False):
    """Build the audio engine for `model` (a `clap_rt.model.CLAP`) on `backend`; `compile`
    runs the tower through `torch.compile` first (cuda only: on an H200 it doubled the
    throughput, for about half a minute of setup).

    A backend whose package or hardware is missing raises UserError naming what is missing.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if compile and backend != "cuda":
        raise UserError(f"--compile: expected --backend cuda (torch.compile is used on the GPU only), got --backend {backend}")
    if backend == "auto":
        from .auto import auto_engine
        return auto_engine(model, threads)
    options = {"compile": True} if compile else {}
    try:
        return engine_class(backend)(model, threads=threads, **options)
    except RuntimeError as e:
        raise UserError(f"--backend {backend}: {e}") from e
