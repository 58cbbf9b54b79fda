"""clap-rt enrol and @PACK labels in classify / listen / calibrate, with the tiny random model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from clap_rt.cli import main
from clap_rt.labelpack import LabelPack
from fakes import tone

SR = 44100


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("enrol_audio")
    for i, f in enumerate((220, 230, 240)):
        sf.write(d / f"hum{i}.wav", tone(f, 1.0), SR)
    for i, f in enumerate((3000, 3200)):
        sf.write(d / f"whistle{i}.wav", tone(f, 1.0, amp=0.3), SR)
    sf.write(d / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(d / "short.wav", tone(440, 0.05), SR)
    (d / "broken.wav").write_bytes(b"RIFF not really a wav")
    return d


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """The tiny model's architecture with other random weights."""
    from clap_rt.checkpoints import pretrained_tokenizer_dir, save_model
    from clap_rt.config import small_default
    from clap_rt.model import CLAP
    from clap_rt.tokenizer import TextTokenizer
    from conftest import tiny_config
    torch.manual_seed(1)
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("other_model")
    save_model(CLAP(cfg).eval(), out, TextTokenizer.from_dir(pretrained_tokenizer_dir(small_default()), cfg.text))
    return out


def cli(capsys, *args, model=None):
    rc = main([*map(str, args), "--model", str(model), "--backend", "torch"])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def pack(capsys, files, tiny_model_dir, tmp_path):
    path = tmp_path / "labels.clap"
    rc, _, err = cli(capsys, "enrol", "hum", *[files / f"hum{i}.wav" for i in range(3)], "--scoring", "nearest",
                     "-o", path, model=tiny_model_dir)
    assert rc == 0, err
    return path


def test_enrol_add_and_classify_mixed_labels(capsys, files, tiny_model_dir, pack):
    rc, _, err = cli(capsys, "enrol", "whistle", files / "whistle0.wav", files / "whistle1.wav",
                     "--text", "a high whistle", "--text-weight", "0.2", "--add", "-o", pack, model=tiny_model_dir)
    assert rc == 0, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("hum: 3 examples, 3 sound windows; on ") and "leave-one-out over 3 examples" in lines[0]
    assert lines[1].startswith("whistle: 2 examples, 2 sound windows, text 'a high whistle' x 0.2; on ")
    assert lines[2] == f"wrote {pack} (2 labels, scoring nearest, model tiny-test)"
    got = LabelPack.load(pack)
    assert got.names == ["hum", "whistle"] and got.labels[1].text_weight == 0.2
    rc, out, err = cli(capsys, "classify", files / "hum1.wav", files / "whistle0.wav",
                       "--labels", f"siren, @{pack}, dog", "--json", model=tiny_model_dir)
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    for row in rows:
        assert list(row["scores"]) == ["siren", "hum", "whistle", "dog"]
        assert sum(row["scores"].values()) == pytest.approx(1, abs=1e-5)
    # Nearest prototype without a description: an enrolled example scores cosine 1 with itself,
    # above any other label.
    assert rows[0]["label"] == "hum"


def test_listen_and_calibrate_take_a_pack(capsys, files, tiny_model_dir, pack, tmp_path):
    scene = tmp_path / "scene.wav"
    sf.write(scene, np.concatenate([np.zeros(SR, np.float32), tone(230, 1.0), np.zeros(SR, np.float32)]), SR)
    rc, out, err = cli(capsys, "listen", "--labels", f"@{pack},siren", "--input", scene, "--fast", "--json",
                       model=tiny_model_dir)
    assert rc == 0, err
    assert all(json.loads(line)["label"] in ("hum", "siren") for line in out.splitlines())
    assert "windows 3, skipped 0" in err
    th = tmp_path / "th.json"
    rc, _, err = cli(capsys, "calibrate", "--labels", f"@{pack},siren", "--examples", f"hum={files / 'hum0.wav'}",
                     "--background", scene, "-o", th, model=tiny_model_dir)
    assert rc == 0, err
    assert set(json.loads(th.read_text())["labels"]) == {"hum", "siren"}


def test_listen_thresholds_pack_then_file(pack, tmp_path):
    import types
    from clap_rt.cli.listen import load_thresholds
    from clap_rt.detect import Thresholds
    from clap_rt.labelset import LabelSet
    labels = LabelSet.parse(f"@{pack},siren")
    hum = LabelPack.load(pack).labels[0]
    th = load_thresholds(types.SimpleNamespace(thresholds=None, on=0.6, off=0.4), labels, (0.5, 0.35))
    assert th.pair("hum") == (hum.on, hum.off) and th.pair("siren") == (0.6, 0.4)
    assert labels.event_thresholds(0.6, 0.4).pair("hum") == (hum.on, hum.off)
    assert labels.event_thresholds(0.6, 0.4).pair("siren") == (0.6, 0.4)
    Thresholds(on={"hum": 0.7}, off={"hum": 0.3}).save(tmp_path / "th.json")
    th = load_thresholds(types.SimpleNamespace(thresholds=str(tmp_path / "th.json"), on=None, off=None),
                         labels, (0.5, 0.35))
    assert th.pair("hum") == (0.7, 0.3) and th.pair("siren") == (0.5, 0.35)


@pytest.mark.parametrize("example, message", [
    ("silent.wav", "{d}/silent.wav: silent (every sample 0); expected an example with its sound above -60 dBFS"),
    ("short.wav", "{d}/short.wav: too short (0.050 s); expected an example of at least 0.1 s"),
    ("broken.wav", "{d}/broken.wav: cannot decode audio ("),
    ("missing.wav", "{d}/missing.wav: file not found"),
])
def test_bad_examples_are_one_line_exit_2(capsys, files, tiny_model_dir, tmp_path, example, message):
    out = tmp_path / "x.clap"
    rc, _, err = cli(capsys, "enrol", "x", files / "hum0.wav", files / example, "-o", out, model=tiny_model_dir)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("clap-rt enrol: error: " + message.format(d=files)), lines
    assert not out.exists()


def test_pack_errors_are_one_line_exit_2(capsys, files, tiny_model_dir, other_model_dir, pack, tmp_path):
    fp = LabelPack.load(pack).fingerprint
    from clap_rt.zeroshot import Clap
    other = Clap.load(other_model_dir, backend="torch").model_id
    for command in (["classify", files / "hum0.wav", "--labels", f"siren,@{pack}"],
                    ["listen", "--input", files / "hum0.wav", "--fast", "--labels", f"siren,@{pack}"],
                    ["enrol", "whistle", files / "whistle0.wav", "--add", "-o", pack]):
        rc, _, err = cli(capsys, *command, model=other_model_dir)
        assert rc == 2 and err.strip().splitlines() == [
            f"clap-rt {command[0]}: error: {pack}: label pack made by model 'tiny-test' (fingerprint {fp}), not by "
            f"this model 'tiny-test' (fingerprint {other}); enrol the labels again with this model"]
    notes = tmp_path / "notes.clap"
    notes.write_text("not a pack")
    cases = [
        (["classify", files / "hum0.wav", "--labels", f"@{notes}"],
         f"clap-rt classify: error: {notes}: not a label pack ("),
        (["classify", files / "hum0.wav", "--labels", "@nope.clap"],
         "clap-rt classify: error: nope.clap: label pack not found; expected a label pack written by `clap-rt enrol`"),
        (["classify", files / "hum0.wav", "--labels", f"hum,@{pack}"],
         f"clap-rt classify: error: --labels: duplicate labels ['hum'] (also in {pack})"),
        (["enrol", "hum", files / "hum0.wav", "-o", pack],
         f"clap-rt enrol: error: {pack}: already exists; pass --add to grow it, or choose another -o"),
        (["enrol", "hum", files / "hum0.wav", "--add", "-o", tmp_path / "new.clap"],
         f"clap-rt enrol: error: {tmp_path / 'new.clap'}: label pack not found; --add grows an existing pack"),
        (["enrol", "hum", files / "hum0.wav", "--add", "-o", pack, "--scoring", "mean"],
         f"clap-rt enrol: error: --scoring mean: {pack} scores its labels with 'nearest'; a pack has one scoring"),
        (["enrol", "a,b", files / "hum0.wav", "-o", tmp_path / "n.clap"],
         "clap-rt enrol: error: NAME 'a,b': expected a label name without commas"),
        (["enrol", "x", files / "hum0.wav", "--text-weight", "0.5", "-o", tmp_path / "n.clap"],
         "clap-rt enrol: error: --text-weight: expected --text, the description it weighs"),
        (["enrol", "x", files / "hum0.wav", "--text", "x", "--text-weight", "2", "-o", tmp_path / "n.clap"],
         "clap-rt enrol: error: --text-weight: expected a number in [0, 1], got 2.0"),
    ]
    for args, message in cases:
        rc, _, err = cli(capsys, *args, model=tiny_model_dir)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith(message), (args, err)
