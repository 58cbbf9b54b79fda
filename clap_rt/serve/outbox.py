"""A bounded first-in-first-out queue of events on disk, one per sink.

    box = Outbox("outbox/mqtt", max_events=100_000)
    box.append(record)             # durable (fsync) before the call returns
    record = box.peek(timeout=0.5) # the oldest undelivered record, or None
    box.ack()                      # it was delivered: drop it, durably

Every event goes through the outbox, so a sink that is down (a broker restarting, a webhook
timing out) or a service that is restarted loses nothing and delivers in order when it
returns: a record leaves the outbox only after its sink acknowledged it. When the outbox holds
`max_events`, the oldest record is dropped and counted (`dropped`): the bound keeps a sink
that never returns from filling the disk.

On disk: `events-<gen>.jsonl` (one JSON record per line, appended) and `head` ("<gen> <n>":
the first n lines of that file are delivered), replaced atomically. When most of the file is
delivered it is rewritten as the next generation with only the undelivered lines, then `head`
points at it; a crash in between leaves the old generation in force. A line cut short by a
crash (no newline) was never acknowledged to anyone and is discarded.
"""
from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path
from typing import Optional

from ..checkpoints import atomic_write_bytes

COMPACT_AFTER = 1000        # delivered lines before the file is rewritten without them


class Outbox:
    def __init__(self, folder: str | os.PathLike, max_events: int, compact_after: int = COMPACT_AFTER):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_events, self.compact_after = max_events, compact_after
        self.dropped = 0
        self._cond = threading.Condition()
        self._gen, self._acked = self._read_head()
        self._pending: deque = deque()
        path = self._file(self._gen)
        if path.exists():
            data = path.read_bytes()
            complete = data[:data.rfind(b"\n") + 1]
            if len(complete) != len(data):               # a torn last line: never acknowledged
                with open(path, "r+b") as f:
                    f.truncate(len(complete))
            lines = complete.splitlines()
            self._pending.extend(json.loads(line) for line in lines[self._acked:])
        for stale in self.folder.glob("events-*.jsonl"):  # a compaction cut short, or done
            if stale != path:
                stale.unlink()
        self._f = open(path, "ab")

    def _file(self, gen: int) -> Path:
        return self.folder / f"events-{gen}.jsonl"

    def _read_head(self) -> tuple[int, int]:
        try:
            gen, n = (self.folder / "head").read_text().split()
            return int(gen), int(n)
        except FileNotFoundError:
            return 0, 0

    def _write_head(self) -> None:
        atomic_write_bytes(self.folder / "head", f"{self._gen} {self._acked}\n".encode())

    def __len__(self) -> int:
        return len(self._pending)

    def append(self, record: dict) -> None:
        """Add `record` (JSON-serialisable) at the tail, on disk before returning."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._cond:
            if len(self._pending) >= self.max_events:
                self._pending.popleft()
                self.dropped += 1
                self._acked += 1
                self._write_head()
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())
            self._pending.append(record)
            self._cond.notify_all()

    def peek(self, timeout: float) -> Optional[dict]:
        """The oldest undelivered record; waits up to `timeout` s for one (None: still empty)."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            return self._pending[0] if self._pending else None

    def ack(self) -> None:
        """The record `peek` returned was delivered: drop it for good."""
        with self._cond:
            self._pending.popleft()
            self._acked += 1
            if self._acked >= self.compact_after and self._acked >= len(self._pending):
                self._compact()
            else:
                self._write_head()
            self._cond.notify_all()

    def wait_empty(self, timeout: float) -> bool:
        """Wait until every record was delivered (True) or `timeout` s passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout)

    def _compact(self) -> None:
        new = self._file(self._gen + 1)
        atomic_write_bytes(new, b"".join((json.dumps(r, separators=(",", ":")) + "\n").encode()
                                         for r in self._pending))
        old = self._file(self._gen)
        self._gen, self._acked = self._gen + 1, 0
        self._write_head()                       # from here on the new generation is in force
        self._f.close()
        old.unlink()
        self._f = open(new, "ab")

    def close(self) -> None:
        with self._cond:
            self._f.close()
