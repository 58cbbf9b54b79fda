"""Contrastive training of a clap_rt model.

    python -m train.train --manifest data/manifest.jsonl --preset clap-rt-small --out-dir runs/a
    torchrun --nproc_per_node 4 -m train.train --manifest ... --init runs/a/model --freeze-text
    python -m train --config train/recipes/clap-rt-small.json --out-dir runs/small   # the shipped model

Every flag comes from train/config.py (`--help` lists them); `--config FILE` sets them from a
JSON file first. Whole towers train on cached dB frames; with --audio-blocks and --text-layers
only their last blocks / layers train, above cached frozen prefixes (train/prefix.py). The run
writes out_dir/{train_config.json, train_log.csv, eval_log.csv, checkpoints/, model/, eval.json}
(and best/, the best evaluated state, with --keep-best).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from clap_rt.errors import UserError, read_json_file, run_program

from .config import (ModelSource, OptimConfig, TrainConfig, add_config_args, config_from_args, dump, file_defaults,
                     validate)
from .loss import clamp_logit_scale_, contrastive_loss, world_info

PROG = "python -m train.train"


# --- model -----------------------------------------------------------------------------------

def read_model_config(path: str):
    from clap_rt.config import ModelConfig
    doc = read_json_file(path, f"--model-config {path}: file not found; expected a ModelConfig JSON file",
                         name=f"--model-config {path}")
    try:
        return ModelConfig.from_dict(doc["model"] if "format" in doc else doc)
    except (ValueError, TypeError) as e:
        raise UserError(f"--model-config {path}: {e}")


def source_config(src: ModelSource):
    """The ModelConfig named by --preset or --model-config."""
    from clap_rt.config import preset
    if src.preset:
        try:
            return preset(src.preset)
        except ValueError as e:
            raise UserError(f"--preset: {e}")
    return read_model_config(src.model_config)


def build_model(src: ModelSource):
    """(CLAP, TextTokenizer) from --preset / --model-config / --init (+ --tokenizer)."""
    from clap_rt.checkpoints import load_model, pretrained_text_state, pretrained_tokenizer_dir
    from clap_rt.model import CLAP
    from clap_rt.tokenizer import TextTokenizer
    if src.init:
        model, tokenizer = load_model(src.init)
    else:
        cfg = source_config(src)
        model = CLAP(cfg)
        base = pretrained_text_state(cfg)
        if base:
            model.load_state_dict(base, strict=False)
        tok_dir = src.tokenizer or pretrained_tokenizer_dir(cfg)
        if tok_dir is None:
            raise UserError("--tokenizer: required for a model without a pretrained text tower "
                            "(a folder with tokenizer.json, vocab.json + merges.txt, or vocab.txt)")
        tokenizer = TextTokenizer.from_dir(tok_dir, cfg.text)
    if src.init and src.tokenizer:
        tokenizer = TextTokenizer.from_dir(src.tokenizer, model.config.text)
    if src.audio_init == "aisfx":
        from .pretrained import load_aisfx_state
        if model.config.audio.kind != "sfx_cnn":
            raise UserError(f"--audio-init aisfx: expected a model with an sfx_cnn audio tower, got {model.config.audio.kind}")
        model.audio.load_state_dict(load_aisfx_state(), strict=True)
    if src.dropout is not None:
        model.config.projection.dropout = src.dropout
        for m in (model.audio_projection, model.text_projection):
            m.drop.p = src.dropout
    if src.short_clips is not None:
        model.config.short_clips = src.short_clips
    for p in model.audio.parameters():
        p.requires_grad_(not src.freeze_audio)
    for p in model.text.parameters():
        p.requires_grad_(not src.freeze_text)
    return model, tokenizer


def set_train_modes(model: nn.Module, src: ModelSource) -> None:
    """Train mode, except frozen towers (no dropout, fixed BN) and BN when --freeze-bn."""
    model.train()
    if src.freeze_audio:
        model.audio.eval()
    if src.freeze_text:
        model.text.eval()
    if src.freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def param_groups(model: nn.Module, weight_decay: float, tower_lr_scale: float = 1.0) -> list[dict]:
    """Weight decay on matrices and conv kernels only (not biases, norms, logit_scale); the
    towers' parameters at `tower_lr_scale` times the lr ("lr_scale" of each group)."""
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            tower = tower_lr_scale != 1.0 and name.startswith(("audio.", "text."))
            groups.setdefault((tower, p.ndim >= 2), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0,
             "lr_scale": tower_lr_scale if tower else 1.0} for (tower, decay), ps in sorted(groups.items())]


def lr_at(step: int, o: OptimConfig) -> float:
    """Linear warmup over warmup_steps, then cosine from lr to lr * min_lr_ratio at `steps`."""
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    t = (step - o.warmup_steps) / max(1, o.steps - o.warmup_steps)
    floor = o.lr * o.min_lr_ratio
    return floor + (o.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


class ContrastiveStep(nn.Module):
    """The module DDP wraps: (mel, input_ids, attention_mask) -> (audio emb, text emb, logit_scale)."""

    inputs = ("mel", "input_ids", "attention_mask")

    def __init__(self, clap: nn.Module, freeze_text: bool = False):
        super().__init__()
        self.clap = clap
        self.freeze_text = freeze_text

    def forward(self, mel, input_ids, attention_mask):
        a = self.clap.encode_audio(mel)                                     # (B, D)
        with torch.no_grad() if self.freeze_text else contextlib.nullcontext():
            t = self.clap.encode_text(input_ids, attention_mask)            # (B, D)
        return a, t, self.clap.logit_scale

    @staticmethod
    def loss(out, batch) -> torch.Tensor:
        a, t, scale = out
        return contrastive_loss(a.float(), t.float(), scale.float())


# --- distributed -----------------------------------------------------------------------------

def init_distributed(device: str) -> torch.device:
    """Join the torchrun process group if launched by torchrun; returns this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def step_seed(seed: int, micro_step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, 2, micro_step, rank]).generate_state(1)[0])


# --- logs ------------------------------------------------------------------------------------

class CsvLog:
    """Append-only CSV of dict rows; on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.fields: list[str] | None = None
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            keep = [r for r in rows if resume_step is not None and int(r["step"]) <= resume_step]
            self.fields = list(rows[0]) if rows else None
            with open(path, "w", newline="") as f:
                if self.fields:
                    w = csv.DictWriter(f, self.fields)
                    w.writeheader()
                    w.writerows(keep)

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


def tensorboard_writer(out_dir: Path):
    """A SummaryWriter when the tensorboard package is installed, else None."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(out_dir / "tensorboard"))


# --- the loop --------------------------------------------------------------------------------

class Trainer:
    """Runs optimizer steps of `step_module` (wrapping `model`) on `batches`.

    batches.micro_batch(m, rank) -> dict of tensors; step_module.inputs names the forward
    arguments; step_module.loss(out, batch) -> scalar loss of this rank's rows.
    """

    def __init__(self, cfg: TrainConfig, model, tokenizer, step_module: nn.Module, batches,
                 device: torch.device, evaluate=None):
        self.cfg, self.model, self.tokenizer, self.batches = cfg, model, tokenizer, batches
        self.device, self.evaluate = device, evaluate
        self.rank, self.world = world_info()
        self.step_module = step_module.to(device)
        if self.world > 1:
            if cfg.model.sync_bn and device.type == "cuda":
                self.step_module = nn.SyncBatchNorm.convert_sync_batchnorm(self.step_module)
            self.ddp = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[device.index] if device.type == "cuda" else None)
        else:
            self.ddp = self.step_module
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(param_groups(model, o.weight_decay, o.tower_lr_scale), lr=o.lr,
                                           betas=tuple(o.betas), eps=o.eps)
        cuda_amp = cfg.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda_amp)
        self.autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.step = 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.cfg.amp)

    def compute_grads(self, step: int) -> float:
        """Forward/backward all micro-batches of optimizer step `step`; returns the mean loss
        over the global batch (all ranks)."""
        o = self.cfg.optim
        set_train_modes(self.model, self.cfg.model)
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for k in range(o.accum_steps):
            m = step * o.accum_steps + k
            torch.manual_seed(step_seed(self.cfg.seed, m, self.rank))
            batch = {key: v.to(self.device) for key, v in self.batches.micro_batch(m, self.rank).items()}
            last = k == o.accum_steps - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    out = self.ddp(*(batch[name] for name in self.step_module.inputs))
                loss = self.step_module.loss(out, batch) / o.accum_steps
                self.scaler.scale(loss).backward()
            total += loss.detach()
        if self.world > 1:
            torch.distributed.all_reduce(total)
            total /= self.world
        return float(total)

    def apply_update(self) -> float:
        """Clip, step, clamp the temperature; returns the gradient norm before clipping."""
        o = self.cfg.optim
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip if o.grad_clip > 0 else float("inf"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        clamp_logit_scale_(self.model.logit_scale, o.max_logit_scale)
        return float(norm)

    def resume(self, path) -> None:
        from .checkpointing import load_checkpoint
        doc = load_checkpoint(path, self.model, self.optimizer, self.scaler)
        self.step = int(doc["step"])

    def save(self) -> None:
        from .checkpointing import save_checkpoint
        if self.rank == 0:
            save_checkpoint(Path(self.cfg.out_dir) / "checkpoints", self.step, self.model, self.tokenizer,
                            self.optimizer, self.scaler, {"seed": self.cfg.seed, "train_config": self.cfg.to_dict()},
                            keep=self.cfg.keep_checkpoints)

    def run(self) -> dict:
        cfg, o = self.cfg, self.cfg.optim
        out = Path(cfg.out_dir)
        resumed = self.step if self.step else None
        if self.rank == 0 and resumed is None and self.best_dir.exists():
            import shutil
            shutil.rmtree(self.best_dir)        # an earlier run's, not this one's
        log = CsvLog(out / "train_log.csv", resumed) if self.rank == 0 else None
        eval_log = CsvLog(out / "eval_log.csv", resumed) if self.rank == 0 else None
        tb = tensorboard_writer(out) if self.rank == 0 else None
        bar = None
        if self.rank == 0 and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=o.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        t0 = time.time()
        last: dict = {}
        while self.step < o.steps:
            lr = lr_at(self.step, o)
            for g in self.optimizer.param_groups:
                g["lr"] = lr * g["lr_scale"]
            loss = self.compute_grads(self.step)
            norm = self.apply_update()
            self.step += 1
            last = {"step": self.step, "lr": lr, "loss": loss, "grad_norm": norm,
                    "logit_scale": float(self.model.logit_scale.detach().exp()),
                    "seconds": round(time.time() - t0, 3)}
            if self.rank == 0:
                if self.step % cfg.log_every == 0 or self.step == o.steps or self.step == 1:
                    log.write(last)
                    if tb:
                        for k, v in last.items():
                            tb.add_scalar(f"train/{k}", v, self.step)
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
                if self.evaluate and cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < o.steps:
                    self._eval(eval_log, tb)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < o.steps:
                self.save()
        if bar:
            bar.close()
        self.save()
        result = {"train": last}
        if self.rank == 0:
            from clap_rt.checkpoints import save_model
            meta = {"step": self.step, "train_config": cfg.to_dict()}
            if self.evaluate:
                result["eval"] = self._eval(eval_log, tb, confusion=out / "confusion.png")
            if cfg.keep_best:
                best = self.restore_best()
                result["best"] = best
                meta.update(best_step=best["step"], eval=best["eval"])
            elif self.evaluate:
                meta["eval"] = result["eval"]
            if cfg.model.audio_init == "aisfx":
                from .pretrained import AISFX_ATTRIBUTION, MINILM_ATTRIBUTION
                meta["attribution"] = [AISFX_ATTRIBUTION, MINILM_ATTRIBUTION]
            save_model(self.model, out / "model", self.tokenizer, meta=meta, dtype=getattr(torch, cfg.save_dtype))
            (out / "eval.json").write_text(json.dumps(result, indent=2))
            if tb:
                tb.close()
        return result

    def _eval(self, log, tb, confusion=None) -> dict:
        scores = self.evaluate(self.model, confusion)
        row = {"step": self.step, **{k: v for k, v in scores.items() if isinstance(v, (int, float))}}
        log.write(row)
        if tb:
            for k, v in row.items():
                tb.add_scalar(f"eval/{k}", v, self.step)
        if self.cfg.keep_best and scores["top1"] > self.best_top1():
            from clap_rt.checkpoints import save_model
            save_model(self.model, self.best_dir, self.tokenizer, meta={"step": self.step, "eval": scores})
        return scores

    @property
    def best_dir(self) -> Path:
        return Path(self.cfg.out_dir) / "best"

    def best_top1(self) -> float:
        """Top-1 of the best state evaluated so far in this run (-1 before the first)."""
        from clap_rt.checkpoints import read_config
        return read_config(self.best_dir)[1]["eval"]["top1"] if (self.best_dir / "config.json").exists() else -1.0

    def restore_best(self) -> dict:
        """Load the best evaluated state into the model; returns its {"step", "eval"}."""
        from safetensors.torch import load_file
        from clap_rt.checkpoints import load_state_strict, pretrained_text_state, read_config
        meta = read_config(self.best_dir)[1]
        state = pretrained_text_state(self.model.config)
        state.update(load_file(str(self.best_dir / "model.safetensors")))
        load_state_strict(self.model, state, str(self.best_dir / "model.safetensors"))
        return {"step": meta["step"], "eval": meta["eval"]}


# --- entry point -----------------------------------------------------------------------------

def prepare_data(cfg: TrainConfig, model, tokenizer, world: int, rank: int):
    """(batches, evaluate fn or None, step module); rank 0 builds missing cache files first."""
    if cfg.model.audio_blocks is not None:
        from .prefix import prepare_prefix
        return prepare_prefix(cfg, model, tokenizer, world, rank)
    from .augment import Augmenter
    from .data import FeatureCache, TrainBatches, read_manifest, select_split
    from .evaluate import ModelEncoder, evaluate_clips
    model_cfg = model.config
    manifest = str(Path(cfg.data.manifest).expanduser())
    clips = read_manifest(manifest)
    train_clips = select_split(clips, cfg.data.train_split, manifest)
    eval_clips = select_split(clips, cfg.data.eval_split, manifest) if cfg.data.eval_split else []
    cache = FeatureCache(model_cfg.frontend, cfg.data.cache_dir, cfg.data.feature_threads, model_cfg.short_clips,
                         cfg.data.max_windows)
    trained = FeatureCache(model_cfg.frontend, cfg.data.cache_dir, cfg.data.feature_threads, model_cfg.short_clips,
                           cfg.data.max_windows, copies=cfg.copies)
    if rank == 0:
        trained.load_all(train_clips, progress=cfg.progress)
        cache.load_all(eval_clips, progress=cfg.progress)
    if world > 1:
        torch.distributed.barrier()
    train_feats = trained.load_all(train_clips)
    if cfg.optim.batch_size * world > len(train_clips):
        raise UserError(f"--batch-size: {cfg.optim.batch_size} x {world} ranks exceeds the "
                        f"{len(train_clips)} training clips")
    batches = TrainBatches(train_clips, train_feats, tokenizer, cfg.optim.batch_size, world, cfg.seed,
                           Augmenter(cfg.augment))
    evaluate = None
    if eval_clips:
        eval_feats = cache.load_all(eval_clips)
        evaluate = lambda model, png=None: evaluate_clips(ModelEncoder(model, tokenizer), eval_clips,  # noqa: E731
                                                          eval_feats, confusion_png=png)
    return batches, evaluate, ContrastiveStep(model, cfg.model.freeze_text)


def parse_args(argv: list[str] | None, prog: str = PROG) -> TrainConfig:
    """Flags over the defaults of --config FILE over the dataclass defaults."""
    p = argparse.ArgumentParser(prog=prog, description="Contrastive training of a clap_rt model.")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="JSON file of TrainConfig fields (as out_dir/train_config.json), e.g. train/recipes/*.json")
    add_config_args(p, TrainConfig)
    first, _ = p.parse_known_args(argv)
    if first.config:
        p.set_defaults(**file_defaults(first.config))
    cfg = config_from_args(p.parse_args(argv), TrainConfig)
    validate(cfg)
    return cfg


def start_run(cfg: TrainConfig) -> torch.device:
    """Threads, process group, seed (identical initial weights on every rank), out_dir + config."""
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = init_distributed(cfg.device)
    torch.manual_seed(cfg.seed)
    if world_info()[0] == 0:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        dump(cfg, Path(cfg.out_dir) / "train_config.json")
    return device


def fit(trainer: Trainer) -> dict:
    """Resume when asked (and a checkpoint exists), then run to the end."""
    from .checkpointing import find_checkpoint
    cfg = trainer.cfg
    ckpt = find_checkpoint(cfg.resume, cfg.out_dir) if cfg.resume else None
    if ckpt is not None:
        trainer.resume(ckpt)
    return trainer.run()


def train(cfg: TrainConfig) -> dict:
    device = start_run(cfg)
    model, tokenizer = build_model(cfg.model)
    rank, world = world_info()
    batches, evaluate, step_module = prepare_data(cfg, model, tokenizer, world, rank)
    return fit(Trainer(cfg, model, tokenizer, step_module, batches, device, evaluate))


def run_cli(prog: str, parse, run, argv: list[str] | None) -> int:
    """parse(argv) -> config; run(config), as program `prog` (clap_rt.errors.run_program); the
    process group torchrun started is destroyed at the end, after an error too."""
    def body() -> None:
        try:
            run(parse(argv))
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
    return run_program(prog, body)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, parse_args, train, argv)


if __name__ == "__main__":
    sys.exit(main())
