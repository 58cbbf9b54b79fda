"""Manifests, the log-mel feature cache, and step-indexed training batches.

Manifest: CSV (header row) or JSON lines, one clip per row. Relative paths are resolved
against the manifest's folder.

    field     required  meaning
    path      yes       audio file (any format libsndfile reads)
    caption   yes*      one caption
    captions  no        list of captions (JSONL list, or CSV text joined with " | "); one is
                        drawn at random per step. *Either caption or captions must be given.
    start     no        seconds into the file where the clip starts (default 0)
    end       no        seconds where it ends (default: end of file)
    split     no        "train" / "val" / "test" ... (default "train")
    source    no        which corpus the clip came from (for per-source reports)
    label     no        class name, used by zero-shot evaluation
    item      no        source item id (the corpus builder's split unit); kept, not used
    seconds   no        clip duration, written by the corpus builder; kept, not used
    package, version, package_path, member
              no        where the corpus builder took a packaged sound from; kept, not used

Public datasets map onto it like this:
  - AudioCaps (`train.csv` / `val.csv` / `test.csv`: audiocap_id, youtube_id, start_time,
    caption): one row per caption; group rows by youtube_id into one clip with
    path = the downloaded clip file, captions = all its captions, start = 0 if the file is
    the 10 s excerpt already (else start = start_time, end = start_time + 10),
    split = the csv's name, source = "audiocaps".
  - Clotho (`clotho_captions_{development,validation,evaluation}.csv`: file_name,
    caption_1 ... caption_5): path = <split folder>/file_name, captions = caption_1..5,
    split = train / val / test for development / validation / evaluation, source = "clotho".
  - WavCaps (json files `{"data": [{"id", "caption", "audio" or "wav_path", "duration"}]}`,
    one per sub-source): path = the audio file, caption = caption, split = "train",
    source = "wavcaps-" + sub-source (FreeSound, BBC_Sound_Effects, SoundBible, AudioSet_SL).

Features: each clip is cut with `clap_rt.audio.fit_windows` into windows of the model length
and turned into dB frames by `clap_rt.frontend.log_mel`; the (W, n_mels, T) float32 array is
cached as .npy under cache_dir/<hash of the FrontendConfig>[-options]/ keyed by the file's
path, size, mtime and the clip's start/end, so a changed file or recipe is recomputed, never
reused. Options of the cache: at most `max_windows` windows per clip; a frozen prefix of the
audio tower run on the frames (train/prefix.py: its maps are cached instead); altered copies
of each clip (train/copies.py) whose windows follow the clip's own.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from clap_rt.cache import cache_dir
from clap_rt.config import FrontendConfig
from clap_rt.errors import UserError

# Provenance (package ... member) and the taxonomy's category and family ride along in corpus
# manifests; "corpus_label" is a benchmark clip's taxonomy label beside its benchmark name.
# Where `python -m train.corpus build` puts the corpus by default: what the benchmarks read.
DEFAULT_MANIFEST = cache_dir() / "corpus" / "manifest.jsonl"
KNOWN_FIELDS = {"path", "caption", "captions", "start", "end", "split", "source", "label", "item", "seconds",
                "package", "version", "package_path", "member", "category", "family", "corpus_label"}
CAPTION_SEP = " | "


@dataclass
class Clip:
    path: str                   # absolute path
    captions: list[str]
    start: float = 0.0          # seconds
    end: Optional[float] = None  # seconds; None: end of file
    split: str = "train"
    source: str = ""
    label: str = ""
    name: str = ""              # the path as the manifest gives it: seeds the clip's copies


# --- manifests -------------------------------------------------------------------------------

def read_rows(path: str | os.PathLike) -> list[tuple[str, object]]:
    """The rows of a .csv or .jsonl manifest as parsed, each with where it stands ("FILE:LINE"),
    for the checks that follow to name; the one reader of manifest files."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: manifest not found; expected a .csv or .jsonl file")
    if path.suffix.lower() == ".csv":
        # Line 1 is the header.
        return [(f"{path}:{n}", row) for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)]
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise UserError(f"{path}: unknown manifest type {path.suffix!r}; expected .csv or .jsonl")
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: invalid JSON ({e.msg}); expected one object per line")
    return rows


def read_manifest(path: str | os.PathLike) -> list[Clip]:
    """Read a .csv or .jsonl manifest into Clips; errors name the file, row and field."""
    path = Path(path)
    clips = [_clip(row, path, where) for where, row in read_rows(path)]
    if not clips:
        raise UserError(f"{path}: manifest has no rows")
    return clips


def _clip(row, manifest: Path, where: str) -> Clip:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object with fields path, caption")
    unknown = set(row) - KNOWN_FIELDS
    if unknown:
        raise UserError(f"{where}: unknown fields {sorted(unknown)}; expected some of {sorted(KNOWN_FIELDS)}")
    if not row.get("path"):
        raise UserError(f"{where}: missing field 'path'")
    caps = row.get("captions") or []
    if isinstance(caps, str):
        caps = [c.strip() for c in caps.split(CAPTION_SEP.strip())]
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise UserError(f"{where}: field 'captions' must be a list of strings")
    caps = [c for c in caps if c.strip()]
    if not caps and row.get("caption"):
        caps = [row["caption"]]
    if not caps:
        raise UserError(f"{where}: missing field 'caption' (or a non-empty 'captions')")

    def seconds(name, default):
        value = row.get(name)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: field '{name}' must be a number of seconds, got {value!r}")

    start, end = seconds("start", 0.0), seconds("end", None)
    if start < 0 or (end is not None and end <= start):
        raise UserError(f"{where}: expected 0 <= start < end, got start={start}, end={end}")
    p = Path(row["path"])
    return Clip(path=str(p if p.is_absolute() else (manifest.parent / p).resolve()), captions=caps,
                start=start, end=end, split=str(row.get("split") or "train"),
                source=str(row.get("source") or ""), label=str(row.get("label") or ""), name=str(row["path"]))


def select_split(clips: Sequence[Clip], split: str, manifest: str = "manifest") -> list[Clip]:
    out = [c for c in clips if c.split == split]
    if not out:
        found = sorted({c.split for c in clips})
        raise UserError(f"{manifest}: no clips in split {split!r}; found splits {found}")
    return out


# --- feature cache ---------------------------------------------------------------------------

def frontend_hash(fe: FrontendConfig) -> str:
    blob = json.dumps(dataclasses.asdict(fe), sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def default_cache_dir(fe: FrontendConfig) -> Path:
    return cache_dir() / "features" / frontend_hash(fe)


class FeatureCache:
    """(W, n_mels, T) dB windows per clip, computed once and memory-mapped afterwards.

    `short`: how a clip shorter than the window fills it (`fit_windows`; the model's
    `short_clips`); `max_windows` > 0: that many windows at most, evenly spread, first and last
    kept; `prefix`: a `train.prefix.AudioPrefix` run on the frames, whose outputs are cached
    instead; `copies`: a CopiesConfig, whose versions' windows follow the clip's own (the
    clip's are cached without copies, apart). Each option has its own folder.
    """

    def __init__(self, fe: FrontendConfig, cache_dir: str | os.PathLike | None = None, threads: int = 1,
                 short: str = "repeat", max_windows: int = 0, prefix=None, copies=None):
        from .copies import copies_tag
        self.fe, self.short, self.max_windows, self.prefix = fe, short, max_windows, prefix
        self.copies = copies if copies is not None and copies.copies else None
        folder = Path(cache_dir) / frontend_hash(fe) if cache_dir else default_cache_dir(fe)
        parts = ([f"short{short}"] if short != "repeat" else []) + ([prefix.tag] if prefix else [])
        parts += ([f"w{max_windows}"] if max_windows else []) + (copies_tag(self.copies) if self.copies else [])
        self.dir = folder.with_name("-".join([folder.name, *parts]))
        self.threads = threads
        self.plain = FeatureCache(fe, cache_dir, threads, short, max_windows, prefix) if self.copies else None

    def file_for(self, clip: Clip) -> Path:
        try:
            st = os.stat(clip.path)
        except FileNotFoundError:
            raise UserError(f"{clip.path}: audio file of the manifest not found")
        key = f"{clip.path}|{st.st_size}|{st.st_mtime_ns}|{clip.start}|{clip.end}"
        return self.dir / (hashlib.sha1(key.encode()).hexdigest() + ".npy")

    def compute(self, clip: Clip) -> np.ndarray:
        """Decode, cut and transform one clip -> (W, n_mels, T) float32 dB, or the prefix's
        outputs; with copies, those of the copies alone."""
        from clap_rt.audio import fit_windows, load_audio
        from clap_rt.frontend import log_mel
        from .copies import clip_copies
        sr, window = self.fe.sample_rate, self.fe.clip_samples
        audio = load_audio(clip.path, sr)
        a = int(round(clip.start * sr))
        b = audio.shape[0] if clip.end is None else min(audio.shape[0], int(round(clip.end * sr)))
        if b <= a:
            raise UserError(f"{clip.path}: clip [{clip.start}, {clip.end}] s is outside the file "
                            f"({audio.shape[0] / sr:.2f} s)")
        versions = clip_copies(audio[a:b], clip.name or clip.path, self.copies, sr, window) if self.copies else [audio[a:b]]
        wins = np.concatenate([spread(fit_windows(v, window, short=self.short), self.max_windows) for v in versions])
        mel = log_mel(wins, self.fe, threads=self.threads)
        return mel if self.prefix is None else self.prefix(mel)

    def get(self, clip: Clip) -> np.ndarray:
        """Cached windows of `clip` (after those of the clip itself, its copies'), rebuilt
        (atomically) when missing."""
        path = self.file_for(clip)
        if not path.exists():
            feats = self.compute(clip)
            from clap_rt.checkpoints import atomic_write_bytes
            buf = io.BytesIO()
            np.save(buf, feats)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())
        own = np.load(path, mmap_mode="r")
        return np.concatenate([self.plain.get(clip), own]) if self.plain else own

    def load_all(self, clips: Sequence[Clip], progress: bool = False) -> list[np.ndarray]:
        it = clips
        if progress:
            from tqdm import tqdm
            it = tqdm(clips, desc="features", unit="clip")
        return [self.get(c) for c in it]


def spread(wins: np.ndarray, most: int) -> np.ndarray:
    """At most `most` (0: all) of (W, ...) windows, evenly spread, first and last included."""
    if not most or len(wins) <= most:
        return wins
    return wins[np.linspace(0, len(wins) - 1, most).round().astype(int)]


# --- batches ---------------------------------------------------------------------------------

def step_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, keys): batches are a pure function of the step."""
    return np.random.default_rng([seed, *keys])


def global_indices(n: int, batch: int, micro_step: int, seed: int) -> np.ndarray:
    """Clip indices of global micro-batch `micro_step`: consecutive slices of per-epoch
    permutations, so every clip is seen once per epoch whatever the world size."""
    start = micro_step * batch
    out = []
    while len(out) < batch:
        epoch, pos = divmod(start + len(out), n)
        perm = step_rng(seed, 0, epoch).permutation(n)
        out.extend(perm[pos:pos + batch - len(out)].tolist())
    return np.asarray(out)


class TrainBatches:
    """Global micro-batch `m` is the same for any number of ranks; rank r takes its slice.

    Per sample, the window, the caption and the augmentation are drawn from
    step_rng(seed, 1, m, position in the global batch).
    """

    def __init__(self, clips: Sequence[Clip], features: Sequence[np.ndarray], tokenizer,
                 batch_size: int, world: int, seed: int, augment=None):
        self.clips, self.features, self.tokenizer = list(clips), list(features), tokenizer
        self.batch_size, self.world, self.seed = batch_size, world, seed
        self.augment = augment          # train.augment.Augmenter or None

    def window(self, i: int, rng: np.random.Generator) -> np.ndarray:
        w = self.features[i]
        return np.array(w[rng.integers(len(w))], dtype=np.float32)       # (n_mels, T)

    def micro_batch(self, m: int, rank: int) -> dict:
        """Returns mel (b, n_mels, T) float32 tensor, input_ids / attention_mask (b, L), index (b,)."""
        import torch
        glob = global_indices(len(self.clips), self.batch_size * self.world, m, self.seed)
        lo = rank * self.batch_size
        mels, caps, idx = [], [], []
        for pos in range(lo, lo + self.batch_size):
            rng = step_rng(self.seed, 1, m, pos)
            i = int(glob[pos])
            mel = self.window(i, rng)
            cap = self.clips[i].captions[rng.integers(len(self.clips[i].captions))]
            if self.augment is not None:
                mel, cap = self.augment(mel, cap, rng, partner=lambda r: self._partner(i, r))
            mels.append(mel)
            caps.append(cap)
            idx.append(i)
        ids, mask = self.tokenizer(caps)
        return {"mel": torch.from_numpy(np.stack(mels)), "input_ids": ids, "attention_mask": mask,
                "index": torch.tensor(idx)}

    def _partner(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """A random other clip (window, caption) to mix with clip i."""
        j = int(rng.integers(len(self.clips) - 1))
        j += j >= i
        return self.window(j, rng), self.clips[j].captions[rng.integers(len(self.clips[j].captions))]
