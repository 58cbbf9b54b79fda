"""clap-rt listen / calibrate / devices end to end, with the tone-band fake model."""
from __future__ import annotations

import io
import json
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from clap_rt.cli import main
from fakes import FakeClap, soundscape

BANDS = {"beep": 1000.0, "whistle": 3000.0}


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    clap = FakeClap(BANDS)
    monkeypatch.setattr("clap_rt.cli.listen.load_clap", lambda args: clap)
    monkeypatch.setattr("clap_rt.cli.calibrate.load_clap", lambda args: clap)
    return clap


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.wav"
    sf.write(path, soundscape([(1000.0, 1.3, 2.4), (3000.0, 3.1, 3.9)], 5.0, seed=2), 16000)
    return path


def json_lines(out: str) -> list:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_listen_file_fast_json_events_summary_and_plot(scene, tmp_path, capsys):
    plot = tmp_path / "timeline.png"
    rc = main(["listen", "--labels", "beep,whistle", "--input", str(scene), "--fast", "--json", "--hop", "0.25",
               "--plot", str(plot)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    ev = json_lines(out)
    assert [(e["event"], e["label"]) for e in ev] == [("start", "beep"), ("end", "beep"),
                                                      ("start", "whistle"), ("end", "whistle")], ev
    assert set(ev[1]) == {"event", "label", "time", "score", "onset", "offset", "peak"}
    assert set(ev[0]) == {"event", "label", "time", "score"}
    for end, (on, off) in ((ev[1], (1.3, 2.4)), (ev[3], (3.1, 3.9))):
        assert abs(end["onset"] - on) <= 0.25 and abs(end["offset"] - off) <= 0.25, end
    assert "windows 17, skipped 0" in err and "real-time factor" in err, err
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_listen_raw_pcm_on_stdin(monkeypatch, capsys):
    x = soundscape([(3000.0, 1.3, 2.1)], 3.6, rate=22050)
    pcm = np.stack([x, x], 1)                                     # stereo s16le at 22.05 kHz: resampled
    raw = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(raw[:-3])))  # a torn last frame
    rc = main(["listen", "--labels", "beep,whistle", "--input", "-", "--rate", "22050", "--channels", "2",
               "--format", "s16le", "--fast", "--json", "--hop", "0.25"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    ev = json_lines(out)
    assert [(e["event"], e["label"]) for e in ev] == [("start", "whistle"), ("end", "whistle")], ev
    assert abs(ev[1]["onset"] - 1.3) <= 0.25 and abs(ev[1]["offset"] - 2.1) <= 0.25, ev


def test_calibrate_then_listen_with_thresholds(tmp_path, scene, capsys):
    for label, f in BANDS.items():
        (tmp_path / "ex" / label).mkdir(parents=True)
        for i in range(2):
            sf.write(tmp_path / "ex" / label / f"{i}.wav", soundscape([(f, 0.2, 0.9)], 1.2, seed=i), 16000)
    bg = tmp_path / "bg.wav"
    sf.write(bg, soundscape([], 4.0, seed=9), 16000)
    out_json = tmp_path / "thresholds.json"
    rc = main(["calibrate", "--labels", "beep,whistle", "--examples", str(tmp_path / "ex"), "--background", str(bg),
               "-o", str(out_json)])
    err = capsys.readouterr().err
    assert rc == 0, err
    th = json.loads(out_json.read_text())
    for label in BANDS:
        on, off = th["labels"][label]["on"], th["labels"][label]["off"]
        assert 0.0 < off < on < 1.0, th
    assert "beep: on" in err and "separated" in err, err
    rc = main(["listen", "--labels", "beep,whistle", "--input", str(scene), "--fast", "--json",
               "--thresholds", str(out_json)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert [e["label"] for e in json_lines(out)] == ["beep", "beep", "whistle", "whistle"], out


def test_listen_uses_the_models_thresholds_unless_on_off_given(scene, monkeypatch, capsys):
    # The beep's last window scores 0.5: below a model off of 0.8 it ends a hop earlier.
    clap = FakeClap(BANDS, event_thresholds=(0.9, 0.8))
    monkeypatch.setattr("clap_rt.cli.listen.load_clap", lambda args: clap)
    argv = ["listen", "--labels", "beep,whistle", "--input", str(scene), "--fast", "--json", "--hop", "0.25"]
    offsets = []
    for extra in ([], ["--on", "0.5", "--off", "0.35"]):
        assert main(argv + extra) == 0
        ends = [e for e in json_lines(capsys.readouterr().out) if e["event"] == "end"]
        assert [e["label"] for e in ends] == ["beep", "whistle"], ends
        offsets.append(ends[0]["offset"])
    assert offsets == [2.25, 2.5], offsets
    monkeypatch.setattr("clap_rt.cli.listen.load_clap", lambda args: FakeClap(BANDS, event_thresholds=(0.3, 0.6)))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the model's event_thresholds: expected thresholds 0 < off <= on < 1, got on=0.3 off=0.6" in err, err


@pytest.mark.parametrize("argv,message", [
    (["listen", "--labels", "beep", "--input", "missing.wav"], "--input missing.wav: cannot read audio"),
    (["listen", "--labels", "beep", "--input", "-"], "--rate: expected the sample rate in Hz of the raw PCM"),
    (["listen", "--labels", "beep", "--input", "-", "--rate", "16000", "--format", "u8"],
     "--format: expected one of s16le, s32le, f32le, got 'u8'"),
    (["listen", "--labels", "beep", "--on", "0.3", "--off", "0.6", "--input", "x.wav"],
     "--on/--off: expected thresholds 0 < off <= on < 1, got on=0.3 off=0.6"),
    (["calibrate", "--labels", "beep", "--examples", "nowhere", "-o", "t.json"],
     "--examples nowhere: expected a folder with a sub-folder per label, or LABEL=PATH"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
