"""Open-set event decisions: per-window label scores -> start / end events.

Scoring: each window's audio embedding is compared with the label prompts *and* background
prompts ("background noise", "silence", ...); a label's score is its share of the softmax over
all of them, so a label is only "on" when it beats what the scene would be without it, not
merely the other labels the user typed.

Decisions, per label: smoothing (centred median, or EMA), hysteresis (enter above `on`, leave
below `off`), a minimum duration before a start is reported, and a debounce that merges
gaps shorter than `debounce` seconds into one event.

Event times, for a window covering [start, end) whose last `hop` seconds are new audio: an
event that turns a window on began within that new audio, so its onset is `end - hop`; it
ended before the first window that no longer sees it, so its offset is that window's start
(or, for an event shorter than a window, the end of the hop it was first heard in, whichever
is later: an offset never precedes its onset).
Both are then within one hop of the truth for a detector that responds to any part of the window.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .config import ModelConfig
from .errors import UserError, read_json_file

# Prompts the user's labels must beat: what a scene sounds like when none of them happens.
DEFAULT_BACKGROUND = ("background noise", "silence", "people talking", "room ambience", "other sounds")
# Without a model (a bare Thresholds()): the preset default of ModelConfig.event_thresholds.
DEFAULT_ON, DEFAULT_OFF = ModelConfig.event_thresholds
THRESHOLDS_FORMAT = "clap_rt.thresholds"


def open_set_scores(sims: np.ndarray, logit_scale: float, n_labels: int) -> np.ndarray:
    """(B, L + B_bg) cosines (labels first) -> (B, L) each label's softmax share among all prompts."""
    logits = logit_scale * np.asarray(sims, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True))[:, :n_labels].astype(np.float32)


# --- thresholds --------------------------------------------------------------------------

@dataclass
class Thresholds:
    """Per-label hysteresis thresholds on the open-set score; `default_*` for unlisted labels."""
    on: dict = field(default_factory=dict)
    off: dict = field(default_factory=dict)
    default_on: float = DEFAULT_ON
    default_off: float = DEFAULT_OFF
    background: Optional[list] = None      # the prompts the thresholds were calibrated with
    template: Optional[str] = None
    meta: dict = field(default_factory=dict)

    def pair(self, label: str) -> tuple[float, float]:
        return self.on.get(label, self.default_on), self.off.get(label, self.default_off)

    def to_json(self) -> dict:
        return {"format": THRESHOLDS_FORMAT, "version": 1,
                "labels": {k: {"on": self.on[k], "off": self.off[k]} for k in self.on},
                "background": self.background, "template": self.template, "meta": self.meta}

    def save(self, path) -> None:
        from .checkpoints import atomic_write_bytes
        atomic_write_bytes(path, (json.dumps(self.to_json(), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path) -> "Thresholds":
        doc = read_json_file(path, f"{path}: thresholds file not found; expected the JSON written by "
                                   "`clap-rt calibrate`", expected="expected a thresholds file")
        if not isinstance(doc, dict) or doc.get("format") != THRESHOLDS_FORMAT:
            raise UserError(f"{path}: expected format {THRESHOLDS_FORMAT!r} (from `clap-rt calibrate`)")
        labels, background, template = doc.get("labels", {}), doc.get("background"), doc.get("template")
        if not isinstance(labels, dict):
            raise UserError(f"{path}: labels: expected {{label: {{\"on\": number, \"off\": number}}}}, "
                            f"got {type(labels).__name__}")
        if background is not None and not (isinstance(background, list) and all(isinstance(b, str) for b in background)):
            raise UserError(f"{path}: background: expected a list of prompts, got {background!r}")
        if template is not None:
            from .zeroshot import check_template
            if not isinstance(template, str):
                raise UserError(f"{path}: template: expected a string with '{{}}', got {template!r}")
            check_template(template, f"{path}: template")
        on, off = {}, {}
        for label, t in labels.items():
            try:
                on[label], off[label] = float(t["on"]), float(t["off"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}: label {label!r}: expected {{\"on\": number, \"off\": number}}, got {t!r}")
        meta = doc.get("meta") or {}
        th = cls(on, off, background=background, template=template, meta=meta if isinstance(meta, dict) else {})
        for label in on:
            check_pair(th.on[label], th.off[label], f"{path}: label {label!r}")
        return th


def check_pair(on: float, off: float, name: str) -> None:
    if not (0.0 < off <= on < 1.0):
        raise UserError(f"{name}: expected thresholds 0 < off <= on < 1, got on={on} off={off}")


# --- smoothing ---------------------------------------------------------------------------

class _Median:
    """Centred running median over `k` windows (k odd): output i is the median of i-h..i+h.

    The delay of h = (k-1)/2 windows is compensated: each output keeps the times of its
    centre window. Near the ends the median narrows symmetrically (the first and last windows
    are their own median), so a step at the edge of the stream is not smeared.
    """

    def __init__(self, k: int):
        if k < 1 or k % 2 == 0:
            raise UserError(f"--smooth-windows: expected an odd number >= 1, got {k}")
        self.h = k // 2
        self.items: deque = deque()   # (window, scores), at most 2h+1
        self.next = 0                 # index in items of the next window to output

    def push(self, item, score: np.ndarray) -> list:
        self.items.append((item, score))
        out = []
        while self.next < len(self.items) and len(self.items) - 1 - self.next >= self.h:
            out.append(self._emit())
        return out

    def _emit(self):
        i = self.next
        r = min(self.h, i, len(self.items) - 1 - i)   # symmetric near the ends: stays centred
        window = [s for _, s in list(self.items)[i - r:i + r + 1]]
        item = self.items[i][0]
        self.next += 1
        while self.next > self.h:     # windows older than h before the next output are done
            self.items.popleft()
            self.next -= 1
        return item, np.median(np.stack(window), axis=0)

    def flush(self) -> list:
        out = []
        while self.next < len(self.items):
            out.append(self._emit())
        return out


class _Ema:
    def __init__(self, alpha: float):
        if not 0.0 < alpha <= 1.0:
            raise UserError(f"--ema-alpha: expected 0 < alpha <= 1, got {alpha}")
        self.alpha, self.state = alpha, None

    def push(self, item, score: np.ndarray) -> list:
        self.state = score if self.state is None else self.alpha * score + (1 - self.alpha) * self.state
        return [(item, self.state)]

    def flush(self) -> list:
        return []


# --- events ------------------------------------------------------------------------------

@dataclass
class Event:
    """A start or an end. `time` is the onset (start) or offset (end); seconds of stream time.

    decided_at: stream time (end of the newest window) when the decision was made.
    """
    kind: str                      # "start" | "end"
    label: str
    time: float
    score: float
    decided_at: float
    onset: Optional[float] = None  # end events only
    offset: Optional[float] = None
    peak: Optional[float] = None

    def to_json(self) -> dict:
        d = {"event": self.kind, "label": self.label, "time": round(self.time, 3), "score": round(self.score, 4)}
        if self.kind == "end":
            d.update(onset=round(self.onset, 3), offset=round(self.offset, 3), peak=round(self.peak, 4))
        return d


@dataclass
class DetectorConfig:
    """How per-window scores become events, besides the on / off thresholds of `EventDetector`."""
    smoothing: str = "median"      # "median" | "ema" | "none"
    smooth_windows: int = 3        # median length (odd)
    ema_alpha: float = 0.5
    min_duration: float = 0.0      # s an event must last before its start is reported
    debounce: float = 0.0          # s below `off` before an event ends (shorter gaps merge)


class _LabelState:
    __slots__ = ("state", "onset", "offset", "peak", "released_at", "start_score", "last_score")

    def __init__(self):
        self.state = "off"         # off -> pending -> on <-> releasing -> off


class EventDetector:
    """Per-window scores in, events out. `update` per window, `finish` at the end, `reset`."""

    def __init__(self, labels: Sequence[str], thresholds: Optional[Thresholds] = None,
                 config: Optional[DetectorConfig] = None):
        self.labels = list(labels)
        self.thresholds = thresholds or Thresholds()
        self.config = config or DetectorConfig()
        c = self.config
        if c.min_duration < 0 or c.debounce < 0:
            raise UserError(f"--min-duration/--debounce: expected seconds >= 0, got {c.min_duration}/{c.debounce}")
        self._pairs = [self.thresholds.pair(label) for label in self.labels]
        for label, (on, off) in zip(self.labels, self._pairs):
            check_pair(on, off, f"thresholds of {label!r}")
        if c.smoothing not in ("median", "ema", "none"):
            raise UserError(f"--smoothing: expected median, ema or none, got {c.smoothing!r}")
        self.reset()

    def reset(self) -> None:
        c = self.config
        self._smoother = (_Median(c.smooth_windows) if c.smoothing == "median" else
                          _Ema(c.ema_alpha) if c.smoothing == "ema" else _Median(1))
        self._states = [_LabelState() for _ in self.labels]
        self._now = 0.0

    def update(self, window) -> list[Event]:
        """window: a `ScoredWindow` (start, end, hop seconds; scores (L,)). Returns new events."""
        self._now = window.end
        events: list[Event] = []
        for item, smoothed in self._smoother.push(window, np.asarray(window.scores, np.float64)):
            events += self._decide(item, smoothed)
        return events

    def finish(self) -> list[Event]:
        """End of stream: flush smoothing and close open events at the end of the last window."""
        events: list[Event] = []
        for item, smoothed in self._smoother.flush():
            events += self._decide(item, smoothed)
        for label, st in zip(self.labels, self._states):
            if st.state in ("on", "releasing"):
                offset = st.offset if st.state == "releasing" else self._now
                events.append(self._end(label, st, offset))
            st.state = "off"
        return events

    def _end(self, label: str, st: _LabelState, offset: float) -> Event:
        st.state = "off"
        return Event("end", label, offset, st.last_score, self._now, onset=st.onset, offset=offset,
                     peak=float(st.peak))

    def _decide(self, w, scores: np.ndarray) -> list[Event]:
        c, out = self.config, []
        onset_time = max(w.start, w.end - w.hop)
        for label, st, (on, off), s in zip(self.labels, self._states, self._pairs, scores):
            s = float(s)
            st.last_score = s
            if st.state == "off":
                if s >= on:
                    st.state, st.onset, st.peak, st.start_score = "pending", onset_time, s, s
            elif st.state == "pending":
                if s < off:
                    st.state = "off"                       # shorter than min_duration: never reported
                else:
                    st.peak = max(st.peak, s)
            elif st.state == "on":
                if s < off:
                    # An event shorter than a window can stop firing in a window that starts
                    # before its onset; it was heard in the new audio after that onset, so it
                    # lasted at least to the end of that hop.
                    st.state, st.released_at = "releasing", w.end
                    st.offset = max(w.start, st.onset + w.hop)
                else:
                    st.peak = max(st.peak, s)
            elif st.state == "releasing":
                if s >= on:
                    st.state, st.peak = "on", max(st.peak, s)   # a short gap: the same event
            if st.state == "pending" and w.end - st.onset >= c.min_duration - 1e-9:
                st.state = "on"
                out.append(Event("start", label, st.onset, st.start_score, self._now))
            if st.state == "releasing" and w.end - st.released_at >= c.debounce - 1e-9:
                out.append(self._end(label, st, st.offset))
        return out



# --- calibration -------------------------------------------------------------------------

def fit_thresholds(positive_peaks: Sequence[float], negatives: Sequence[float]) -> tuple[float, float, str]:
    """(on, off, note) for one label from example clips and background windows.

    positive_peaks: the label's highest window score in each example clip (an example holds
    the sound somewhere, not in every window). negatives: the label's scores on every window
    of background audio and of the other labels' examples.
    on sits halfway between the loud end of the negatives (99th percentile) and the quiet end
    of the positives (10th percentile); off halfway between that negative level and on. With
    only one side, on is set relative to it. note says how well the two sides separate.
    """
    pos = np.asarray(positive_peaks, np.float64)
    neg = np.asarray(negatives, np.float64)
    neg_hi = float(np.percentile(neg, 99)) if neg.size else None
    pos_lo = float(np.percentile(pos, 10)) if pos.size else None
    if neg_hi is not None and pos_lo is not None:
        if pos_lo > neg_hi:
            on, note = (neg_hi + pos_lo) / 2, f"separated (background p99 {neg_hi:.3f} < examples p10 {pos_lo:.3f})"
        else:
            # overlap: favour few false alarms, some examples will be missed
            on, note = neg_hi + 0.25 * (1 - neg_hi), (f"overlapping (background p99 {neg_hi:.3f} >= examples p10 "
                                                      f"{pos_lo:.3f}); expect misses")
    elif pos_lo is not None:
        on, note = 0.75 * pos_lo, f"examples only (p10 {pos_lo:.3f}); no background given"
    elif neg_hi is not None:
        on, note = neg_hi + 0.5 * (1 - neg_hi), f"background only (p99 {neg_hi:.3f}); no examples given"
    else:
        raise UserError("calibrate: expected example clips (--examples) and/or background audio (--background)")
    on = float(np.clip(on, 0.02, 0.98))
    floor = neg_hi if neg_hi is not None and neg_hi < on else 0.5 * on
    return round(on, 4), round(float(max(0.01, (floor + on) / 2)), 4), note
