"""The eager PyTorch backend: the reference every other backend is checked against."""
from __future__ import annotations

import numpy as np
import torch


class TorchEngine:
    """Eager PyTorch on `device` (default the CPU), `threads` intra-op threads."""
    name = "torch"

    def __init__(self, model, threads: int | None = None, *, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.device = device
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def embed(self, mel_db: np.ndarray) -> np.ndarray:
        """(B, n_mels, T) float32 dB -> (B, dim) float32 unit-norm embeddings."""
        x = torch.from_numpy(np.ascontiguousarray(mel_db, dtype=np.float32)).to(self.device)
        return self.model.encode_audio(x).float().cpu().numpy()

    def close(self) -> None:
        pass
