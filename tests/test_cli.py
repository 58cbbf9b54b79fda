"""CLI round trips and error cases, through the installed `clap-rt` console script."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLAP_RT = str(Path(sys.executable).parent / "clap-rt")


def run(*args, check_rc: int | None = 0):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([CLAP_RT, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)
    if check_rc is not None:
        assert p.returncode == check_rc, f"rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}"
    return p


def test_console_script_installed():
    assert Path(CLAP_RT).exists(), f"{CLAP_RT} missing: run `pip install -e .` (make setup)"


def test_classify_folder_json_skips_bad_file(tiny_model_dir, audio_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("low.wav", "noise.flac"):
        (folder / name).write_bytes((audio_dir / name).read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav")
    p = run("classify", folder, "--labels", "dog, siren ,piano", "--model", tiny_model_dir, "--json", check_rc=2)
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["low.wav", "noise.flac"]
    for r in rows:
        assert set(r) == {"path", "label", "score", "scores"}
        assert set(r["scores"]) == {"dog", "siren", "piano"}
        assert r["label"] == max(r["scores"], key=r["scores"].get)
        assert abs(sum(r["scores"].values()) - 1) < 1e-4
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "broken.wav: cannot decode audio" in err[0] and "Traceback" not in p.stderr


def test_embed_then_search_round_trip(tiny_model_dir, audio_dir, tmp_path):
    index = tmp_path / "index.npz"
    run("embed", audio_dir, "--model", tiny_model_dir, "-o", index)
    with np.load(index) as z:
        paths, embs = list(z["paths"]), z["embeddings"]
    assert len(paths) == 4 and embs.shape == (4, 16)
    assert np.allclose(np.linalg.norm(embs, axis=1), 1, atol=1e-5)
    p = run("search", "a high beep", "--index", index, "-k", "2", "--model", tiny_model_dir, "--json")
    hits = [json.loads(line) for line in p.stdout.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2] and hits[0]["score"] >= hits[1]["score"]
    assert all(h["path"] in paths for h in hits)


def test_embed_pooling_option_matches_the_library(tiny_model_dir, audio_dir, tmp_path):
    import soundfile as sf
    from clap_rt.zeroshot import Clap
    from fakes import tone
    path = tmp_path / "fading.wav"          # a loud tone, then a faint one: the poolings disagree
    sf.write(path, np.concatenate([tone(3000, 2.0), tone(220, 2.0, amp=0.005)]), 44100)
    run("embed", path, "--model", tiny_model_dir, "--pooling", "mean", "-o", tmp_path / "i.npz")
    with np.load(tmp_path / "i.npz") as z:
        got = z["embeddings"][0]
    clap = Clap.load(tiny_model_dir, backend="torch")
    assert float(got @ clap.embed_audio([path], pooling="mean")[0]) > 0.99999
    assert float(got @ clap.embed_audio([path])[0]) < 0.9999
    p = run("embed", audio_dir, "--model", tiny_model_dir, "--pooling", "max", "--json", check_rc=2)
    assert p.stderr.strip().splitlines()[-1] == (
        "clap-rt embed: error: argument --pooling: invalid choice: 'max' (choose from 'loudest', 'mean')")


@pytest.mark.parametrize("args, message", [
    (["classify", "nope.wav", "--labels", "a"], "clap-rt classify: error: nope.wav: file not found"),
    (["classify", "{audio}/low.wav", "--labels", " , "], "clap-rt classify: error: --labels: expected at least one label"),
    (["classify", "{audio}/low.wav", "--labels-file", "missing.txt"],
     "clap-rt classify: error: missing.txt: labels file not found"),
    (["classify", "{audio}/low.wav", "--labels", "a", "--template", "no slot"],
     "clap-rt classify: error: --template: expected a '{{}}' placeholder"),
    (["search", "x", "--index", "missing.npz"], "clap-rt search: error: missing.npz: index not found"),
    (["embed", "{audio}", "-o", "out.txt"], "clap-rt embed: error: out.txt: expected an output path ending in .npz"),
    (["info", "/nonexistent"], "clap-rt info: error: /nonexistent: model folder not found"),
    (["classify", "{audio}/low.wav", "--labels", "a", "--compile"],
     "clap-rt classify: error: --compile: expected --backend cuda (torch.compile is used on the GPU only), got --backend auto"),
])
def test_errors_are_one_line_exit_2(tiny_model_dir, audio_dir, args, message):
    args = [a.format(audio=audio_dir) for a in args]
    if args[0] != "info":
        args += ["--model", str(tiny_model_dir)]
    p = run(*args, check_rc=2)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.replace("{{}}", "{}")), p.stderr


def test_bundled_default_model_is_used_without_model_flag():
    info = json.loads(run("info", "--json").stdout)
    assert info["name"] == "clap-rt-small" and info["embedding_dim"] == 512
    assert info["audio_params"] < 10_000_000, "the edge model must stay small"
    assert info["short_clips"] == "centre" and info["event_thresholds"] == [0.5, 0.35]
