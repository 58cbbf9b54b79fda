"""Distillation of a CLAP teacher into a small student audio tower (the tinyCLAP recipe).

    python -m train.distill --teacher models/msclap --preset clap-rt-small --manifest m.jsonl ...

The student is the teacher with its frontend and audio tower replaced by those of the student
source (--preset / --model-config / --init; with --init the student's audio weights are kept).
The teacher's text tower and text projection are copied and frozen, so the student shares
the teacher's joint space and tokenizer. Per batch:

    loss = distill_weight * D(student audio emb, teacher audio emb of the clip)
         + contrastive_weight * contrastive(student audio emb, teacher text emb of the caption)

D is 1 - cosine ("cosine") or the squared distance of the unit vectors ("mse"). Teacher audio
embeddings are computed once per clip (window mean with the teacher's own frontend), so a
student window is pulled towards its whole clip's embedding. Mixing augmentation is refused:
a mixed window has no teacher target.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clap_rt.errors import UserError

from .config import ModelSource, TrainConfig, add_config_args, config_from_args, validate
from .train import ContrastiveStep, Trainer, fit, prepare_data, run_cli, source_config, start_run
from .loss import contrastive_loss, world_info

PROG = "python -m train.distill"


@dataclass
class DistillOptions:
    teacher: str = ""                       # clap_rt model folder
    distill_loss: str = "cosine"            # cosine | mse
    distill_weight: float = 1.0
    contrastive_weight: float = 1.0


@dataclass
class DistillConfig(TrainConfig):
    distill: DistillOptions = field(default_factory=DistillOptions)


def build_student(teacher, src: ModelSource):
    """A CLAP with the student's frontend + audio tower and the teacher's text side (frozen)."""
    from clap_rt.checkpoints import read_config
    from clap_rt.model import CLAP
    student_cfg = read_config(src.init)[0] if src.init else source_config(src)
    cfg = dataclasses.replace(teacher.config, name=f"{student_cfg.name}-distilled",
                              frontend=student_cfg.frontend, audio=student_cfg.audio)
    student = CLAP(cfg)
    shared = {k: v for k, v in teacher.state_dict().items()
              if k.startswith(("text.", "text_projection.")) or k == "logit_scale"}
    if src.init:
        from safetensors.torch import load_file
        shared.update({k: v for k, v in load_file(str(Path(src.init) / "model.safetensors")).items()
                       if k.startswith("audio.")})
    missing, unexpected = student.load_state_dict(shared, strict=False)
    if unexpected or any(k.startswith(("text", "logit")) for k in missing):
        raise UserError(f"--teacher: its text side does not fit the student ({(unexpected or missing)[:3]})")
    for p in list(student.text.parameters()) + list(student.text_projection.parameters()):
        p.requires_grad_(False)
    return student


class DistillStep(ContrastiveStep):
    """ContrastiveStep (frozen teacher text side) + a pull towards the teacher's audio embedding."""

    inputs = ("mel", "input_ids", "attention_mask")

    def __init__(self, student, teacher_audio: torch.Tensor, opts: DistillOptions):
        super().__init__(student, freeze_text=True)
        self.teacher_audio = teacher_audio          # (N clips, D), not a buffer: DDP would broadcast it
        self.opts = opts

    def forward(self, mel, input_ids, attention_mask):
        self.clap.text_projection.eval()            # the teacher's projection: no dropout
        return super().forward(mel, input_ids, attention_mask)

    def loss(self, out, batch) -> torch.Tensor:
        a, t, scale = out
        a = a.float()
        target = self.teacher_audio.to(a.device)[batch["index"]]            # (B, D) unit norm
        if self.opts.distill_loss == "cosine":
            d = (1.0 - (a * target).sum(dim=1)).mean()
        else:
            d = F.mse_loss(a, target, reduction="none").sum(dim=1).mean()
        c = contrastive_loss(a, t.float(), scale.float())
        return self.opts.distill_weight * d + self.opts.contrastive_weight * c


def teacher_audio_embeddings(teacher, clips, cfg: DistillConfig, device) -> torch.Tensor:
    """(N, D) unit-norm teacher embeddings of `clips`; rank 0 computes and saves, others read."""
    from .data import FeatureCache
    from .evaluate import embed_clip_windows
    rank, world = world_info()
    path = Path(cfg.out_dir) / "teacher_audio.npy"
    if rank == 0:
        cache = FeatureCache(teacher.config.frontend, cfg.data.cache_dir, cfg.data.feature_threads,
                             teacher.config.short_clips)
        emb = embed_clip_windows(teacher.to(device).eval(), cache.load_all(clips, progress=cfg.progress))
        np.save(path, emb)
    if world > 1:
        torch.distributed.barrier()
    return torch.from_numpy(np.load(path))


def parse_args(argv: list[str] | None) -> DistillConfig:
    p = argparse.ArgumentParser(prog=PROG, description="Distil a CLAP teacher into a student.")
    add_config_args(p, DistillConfig)
    cfg = config_from_args(p.parse_args(argv), DistillConfig)
    validate(cfg)
    if not cfg.distill.teacher:
        raise UserError("--teacher: expected a clap_rt model folder")
    if cfg.distill.distill_loss not in ("cosine", "mse"):
        raise UserError(f"--distill-loss: expected cosine or mse, got {cfg.distill.distill_loss!r}")
    if cfg.augment.mix_prob > 0:
        raise UserError("--mix-prob: must be 0 for distillation (a mixed window has no teacher target)")
    cfg.model.freeze_text = True                    # the text side is the teacher's
    return cfg


def distill(cfg: DistillConfig) -> dict:
    from clap_rt.checkpoints import load_model
    device = start_run(cfg)
    teacher, tokenizer = load_model(cfg.distill.teacher)
    student = build_student(teacher, cfg.model)
    rank, world = world_info()
    batches, evaluate, _ = prepare_data(cfg, student, tokenizer, world, rank)
    targets = teacher_audio_embeddings(teacher, batches.clips, cfg, device)
    del teacher
    return fit(Trainer(cfg, student, tokenizer, DistillStep(student, targets, cfg.distill), batches, device, evaluate))


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, parse_args, distill, argv)


if __name__ == "__main__":
    sys.exit(main())
