"""Open-set decisions: hysteresis, min duration, debounce, smoothing, onsets within one hop."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clap_rt.detect import DetectorConfig, EventDetector, Thresholds, fit_thresholds, open_set_scores
from clap_rt.errors import UserError
from clap_rt.stream import ClapStream, ScoredWindow
from fakes import FakeClap, soundscape

HOP = 0.1


def windows(scores, hop=HOP, length=1.0):
    """(K,) or (K, L) scores -> ScoredWindows every `hop` s, each `length` s long, first one full."""
    scores = np.asarray(scores, np.float64).reshape(len(scores), -1)
    return [ScoredWindow(k, k * hop, k * hop + length, length if k == 0 else hop, s) for k, s in enumerate(scores)]


def run(det, scores, **kw):
    out = []
    for w in windows(scores, **kw):
        out += det.update(w)
    return out + det.finish()


def test_open_set_scores_compete_with_background():
    sims = np.array([[0.9, 0.1, 0.2], [0.1, 0.1, 0.9]])      # 2 labels + 1 background prompt
    p = open_set_scores(sims, 10.0, 2)
    e = np.exp(10 * sims)
    ref = (e / e.sum(axis=1, keepdims=True))[:, :2]
    assert np.abs(p - ref).max() < 1e-6, f"max diff {np.abs(p - ref).max()}"
    assert p[1].max() < 0.01, f"background window still scores {p[1]}"


def test_hysteresis_uses_separate_on_and_off_thresholds():
    det = EventDetector(["x"], Thresholds(default_on=0.6, default_off=0.3), DetectorConfig(smoothing="none"))
    # 0.5 after the start is below on but above off: the event continues until 0.2
    ev = run(det, [0.1, 0.7, 0.5, 0.4, 0.2, 0.5, 0.1])
    # The first quiet window starts at 0.4 s, before the onset (1.0 s): the event is shorter than
    # a window, so its offset is the end of the hop it was first heard in, never before its onset.
    assert [(e.kind, round(e.time, 3)) for e in ev] == [("start", 1.0), ("end", 1.1)], ev
    end = ev[1]
    assert (round(end.onset, 3), round(end.offset, 3), end.peak) == (1.0, 1.1, 0.7)
    assert end.to_json() == {"event": "end", "label": "x", "time": 1.1, "score": 0.2, "onset": 1.0,
                             "offset": 1.1, "peak": 0.7}


def test_min_duration_drops_short_blips_and_delays_start():
    cfg = DetectorConfig(smoothing="none", min_duration=0.25)
    det = EventDetector(["x"], Thresholds(default_on=0.5, default_off=0.4), cfg)
    scores = [0.1, 0.9, 0.9, 0.1] + [0.1] * 3 + [0.9] * 5 + [0.1]
    ev = run(det, scores)
    # the first quiet window starts at 1.2 s, before the onset: offset = end of the onset hop
    assert [(e.kind, round(e.time, 2)) for e in ev] == [("start", 1.6), ("end", 1.7)], ev
    start = ev[0]
    # reported once 0.25 s have passed since the onset (end of window 9 = 1.9 s)
    assert round(start.decided_at, 2) == 1.9, start


def test_debounce_merges_short_gaps():
    th = Thresholds(default_on=0.5, default_off=0.4)
    scores = [0.9] * 3 + [0.1] * 2 + [0.9] * 3 + [0.1] * 6
    split = run(EventDetector(["x"], th, DetectorConfig(smoothing="none")), scores)
    merged = run(EventDetector(["x"], th, DetectorConfig(smoothing="none", debounce=0.25)), scores)
    assert [e.kind for e in split] == ["start", "end", "start", "end"], split
    assert [e.kind for e in merged] == ["start", "end"], merged
    assert (merged[1].onset, round(merged[1].offset, 2)) == (0.0, 0.8), merged[1]


def test_median_smoothing_removes_single_window_spikes_and_keeps_times():
    th = Thresholds(default_on=0.5, default_off=0.4)
    spikes = [0.1, 0.1, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1]
    assert run(EventDetector(["x"], th, DetectorConfig(smoothing="median", smooth_windows=3)), spikes) == []
    ev = run(EventDetector(["x"], th, DetectorConfig(smoothing="median", smooth_windows=3)),
             [0.1] * 5 + [0.9] * 4 + [0.1] * 5)
    # centred median: same onset/offset as unsmoothed, for a clean step (the quiet window starts
    # at 0.9 s, before the onset, so the offset is the end of the onset hop)
    assert [(e.kind, round(e.time, 2)) for e in ev] == [("start", 1.4), ("end", 1.5)], ev


def test_ema_smoothing_lags():
    th = Thresholds(default_on=0.5, default_off=0.4)
    ev = run(EventDetector(["x"], th, DetectorConfig(smoothing="ema", ema_alpha=0.5)), [0.0] * 3 + [0.9] * 5)
    assert ev[0].kind == "start" and round(ev[0].time, 2) == 1.3, ev    # 0.45 at window 3, 0.675 at 4


def test_thresholds_round_trip_and_bad_files(tmp_path):
    th = Thresholds(on={"siren": 0.7}, off={"siren": 0.4}, background=["silence"], template="a {}")
    th.save(tmp_path / "t.json")
    back = Thresholds.load(tmp_path / "t.json")
    assert (back.pair("siren"), back.pair("dog"), back.background) == ((0.7, 0.4), (0.5, 0.35), ["silence"])
    (tmp_path / "bad.json").write_text(json.dumps({"format": "clap_rt.thresholds", "labels": {"a": {"on": 0.2,
                                                                                                  "off": 0.5}}}))
    with pytest.raises(UserError, match=r"label 'a': expected thresholds 0 < off <= on < 1, got on=0.2 off=0.5"):
        Thresholds.load(tmp_path / "bad.json")
    with pytest.raises(UserError, match="thresholds file not found"):
        Thresholds.load(tmp_path / "missing.json")


def test_fit_thresholds_between_background_and_examples():
    on, off, note = fit_thresholds([0.8, 0.9, 0.85], np.linspace(0.0, 0.2, 101))
    p10, n99 = float(np.percentile([0.8, 0.9, 0.85], 10)), float(np.percentile(np.linspace(0, 0.2, 101), 99))
    assert abs(on - (p10 + n99) / 2) < 1e-4 and abs(off - (n99 + on) / 2) < 1e-4, (on, off)
    assert note.startswith("separated")
    on, off, note = fit_thresholds([0.3], [0.5] * 10)
    assert on > 0.5 and off <= on and "overlapping" in note, (on, off, note)


@pytest.mark.parametrize("hop", [0.25, 0.5])
def test_soundscape_onset_and_offset_within_one_hop(hop):
    """A tone at 1 kHz from 2.13 to 3.61 s in noise; the fake embedder maps it to 'beep'."""
    clap = FakeClap({"beep": 1000.0, "whistle": 3000.0})
    truth = (2.13, 3.61)
    audio = soundscape([(1000.0, *truth)], 6.0, seed=3)
    stream = ClapStream(clap, ["beep", "whistle"], 16000, hop=hop)
    det = EventDetector(["beep", "whistle"], Thresholds(), DetectorConfig(smoothing="median"))
    events = []
    for i in range(0, audio.shape[0], 1234):
        stream.accept_waveform(audio[i:i + 1234])
        while stream.windows_ready:
            events += det.update(stream.score(stream.pop_window()))
    stream.input_finished()
    while stream.windows_ready:
        events += det.update(stream.score(stream.pop_window()))
    events += det.finish()
    assert [(e.kind, e.label) for e in events] == [("start", "beep"), ("end", "beep")], events
    end = events[1]
    assert abs(end.onset - truth[0]) <= hop and abs(end.offset - truth[1]) <= hop, \
        f"onset {end.onset} (true {truth[0]}), offset {end.offset} (true {truth[1]}), hop {hop}"
    assert end.peak > 0.9, end
