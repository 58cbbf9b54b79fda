"""What `clap-rt listen` shows: a live terminal view (rich) and a score timeline (--plot)."""
from __future__ import annotations

import io
from collections import deque
from typing import Sequence

import numpy as np

from .checkpoints import atomic_write_bytes
from .detect import Event


class LiveView:
    """Per-label score bars with their on threshold, the active labels and the last events."""

    def __init__(self, labels: Sequence[str], pairs: Sequence[tuple[float, float]], max_events: int = 8):
        try:
            from rich.live import Live
        except ImportError as e:
            raise RuntimeError("the live view requires the rich package (pip install rich)") from e
        self.labels, self.pairs = list(labels), list(pairs)
        self.scores = np.zeros(len(self.labels))
        self.active: set = set()
        self.log: deque = deque(maxlen=max_events)
        self.time = 0.0
        self._live = Live(self._render(), refresh_per_second=10, transient=False)

    def __enter__(self) -> "LiveView":
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def update(self, window, events: Sequence[Event]) -> None:
        """window: the newest ScoredWindow, or None for events at the end of the stream."""
        if window is not None:
            self.scores, self.time = np.asarray(window.scores), window.end
        for e in events:
            (self.active.add if e.kind == "start" else self.active.discard)(e.label)
            self.log.append(e)
        self._live.update(self._render())

    def _render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text
        width = 40
        table = Table(title=f"clap-rt listen  t = {self.time:7.2f} s", show_header=True, expand=False)
        table.add_column("label")
        table.add_column("score", justify="right")
        table.add_column("")
        for label, s, (on, _) in zip(self.labels, self.scores, self.pairs):
            filled = int(round(float(s) * width))
            mark = int(round(on * width))
            bar = "".join("█" if i < filled else ("│" if i == mark else "·") for i in range(width))
            style = "bold red" if label in self.active else "green"
            table.add_row(Text(label, style=style), f"{float(s):.2f}", Text(bar, style=style))
        log = Text("\n".join(event_line(e) for e in self.log) or "no events yet", style="dim")
        return Group(table, log)


def event_line(e: Event) -> str:
    """One line per event, for the view's log and for a stdout that is not a terminal."""
    if e.kind == "start":
        return f"{e.time:8.2f} s  start  {e.label}  ({e.score:.2f})"
    return f"{e.time:8.2f} s  end    {e.label}  ({e.onset:.2f}-{e.offset:.2f} s, peak {e.peak:.2f})"


class TimelinePlot:
    """Collects scores per window and the events; `save(path)` draws the timeline (matplotlib Agg)."""

    def __init__(self, labels: Sequence[str], pairs: Sequence[tuple[float, float]]):
        self.labels, self.pairs = list(labels), list(pairs)
        self.times: list = []
        self.scores: list = []
        self.events: list = []

    def update(self, window, events: Sequence[Event]) -> None:
        """window: the newest ScoredWindow, or None for events at the end of the stream."""
        if window is not None:
            self.times.append(window.end)
            self.scores.append(np.asarray(window.scores, np.float32))
        self.events += [e for e in events if e.kind == "end"]

    def save(self, path: str) -> None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise RuntimeError("--plot requires the matplotlib package (pip install matplotlib)") from e
        fig, ax = plt.subplots(figsize=(12, 1.2 + 0.6 * len(self.labels)))
        scores = np.stack(self.scores) if self.scores else np.zeros((0, len(self.labels)))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, label in enumerate(self.labels):
            c = colors[i % len(colors)]
            ax.plot(self.times, scores[:, i], color=c, label=label, lw=1.2)
            ax.axhline(self.pairs[i][0], color=c, ls=":", lw=0.8)
            for e in self.events:
                if e.label == label:
                    ax.axvspan(e.onset, e.offset, color=c, alpha=0.15)
        ax.set_xlabel("time (s, end of window)")
        ax.set_ylabel("open-set score")
        ax.set_ylim(0, 1)
        ax.legend(loc="upper right", fontsize="small")
        ax.set_title("clap-rt listen: scores (lines), on thresholds (dotted), events (shaded)")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buf.getvalue())

