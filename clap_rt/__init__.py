"""clap_rt: a streaming CLAP engine (zero-shot sound events from words) with a training backend."""
from .checkpoints import load_model, save_model
from .config import ModelConfig, preset
from .labelpack import LabelPack
from .labelset import LabelSet
from .zeroshot import Clap

__all__ = ["Clap", "LabelPack", "LabelSet", "ModelConfig", "load_model", "preset", "save_model"]
__version__ = "0.1.0"
