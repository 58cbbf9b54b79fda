"""A run's finished results kept as they come, so that an interrupted run resumes.

`clap-rt embed -o OUT.npz` appends each file's embedding to OUT.npz.partial as one JSON line
and writes OUT.npz (atomically) only at the end, then removes the journal. Killed half way,
the run leaves OUT.npz as it was and the journal holding every finished file; the same command
again reads the journal and embeds only the rest. A line cut short by the kill is dropped.

    {"format": "clap_rt.journal", "version": 1, "key": {...}}        first line: what made it
    {"path": "a.wav", "embedding": "<base64 of (D,) float32 little-endian>"}
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

FORMAT = "clap_rt.journal"
VERSION = 1
SUFFIX = ".partial"


class Journal:
    """Rows {path: (dim,) float32} of a run identified by `key` (model, options), kept in `path`.

    open() reads the rows a previous run with the same key left (`resumed`); a journal of
    another key is replaced (`discarded` is then True). add() appends one row and flushes.
    """

    def __init__(self, path: str | os.PathLike, key: dict, dim: int):
        self.path = Path(path)
        self.key = dict(key, dim=dim)
        self.dim = dim
        self.rows: dict[str, np.ndarray] = {}
        self.resumed = 0
        self.discarded = False
        self._f = None

    def open(self) -> "Journal":
        if self.path.exists():
            self.rows = self._read()
            self.resumed = len(self.rows)
        if not self.rows:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(json.dumps({"format": FORMAT, "version": VERSION, "key": self.key}) + "\n")
        self._f = open(self.path, "a", encoding="utf-8")
        return self

    def _read(self) -> dict[str, np.ndarray]:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        try:
            head = json.loads(lines[0])
        except json.JSONDecodeError:
            head = None
        if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("key") != self.key:
            self.discarded = True
            return {}
        rows = {}
        for line in lines[1:]:
            row = _parse_row(line)
            if row is None or row[1].shape != (self.dim,):
                break            # the line a kill cut short (only ever the last one written)
            rows[row[0]] = row[1]
        # Rewrite what was read, so that a torn last line is not followed by new rows.
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(lines[0] + "\n" + "".join(_row_line(p, e) for p, e in rows.items()))
        return rows

    def add(self, path: str, embedding: np.ndarray) -> None:
        self.rows[path] = np.asarray(embedding, np.float32)
        self._f.write(_row_line(path, self.rows[path]))
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _row_line(path: str, embedding: np.ndarray) -> str:
    data = base64.b64encode(np.asarray(embedding, "<f4").tobytes()).decode()
    return json.dumps({"path": path, "embedding": data}) + "\n"


def _parse_row(line: str) -> Optional[tuple[str, np.ndarray]]:
    try:
        row = json.loads(line)
        return str(row["path"]), np.frombuffer(base64.b64decode(row["embedding"], validate=True), "<f4").copy()
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
