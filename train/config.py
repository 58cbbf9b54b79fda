"""Training configuration: nested dataclasses that generate the command-line flags.

Every leaf field becomes one flag named after it (`batch_size` -> `--batch-size`); bools get
`--flag / --no-flag`; tuples take several values. Names are unique across the nesting, so the
flat CLI stays readable: `python -m train.train --manifest m.jsonl --preset clap-rt-small
--steps 2000 --lr 3e-4 --no-amp`. A JSON file of the nested fields (`--config FILE`, the form
every run writes as out_dir/train_config.json) gives the defaults that flags then override;
train/recipes/ holds the shipped model's.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Optional

from clap_rt.errors import UserError

# The CLIP clamp on the log inverse temperature: the temperature never falls below 1/100.
MAX_LOGIT_SCALE = math.log(100)


@dataclass
class ModelSource:
    """Where the model comes from: exactly one of preset / model_config / init."""

    preset: Optional[str] = None            # a name in clap_rt.config.PRESETS
    model_config: Optional[str] = None      # JSON file: a ModelConfig dict or a clap_rt config.json
    init: Optional[str] = None              # a clap_rt model folder to start from
    tokenizer: Optional[str] = None         # folder with tokenizer.json / vocab files (else the model's)
    freeze_text: bool = False               # text tower fixed (eval mode, no gradients)
    freeze_audio: bool = False              # audio tower fixed (eval mode, no gradients)
    freeze_bn: bool = False                 # BatchNorm layers use their running statistics
    sync_bn: bool = False                   # SyncBatchNorm across ranks (CUDA only)
    audio_init: Optional[str] = None        # "aisfx": the audio tower starts from the aisfx weights
    # Frozen prefixes: train only the last N CNN blocks / MiniLM layers; what runs below them is
    # computed once and cached (train/prefix.py). 0: the tower's pooled output is cached. None:
    # the whole tower runs on dB frames / tokens every step.
    audio_blocks: Optional[int] = None
    text_layers: Optional[int] = None
    dropout: Optional[float] = None         # projection dropout (None: the model config's)
    short_clips: Optional[str] = None       # repeat | centre, stored with the model (None: the config's)


@dataclass
class DataConfig:
    manifest: str = ""                      # CSV or JSONL, see train/data.py
    train_split: str = "train"
    eval_split: str = "val"                 # "" : no evaluation during training
    cache_dir: Optional[str] = None         # None: clap_rt.cache.cache_dir()/features/<frontend hash>
    feature_threads: int = 1                # threads for the C++ frontend when building the cache
    # Whole packages held out for validation: their training clips leave the training set and
    # replace eval_split (known names in unseen recordings, as the benchmarks are).
    val_sources: tuple = ()
    max_windows: int = 0                    # windows per clip, evenly spread, ends kept; 0: all


@dataclass
class CopiesConfig:
    """Altered versions of each training clip, cached beside its own windows (train/copies.py)."""

    copies: int = 0                         # versions per clip, each at a random peak level
    copy_noise: float = 0.0                 # probability that a version is mixed with coloured noise
    copy_place: float = 0.0                 # probability that a version is set once into silence


@dataclass
class AugmentConfig:
    """Augmentations applied to cached dB frames (see train/augment.py)."""

    gain_db: float = 6.0                    # uniform gain in [-gain_db, +gain_db] dB
    noise_prob: float = 0.3
    noise_snr_db: tuple = (10.0, 40.0)      # noise level relative to the clip's mean power
    shift_prob: float = 0.5                 # circular time shift by a random number of frames
    freq_masks: int = 2
    freq_mask_width: int = 8                # mel bands, at most
    time_masks: int = 2
    time_mask_width: int = 10               # frames, at most
    mix_prob: float = 0.0                   # mix two clips, caption "X and Y"


@dataclass
class OptimConfig:
    steps: int = 1000                       # optimizer steps
    batch_size: int = 32                    # per rank and micro-step; negatives: batch_size * world
    accum_steps: int = 1                    # micro-steps per optimizer step
    lr: float = 3e-4
    min_lr_ratio: float = 0.0               # cosine floor as a fraction of lr
    warmup_steps: int = 100
    weight_decay: float = 0.05              # not applied to biases, norms and logit_scale
    betas: tuple = (0.9, 0.98)              # AdamW
    eps: float = 1e-6                       # AdamW
    tower_lr_scale: float = 1.0             # lr of the towers' parameters over that of the rest
    grad_clip: float = 1.0                  # max global grad norm; 0: off
    max_logit_scale: float = MAX_LOGIT_SCALE


@dataclass
class TrainConfig:
    model: ModelSource = field(default_factory=ModelSource)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    copies: CopiesConfig = field(default_factory=CopiesConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    out_dir: str = "runs/clap"
    seed: int = 0
    device: str = "auto"                    # auto | cpu | cuda
    amp: bool = True                        # bf16 autocast on CPU, fp16 + GradScaler on CUDA
    torch_threads: int = 0                  # intra-op threads per process; 0: torch's default
    log_every: int = 10
    eval_every: int = 0                     # 0: only at the end
    keep_best: bool = False                 # the saved model is the evaluated state of best top-1
    save_dtype: str = "float32"             # float32 | float16: the saved model's weights
    checkpoint_every: int = 500             # 0: only at the end
    keep_checkpoints: int = 3
    resume: Optional[str] = None            # checkpoint folder, or "auto": latest in out_dir
    progress: bool = True                   # tqdm bar on rank 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- dataclass <-> argparse ------------------------------------------------------------------

def _leaves(cls, prefix: tuple = ()):
    """Yield (path, field, type) for every non-dataclass field, depth first."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _leaves(tp, prefix + (f.name,))
        else:
            yield prefix + (f.name,), f, tp


def _default(cls, path: tuple):
    obj = cls()
    for name in path:
        obj = getattr(obj, name)
    return obj


def add_config_args(parser: argparse.ArgumentParser, cls=TrainConfig) -> None:
    """Add one flag per leaf field of dataclass `cls` (names must be unique across nesting)."""
    seen: dict[str, tuple] = {}
    for path, f, tp in _leaves(cls):
        name = f.name
        if name in seen:
            raise ValueError(f"{cls.__name__}: field name {name!r} used at {seen[name]} and {path}")
        seen[name] = path
        flag = "--" + name.replace("_", "-")
        default = _default(cls, path)
        origin = typing.get_origin(tp)
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if tp is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"(default: {default})")
        elif tp is tuple or origin is tuple:
            elem = type(default[0]) if default else str
            parser.add_argument(flag, dest=name, type=elem, nargs=len(default) or "+", default=default,
                                metavar=name.upper(), help=f"(default: {' '.join(map(str, default))})")
        else:
            base = inner[0] if origin is typing.Union else tp
            parser.add_argument(flag, dest=name, type=base, default=default, help=f"(default: {default})")


def config_from_args(args: argparse.Namespace, cls=TrainConfig):
    """Build `cls` from the parsed flags of `add_config_args`."""
    def build(c, prefix=()):
        kwargs = {}
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                kwargs[f.name] = build(tp, prefix + (f.name,))
            else:
                value = getattr(args, f.name)
                kwargs[f.name] = tuple(value) if isinstance(value, list) else value
        return c(**kwargs)
    return build(cls)


def file_defaults(path: str, cls=TrainConfig) -> dict:
    """The leaf values of JSON config file `path` (nested as `dump` writes it; any subset of the
    fields), keyed by flag destination, for `parser.set_defaults`."""
    from clap_rt.errors import read_json_file
    doc = read_json_file(path, f"--config {path}: file not found; expected a JSON training config",
                         name=f"--config {path}")
    out: dict = {}

    def walk(c, d, where: str) -> None:
        if not isinstance(d, dict):
            raise UserError(f"--config {path}: {where or 'the file'}: expected a JSON object")
        hints = typing.get_type_hints(c)
        names = [f.name for f in dataclasses.fields(c)]
        for key, value in d.items():
            if key not in names:
                raise UserError(f"--config {path}: unknown field {where}{key}; expected one of {', '.join(names)}")
            if dataclasses.is_dataclass(hints[key]):
                walk(hints[key], value, f"{where}{key}.")
            else:
                out[key] = _checked(value, hints[key], f"--config {path}: {where}{key}")
    walk(cls, doc, "")
    return out


def _checked(value, tp, where: str):
    """`value` of a JSON file as field type `tp` (lists become tuples); a UserError otherwise."""
    inner = [a for a in typing.get_args(tp) if a is not type(None)]
    if value is None and type(None) in typing.get_args(tp):
        return None
    base = inner[0] if typing.get_origin(tp) is typing.Union else tp
    if base is tuple and isinstance(value, list):
        return tuple(value)
    ok = (isinstance(value, bool) if base is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if base is float else
          isinstance(value, int) and not isinstance(value, bool) if base is int else isinstance(value, base))
    if not ok:
        raise UserError(f"{where}: expected {'a list' if base is tuple else base.__name__}, got {value!r}")
    return float(value) if base is float else value


def validate(cfg: TrainConfig) -> None:
    """One-line UserErrors for contradictory or out-of-range settings."""
    m = cfg.model
    given = [n for n in ("preset", "model_config", "init") if getattr(m, n)]
    if len(given) != 1:
        raise UserError("model: expected exactly one of --preset, --model-config, --init; got "
                        + (", ".join("--" + n.replace("_", "-") for n in given) or "none"))
    if not cfg.data.manifest:
        raise UserError("--manifest: expected a CSV or JSONL manifest file")
    o = cfg.optim
    for name, value, low in (("--steps", o.steps, 1), ("--batch-size", o.batch_size, 2),
                             ("--accum-steps", o.accum_steps, 1)):
        if value < low:
            raise UserError(f"{name}: expected an integer >= {low}, got {value}")
    if o.warmup_steps < 0:
        raise UserError(f"--warmup-steps: expected an integer >= 0, got {o.warmup_steps}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device: expected auto, cpu or cuda, got {cfg.device!r}")
    if m.freeze_text and m.freeze_audio:
        raise UserError("--freeze-text and --freeze-audio: at least one tower must train")
    if (m.audio_blocks is None) != (m.text_layers is None):
        raise UserError("--audio-blocks and --text-layers: give both (the frozen-prefix path) or neither")
    if m.audio_blocks is not None:
        if m.audio_blocks < 0 or m.text_layers < 0:
            raise UserError(f"--audio-blocks / --text-layers: expected integers >= 0, got "
                            f"{m.audio_blocks} / {m.text_layers}")
        if m.freeze_text or m.freeze_audio:
            raise UserError("--freeze-text / --freeze-audio: with --audio-blocks and --text-layers, a frozen "
                            "tower is --audio-blocks 0 or --text-layers 0")
        a = cfg.augment
        if a.gain_db or a.noise_prob or a.shift_prob or a.freq_masks or a.time_masks or a.mix_prob:
            raise UserError("--audio-blocks: the dB-frame augmentations do not apply to cached CNN maps; "
                            "set --gain-db, --noise-prob, --shift-prob, --freq-masks, --time-masks, --mix-prob to 0")
    from clap_rt.audio import SHORT_CLIPS
    if m.short_clips is not None and m.short_clips not in SHORT_CLIPS:
        raise UserError(f"--short-clips: expected one of {', '.join(SHORT_CLIPS)}, got {m.short_clips!r}")
    if m.audio_init not in (None, "aisfx"):
        raise UserError(f"--audio-init: expected aisfx, got {m.audio_init!r}")
    if cfg.save_dtype not in ("float32", "float16"):
        raise UserError(f"--save-dtype: expected float32 or float16, got {cfg.save_dtype!r}")
    if cfg.keep_best and not (cfg.data.eval_split or cfg.data.val_sources):
        raise UserError("--keep-best: needs an evaluation set (--eval-split or --val-sources)")


def dump(cfg, path) -> None:
    from clap_rt.checkpoints import atomic_write_bytes
    atomic_write_bytes(path, json.dumps(dataclasses.asdict(cfg), indent=2).encode())
