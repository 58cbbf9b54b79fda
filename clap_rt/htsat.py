"""HTSAT: the hierarchical token-semantic audio transformer (a Swin-T on a folded log-mel).

The log-mel frontend lives outside: the tower starts where msclap and LAION-CLAP start after
their torchlibrosa extractor, with dB frames. Module and parameter names follow the released
checkpoints (`bn0`, `patch_embed.proj`, `layers.{i}.blocks.{j}.attn.qkv`, ...), so converting
msclap's `audio_encoder.base.htsat.*` or LAION's `audio_branch.*` is a prefix strip.

Shapes use B batch, F mel bins, T frames, S = spec_size, r = freq_ratio = S // F, D channels.
Every reshape keeps the batch axis as -1 so the graph exports with a dynamic batch.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import FrontendConfig, HTSATConfig

# Logit added to attention between tokens that a cyclic shift brought together from distant
# image regions (the Swin / HTSAT value; any large negative number masks them out).
SHIFT_MASK_VALUE = -100.0


def window_partition(x: torch.Tensor, ws: int, h: int, w: int, c: int) -> torch.Tensor:
    """(B, h, w, c) -> (B * h/ws * w/ws, ws*ws, c), windows in row-major order."""
    x = x.reshape(-1, h // ws, ws, w // ws, ws, c)          # (B, h/ws, ws, w/ws, ws, c)
    x = x.permute(0, 1, 3, 2, 4, 5)                          # (B, h/ws, w/ws, ws, ws, c)
    return x.reshape(-1, ws * ws, c)                         # (B*nW, ws*ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int, c: int) -> torch.Tensor:
    """(B * nW, ws*ws, c) -> (B, h, w, c); the inverse of `window_partition`."""
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c)     # (B, h/ws, w/ws, ws, ws, c)
    x = x.permute(0, 1, 3, 2, 4, 5)                          # (B, h/ws, ws, w/ws, ws, c)
    return x.reshape(-1, h, w, c)                            # (B, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) int64: row of the bias table for each (query, key) pair of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    coords = coords.flatten(1)                               # (2, ws*ws)
    rel = coords[:, :, None] - coords[:, None, :]            # (2, N, N) in [-(ws-1), ws-1]
    rel = rel.permute(1, 2, 0) + (ws - 1)                    # (N, N, 2) in [0, 2ws-2]
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]          # (N, N)


def shift_attention_mask(res: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask for shifted windows on a res x res grid.

    After rolling by -shift, the last windows of each axis hold tokens from up to three
    regions that were not neighbours; tokens attend only within their own region.
    """
    region = torch.zeros(1, res, res, 1)
    bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for wsl in bounds:
            region[:, hs, wsl, :] = label
            label += 1
    windows = window_partition(region, ws, res, res, 1).squeeze(-1)   # (nW, N)
    diff = windows[:, None, :] - windows[:, :, None]                    # (nW, N, N)
    return torch.where(diff != 0, SHIFT_MASK_VALUE, 0.0)


class PatchEmbed(nn.Module):
    """(B, 1, S, S) image -> (B, (S/stride)^2, D) tokens."""

    def __init__(self, cfg: HTSATConfig):
        super().__init__()
        pad = (cfg.patch_size - cfg.patch_stride) // 2
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.patch_stride, pad)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)                                     # (B, D, G, G)
        return self.norm(x.flatten(2).transpose(1, 2))       # (B, G*G, D)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative position bias."""

    def __init__(self, dim: int, ws: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.dim, self.ws, self.num_heads = dim, ws, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        # Derived from ws alone: not stored in checkpoints (the converters check released copies).
        self.register_buffer("relative_position_index", relative_position_index(ws), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B*nW, N, D), mask: (nW, N, N) or None -> (B*nW, N, D)."""
        n, d, h = self.ws * self.ws, self.dim, self.num_heads
        qkv = self.qkv(x).reshape(-1, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # (3, B*nW, h, N, d/h)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)        # (B*nW, h, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, h).permute(2, 0, 1)  # + (h, N, N)
        if mask is not None:
            n_windows = mask.shape[0]
            attn = attn.reshape(-1, n_windows, h, n, n) + mask[:, None]   # (B, nW, h, N, N)
            attn = attn.reshape(-1, h, n, n)                 # (B*nW, h, N, N)
        x = attn.softmax(dim=-1) @ v                         # (B*nW, h, N, d/h)
        return self.proj(x.transpose(1, 2).reshape(-1, n, d))   # (B*nW, N, D)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention + MLP on a res x res token grid, (B, res*res, D)."""

    def __init__(self, cfg: HTSATConfig, dim: int, res: int, num_heads: int, shifted: bool):
        super().__init__()
        # A grid no larger than one window is attended whole, and shifting it is pointless.
        self.ws = min(cfg.window_size, res)
        self.shift = cfg.window_size // 2 if shifted and res > cfg.window_size else 0
        self.dim, self.res = dim, res
        self.norm1 = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.attn = WindowAttention(dim, self.ws, num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        mask = shift_attention_mask(res, self.ws, self.shift) if self.shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, ws, d, s = self.res, self.ws, self.dim, self.shift
        y = self.norm1(x).reshape(-1, r, r, d)               # (B, res, res, D)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = window_partition(y, ws, r, r, d)                 # (B*nW, ws*ws, D)
        y = self.attn(y, self.attn_mask)                     # (B*nW, ws*ws, D)
        y = window_reverse(y, ws, r, r, d)                   # (B, res, res, D)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y.reshape(-1, r * r, d)                      # (B, res*res, D)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """(B, res*res, D) -> (B, res/2*res/2, 2D): concatenate 2x2 neighbours, norm, project."""

    def __init__(self, dim: int, res: int, eps: float):
        super().__init__()
        self.dim, self.res = dim, res
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, d = self.res, self.dim
        x = x.reshape(-1, r, r, d)                           # (B, res, res, D)
        # Order (row, col) = (0,0), (1,0), (0,1), (1,1), as the released weights expect.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        x = x.reshape(-1, (r // 2) * (r // 2), 4 * d)        # (B, res*res/4, 4D)
        return self.reduction(self.norm(x))                  # (B, res*res/4, 2D)


class Stage(nn.Module):
    """Swin blocks alternating plain / shifted windows, then patch merging (except the last)."""

    def __init__(self, cfg: HTSATConfig, i: int, res: int):
        super().__init__()
        dim = cfg.embed_dim * 2 ** i
        self.blocks = nn.ModuleList(
            SwinBlock(cfg, dim, res, cfg.num_heads[i], shifted=j % 2 == 1) for j in range(cfg.depths[i]))
        last = i == len(cfg.depths) - 1
        self.downsample = None if last else PatchMerging(dim, res, cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class HTSAT(nn.Module):
    """dB log-mel frames (B, n_mels, T) -> clip embedding (B, cfg.out_dim).

    The embedding is the one msclap and LAION feed to their projections ("latent_output" /
    "embedding"): the mean of the final normalised tokens. The AudioSet token-semantic head
    (`tscam_conv`, `head`) does not contribute to it and is not built.
    """

    def __init__(self, cfg: HTSATConfig, fe: FrontendConfig):
        super().__init__()
        n_mels, s = fe.n_mels, cfg.spec_size
        if cfg.in_chans != 1:
            raise ValueError(f"htsat.in_chans: only 1 (mono, no fusion) is supported, got {cfg.in_chans}")
        if s % n_mels:
            raise ValueError(f"htsat.spec_size ({s}) must be a multiple of frontend.n_mels ({n_mels})")
        self.n_mels = n_mels
        self.freq_ratio = s // n_mels                        # r: time chunks stacked along frequency
        self.spec_size = s
        self.n_time = s * self.freq_ratio                    # frames the image holds (256*4 = 1024)
        self.stretch = cfg.stretch_frames
        if fe.n_frames > self.n_time or (fe.n_frames != self.n_time and not self.stretch):
            limit = "at most" if self.stretch else "exactly (htsat.stretch_frames is off)"
            raise ValueError(f"frontend gives {fe.n_frames} frames per clip; htsat takes {limit} {self.n_time}")
        if s % cfg.patch_stride:
            raise ValueError(f"htsat.spec_size ({s}) must be a multiple of patch_stride ({cfg.patch_stride})")
        grid = s // cfg.patch_stride
        resolutions = [grid // 2 ** i for i in range(len(cfg.depths))]
        for i, res in enumerate(resolutions):
            if res * 2 ** i != grid or (res > cfg.window_size and res % cfg.window_size):
                raise ValueError(f"htsat: stage {i} grid {grid}/2^{i} does not tile into "
                                 f"{cfg.window_size}x{cfg.window_size} windows")

        self.bn0 = nn.BatchNorm1d(n_mels)                    # per-mel-bin normalisation
        self.patch_embed = PatchEmbed(cfg)
        self.layers = nn.ModuleList(Stage(cfg, i, res) for i, res in enumerate(resolutions))
        self.norm = nn.LayerNorm(cfg.out_dim, eps=cfg.layer_norm_eps)

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) normalised frames -> (B, 1, S, S): time stretched to r*S, cut into r chunks
        stacked along frequency (row = chunk*F + mel bin, column = frame within the chunk)."""
        f, r, s = self.n_mels, self.freq_ratio, self.spec_size
        x = x.transpose(1, 2).unsqueeze(1)                   # (B, 1, T, F)
        if x.shape[2] != self.n_time:
            # msclap / LAION: bicubic, align_corners; the F axis keeps its size (sampled exactly).
            x = F.interpolate(x, size=(self.n_time, f), mode="bicubic", align_corners=True)  # (B, 1, r*S, F)
        x = x.reshape(-1, r, s, f)                           # (B, r, S, F)
        x = x.transpose(2, 3)                                # (B, r, F, S)
        return x.reshape(-1, 1, r * f, s)                    # (B, 1, S, S)

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        """mel_db: (B, n_mels, T) dB frames, T <= spec_size*freq_ratio -> (B, out_dim)."""
        if mel_db.dim() != 3 or mel_db.shape[1] != self.n_mels:
            raise ValueError(f"htsat input: expected (B, {self.n_mels}, T) dB frames, got {tuple(mel_db.shape)}")
        t = mel_db.shape[2]
        if t > self.n_time or (t != self.n_time and not self.stretch):
            limit = "at most" if self.stretch else "exactly"
            raise ValueError(f"htsat input: {t} frames; expected {limit} {self.n_time}")
        x = self.to_image(self.bn0(mel_db))                  # (B, 1, S, S)
        x = self.patch_embed(x)                              # (B, G*G, D)
        for stage in self.layers:
            x = stage(x)                                     # (B, (G/8)^2, 8D) after the last
        return self.norm(x).mean(dim=1)                      # (B, out_dim)
