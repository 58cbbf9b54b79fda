"""The cuda backend: the PyTorch audio graph on an NVIDIA GPU in fp16 / bf16 with CUDA graphs.

No TensorRT needed. Each input shape is captured once as a CUDA graph (a static input buffer,
one replay per call), which removes the per-kernel launch cost that dominates batch-1 latency;
large batches amortise it anyway and serve archive embedding. Autocast keeps LayerNorm,
softmax and the final normalisation in fp32, where fp16 CLAP embeddings otherwise drift.
"""
from __future__ import annotations

import copy

import numpy as np

from .graph import AudioGraph

DTYPES = ("fp16", "bf16")
MAX_GRAPHS = 8          # captured shapes kept; others run uncaptured


def require_cuda():
    """Return the torch module if a CUDA GPU is usable, else raise RuntimeError saying what is missing."""
    import torch
    if not torch.cuda.is_available():
        build = "a CUDA build of PyTorch" if torch.version.cuda is None else "an NVIDIA GPU"
        raise RuntimeError(f"the cuda backend requires {build} (torch {torch.__version__}: "
                           f"torch.cuda.is_available() is False)")
    return torch


class CudaEngine:
    """The audio tower on an NVIDIA GPU: fp16 or bf16 autocast, one CUDA graph captured per
    input shape (`cuda_graphs`), optionally `torch.compile`d first (`compile`: faster, tens of
    seconds of setup). Not used without CUDA: `require_cuda` says what is missing."""
    name = "cuda"

    def __init__(self, model, threads: int | None = None, *, dtype: str = "fp16",
                 cuda_graphs: bool = True, compile: bool = False, device: str = "cuda"):
        torch = require_cuda()
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if dtype == "fp16" else torch.bfloat16
        # A private copy: the shared model stays on the CPU for the text side.
        self.graph = copy.deepcopy(AudioGraph(model)).eval().to(self.device)
        self.fn = torch.compile(self.graph, dynamic=False) if compile else self.graph
        self.cuda_graphs = cuda_graphs
        self._captured: dict[tuple, tuple] = {}    # shape -> (graph, static_in, static_out)

    def _run(self, x):
        torch = self.torch
        with torch.autocast("cuda", dtype=self.dtype, cache_enabled=False):
            return self.fn(x).float()

    def _capture(self, shape: tuple):
        torch = self.torch
        static_in = torch.zeros(shape, device=self.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):                     # warm-up: cuDNN autotune, compile, allocator
                self._run(static_in)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_out = self._run(static_in)
        return g, static_in, static_out

    def embed(self, mel_db: np.ndarray) -> np.ndarray:
        """(B, n_mels, T) float32 dB -> (B, dim) float32 unit-norm embeddings."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(mel_db, dtype=np.float32))
        with torch.inference_mode():
            shape = tuple(x.shape)
            if self.cuda_graphs and (shape in self._captured or len(self._captured) < MAX_GRAPHS):
                if shape not in self._captured:
                    self._captured[shape] = self._capture(shape)
                g, static_in, static_out = self._captured[shape]
                static_in.copy_(x, non_blocking=False)
                g.replay()
                out = static_out
            else:
                out = self._run(x.to(self.device))
            return out.cpu().numpy()

    def close(self) -> None:
        self._captured.clear()
