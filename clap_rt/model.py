"""The CLAP network: audio tower, text tower, projections into the joint space.

The frontend (log-mel) lives outside the network: every audio tower consumes dB frames
shaped (B, n_mels, T) as produced by `clap_rt.frontend.log_mel`. HTSAT is in `htsat.py`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import AudioEncoderConfig, FrontendConfig, ModelConfig, ProjectionConfig, SfxCNNConfig, TextEncoderConfig


# --- audio towers --------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then max-pool (the aisfx / DCASE cross-task block)."""

    def __init__(self, c_in: int, c_out: int, pool: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, self.pool) if self.pool > 1 else x


# aisfx normalises log10(1 + 1e4 * mel) by the maximum it saw over its training data.
AISFX_LOG_GAIN_DB = 40.0       # 10*log10(1e4)
AISFX_MAX = 9.457798957824707


class SfxCNN(nn.Module):
    """VGG-style CNN, shapes of the pretrained aisfx embedding net (4.7M params).

    Input: (B, n_mels, T) dB frames; output (B, C) after mean over frequency and max over
    time ("max"), or (B, 2C) with the time mean appended ("meanmax"); any T >= 8 works, so a
    stream can feed any window length.
    """

    def __init__(self, cfg: SfxCNNConfig, fe: FrontendConfig):
        super().__init__()
        ch = cfg.channels
        pools = [2] * (len(ch) - 1) + [1]
        self.blocks = nn.ModuleList(
            ConvBlock(c_in, c_out, p) for c_in, c_out, p in zip((1,) + tuple(ch[:-1]), ch, pools))
        self.aisfx_input = cfg.aisfx_input
        if cfg.pooling not in ("max", "meanmax"):
            raise ValueError(f"audio.sfx_cnn.pooling: unknown {cfg.pooling!r}; expected 'max' or 'meanmax'")
        self.pooling = cfg.pooling
        last_bins = fe.n_mels // 2 ** (len(ch) - 1)       # frequency bins of the last block's map
        if not 1 <= cfg.freq_bands <= last_bins:
            raise ValueError(f"audio.sfx_cnn.freq_bands: {cfg.freq_bands}; expected 1 to {last_bins} "
                             f"(the last block keeps {last_bins} frequency bins of {fe.n_mels} mels)")
        # Band edges fixed here: static slices export to ONNX / TensorRT as plain Slice ops.
        self.freq_band_edges = [(int(b[0]), int(b[-1]) + 1)
                                for b in np.array_split(np.arange(last_bins), cfg.freq_bands)]
        self.level_ref_db = cfg.level_ref_db
        self.level_max_boost_db = cfg.level_max_boost_db
        # Per-band dB offset turning our Slaney-normalised filters into aisfx's L1-normalised ones.
        self.register_buffer("band_offset_db", torch.from_numpy(_l1_offset_db(fe)), persistent=False)

    def prepare(self, mel_db: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) dB -> (B, 1, T, n_mels) on the scale the first conv expects."""
        x = mel_db
        if self.level_ref_db is not None:
            peak = x.amax(dim=(1, 2), keepdim=True)                     # (B, 1, 1) loudest bin
            x = x + (self.level_ref_db - peak).clamp(max=self.level_max_boost_db)
        if self.aisfx_input:
            # log10(1 + 10^(dB_l1/10 + 4)) == softplus(ln10 * (dB_l1/10 + 4)) / ln10
            y = (x + self.band_offset_db[:, None] + AISFX_LOG_GAIN_DB) * (math.log(10) / 10)
            x = F.softplus(y) / (math.log(10) * AISFX_MAX)
        return x.transpose(1, 2).unsqueeze(1)       # (B, F, T) -> (B, 1, T, F)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T', F') block output -> (B, out_dim), out_dim = C x freq_bands (x 2 for meanmax).

        Each of `freq_bands` contiguous frequency bands is averaged on its own (1: the whole
        axis, as aisfx does): where in the spectrum a pattern sits survives pooling.
        """
        x = torch.cat([x[..., a:b].mean(dim=3) for a, b in self.freq_band_edges], dim=1)  # (B, C * bands, T')
        if self.pooling == "meanmax":
            return torch.cat([x.amax(dim=2), x.mean(dim=2)], dim=1)   # (B, 2 * C * bands)
        return x.amax(dim=2)                        # (B, C * bands) max over time

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        x = self.prepare(mel_db)
        for block in self.blocks:
            x = block(x)                            # (B, C, T/8, F/8) after the last block
        return self.pool(x)


def _l1_offset_db(fe: FrontendConfig) -> np.ndarray:
    from .frontend import mel_filterbank
    sums = mel_filterbank(fe).astype(np.float64).sum(axis=1)   # (n_mels,)
    return (-10.0 * np.log10(np.maximum(sums, 1e-30))).astype(np.float32)


def build_audio_tower(cfg: AudioEncoderConfig, fe: FrontendConfig) -> nn.Module:
    """The tower named by `cfg.kind`: (B, n_mels, T) dB frames -> (B, cfg.out_dim)."""
    if cfg.kind == "htsat":
        from .htsat import HTSAT
        return HTSAT(cfg.htsat, fe)
    if cfg.kind == "sfx_cnn":
        return SfxCNN(cfg.sfx_cnn, fe)
    raise ValueError(f"audio.kind: unknown audio tower {cfg.kind!r}; expected 'htsat' or 'sfx_cnn'")


# --- text tower ----------------------------------------------------------------------------

class TextTower(nn.Module):
    """A transformers encoder built from its config dict (no hub), pooled to one vector."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.body = _build_hf_text_model(cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, L) int64 -> (B, hidden) float."""
        out = self.body(input_ids=input_ids, attention_mask=attention_mask)
        h = out.last_hidden_state                                   # (B, L, H)
        pooling = self.cfg.pooling
        if pooling == "last":
            # Index of the last attended token (right padding): the appended <|endoftext|>.
            last = attention_mask.long().sum(dim=1) - 1             # (B,)
            return h[torch.arange(h.shape[0], device=h.device), last]
        if pooling == "cls":
            return h[:, 0]
        if pooling == "pooler":
            return out.pooler_output
        if pooling == "mean":
            m = attention_mask.unsqueeze(-1).to(h.dtype)            # (B, L, 1)
            return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        raise ValueError(f"text.pooling: unknown pooling {pooling!r}; expected last, cls, pooler or mean")


def _build_hf_text_model(cfg: TextEncoderConfig) -> nn.Module:
    try:
        import transformers
    except ImportError as e:
        raise RuntimeError("the text tower requires the transformers package (pip install transformers)") from e
    if cfg.kind == "gpt2":
        return transformers.GPT2Model(transformers.GPT2Config(**cfg.hf_config))
    if cfg.kind == "roberta":
        return transformers.RobertaModel(transformers.RobertaConfig(**cfg.hf_config),
                                         add_pooling_layer=cfg.pooling == "pooler")
    if cfg.kind == "bert":
        return transformers.BertModel(transformers.BertConfig(**cfg.hf_config),
                                      add_pooling_layer=cfg.pooling == "pooler")
    raise ValueError(f"text.kind: unknown text tower {cfg.kind!r}; expected gpt2, roberta or bert")


# --- projections ---------------------------------------------------------------------------

class Projection(nn.Module):
    """Tower output -> joint space.

    "msclap": e1 = W1 x; LayerNorm(e1 + Dropout(W2 GELU(e1)))   (no biases, as msclap)
    "laion":  W2 ReLU(W1 x + b1) + b2
    """

    def __init__(self, d_in: int, cfg: ProjectionConfig):
        super().__init__()
        self.kind = cfg.kind
        if cfg.kind == "msclap":
            self.linear1 = nn.Linear(d_in, cfg.dim, bias=False)
            self.linear2 = nn.Linear(cfg.dim, cfg.dim, bias=False)
            self.layer_norm = nn.LayerNorm(cfg.dim)
            self.drop = nn.Dropout(cfg.dropout)
        elif cfg.kind == "laion":
            self.linear1 = nn.Linear(d_in, cfg.dim)
            self.linear2 = nn.Linear(cfg.dim, cfg.dim)
        else:
            raise ValueError(f"projection.kind: unknown {cfg.kind!r}; expected 'msclap' or 'laion'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "msclap":
            e1 = self.linear1(x)
            return self.layer_norm(e1 + self.drop(self.linear2(F.gelu(e1))))
        return self.linear2(F.relu(self.linear1(x)))


# --- CLAP ----------------------------------------------------------------------------------

class CLAP(nn.Module):
    """Audio tower + text tower + projections + learnable temperature.

    State-dict prefixes: `audio.`, `text.body.`, `audio_projection.`, `text_projection.`,
    `logit_scale`.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.audio = build_audio_tower(cfg.audio, cfg.frontend)
        self.text = TextTower(cfg.text)
        self.audio_projection = Projection(cfg.audio.out_dim, cfg.projection)
        self.text_projection = Projection(cfg.text.out_dim, cfg.projection)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))

    def encode_audio(self, mel_db: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """mel_db: (B, n_mels, T) dB frames -> (B, dim) joint embeddings (unit norm by default)."""
        e = self.audio_projection(self.audio(mel_db))
        return F.normalize(e, dim=-1) if normalize else e

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    normalize: bool = True) -> torch.Tensor:
        """input_ids, attention_mask: (B, L) -> (B, dim) joint embeddings (unit norm by default)."""
        e = self.text_projection(self.text(input_ids, attention_mask))
        return F.normalize(e, dim=-1) if normalize else e

    def forward(self, mel_db: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """Returns logits_per_audio: (B_audio, B_text), temperature applied."""
        a = self.encode_audio(mel_db)
        t = self.encode_text(input_ids, attention_mask)
        return self.logit_scale.exp() * a @ t.t()
