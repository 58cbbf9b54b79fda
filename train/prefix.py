"""Training above frozen prefixes of the towers: the path of the shipped model.

With `audio_blocks` N and `text_layers` M (train/config.py), only the CNN's last N blocks, the
MiniLM's last M layers, both projections and the temperature train. What runs below them is
computed once: the CNN maps after its frozen blocks by the feature cache (an `AudioPrefix`),
the token states after the frozen layers by `cache_text_states`. An hour of training on this
CPU instead of the days a full fine-tune would take. Batches hold at most one clip per label
(with many clips per label, two of one label in a batch would be pushed apart as false
negatives), and a clip's captions are joined by the zero-shot prompt of its label.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clap_rt.errors import UserError

PREFIX_BATCH = 32           # windows per forward pass of the frozen CNN blocks
TEXT_BATCH = 256            # texts per forward pass of the frozen MiniLM layers


class AudioPrefix:
    """The first `frozen` blocks of an SfxCNN tower, run on dB windows for the feature cache:
    (W, n_mels, T) dB -> (W, C, T', F') float16 maps, or with every block frozen the pooled
    (W, out_dim) float32 outputs.

    `tag` names the cache folder by the tower's configuration, not its weights: the tower must
    hold the aisfx weights in its frozen blocks (a tower whose blocks were tuned would be
    served the untuned features)."""

    def __init__(self, tower, frozen: int, cnn):
        self.tower, self.frozen = tower, frozen          # cnn: the tower's SfxCNNConfig
        self.pooled = frozen == len(tower.blocks)
        if self.pooled:
            parts = [cnn.pooling] + ([f"bands{cnn.freq_bands}"] if cnn.freq_bands > 1 else [])
        else:
            parts = [f"block{frozen}"]
        parts += [f"level{cnn.level_ref_db:g}"] if cnn.level_ref_db is not None else []
        self.tag = "-".join(parts)

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        out = []
        was = self.tower.training
        self.tower.eval()                   # BatchNorm with the pretrained statistics
        with torch.inference_mode():
            for b in range(0, len(mel), PREFIX_BATCH):
                x = self.tower.prepare(torch.from_numpy(mel[b:b + PREFIX_BATCH]))
                for block in self.tower.blocks[:self.frozen]:
                    x = block(x)
                out.append(self.tower.pool(x).numpy() if self.pooled else x.half().numpy())
        self.tower.train(was)
        return np.concatenate(out)


def cache_text_states(texts: Sequence[str], model, tokenizer, layer: int, path: Path) -> dict[str, np.ndarray]:
    """Frozen MiniLM states per text, kept in the .npz file `path` (grown as texts are asked
    for): the token states (L, H) float16 after `layer` layers, or with every layer frozen the
    mean-pooled output as (1, H) float32."""
    n_layers = model.config.text.hf_config["num_hidden_layers"]
    have: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as z:
            have = dict(zip(map(str, z["texts"]), np.split(z["feats"], np.cumsum(z["lengths"])[:-1])))
    todo = sorted(set(texts) - set(have))
    was = model.training
    model.eval()                        # no dropout in the frozen layers
    with torch.inference_mode():
        for b in range(0, len(todo), TEXT_BATCH):
            ids, mask = tokenizer(todo[b:b + TEXT_BATCH])
            if layer == n_layers:
                states = model.text(ids, mask)[:, None]                       # (B, 1, H)
                lengths = [1] * len(ids)
            else:
                states = model.text.body(input_ids=ids, attention_mask=mask,
                                         output_hidden_states=True).hidden_states[layer]   # (B, L, H)
                lengths = mask.sum(1).tolist()
            for t, h, n in zip(todo[b:b + TEXT_BATCH], states.numpy(), lengths):
                have[t] = h[:n].astype(np.float16 if layer < n_layers else np.float32)
    model.train(was)
    if todo:
        from clap_rt.checkpoints import atomic_write_bytes
        keys = sorted(have)
        buf = io.BytesIO()
        np.savez(buf, texts=np.array(keys), lengths=np.array([len(have[k]) for k in keys]),
                 feats=np.concatenate([have[k] for k in keys]))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    return have


def pad_states(cache: dict[str, np.ndarray], texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached states of `texts` -> (B, L, H) float32 zero-padded, (B, L) mask of real tokens."""
    states = [torch.from_numpy(cache[t].astype(np.float32)) for t in texts]
    h = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(x)) for x in states], batch_first=True)
    return h, mask


def caption_pool(clip, template: str) -> list[str]:
    """Texts that describe a clip: its captions plus the zero-shot prompt of its label."""
    return list(dict.fromkeys(clip.captions)) + [template.format(clip.label)]


class PrefixModel(torch.nn.Module):
    """The trainable part of a `CLAP` above its frozen prefixes, as the Trainer's step module:
    (feats, states, state_mask) -> (audio emb, text emb, logit_scale). It shares the CLAP's
    parameters, so training it trains the model."""

    inputs = ("feats", "states", "state_mask")

    def __init__(self, model, text_layers: int, audio_blocks: int):
        super().__init__()
        self.audio_blocks = torch.nn.ModuleList(model.audio.blocks[-audio_blocks:] if audio_blocks else [])
        self.audio_pool = model.audio.pool
        self.audio_projection = model.audio_projection
        self.text_projection = model.text_projection
        self.logit_scale = model.logit_scale
        self.text_layers = torch.nn.ModuleList(model.text.body.encoder.layer[-text_layers:] if text_layers else [])

    def audio(self, x: torch.Tensor) -> torch.Tensor:
        """Cached (B, C, T', F') maps, or (B, audio_dim) pooled outputs -> (B, dim) unit norm."""
        if len(self.audio_blocks):
            x = x.float()
            for block in self.audio_blocks:
                x = block(x)
            x = self.audio_pool(x)                          # (B, audio_dim)
        return F.normalize(self.audio_projection(x), dim=-1)

    def text(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cached (B, L, H) states and their (B, L) mask -> (B, dim) unit norm (mean pooling;
        pooled outputs come as L = 1)."""
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min             # (B, 1, 1, L)
        for layer in self.text_layers:
            h = layer(h, attention_mask=bias)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def forward(self, feats, states, state_mask):
        t = self.text(states, state_mask)          # text first: its dropout draws come first
        return self.audio(feats), t, self.logit_scale

    @staticmethod
    def loss(out, batch) -> torch.Tensor:
        from .train import ContrastiveStep
        return ContrastiveStep.loss(out, batch)


class PrefixEncoder:
    """What train.evaluate embeds with, for a `PrefixModel` and its text cache. A clip's
    embedding is the renormalised mean of its windows' (the cached features carry no window
    level, so it cannot pick the loudest window as `Clap.embed_audio` does)."""

    def __init__(self, proj: PrefixModel, text_cache: dict[str, np.ndarray], config):
        self.module, self.cache, self.config = proj, text_cache, config

    @torch.no_grad()
    def audio(self, feats: Sequence[np.ndarray], chunk: int = 256) -> np.ndarray:
        flat = np.concatenate(feats)
        emb = torch.cat([self.module.audio(torch.from_numpy(flat[i:i + chunk])) for i in range(0, len(flat), chunk)])
        owner = np.repeat(np.arange(len(feats)), [len(f) for f in feats])
        mean = torch.zeros(len(feats), emb.shape[1]).index_add_(0, torch.from_numpy(owner), emb)
        return F.normalize(mean, dim=-1).numpy()

    @torch.no_grad()
    def text(self, texts: Sequence[str], chunk: int = 512) -> np.ndarray:
        return torch.cat([self.module.text(*pad_states(self.cache, texts[i:i + chunk]))
                          for i in range(0, len(texts), chunk)]).numpy()


class LabelBatches:
    """Global micro-batch `m`: batch_size * world distinct labels, one clip of each, one of its
    windows and one text of its `caption_pool`, all drawn from step_rng(seed, 1, m); rank r
    takes its slice, so a batch is the same for any number of ranks and after a resume."""

    def __init__(self, clips, features: Sequence[np.ndarray], template: str, text_cache: dict,
                 batch_size: int, world: int, seed: int):
        self.features, self.cache = list(features), text_cache
        self.pools = [caption_pool(c, template) for c in clips]
        self.by_label: dict[str, list[int]] = {}
        for i, c in enumerate(clips):
            self.by_label.setdefault(c.label, []).append(i)
        self.labels = sorted(self.by_label)
        self.batch_size, self.world, self.seed = batch_size, world, seed
        if batch_size * world > len(self.labels):
            raise UserError(f"--batch-size: {batch_size} x {world} ranks exceeds the {len(self.labels)} "
                            "training labels (a batch holds one clip per label)")

    def micro_batch(self, m: int, rank: int) -> dict:
        """feats (b, ...) float16 maps or float32 pooled outputs, states (b, L, H), state_mask (b, L)."""
        from .data import step_rng
        rng = step_rng(self.seed, 1, m)
        picked = [(c := self.by_label[self.labels[i]])[rng.integers(len(c))]
                  for i in rng.choice(len(self.labels), self.batch_size * self.world, replace=False)]
        wins = [(w := self.features[j])[rng.integers(len(w))] for j in picked]
        texts = [(p := self.pools[j])[rng.integers(len(p))] for j in picked]
        mine = slice(rank * self.batch_size, (rank + 1) * self.batch_size)
        h, mask = pad_states(self.cache, texts[mine])
        return {"feats": torch.from_numpy(np.stack(wins[mine])), "states": h, "state_mask": mask}


def check_text_path(proj: PrefixModel, model, tokenizer, cache: dict, texts: list[str]) -> None:
    """The cached-state text path must give the full text tower's embeddings."""
    was = model.training
    model.eval()
    with torch.no_grad():
        cos = (proj.text(*pad_states(cache, texts)) * model.encode_text(*tokenizer(texts))).sum(-1).min().item()
    model.train(was)
    if cos < 0.9999:
        raise RuntimeError(f"cached text path disagrees with the text tower: min cosine {cos:.6f}")


def freeze_prefixes(model, audio_blocks: int, text_layers: int) -> None:
    """Only the last `audio_blocks` CNN blocks and `text_layers` MiniLM layers of the towers
    keep gradients (the projections and the temperature always do)."""
    for p in list(model.audio.parameters()) + list(model.text.parameters()):
        p.requires_grad_(False)
    layers = model.text.body.encoder.layer
    trained = list(model.audio.blocks[len(model.audio.blocks) - audio_blocks:]) + list(layers[len(layers) - text_layers:])
    for p in (q for m in trained for q in m.parameters()):
        p.requires_grad_(True)


def text_cache_path(root: Path, model, layer: int) -> Path:
    """The text-state file of `layer` for this text tower (named by its configuration)."""
    key = hashlib.sha1(json.dumps(model.config.to_dict()["text"], sort_keys=True).encode()).hexdigest()[:12]
    return root / "text" / f"{key}-layer{layer}.npz"


def split_validation(clips, cfg, manifest: str):
    """(train clips, validation clips): with val_sources, the training clips of those whole
    sources leave training and, with their eval_split clips, validate (known names in unseen
    recordings); else eval_split validates (none when it is "")."""
    from .data import select_split
    train = select_split(clips, cfg.data.train_split, manifest)
    if not cfg.data.val_sources:
        return train, select_split(clips, cfg.data.eval_split, manifest) if cfg.data.eval_split else []
    names = sorted({c.source for c in train})
    for name in sorted(set(cfg.data.val_sources) - set(names)):
        raise UserError(f"--val-sources: no training clips from {name!r}; expected some of {', '.join(names)}")
    held = set(cfg.data.val_sources)
    extra = [c for c in clips if c.split == cfg.data.eval_split] if cfg.data.eval_split else []
    return [c for c in train if c.source not in held], [c for c in train + extra if c.source in held]


def prepare_prefix(cfg, model, tokenizer, world: int, rank: int):
    """(LabelBatches, evaluate fn or None, PrefixModel) of the frozen-prefix path; rank 0 fills
    the caches first."""
    from clap_rt.cache import cache_dir
    from clap_rt.zeroshot import prompt_templates
    from .data import FeatureCache, read_manifest
    from .evaluate import evaluate_clips, evaluation_texts
    m, d = cfg.model, cfg.data
    manifest = str(Path(d.manifest).expanduser())
    train_clips, val_clips = split_validation(read_manifest(manifest), cfg, manifest)
    freeze_prefixes(model, m.audio_blocks, m.text_layers)
    fe, short = model.config.frontend, model.config.short_clips
    prefix = AudioPrefix(model.audio, len(model.audio.blocks) - m.audio_blocks, model.config.audio.sfx_cnn)
    root = Path(d.cache_dir).expanduser() if d.cache_dir else cache_dir() / "features"
    plain = FeatureCache(fe, root, d.feature_threads, short, d.max_windows, prefix)
    trained = FeatureCache(fe, root, d.feature_threads, short, d.max_windows, prefix, cfg.copies)
    template = model.config.prompt_template
    texts = {t for c in train_clips for t in caption_pool(c, template)}
    texts |= evaluation_texts(val_clips, prompt_templates(model.config))
    n_layers = model.config.text.hf_config["num_hidden_layers"]
    layer = n_layers - m.text_layers
    path = text_cache_path(root, model, layer)
    cache = None
    if rank == 0:
        trained.load_all(train_clips, progress=cfg.progress)
        plain.load_all(val_clips, progress=cfg.progress)
        cache = cache_text_states(sorted(texts), model, tokenizer, layer, path)
    if world > 1:
        torch.distributed.barrier()
    if cache is None:           # the other ranks read what rank 0 wrote
        cache = cache_text_states(sorted(texts), model, tokenizer, layer, path)
    proj = PrefixModel(model, m.text_layers, m.audio_blocks)
    check_text_path(proj, model, tokenizer, cache, sorted(texts)[:8])
    batches = LabelBatches(train_clips, trained.load_all(train_clips), template, cache,
                           cfg.optim.batch_size, world, cfg.seed)
    evaluate = None
    if val_clips:
        enc = PrefixEncoder(proj, cache, model.config)
        val_feats = plain.load_all(val_clips)
        evaluate = lambda _model, png=None: evaluate_clips(enc, val_clips, val_feats, confusion_png=png)  # noqa: E731
    return batches, evaluate, proj
