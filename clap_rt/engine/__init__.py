"""Audio-tower backends behind one interface: log-mel frames in, joint embeddings out.

Every engine exposes `name`, `embed(mel_db) -> embeddings` and `close()`:
mel_db is (B, n_mels, T) float32 dB frames; the result is (B, dim) float32, unit norm.
"""
from __future__ import annotations

from ..errors import UserError

BACKENDS = ("auto", "torch")


def create_engine(model, backend: str = "auto", threads: int | None = None):
    """Build the audio engine for `model` (a `clap_rt.model.CLAP`) on `backend`."""
    if backend not in BACKENDS:
        raise UserError(f"--backend: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    from .torch_engine import TorchEngine
    return TorchEngine(model, threads=threads)
