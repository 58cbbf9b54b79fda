"""Audio captioning: a mapper turns a joint-space audio embedding into a prefix of decoder
positions, from which a GPT2 decoder writes a caption (msclap's clapcap architecture).

    embedding (B, D) --L2 norm--> mapper --> prefix (B, P, E) --GPT2--> tokens

A model folder has a captioner when it holds `captioner.json` + `captioner.safetensors`. The
captioner reads the embeddings of the model it was trained on, so it carries that model's
fingerprint and is refused by any other. The decoder's tokens are GPT2 BPE ids, or a subset of
them (`vocab`: decoder index -> GPT2 id) so that a small decoder needs no 50,257-row embedding.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoints import atomic_write_bytes, load_state_strict, read_safetensors
from .config import GPT2_BASE, _from_dict
from .errors import UserError, read_json_file
from .tokenizer import GPT2_ASSETS

FORMAT = "clap_rt_captioner"
VERSION = 1
CONFIG_FILE = "captioner.json"
WEIGHTS_FILE = "captioner.safetensors"
# GPT2's output head shares the token embedding; only the embedding is stored.
TIED_HEAD = "decoder.lm_head.weight"
TIED_EMBEDDING = "decoder.transformer.wte.weight"


@dataclass
class MapperConfig:
    """Embedding -> prefix. "transformer": a linear map spreads the embedding over `clip_length`
    positions, `prefix_length` learned constants join them, a transformer mixes all, the
    constants' outputs are the prefix. "mlp": Linear-Tanh-Linear straight to the prefix."""
    kind: str = "transformer"       # "transformer" | "mlp"
    prefix_length: int = 40         # P, decoder positions the audio takes
    clip_length: int = 40           # transformer only
    num_layers: int = 8             # transformer only
    num_heads: int = 8              # transformer only
    mlp_ratio: float = 2.0          # transformer only: hidden width / E


@dataclass
class CaptionerConfig:
    """Everything needed to rebuild a captioner; stored in `captioner.json`. Defaults: clapcap."""
    name: str = "msclap-clapcap"
    embed_dim: int = 1024           # D, the joint space of the model it reads
    normalize_prefix: bool = True   # unit-norm the embedding first
    mapper: MapperConfig = field(default_factory=MapperConfig)
    decoder: dict = field(default_factory=lambda: dict(GPT2_BASE))   # transformers GPT2Config kwargs
    # GPT2 id that ends a caption. clapcap learnt captions + " <|endoftext|>", which GPT2 BPE
    # encodes as [220 (" "), 50256]; msclap stops at the first, 220.
    stop_token: int = 220
    max_tokens: int = 67            # msclap's entry_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CaptionerConfig":
        return _from_dict(cls, d, "captioner")


# --- mapper --------------------------------------------------------------------------------

class MapperAttention(nn.Module):
    """Multi-head self-attention with clapcap's layout: queries, then keys and values from one
    linear whose outputs are [keys | values], each split into heads; no mask."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.to_queries(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)   # (B, h, n, dh)
        kv = self.to_keys_values(x).view(b, n, 2, self.heads, c // self.heads)          # (B, n, 2, h, dh)
        k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)                 # (B, h, n, dh)
        out = F.scaled_dot_product_attention(q, k, v)                                   # (B, h, n, dh)
        return self.project(out.transpose(1, 2).reshape(b, n, c))


class MapperMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MapperLayer(nn.Module):
    """Pre-norm transformer layer (LayerNorm, attention, residual; LayerNorm, ReLU MLP, residual)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MapperAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MapperMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MapperTransformer(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.ModuleList(MapperLayer(dim, heads, mlp_ratio) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    """(B, D) -> (B, P, E); state-dict names as clapcap's `clap_project`."""

    def __init__(self, cfg: MapperConfig, embed_dim: int, width: int):
        super().__init__()
        if width % cfg.num_heads:
            raise ValueError(f"captioner.mapper.num_heads: {cfg.num_heads} does not divide the decoder width {width}")
        self.clip_length = cfg.clip_length
        self.linear = nn.Linear(embed_dim, cfg.clip_length * width)
        self.prefix_const = nn.Parameter(torch.randn(cfg.prefix_length, width))
        self.transformer = MapperTransformer(width, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        x = self.linear(emb).view(emb.shape[0], self.clip_length, -1)                  # (B, C, E)
        const = self.prefix_const.unsqueeze(0).expand(emb.shape[0], -1, -1)            # (B, P, E)
        return self.transformer(torch.cat([x, const], dim=1))[:, self.clip_length:]     # (B, P, E)


class MLPMapper(nn.Module):
    """(B, D) -> (B, P, E) through Linear(D, P*E/2), Tanh, Linear(P*E/2, P*E); names `model.0`, `model.2`."""

    def __init__(self, cfg: MapperConfig, embed_dim: int, width: int):
        super().__init__()
        out = cfg.prefix_length * width
        self.prefix_length = cfg.prefix_length
        self.model = nn.Sequential(nn.Linear(embed_dim, out // 2), nn.Tanh(), nn.Linear(out // 2, out))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.model(emb).view(emb.shape[0], self.prefix_length, -1)


MAPPERS = {"transformer": TransformerMapper, "mlp": MLPMapper}


# --- captioner -----------------------------------------------------------------------------

def build_gpt2_lm(hf_config: dict) -> nn.Module:
    """transformers `GPT2LMHeadModel` from its config kwargs (never fetched from a hub)."""
    try:
        import transformers
    except ImportError as e:
        raise RuntimeError("captioning requires the transformers package (pip install transformers)") from e
    # Generation is ours (`Captioner.generate`): GPT2's default bos / eos ids (50256) mean
    # nothing to a smaller vocabulary.
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{"bos_token_id": None, "eos_token_id": None,
                                                                   **hf_config}))


class Captioner(nn.Module):
    """Mapper + GPT2 decoder. State-dict prefixes: `mapper.`, `decoder.` (GPT2LMHeadModel), and
    `vocab` (V,) int64, decoder index -> GPT2 id."""

    def __init__(self, cfg: CaptionerConfig):
        super().__init__()
        if cfg.mapper.kind not in MAPPERS:
            raise ValueError(f"captioner.mapper.kind: unknown {cfg.mapper.kind!r}; expected {' or '.join(MAPPERS)}")
        n_vocab, n_pos = cfg.decoder["vocab_size"], cfg.decoder["n_positions"]
        if cfg.mapper.prefix_length + cfg.max_tokens > n_pos:
            raise ValueError(f"captioner: prefix_length {cfg.mapper.prefix_length} + max_tokens {cfg.max_tokens} "
                             f"exceed the decoder's n_positions {n_pos}")
        self.config = cfg
        self.decoder = build_gpt2_lm(cfg.decoder)
        self.width = self.decoder.config.n_embd
        self.mapper = MAPPERS[cfg.mapper.kind](cfg.mapper, cfg.embed_dim, self.width)
        self.register_buffer("vocab", torch.arange(n_vocab, dtype=torch.long))

    @property
    def stop_index(self) -> int:
        """Decoder index of `config.stop_token`."""
        hits = (self.vocab == self.config.stop_token).nonzero()
        if len(hits) != 1:
            raise ValueError(f"captioner: stop token {self.config.stop_token} is not in the decoder's vocabulary")
        return int(hits[0, 0])

    def prefix(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) audio embeddings -> (B, P, E) decoder input vectors."""
        if self.config.normalize_prefix:
            emb = F.normalize(emb, dim=-1)
        return self.mapper(emb)

    def forward(self, emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing. emb (B, D), tokens (B, L) decoder indices -> (B, L, V) logits where
        logits[:, i] predicts tokens[:, i] (from the prefix and tokens[:, :i])."""
        x = torch.cat([self.prefix(emb), self.decoder.transformer.wte(tokens)], dim=1)   # (B, P+L, E)
        logits = self.decoder(inputs_embeds=x).logits                                    # (B, P+L, V)
        p = self.config.mapper.prefix_length
        return logits[:, p - 1:p - 1 + tokens.shape[1]]

    @torch.inference_mode()
    def generate(self, emb: torch.Tensor, beam: int = 1, max_tokens: int | None = None) -> list[list[int]]:
        """(B, D) embeddings -> per row the GPT2 ids of its caption, without the stop token.

        beam 1: greedy (the most likely token at each step). beam > 1: msclap's beam search,
        ranking hypotheses by their mean token log-probability; a finished hypothesis keeps
        its score. Deterministic: no sampling."""
        if beam < 1:
            raise ValueError(f"beam: expected at least 1, got {beam}")
        n = self.config.max_tokens if max_tokens is None else max_tokens
        prefix = self.prefix(emb.float())
        rows = (self._greedy(prefix, n) if beam == 1
                else [self._beam(prefix[i:i + 1], beam, n) for i in range(len(prefix))])
        return [self.vocab[torch.tensor(r, dtype=torch.long)].tolist() for r in rows]

    def _step(self, x: torch.Tensor, past):
        """x (B, S, E) new input vectors -> ((B, V) log-probs of the next token, cache)."""
        out = self.decoder(inputs_embeds=x, cache=past, use_cache=True)
        return F.log_softmax(out.logits[:, -1].float(), dim=-1), out.cache

    def _greedy(self, prefix: torch.Tensor, n: int) -> list[list[int]]:
        stop = self.stop_index
        logp, past = self._step(prefix, None)
        rows: list[list[int]] = [[] for _ in range(len(prefix))]
        done = torch.zeros(len(prefix), dtype=torch.bool)
        for _ in range(n):
            tok = logp.argmax(dim=-1)                                                     # (B,)
            for i in (~done).nonzero()[:, 0].tolist():
                if int(tok[i]) != stop:
                    rows[i].append(int(tok[i]))
            done |= tok == stop
            if bool(done.all()):
                break
            logp, past = self._step(self.decoder.transformer.wte(tok)[:, None], past)
        return rows

    def _beam(self, prefix: torch.Tensor, k: int, n: int) -> list[int]:
        """One clip's prefix (1, P, E) -> the best hypothesis (decoder indices, no stop)."""
        stop = self.stop_index
        logp, past = self._step(prefix, None)                                             # (1, V)
        scores, tok = logp[0].topk(k)                                                     # (k,), (k,)
        seqs = tok[:, None]                                                               # (k, 1)
        lengths = torch.ones(k)
        stopped = tok == stop
        past.reorder_cache(torch.zeros(k, dtype=torch.long))                              # 1 -> k rows
        for _ in range(n - 1):
            if bool(stopped.all()):
                break
            logp, past = self._step(self.decoder.transformer.wte(tok)[:, None], past)     # (k, V)
            # A finished hypothesis may only continue with a free filler token (index 0).
            logp[stopped] = -float("inf")
            logp[stopped, 0] = 0.0
            total = scores[:, None] + logp                                                # (k, V)
            grown = lengths + (~stopped).float()                                          # (k,)
            mean, flat = (total / grown[:, None]).view(-1).topk(k)
            src, tok = flat // logp.shape[1], flat % logp.shape[1]
            lengths = grown[src]
            scores = mean * lengths
            seqs = torch.cat([seqs[src], tok[:, None]], dim=1)
            stopped = stopped[src] | (tok == stop)
            past.reorder_cache(src)
        best = int((scores / lengths).argmax())
        seq = seqs[best, :int(lengths[best])].tolist()
        return seq[:seq.index(stop)] if stop in seq else seq

    def caption(self, emb: np.ndarray, beam: int = 1) -> list[str]:
        """(B, D) audio embeddings -> B captions (stripped text)."""
        tok = gpt2_tokenizer()
        rows = self.generate(torch.from_numpy(np.asarray(emb, np.float32)).reshape(-1, self.config.embed_dim), beam)
        return [tok.decode(r).strip() for r in rows]


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """The bundled GPT2 byte-level BPE (`tokenizers.Tokenizer`), ids as GPT2's."""
    try:
        import transformers
    except ImportError as e:
        raise RuntimeError("captioning requires the transformers package (pip install transformers)") from e
    return transformers.GPT2TokenizerFast.from_pretrained(str(GPT2_ASSETS), local_files_only=True).backend_tokenizer


class EventCaptions:
    """Captions for detected events: per label, the embedding of its highest-scoring window since
    its previous event ended, captioned when the event ends."""

    def __init__(self, captioner: Captioner, labels: Sequence[str], beam: int = 1):
        self.captioner, self.beam = captioner, beam
        self.index = {label: i for i, label in enumerate(labels)}
        self._best: dict[int, tuple[float, np.ndarray]] = {}

    def update(self, scores: np.ndarray, embedding: np.ndarray) -> None:
        """One window's (L,) label scores and (D,) embedding."""
        for i, s in enumerate(scores.tolist()):
            if i not in self._best or s > self._best[i][0]:
                self._best[i] = (s, embedding)

    def end(self, label: str) -> str:
        """The caption of the event of `label` that just ended; its window is forgotten."""
        _, emb = self._best.pop(self.index[label])
        return self.captioner.caption(emb[None], beam=self.beam)[0]


# --- files ---------------------------------------------------------------------------------

def has_captioner(folder: str | os.PathLike) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def save_captioner(captioner: Captioner, folder: str | os.PathLike, model_id: str, meta: dict | None = None,
                   dtype: torch.dtype = torch.float32) -> Path:
    """Write `captioner.safetensors` + `captioner.json` into model folder `folder` (atomically);
    `model_id` is the fingerprint of the model whose embeddings it reads."""
    from safetensors.torch import save
    folder = Path(folder)
    state = {}
    for k, v in captioner.state_dict().items():
        if k == TIED_HEAD:
            continue
        v = v.detach().contiguous()
        state[k] = v.to(dtype) if v.is_floating_point() else v
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
    doc = {"format": FORMAT, "version": VERSION, "model_id": model_id,
           "captioner": captioner.config.to_dict(), "meta": meta or {}}
    atomic_write_bytes(folder / CONFIG_FILE, json.dumps(doc, indent=2).encode())
    return folder


def load_captioner(folder: str | os.PathLike, model_id: str | None = None) -> Captioner:
    """The captioner of model folder `folder` in eval mode; a missing or damaged captioner, or
    one made for another model than `model_id` (when given), is a one-line UserError."""
    folder = Path(folder)
    where = folder / CONFIG_FILE
    doc = read_json_file(where, f"{folder}: this model has no captioner (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{where}: expected format {FORMAT!r}, found {found!r}")
    if model_id is not None and doc.get("model_id") != model_id:
        raise UserError(f"{where}: made for model {doc.get('model_id')}, this model is {model_id}; "
                        f"a captioner reads only its own model's embeddings")
    try:
        captioner = Captioner(CaptionerConfig.from_dict(doc.get("captioner")))
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"{where}: cannot build the captioner from this configuration ({str(e).splitlines()[0]})")
    state = read_safetensors(folder / WEIGHTS_FILE)
    if TIED_EMBEDDING in state:
        state[TIED_HEAD] = state[TIED_EMBEDDING]
    try:
        load_state_strict(captioner, state, str(folder / WEIGHTS_FILE))
    except ValueError as e:
        raise UserError(f"{e}; expected the tensors of the configuration in {CONFIG_FILE}")
    return captioner.eval()


def caption_token_ids(texts: Sequence[str]) -> list[list[int]]:
    """Texts -> their GPT2 ids (no special tokens)."""
    return [e.ids for e in gpt2_tokenizer().encode_batch(list(texts), add_special_tokens=False)]
