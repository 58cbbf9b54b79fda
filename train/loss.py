"""Symmetric contrastive loss over the global batch, with gradients through the all-gather.

Each rank scores its own B rows against all world*B columns ("local loss"): with DDP's
gradient averaging this gives exactly the gradients of the single-process loss on the global
batch, because the all-gather below sums the gradients flowing back to
each rank's embeddings and DDP divides by the world size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import MAX_LOGIT_SCALE


def world_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient for this rank's rows.

    (An all-reduce + slice rather than a reduce-scatter: gloo has no reduce-scatter.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, D) on every rank -> (world*B, D) in rank order; gradients flow back to every rank."""
    _, world = world_info()
    return x if world == 1 else _GatherWithGrad.apply(x)


def contrastive_loss(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP loss: mean of the audio->text and text->audio cross-entropies.

    audio, text: (B, D) unit-norm embeddings of this rank (row i of each is a pair);
    logit_scale: scalar, log of the inverse temperature (the caller clamps it).
    Negatives are the embeddings of all ranks; the loss is the mean over this rank's rows.
    """
    rank, _ = world_info()
    all_audio = gather_with_grad(audio)                      # (W*B, D)
    all_text = gather_with_grad(text)                        # (W*B, D)
    scale = logit_scale.exp()
    logits_a = scale * audio @ all_text.t()                  # (B, W*B) this rank's audio vs all text
    logits_t = scale * text @ all_audio.t()                  # (B, W*B) this rank's text vs all audio
    target = torch.arange(audio.shape[0], device=audio.device) + rank * audio.shape[0]
    return 0.5 * (F.cross_entropy(logits_a.float(), target) + F.cross_entropy(logits_t.float(), target))


def clamp_logit_scale_(logit_scale: torch.nn.Parameter, max_value: float = MAX_LOGIT_SCALE) -> None:
    """Clamp in place after each optimizer step, as CLIP does (temperature >= 1/100)."""
    with torch.no_grad():
        logit_scale.clamp_(0.0, max_value)
