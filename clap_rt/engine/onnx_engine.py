"""The onnxruntime backend: the exported audio graph on ORT's CPU (or CUDA) execution provider."""
from __future__ import annotations

import os

import numpy as np

from .graph import INPUT_NAME, cached_audio_onnx


def ort_session(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
    """An `onnxruntime.InferenceSession` with full graph optimisation, `threads` intra-op
    threads (default: ORT's choice, one per core) and no idle spinning, so a streaming
    process that embeds one window every hop does not hold its cores between windows."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise RuntimeError("the onnx backend requires the onnxruntime package (pip install onnxruntime)") from e
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=providers or ["CPUExecutionProvider"])


class OnnxEngine:
    """Runs `path` (default: the model's audio graph, exported once and cached) with onnxruntime.

    `path` may name a quantised variant written by export/quantize.py; `providers` defaults to
    the CPU provider (["CUDAExecutionProvider", "CPUExecutionProvider"] with onnxruntime-gpu).
    """

    name = "onnx"

    def __init__(self, model, threads: int | None = None, *, path: str | os.PathLike | None = None,
                 providers: list[str] | None = None):
        self.path = str(path) if path is not None else str(cached_audio_onnx(model))
        self.session = ort_session(self.path, threads, providers)

    def embed(self, mel_db: np.ndarray) -> np.ndarray:
        """(B, n_mels, T) float32 dB -> (B, dim) float32 unit-norm embeddings."""
        x = np.ascontiguousarray(mel_db, dtype=np.float32)
        return self.session.run(None, {INPUT_NAME: x})[0]

    def close(self) -> None:
        self.session = None
