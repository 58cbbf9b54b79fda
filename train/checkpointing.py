"""Training checkpoints: a folder per step, written whole or not at all; never pickle.

    out_dir/checkpoints/step-00000500/
        model.safetensors, config.json, tokenizer.json   clap_rt.checkpoints.save_model (loadable model)
        optimizer.safetensors                          every tensor of the optimizer state
        trainer.json                                   step, seed, optimizer param groups and
                                                       scalar state, GradScaler state, train config
    out_dir/checkpoints/latest                         name of the newest complete folder

The folder is assembled under a temporary name and renamed into place, so a kill at any
moment leaves the previous checkpoint intact. Random state is not stored: every draw in a
step is seeded from (seed, step, rank), so seed + step determine it (and resuming with a
different number of ranks stays well defined).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from clap_rt.checkpoints import atomic_write_bytes, load_state_strict, save_model
from clap_rt.errors import UserError

OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer.json"
LATEST = "latest"


def optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """optimizer.state_dict() -> (tensors keyed "state.<param>.<name>", JSON-able rest)."""
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(root: str | os.PathLike, step: int, model, tokenizer, optimizer,
                    scaler=None, trainer_meta: dict | None = None, keep: int = 3) -> Path:
    """Write checkpoint `step` under `root` (= out_dir/checkpoints) atomically; prune to `keep`."""
    from safetensors.torch import save
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, tokenizer, meta={"step": step})
    tensors, opt_meta = optimizer_to_flat(optimizer.state_dict())
    atomic_write_bytes(tmp / OPTIMIZER_FILE, save(tensors))
    doc = {"step": step, "optimizer": opt_meta,
           "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
           **(trainer_meta or {})}
    atomic_write_bytes(tmp / TRAINER_FILE, json.dumps(doc, indent=1).encode())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(root / LATEST, final.name.encode())
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(resume: str, out_dir: str | os.PathLike) -> Path | None:
    """`resume` = "auto" (newest in out_dir/checkpoints, None if there is none) or a folder."""
    if resume == "auto":
        latest = Path(out_dir) / "checkpoints" / LATEST
        return latest.parent / latest.read_text().strip() if latest.exists() else None
    path = Path(resume)
    if not (path / TRAINER_FILE).exists():
        raise UserError(f"--resume {resume}: not a training checkpoint folder (expected {TRAINER_FILE})")
    return path


def load_checkpoint(path: str | os.PathLike, model, optimizer, scaler=None) -> dict:
    """Restore model weights, optimizer and scaler from `path`; returns trainer.json."""
    from safetensors.torch import load_file
    from clap_rt.checkpoints import pretrained_text_state
    path = Path(path)
    doc = json.loads((path / TRAINER_FILE).read_text())
    state = pretrained_text_state(model.config)
    state.update(load_file(str(path / "model.safetensors")))
    load_state_strict(model, state, str(path / "model.safetensors"))
    optimizer.load_state_dict(optimizer_from_flat(load_file(str(path / OPTIMIZER_FILE)), doc["optimizer"]))
    if scaler is not None and doc.get("scaler"):
        scaler.load_state_dict(doc["scaler"])
    return doc
