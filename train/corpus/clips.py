"""File tasks: one source file (or an embedded RIFF) -> clips on disk + manifest rows."""
from __future__ import annotations

import io
import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from clap_rt.audio import load_audio

from . import captions
from .audio import SAMPLE_RATE, make_clips, write_clip
from .packages import member_bytes

# Where commands run: the folder holding the `train` package, so `python -m train.corpus.noise` works.
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FileTask:
    """One source recording to cut into clips.

    `out` is the clip path stem relative to DATA_DIR; `kind` picks the caption builder
    ("event", "drum", "speech", "note", "background") and `args` its keyword arguments.
    `offset`/`length` select an embedded RIFF inside a container file (length 0: the whole
    file); `member` a file inside a zip-family archive at `path`. With `command`, the recording
    is the audio file that program writes to stdout (`path` then only names it). `provenance`
    (package, version, path inside the package, member) is copied into every row.
    """

    path: str
    out: str
    source: str
    item: str
    label: str
    kind: str
    args: dict = field(default_factory=dict)
    max_pieces: int = 1
    offset: int = 0
    length: int = 0
    command: tuple[str, ...] = ()
    member: str = ""
    provenance: dict = field(default_factory=dict)


def make_captions(kind: str, label: str, args: dict, rng: random.Random) -> list[str]:
    """Dispatch to the caption builder for `kind`."""
    if kind == "event":
        return captions.event_captions(label, args.get("action"), rng, args.get("detail", ""))
    if kind == "drum":
        return captions.drum_captions(args.get("drum", label), args.get("dynamics", "loudly"), rng,
                                      args.get("kit", ""))
    if kind == "speech":
        return captions.speech_captions(args["speaker"], args["language"], rng, args.get("text", ""))
    if kind == "note":
        return captions.note_captions(args["instrument"], args["pitch"], args["register"],
                                      args["dynamics"], rng)
    if kind == "background":
        return captions.background_captions(rng)
    if kind == "given":             # captions made by the source (the taxonomy's hierarchy)
        return list(args["captions"])
    raise ValueError(f"unknown caption kind {kind!r}")


def clip_row(rel_path: str, source: str, item: str, label: str, kind: str, args: dict,
             seconds: float, provenance: dict | None = None) -> dict:
    """A manifest row (split filled in later) with captions seeded by the clip path."""
    caps = make_captions(kind, label, args, random.Random(rel_path))
    return {"path": rel_path, "caption": caps[0], "captions": caps, "label": label,
            "source": source, "item": item, "seconds": round(seconds, 3), **(provenance or {})}


def run_task(task: FileTask, data_dir: str) -> list[dict]:
    """Decode, cut and write the clips of one task; returns their rows (none if silent/broken)."""
    try:
        if task.command:
            out = subprocess.run(task.command, capture_output=True, check=True, timeout=60, cwd=_ROOT)
            audio = load_audio(io.BytesIO(out.stdout), SAMPLE_RATE, "the command's output")
        elif task.member:
            audio = load_audio(io.BytesIO(member_bytes(task.path, task.member)), SAMPLE_RATE, task.member)
        elif task.length:
            with open(task.path, "rb") as f:
                f.seek(task.offset)
                audio = load_audio(io.BytesIO(f.read(task.length)), SAMPLE_RATE, f"bytes at {task.offset}")
        else:
            audio = load_audio(task.path, SAMPLE_RATE)
    except Exception as e:  # a corrupt or unsupported file loses only itself
        print(f"skip {task.path}: {e}", flush=True)
        return []
    rows = []
    for i, clip in enumerate(make_clips(audio, task.max_pieces)):
        rel = f"{task.out}_{i}.wav"
        seconds = write_clip(os.path.join(data_dir, rel), clip)
        rows.append(clip_row(rel, task.source, task.item, task.label, task.kind, task.args, seconds,
                             task.provenance))
    return rows


def _run_task_star(args: tuple[FileTask, str]) -> list[dict]:
    return run_task(*args)


def run_tasks(tasks: list[FileTask], data_dir: str, jobs: int) -> list[dict]:
    """Run tasks, in a process pool when jobs > 1; rows come back in task order."""
    if jobs <= 1:
        return [row for t in tasks for row in run_task(t, data_dir)]
    from multiprocessing import Pool

    with Pool(jobs) as pool:
        results = pool.map(_run_task_star, [(t, data_dir) for t in tasks], chunksize=4)
    return [row for rows in results for row in rows]
