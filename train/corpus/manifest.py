"""The corpus manifest (JSON lines, one clip per line): validation, atomic writing, splits."""
from __future__ import annotations

import hashlib
import json
import os

from clap_rt.errors import UserError
from ..data import read_rows

FIELDS = ("path", "caption", "captions", "label", "source", "item", "split")
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.10


def validate_row(row: object, where: str) -> dict:
    """Check one manifest object against the corpus's fields; the UserError starts with `where`
    (FILE:LINE) and names the bad field."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field in FIELDS:
        if field not in row:
            raise UserError(f"{where}: missing field '{field}'")
        value = row[field]
        if field == "captions":
            if not (isinstance(value, list) and value and all(isinstance(c, str) and c for c in value)):
                raise UserError(f"{where}: field 'captions' must be a non-empty list of strings")
        elif not (isinstance(value, str) and value):
            raise UserError(f"{where}: field '{field}' must be a non-empty string")
    if row["split"] not in SPLITS:
        raise UserError(f"{where}: field 'split' is '{row['split']}', expected one of {SPLITS}")
    return row


def load_manifest(path: str | os.PathLike) -> list[dict]:
    """Read (train.data.read_rows) and validate a corpus manifest.jsonl; returns one dict per
    clip as written (fields: see FIELDS; paths relative to the manifest's folder)."""
    return [validate_row(row, where) for where, row in read_rows(path)]


def write_jsonl_atomic(path: str, rows: list[dict]) -> None:
    """Write rows as JSON lines via a temporary file and os.replace, so readers never see half."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_manifest(path: str, rows: list[dict]) -> None:
    """Validate every row, then write the manifest atomically."""
    for i, row in enumerate(rows, start=1):
        validate_row(row, f"{path}:{i}")
    write_jsonl_atomic(path, rows)


def key_hash(key: str) -> int:
    """A 32-bit hash of `key`, the same on every run and machine (unlike `hash`)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)


def item_split(source: str, item: str, heldout: set[str]) -> str:
    """Split of every clip of (source, item): "test" for held-out sources, else a stable ~10%
    of items (by hash of the item id, so a GM program is in val for every soundfont) in "val"."""
    if source in heldout:
        return "test"
    bucket = key_hash(item) / 0xFFFFFFFF
    return "val" if bucket < VAL_FRACTION else "train"


def assign_splits(rows: list[dict], heldout: set[str]) -> list[dict]:
    """Rows with their "split" set from (source, item); ordered train, val, test."""
    out = [dict(r, split=item_split(r["source"], r["item"], heldout)) for r in rows]
    return sorted(out, key=lambda r: SPLITS.index(r["split"]))
