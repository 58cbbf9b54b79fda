"""What the export programs share: file names, the failures they report, checkpoints, calibration windows."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from clap_rt.config import ModelConfig
from clap_rt.errors import UserError

AUDIO_ONNX = "audio.onnx"           # portable opset-17 graph (TensorRT / any runtime)
AUDIO_ORT = "audio.ort.onnx"        # the same after onnxruntime's extended graph optimisation
META_JSON = "export.json"           # model config + input spec + measured parity
LABELS_NPZ = "labels.npz"           # precomputed label-embedding table


# What an export program reports as one line and exit status 2 besides a UserError: a missing
# package or device, a graph TensorRT cannot take (all RuntimeErrors, see clap_rt.engine).
FAILURES = (RuntimeError,)


def load_checkpoint(path: str):
    """A clap_rt model folder -> (model in eval mode, tokenizer); UserError when it is not one."""
    from clap_rt.checkpoints import load_model
    return load_model(path)


def read_meta(export_dir: str | Path) -> dict:
    """The export.json that to_onnx.py wrote next to the graph."""
    path = Path(export_dir) / META_JSON
    if not path.exists():
        raise UserError(f"{export_dir}: no {META_JSON}; expected a folder written by export/to_onnx.py")
    return json.loads(path.read_text())


def model_config(meta: dict) -> ModelConfig:
    return ModelConfig.from_dict(meta["model"])


def calibration_windows(folder: str | Path, cfg: ModelConfig, max_windows: int = 64,
                        max_files: int = 32) -> np.ndarray:
    """Log-mel of fixed clip windows from a folder of audio -> (N, n_mels, n_frames) float32.

    Files are taken evenly from the sorted recursive listing (a deterministic sample of a
    corpus), each cut with the same `fit_windows` the runtime uses; files that fail to decode
    are skipped.
    """
    from clap_rt.audio import find_audio_files, fit_windows, load_audio
    from clap_rt.frontend import log_mel
    files = find_audio_files([str(folder)]) if Path(folder).is_dir() else []
    if not files:
        raise UserError(f"--calib {folder}: expected a folder containing audio files")
    pick = np.unique(np.linspace(0, len(files) - 1, min(max_files, len(files))).round().astype(int))
    fe = cfg.frontend
    wins = []
    for i in pick:
        try:
            wins.extend(fit_windows(load_audio(files[i], fe.sample_rate), fe.clip_samples, short=cfg.short_clips))
        except UserError:
            continue
    if not wins:
        raise UserError(f"--calib {folder}: none of the sampled audio files could be decoded")
    wins = np.stack(wins)[:max_windows]                     # (N, clip_samples)
    return log_mel(wins, fe).astype(np.float32)             # (N, n_mels, n_frames)


def batches(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(x), size):
        yield x[i:i + size]
