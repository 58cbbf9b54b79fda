"""clap-rt info [MODEL]: what a model folder holds."""
from __future__ import annotations

import json

from .common import add_model_options


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a model folder (default: the bundled model)")
    p.add_argument("model_path", nargs="?", default=None, metavar="MODEL")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoints import load_model
    model, _ = load_model(args.model_path or args.model)
    cfg = model.config
    fe = cfg.frontend
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    info = {"name": cfg.name, "audio_tower": cfg.audio.kind, "audio_params": n(model.audio),
            "text_tower": cfg.text.kind, "text_params": n(model.text), "embedding_dim": cfg.projection.dim,
            "sample_rate": fe.sample_rate, "window_seconds": fe.clip_seconds, "n_mels": fe.n_mels,
            "hop_length": fe.hop_length, "prompt_template": cfg.prompt_template,
            "event_thresholds": list(cfg.event_thresholds), "short_clips": cfg.short_clips}
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:16s} {v}")
    return 0
