"""Bad input, as a user would try it: every case is one line on stderr naming the input and what
was expected, exit status 2, no traceback; a bad file in a folder is reported and skipped; no
output is lost or replaced by a failed run. Through the CLI (in process) and the Python API."""
from __future__ import annotations

import io
import json
import shutil
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from clap_rt.cli import main
from clap_rt.errors import UserError
from fakes import tone

RATE = 44100


@pytest.fixture(autouse=True)
def _no_terminal_view(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def cli(capsys, *args):
    """clap-rt ARGS in process -> (exit status, stdout lines, stderr lines)."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:         # argparse's own errors
        rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return rc, out.splitlines(), err.splitlines()


def one_error(capsys, *args, prog=None):
    """The single stderr line of a run that must fail with status 2."""
    rc, _, err = cli(capsys, *args)
    assert rc == 2 and len(err) == 1, (rc, err)
    prefix = f"clap-rt {prog or args[0]}: error: "
    assert err[0].startswith(prefix), err
    return err[0][len(prefix):]


# --- audio files: every bad one reported and skipped ----------------------------------------

BAD_FILES = {
    # name: (how it is made, the error it gives)
    "b_one_sample_96k.wav": (lambda p: sf.write(p, np.array([0.1], np.float32), 96000),
                             "too short: 1 sample(s) at 96000 Hz resample to none at 44100 Hz; expected at least 2 samples"),
    "c_empty.wav": (lambda p: sf.write(p, np.zeros(0, np.float32), RATE),
                    "empty audio; expected at least one sample"),
    "d_garbage.wav": (lambda p: p.write_bytes(b"RIFF\x00\x01 definitely not a wav"), None),
    "e_text.flac": (lambda p: p.write_text("hello"), None),
    "f_nan.wav": (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100, np.float32), RATE, subtype="FLOAT"),
                  "audio contains NaN or Inf samples"),
    "g_inf.wav": (lambda p: sf.write(p, np.array([0.1, np.inf] * 100, np.float32), RATE, subtype="FLOAT"),
                  "audio contains NaN or Inf samples"),
}
GOOD_FILES = {
    "a_tone.wav": lambda p: sf.write(p, tone(440, 1.0), RATE),
    "h_pcm8_8k.wav": lambda p: sf.write(p, tone(300, 0.5, sr=8000), 8000, subtype="PCM_U8"),
    "i_pcm24_stereo_48k.wav": lambda p: sf.write(p, np.stack([tone(500, 0.7, 48000)] * 2, 1), 48000, subtype="PCM_24"),
    "j_double_6ch_192k.wav": lambda p: sf.write(p, np.stack([tone(700, 0.3, 192000)] * 6, 1), 192000, subtype="DOUBLE"),
    "k_one_sample.wav": lambda p: sf.write(p, np.array([0.5], np.float32), RATE),
    "l_loud_float.wav": lambda p: sf.write(p, 1e4 * tone(900, 0.5), RATE, subtype="FLOAT"),
    "m_ogg_vorbis.ogg": lambda p: sf.write(p, tone(600, 1.0), RATE, format="OGG", subtype="VORBIS"),
    "n_flac_unicode_名前.flac": lambda p: sf.write(p, tone(350, 0.4), RATE),
}


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    for name, (make, _) in BAD_FILES.items():
        make(d / name)
    for name, make in GOOD_FILES.items():
        make(d / name)
    return d


def bad_file_lines(folder, prog: str) -> list[str]:
    out = []
    for name, (_, why) in sorted(BAD_FILES.items()):
        out.append(f"clap-rt {prog}: error: {folder / name}: {why}" if why else f"clap-rt {prog}: error: {folder / name}: cannot decode audio")
    return out


def assert_bad_files_reported(err: list[str], folder, prog: str) -> None:
    want = bad_file_lines(folder, prog)
    assert len(err) == len(want), err
    for line, w in zip(err, want):
        assert line.startswith(w), (line, w)


def test_classify_reports_and_skips_every_bad_file(capsys, tiny_model_dir, mixed_dir):
    rc, out, err = cli(capsys, "classify", mixed_dir, "--labels", "dog,siren", "--model", tiny_model_dir, "--json")
    assert rc == 2
    rows = [json.loads(line) for line in out]
    assert [r["path"] for r in rows] == [str(mixed_dir / n) for n in sorted(GOOD_FILES)]
    assert all(np.isfinite(list(r["scores"].values())).all() for r in rows)
    assert_bad_files_reported(err, mixed_dir, "classify")


def test_embed_keeps_the_good_files_and_never_replaces_a_good_index(capsys, tiny_model_dir, mixed_dir, tmp_path):
    index = tmp_path / "index.npz"
    rc, _, err = cli(capsys, "embed", mixed_dir, "--model", tiny_model_dir, "-o", index)
    assert rc == 2
    assert_bad_files_reported(err, mixed_dir, "embed")
    with np.load(index) as z:
        assert list(z["paths"]) == [str(mixed_dir / n) for n in sorted(GOOD_FILES)]
        assert z["embeddings"].shape == (len(GOOD_FILES), 16) and np.isfinite(z["embeddings"]).all()
    before = index.read_bytes()
    bad_only = tmp_path / "bad"
    bad_only.mkdir()
    shutil.copy(mixed_dir / "c_empty.wav", bad_only)
    rc, _, err = cli(capsys, "embed", bad_only, "--model", tiny_model_dir, "-o", index)
    assert rc == 2 and err == [
        f"clap-rt embed: error: {bad_only / 'c_empty.wav'}: empty audio; expected at least one sample",
        f"clap-rt embed: error: {index}: no file could be embedded; the output was not written"]
    assert index.read_bytes() == before and not (tmp_path / "index.npz.partial").exists()


def test_calibrate_reports_and_skips_a_bad_example(capsys, tiny_model_dir, mixed_dir, tmp_path):
    ex = tmp_path / "examples" / "dog"
    ex.mkdir(parents=True)
    for name in ("a_tone.wav", "b_one_sample_96k.wav", "k_one_sample.wav"):
        shutil.copy(mixed_dir / name, ex)
    out = tmp_path / "th.json"
    rc, _, err = cli(capsys, "calibrate", "--labels", "dog,siren", "--examples", tmp_path / "examples",
                     "--background", mixed_dir / "a_tone.wav", "--model", tiny_model_dir, "-o", out)
    assert rc == 2
    assert err[0] == (f"clap-rt calibrate: error: {ex / 'b_one_sample_96k.wav'}: too short: 1 sample(s) at 96000 Hz "
                      "resample to none at 44100 Hz; expected at least 2 samples")
    assert err[1].startswith("dog: on ") and "(2 examples, " in err[1]     # the 1-sample clip counts too
    assert json.loads(out.read_text())["labels"].keys() == {"dog", "siren"}


# --- model folders --------------------------------------------------------------------------

def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _edit_config(folder, edit):
    doc = json.loads((folder / "config.json").read_text())
    edit(doc)
    (folder / "config.json").write_text(json.dumps(doc))


MODEL_DEFECTS = {
    "truncated": (lambda d: _cut_in_half(d / "model.safetensors"),
                  "{d}/model.safetensors: not a readable safetensors file (Error while deserializing header: "
                  "incomplete metadata, file not fully covered); the file may be truncated or damaged"),
    "empty_weights": (lambda d: (d / "model.safetensors").write_bytes(b""),
                      "{d}/model.safetensors: not a readable safetensors file"),
    "no_weights": (lambda d: (d / "model.safetensors").unlink(),
                   "{d}/model.safetensors: not found; expected the model's weights"),
    "dims": (lambda d: _edit_config(d, lambda c: c["model"]["projection"].update(dim=32)),
             "{d}/model.safetensors: key 'audio_projection.layer_norm.bias' has shape (16,), model expects (32,); "
             "expected the tensors of the configuration in config.json"),
    "unknown_key": (lambda d: _edit_config(d, lambda c: c["model"]["audio"].update(bogus=1)),
                    "{d}/config.json: model.audio.bogus: unknown config key"),
    "section_not_object": (lambda d: _edit_config(d, lambda c: c["model"].update(frontend=3)),
                           "{d}/config.json: model.frontend: expected an object of FrontendConfig fields, got int"),
    "no_model": (lambda d: _edit_config(d, lambda c: c.pop("model")),
                 "{d}/config.json: model: missing; expected the model's configuration"),
    "not_json": (lambda d: (d / "config.json").write_text("{"),
                 "{d}/config.json: invalid JSON (Expecting property name enclosed in double quotes at line 1)"),
    "json_list": (lambda d: (d / "config.json").write_text("[]"),
                  "{d}/config.json: expected format 'clap_rt', found 'list'"),
    "bad_template": (lambda d: _edit_config(d, lambda c: c["model"].update(prompt_template="a {x} {}")),
                     "{d}/config.json: prompt templates: expected a '{{}}' placeholder for the label and no other "
                     "field, got 'a {{x}} {{}}'"),
    "bad_tokenizer": (lambda d: (d / "tokenizer.json").write_text('{"model": 1}'),
                      "{d}/tokenizer.json: not a readable tokenizer"),
}


@pytest.fixture(scope="module")
def broken_models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken_models")
    out = {}
    for name, (make, message) in MODEL_DEFECTS.items():
        d = root / name
        shutil.copytree(tiny_model_dir, d)
        make(d)
        out[name] = (d, message.format(d=d))
    return out


def _subcommands(audio, tmp):
    return {
        "classify": ["classify", audio, "--labels", "dog"],
        "embed": ["embed", audio, "-o", tmp / "i.npz"],
        "listen": ["listen", "--input", audio, "--fast", "--labels", "dog"],
        "calibrate": ["calibrate", "--labels", "dog", "--background", audio, "-o", tmp / "t.json"],
        "enrol": ["enrol", "dog", audio, "-o", tmp / "dog.clap"],
        "info": ["info"],
    }


@pytest.mark.parametrize("defect", sorted(MODEL_DEFECTS))
def test_a_damaged_model_folder_is_one_line_in_every_subcommand(capsys, broken_models, mixed_dir, tmp_path, defect):
    folder, message = broken_models[defect]
    for name, args in _subcommands(mixed_dir / "a_tone.wav", tmp_path).items():
        got = one_error(capsys, *args, "--model", folder)
        assert got.startswith(message), (name, got)
    (tmp_path / "i.npz").write_bytes(b"")
    assert one_error(capsys, "search", "dog", "--index", tmp_path / "i.npz", "--model", folder).startswith(
        f"{tmp_path / 'i.npz'}: not an index")       # the index is read before the model


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from fakes import tiny_hf_folder
    d = tmp_path_factory.mktemp("hf")
    tiny_hf_folder(d)
    return d


@pytest.mark.parametrize("defect, message", [
    ("truncated", "{d}/model.safetensors: not a readable safetensors file (Error while deserializing header: "
                  "incomplete metadata, file not fully covered); the file may be truncated or damaged"),
    ("dims", "{d}: key 'audio_projection.linear1.bias' has shape (12,), model expects (24,)"),
    ("wrong_type", "{d}: config.json is not a valid ClapConfig (Validation error for field 'spec_size': "
                   "TypeError: Field 'spec_size' expected int, got str (value: 'big'))"),
    ("not_json", "{d}/config.json: invalid JSON (Expecting value at line 1)"),
    ("not_object", "{d}/config.json: expected a transformers ClapConfig object"),
])
def test_convert_from_hf_of_a_damaged_folder_is_one_line(capsys, hf_folder, tmp_path, defect, message):
    d = tmp_path / "hf"
    shutil.copytree(hf_folder, d)
    if defect == "truncated":
        _cut_in_half(d / "model.safetensors")
    elif defect == "dims":
        _edit_config(d, lambda c: c.update(projection_dim=24))
    elif defect == "wrong_type":
        _edit_config(d, lambda c: c["audio_config"].update(spec_size="big"))
    else:
        (d / "config.json").write_text("" if defect == "not_json" else "[1]")
    assert one_error(capsys, "convert", "--from", "hf", d, tmp_path / "out") == message.format(d=d)
    assert not (tmp_path / "out").exists()


def test_the_python_api_raises_user_errors(broken_models, tiny_model_dir, mixed_dir):
    from clap_rt.zeroshot import Clap
    folder, message = broken_models["dims"]
    with pytest.raises(UserError) as e:
        Clap.load(folder)
    assert str(e.value) == message
    with pytest.raises(UserError, match=r"^--threads: expected an integer >= 1, got -3$"):
        Clap.load(tiny_model_dir, backend="torch", threads=-3)
    clap = Clap.load(tiny_model_dir, backend="torch")
    with pytest.raises(UserError, match="^--template: expected a '{}' placeholder for the label and no other field"):
        clap.classify([mixed_dir / "a_tone.wav"], ["dog"], template="{} at {place}")
    with pytest.raises(UserError) as e:
        clap.classify([mixed_dir / "b_one_sample_96k.wav"], ["dog"])
    assert str(e.value) == (f"{mixed_dir / 'b_one_sample_96k.wav'}: too short: 1 sample(s) at 96000 Hz resample "
                            "to none at 44100 Hz; expected at least 2 samples")
    (r,) = clap.classify([mixed_dir / "k_one_sample.wav"], ["dog", "siren"])
    assert abs(sum(r.scores.values()) - 1) < 1e-5


# --- outputs: checked before any audio is read ------------------------------------------------

@pytest.fixture
def no_audio_read(monkeypatch):
    """Fails the test if any audio is decoded."""
    def refuse(*a, **k):
        raise AssertionError("audio was read before the output path was checked")
    import clap_rt.audio
    import clap_rt.cli.calibrate
    import clap_rt.sources
    import clap_rt.zeroshot
    for mod in (clap_rt.audio, clap_rt.zeroshot, clap_rt.sources, clap_rt.cli.calibrate):
        monkeypatch.setattr(mod, "read_blocks", refuse, raising=False)


@pytest.mark.parametrize("make_args, message", [
    (lambda a, t: ["embed", a, "-o", t / "missing" / "i.npz"], "-o {t}/missing/i.npz: folder {t}/missing not found"),
    (lambda a, t: ["embed", a, "-o", t / "dir.npz"], "-o {t}/dir.npz: is a folder; expected a file to write"),
    (lambda a, t: ["calibrate", "--labels", "dog", "--background", a, "-o", t / "missing" / "t.json"],
     "-o {t}/missing/t.json: folder {t}/missing not found"),
    (lambda a, t: ["listen", "--input", a, "--fast", "--labels", "dog", "--plot", t / "missing" / "p.png"],
     "--plot {t}/missing/p.png: folder {t}/missing not found"),
    (lambda a, t: ["enrol", "dog", a, "-o", t / "no" / "dog.clap"], "-o {t}/no/dog.clap: folder {t}/no not found"),
])
def test_an_unwritable_output_fails_before_any_audio_is_read(capsys, tiny_model_dir, mixed_dir, tmp_path,
                                                             no_audio_read, make_args, message):
    (tmp_path / "dir.npz").mkdir()
    args = make_args(mixed_dir / "a_tone.wav", tmp_path)
    assert one_error(capsys, *args, "--model", tiny_model_dir) == message.format(t=tmp_path)


# --- embed: incremental, resumable, atomic ---------------------------------------------------

def test_an_interrupted_embed_keeps_its_finished_files_and_resumes(capsys, tiny_model_dir, tmp_path, monkeypatch):
    from clap_rt.zeroshot import Clap
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(5):
        sf.write(folder / f"{i}.wav", tone(200 + 300 * i, 0.5), RATE)
    index = tmp_path / "index.npz"
    rc, _, _ = cli(capsys, "embed", folder, "--model", tiny_model_dir, "-o", tmp_path / "clean.npz")
    assert rc == 0
    real, calls = Clap.embed_audio, []

    def interrupted(self, items, *a, **k):
        calls.append(str(items[0]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, items, *a, **k)

    monkeypatch.setattr(Clap, "embed_audio", interrupted)
    rc, _, err = cli(capsys, "embed", folder, "--model", tiny_model_dir, "-o", index)
    journal = tmp_path / "index.npz.partial"
    assert rc == 130 and not index.exists() and err == [
        f"clap-rt embed: interrupted; 2 file(s) kept in {journal}: run the same command again to resume"]
    with open(journal, "a") as f:
        f.write('{"path": "cut short by the kill", "embe')      # a torn last line is dropped
    monkeypatch.setattr(Clap, "embed_audio", real)
    rc, _, err = cli(capsys, "embed", folder, "--model", tiny_model_dir, "-o", index)
    assert rc == 0 and err == [f"clap-rt embed: resuming: 2 file(s) already embedded in {journal}"]
    assert not journal.exists()
    with np.load(index) as z, np.load(tmp_path / "clean.npz") as clean:
        assert list(z["paths"]) == list(clean["paths"])
        assert np.array_equal(z["embeddings"], clean["embeddings"])       # bytes kept exactly


def test_a_journal_of_another_pooling_is_not_resumed(capsys, tiny_model_dir, tmp_path):
    sf.write(tmp_path / "a.wav", tone(440, 0.5), RATE)
    journal = tmp_path / "i.npz.partial"
    journal.write_text(json.dumps({"format": "clap_rt.journal", "version": 1, "key": {"pooling": "mean"}}) + "\n")
    rc, _, err = cli(capsys, "embed", tmp_path / "a.wav", "--model", tiny_model_dir, "-o", tmp_path / "i.npz")
    assert rc == 0 and err == [f"clap-rt embed: {journal} was left by a run with another model or --pooling; "
                               "starting over"]
    with np.load(tmp_path / "i.npz") as z:
        assert z["embeddings"].shape == (1, 16)


# --- search: indexes --------------------------------------------------------------------------

def _index(path, paths, embs):
    np.savez(path, paths=np.asarray(paths), embeddings=np.asarray(embs))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"PK\x03\x04 cut"), "{p}: not an index, or cut short"),
    (lambda p: p.write_bytes(_good_index_bytes()[:300]), "{p}: not an index, or cut short"),
    (lambda p: np.savez(p, embeddings=np.zeros((2, 16))), "{p}: not an index (no 'paths is not a file in the archive' array)"),
    (lambda p: _index(p, ["a", "b"], np.zeros((3, 16))),
     "{p}: 'embeddings' is float64 of shape (3, 16) for 2 paths; expected a .npz written by `clap-rt embed -o` (N, D) floats"),
    (lambda p: _index(p, ["a"], np.zeros(16)), "{p}: 'embeddings' is float64 of shape (16,) for 1 paths"),
    (lambda p: _index(p, [1, 2], np.zeros((2, 16))), "{p}: 'paths' is int64 of shape (2,)"),
    (lambda p: np.savez(p, paths=np.array([{"a": 1}], dtype=object), embeddings=np.zeros((1, 16))),
     "{p}: not an index, or cut short (Object arrays cannot be loaded when allow_pickle=False)"),
    (lambda p: _index(p, ["a", "b"], np.array([[0.0] * 16, [np.nan] * 16])),
     "{p}: 1 embedding(s) are not finite (NaN/Inf), the first for b; re-run `clap-rt embed`"),
    (lambda p: _index(p, ["a"], np.ones((1, 8))),
     "{p}: embeddings of size (8,) do not match the model (16); re-run `clap-rt embed` with this model"),
])
def test_a_bad_index_is_one_line(capsys, tiny_model_dir, tmp_path, make, message):
    p = tmp_path / "index.npz"
    make(p)
    got = one_error(capsys, "search", "a dog", "--index", p, "--model", tiny_model_dir)
    assert got.startswith(message.format(p=p)), got


def _good_index_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, paths=np.array(["a.wav"] * 50), embeddings=np.ones((50, 16), np.float32))
    return buf.getvalue()


# --- flags, labels, thresholds, label packs ---------------------------------------------------

@pytest.fixture
def odd_files(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "bom.txt").write_bytes("\ufeffdog\nsiren\n".encode("utf-8"))
    (tmp_path / "pack.clap").write_bytes(b"not a pack")
    F = "clap_rt.thresholds"
    for name, doc in {"th_list": [1, 2], "th_labels_list": {"format": F, "labels": [1, 2]},
                      "th_pair": {"format": F, "labels": {"dog": [0.6, 0.4]}},
                      "th_bg": {"format": F, "labels": {}, "background": "noise"},
                      "th_tpl": {"format": F, "labels": {}, "template": "{} {x}"},
                      "th_nan": {"format": F, "labels": {"dog": {"on": "nan", "off": 0.4}}}}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--template", "{} {x}"], "--template: expected a '{}' placeholder for the label and no other field, got '{} {x}'"),
    (["--template", "{} {1}"], "--template: expected a '{}' placeholder for the label and no other field, got '{} {1}'"),
    (["--template", "{} }"], "--template: expected a '{}' placeholder for the label and no other field, got '{} }'"),
    (["--threads", "-3"], "--threads: expected an integer >= 1, got -3"),
    (["--threads", "0"], "--threads: expected an integer >= 1, got 0"),
    (["--labels-file", "{d}/latin1.txt"], "{d}/latin1.txt: not UTF-8 text (byte 0xe9 at offset 3); expected a UTF-8 "
                                          "text file with one label per line"),
    (["--labels-file", "{d}"], "{d}: labels file not found; expected a text file with one label per line"),
    (["--labels", "dog,dog"], "--labels: duplicate labels ['dog']"),
    (["--labels", "@{d}/pack.clap"], "{d}/pack.clap: not a label pack"),
    (["--labels", "@{d}/none.clap"], "{d}/none.clap: label pack not found"),
    (["--labels", "dog, @"], "--labels: '@' expects a label pack file after it, e.g. @labels.clap"),
    (["--backend", "tpu"], "--backend"),
])
def test_bad_flags_and_label_files_are_one_line(capsys, tiny_model_dir, mixed_dir, odd_files, args, message):
    args = [a.replace("{d}", str(odd_files)) for a in args]
    if "--labels" not in args and "--labels-file" not in args:
        args += ["--labels", "dog"]
    got = one_error(capsys, "classify", mixed_dir / "a_tone.wav", *args, "--model", tiny_model_dir)
    assert got.startswith(message.replace("{d}", str(odd_files))), got


def test_a_flag_argparse_refuses_ends_with_its_one_line_error(capsys, tiny_model_dir, mixed_dir):
    rc, _, err = cli(capsys, "classify", mixed_dir / "a_tone.wav", "--labels", "dog", "--threads", "two")
    assert rc == 2 and err[-1] == "clap-rt classify: error: argument --threads: invalid int value: 'two'"


def test_a_labels_file_with_a_byte_order_mark_is_read(capsys, tiny_model_dir, mixed_dir, odd_files):
    rc, out, _ = cli(capsys, "classify", mixed_dir / "a_tone.wav", "--labels-file", odd_files / "bom.txt",
                     "--model", tiny_model_dir, "--json")
    assert rc == 0 and set(json.loads(out[0])["scores"]) == {"dog", "siren"}


@pytest.mark.parametrize("name, message", [
    ("th_list", "expected format 'clap_rt.thresholds' (from `clap-rt calibrate`)"),
    ("th_labels_list", 'labels: expected {label: {"on": number, "off": number}}, got list'),
    ("th_pair", "label 'dog': expected {\"on\": number, \"off\": number}, got [0.6, 0.4]"),
    ("th_bg", "background: expected a list of prompts, got 'noise'"),
    ("th_tpl", "template: expected a '{}' placeholder for the label and no other field, got '{} {x}'"),
    ("th_nan", "label 'dog': expected thresholds 0 < off <= on < 1, got on=nan off=0.4"),
])
def test_a_thresholds_file_of_the_wrong_shape_is_one_line(capsys, tiny_model_dir, mixed_dir, odd_files, name, message):
    p = odd_files / f"{name}.json"
    got = one_error(capsys, "listen", "--input", mixed_dir / "a_tone.wav", "--fast", "--labels", "dog",
                    "--thresholds", p, "--model", tiny_model_dir)
    assert got == f"{p}: {message}"


# --- streams ----------------------------------------------------------------------------------

def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))


def _listen_json(capsys, monkeypatch, model, data: bytes, *extra):
    _stdin(monkeypatch, data)
    rc, out, err = cli(capsys, "listen", "--input", "-", "--fast", "--rate", "16000", "--format", "f32le",
                       "--labels", "dog", "--model", model, "--json", "--hop", "1", *extra)
    return rc, err


def test_stdin_fast_keeps_every_chunk_with_a_small_queue(capsys, monkeypatch, tiny_model_dir):
    x = (0.1 * np.random.default_rng(0).standard_normal(16000 * 12)).astype("<f4").tobytes()
    rc, big = _listen_json(capsys, monkeypatch, tiny_model_dir, x, "--queue-size", "512")
    rc2, small = _listen_json(capsys, monkeypatch, tiny_model_dir, x, "--queue-size", "2")
    assert rc == rc2 == 0
    assert "dropped chunks 0" in small[-1] and "over 12.0 s" in small[-1]
    assert small[-1].split(", compute")[0] == big[-1].split(", compute")[0]    # same windows, nothing lost


def test_nan_and_inf_in_a_stream_are_zeroed_with_one_warning(capsys, monkeypatch, tiny_model_dir):
    x = (0.1 * np.random.default_rng(1).standard_normal(16000 * 3)).astype("<f4")
    x[[100, 20000, 40000]] = [np.nan, np.inf, -np.inf]
    rc, err = _listen_json(capsys, monkeypatch, tiny_model_dir, x.tobytes())
    warnings = [line for line in err if "NaN/Inf" in line]
    assert rc == 0 and warnings[0] == ("clap-rt listen: warning: --input -: NaN/Inf samples replaced by silence "
                                       "(counted in the summary)")
    assert len(warnings) == 2 and err[-1].endswith(", NaN/Inf samples zeroed 3") and "over 3.0 s" in err[-1]


def test_listen_accepts_the_clips_classify_accepts(capsys, tiny_model_dir, mixed_dir, tmp_path):
    short = tmp_path / "10ms.wav"
    sf.write(short, tone(1000, 0.01), RATE)
    for path in (short, mixed_dir / "k_one_sample.wav"):
        rc, _, err = cli(capsys, "listen", "--input", path, "--fast", "--labels", "dog", "--model", tiny_model_dir)
        assert rc == 0 and "windows 1, skipped 0" in err[-1], err


def test_a_stream_file_damaged_half_way_fails_with_its_name_and_no_summary(capsys, tiny_model_dir, tmp_path):
    p = tmp_path / "half.flac"
    sf.write(p, tone(440, 20.0), RATE)
    data = bytearray(p.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4000] = b"\xff" * 4000
    p.write_bytes(bytes(data))
    rc, _, err = cli(capsys, "listen", "--input", p, "--fast", "--labels", "dog", "--model", tiny_model_dir)
    err = [line for line in err if " rounded to " not in line]       # the hop's note, before any audio
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"clap-rt listen: error: --input {p}: cannot decode "
                                                           "audio after "), err


# --- long files: bounded memory, the same result ---------------------------------------------

def test_block_windows_equal_the_whole_file_windows():
    from clap_rt.audio import fit_windows, iter_windows
    rng = np.random.default_rng(0)
    for _ in range(200):                        # seeded random lengths, windows, hops and block splits
        n, window = int(rng.integers(1, 300)), int(rng.integers(1, 60))
        hop = int(rng.integers(1, window + 1)) if rng.random() < 0.5 else None
        x = rng.standard_normal(n).astype(np.float32)
        cuts = np.sort(rng.integers(0, n + 1, size=int(rng.integers(0, 6))))
        blocks = np.split(x, cuts)
        for short in ("repeat", "centre"):
            got = np.stack(list(iter_windows(blocks, window, hop, short)))
            assert np.array_equal(got, fit_windows(x, window, hop, short)), (n, window, hop, cuts.tolist())


def test_a_long_file_embeds_as_the_whole_file_does(tiny_model_dir, tmp_path, monkeypatch):
    import clap_rt.audio
    from clap_rt.audio import fit_windows, load_audio
    from clap_rt.frontend import log_mel
    from clap_rt.pooling import pool_windows
    from clap_rt.zeroshot import Clap
    p = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    x = np.concatenate([tone(300, 10.0, 48000), 0.05 * rng.standard_normal(48000 * 15).astype(np.float32),
                        tone(3000, 5.0, 48000, amp=0.9)])
    sf.write(p, x, 48000)                             # 30 s at 48 kHz: resampled block by block
    monkeypatch.setattr(clap_rt.audio, "BLOCK_SECONDS", 1.3)
    clap = Clap.load(tiny_model_dir, backend="torch")
    audio = load_audio(p, clap.sample_rate)
    mel = log_mel(fit_windows(audio, clap.frontend.clip_samples, short=clap.config.short_clips), clap.frontend)
    emb = clap.embed_mel_batches(mel)
    for pooling in ("loudest", "mean"):
        want = pool_windows(emb, mel, pooling)
        got = clap.embed_audio([p], pooling=pooling)[0]
        assert np.abs(got - want).max() < 1e-5, (pooling, np.abs(got - want).max())
