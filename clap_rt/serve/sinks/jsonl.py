"""JSON lines: one event record per line on stdout or in a file rotated by size.

Rotation keeps `keep` old files: events.jsonl -> events.jsonl.1 -> ... -> events.jsonl.<keep>
(the oldest is deleted), when the next line would take the file past `rotate_bytes` (0: never).
"""
from __future__ import annotations

import json
import os
import sys

from . import Sink, SinkDown


class JsonlSink(Sink):
    def __init__(self, name: str, path: str = "-", rotate_bytes: int = 0, keep: int = 5):
        self.name, self.path, self.rotate_bytes, self.keep = name, path, rotate_bytes, keep
        self._f = None

    def open(self, streams: dict) -> None:
        if self.path != "-":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)

    def send(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        if self.path == "-":
            sys.stdout.write(line)
            sys.stdout.flush()
            return
        try:
            if self._f is None:
                self._f = open(self.path, "a", encoding="utf-8")
            if self.rotate_bytes and self._f.tell() and self._f.tell() + len(line.encode()) > self.rotate_bytes:
                self._rotate()
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())     # on disk before the outbox lets the record go
        except OSError as e:
            self.close()
            raise SinkDown(f"{self.path}: {e.strerror}")

    def _rotate(self) -> None:
        self._f.close()
        self._f = None
        if self.keep == 0:
            os.unlink(self.path)
        else:
            for i in range(self.keep - 1, 0, -1):
                if os.path.exists(f"{self.path}.{i}"):
                    os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._f = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
