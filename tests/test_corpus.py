"""Corpus builder: manifest round trip and validation, item-level splits, MIDI writer and
note cutting, caption variety. No apt packages needed."""
import json
import random
import sys

import numpy as np
import pytest
import soundfile as sf

from clap_rt.errors import UserError
from train.corpus import load_manifest, write_manifest
from train.corpus.audio import SAMPLE_RATE, make_clips, trim
from train.corpus.captions import drum_captions, event_captions, note_captions, speech_captions
from train.corpus.clips import FileTask, clip_row, run_task
from train.corpus.manifest import assign_splits
from train.corpus.midi import Note, gm_schedule, midi_bytes, read_note_ons
from train.corpus.sources import stamp_texts


def _row(i, item="a", source="s"):
    return {"path": f"clips/s/{i}.wav", "caption": "a dog barking", "captions": ["a dog barking", "dog barks"],
            "label": "dog", "source": source, "item": item, "split": "train", "seconds": 1.5}


def test_manifest_round_trip(tmp_path):
    rows = [_row(i, item=f"it{i}") for i in range(5)]
    # A packaged sound's row carries its provenance (train/corpus/sfx.py).
    rows[0].update(package="demo-sounds-data", version="1.2-3", package_path="/usr/share/sounds/dog.zip",
                   member="dog.wav")
    path = tmp_path / "manifest.jsonl"
    write_manifest(str(path), rows)
    assert load_manifest(str(path)) == rows
    assert not list(tmp_path.glob("*.tmp*"))  # the temporary file was renamed away
    # The training side (train.train, train.evaluate) reads the builder's manifests too.
    from train.data import read_manifest
    clips = read_manifest(path)
    assert [(c.path, c.captions, c.label) for c in clips] == \
        [(str(tmp_path / r["path"]), r["captions"], r["label"]) for r in rows]


def test_manifest_missing_field_names_line_and_field(tmp_path):
    rows = [_row(0), _row(1)]
    del rows[1]["label"]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(UserError) as e:
        load_manifest(str(path))
    assert str(e.value) == f"{path}:2: missing field 'label'"


@pytest.mark.parametrize("field,value,message", [
    ("split", "dev", "m.jsonl:1: field 'split' is 'dev', expected one of ('train', 'val', 'test')"),
    ("captions", [], "m.jsonl:1: field 'captions' must be a non-empty list of strings"),
    ("caption", "", "m.jsonl:1: field 'caption' must be a non-empty string"),
])
def test_manifest_bad_values(tmp_path, field, value, message):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(dict(_row(0), **{field: value})) + "\n")
    with pytest.raises(UserError) as e:
        load_manifest(str(path))
    assert str(e.value) == f"{tmp_path}/{message}"


def test_manifest_bad_json(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(_row(0)) + "\n{not json\n")
    with pytest.raises(UserError) as e:
        load_manifest(str(path))
    assert str(e.value).startswith(f"{path}:2: invalid JSON")


def test_split_by_item_never_mixes():
    rows = [_row(i, item=f"item{i % 200}", source=["gm-a", "gm-b", "held"][i % 3]) for i in range(3000)]
    out = assign_splits(rows, {"held"})
    splits_of = {}
    for r in out:
        if r["source"] != "held":
            splits_of.setdefault(r["item"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values()), "an item landed in two splits"
    assert {r["split"] for r in out if r["source"] == "held"} == {"test"}
    n_val = sum(s == {"val"} for s in splits_of.values())
    assert 8 <= n_val <= 35, f"val holds {n_val} of 200 items, expected about 10%"


def test_midi_writer_round_trip():
    notes = [Note(0.5, 1.0, 60, 100, 0, 40), Note(2.0, 0.3, 38, 90, 9, 25), Note(1.25, 0.5, 72, 45, 0, 0)]
    data = midi_bytes(notes)
    assert data[:4] == b"MThd" and data[-4:] == b"\x00\xff\x2f\x00"
    ons = read_note_ons(data)
    expected = sorted((n.start, n.channel, n.pitch, n.velocity) for n in notes)
    assert ons == expected
    assert b"\xc0\x28" in data and b"\xc0\x00" in data  # program changes 40 and 0 on channel 0
    assert b"\xc9\x19" in data  # drum kit 25 (TR-808) selected on the drum channel


def test_midi_rejects_out_of_range():
    with pytest.raises(ValueError, match="out of MIDI range"):
        midi_bytes([Note(0.0, 1.0, 130, 100)])


def test_gm_schedule_slots_cover_notes_without_overlap():
    notes, slots = gm_schedule([0, 122], [36, 38])
    assert len(notes) == len(slots) == 2 * 18 + 2 * 3
    for n, s in zip(notes, slots):
        assert s.start == n.start and s.end > n.start + n.duration
    assert all(a.end <= b.start + 1e-9 for a, b in zip(slots, slots[1:]))


def test_gm_schedule_adds_drum_kits_after_the_standard_kit():
    """Adding kits appends slots: the standard kit's clips keep their positions (and paths)."""
    _, one = gm_schedule([0], [36, 38])
    notes, slots = gm_schedule([0], [36, 38], kits=(0, 25))
    assert slots[:len(one)] == one
    assert [s.kit for s in slots[len(one):]] == [25] * 6
    assert {n.program for n in notes if n.channel == 9} == {0, 25}


def test_cutting_a_synthetic_rendering():
    """Two tones separated by silence, cut by the schedule's slots, give two trimmed clips."""
    sr = SAMPLE_RATE
    audio = np.zeros(6 * sr, dtype=np.float32)
    t = np.arange(int(1.5 * sr)) / sr
    audio[sr // 2: sr // 2 + len(t)] = 0.5 * np.sin(2 * np.pi * 440 * t)
    audio[3 * sr + sr // 2: 3 * sr + sr // 2 + len(t)] = 0.5 * np.sin(2 * np.pi * 220 * t)
    clips = [make_clips(audio[a * sr:(a + 3) * sr], 1) for a in (0, 3)]
    for c in clips:
        assert len(c) == 1
        assert abs(len(c[0]) / sr - 1.55) < 0.05, f"clip is {len(c[0]) / sr:.3f} s, expected ~1.55 s"


def test_long_audio_is_cut_and_silence_dropped():
    sr = SAMPLE_RATE
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 25 * sr).astype(np.float32)
    clips = make_clips(noise, 10)
    assert len(clips) == 3 and all(sr <= len(c) <= 10 * sr for c in clips)
    assert make_clips(noise, 2) and len(make_clips(noise, 2)) == 2
    assert trim(np.full(sr, 1e-5, dtype=np.float32)) is None  # -100 dBFS: near-silent
    hit = np.zeros(2 * sr, dtype=np.float32)
    hit[1000:1000 + sr // 5] = 0.5
    (short,) = make_clips(hit, 1)
    assert len(short) == sr, "a short hit is padded to exactly 1 s"


def test_captions_are_varied():
    rng = random.Random(0)
    for caps in (event_captions("dog", "a dog barking", rng), note_captions("cello", 48, "low", "softly", rng),
                 drum_captions("snare drum", "loudly", rng), speech_captions("woman", "English", rng, "hello")):
        assert 3 <= len(caps) <= 5, caps
        assert len(set(caps)) == len(caps), caps
    mains = {clip_row(f"clips/x/{i}.wav", "s", "i", "dog", "event", {"action": "a dog barking"}, 1.0)["captions"][1]
             for i in range(20)}
    assert len(mains) >= 3, f"only {mains} as second caption over 20 clips"
    kit_caps = {c for i in range(20) for c in drum_captions("snare drum", "softly", random.Random(i), "a jazz drum kit")}
    assert "a snare drum from a jazz drum kit" in kit_caps
    assert not any("from" in c for c in drum_captions("snare drum", "softly", random.Random(0))), "no kit, no kit caption"
    assert note_captions("cello", 48, "low", "softly", random.Random(1))[0] == "a cello playing a low note"


def test_openttd_cat_entries():
    """A two-entry synthetic catalogue: offset table with the 0x80000000 flag, titles, RIFF data."""
    from train.corpus.sources import cat_entries

    bodies = [(b'"Ship horn". By X.\0', b"RIFF1234"), (b'"Cow".\0', b"RIFFabcdefgh")]
    offset, table, blob = 16, b"", b""
    for title, riff in bodies:
        entry = bytes([len(title)]) + title + riff
        table += (offset | 0x80000000).to_bytes(4, "little") + len(entry).to_bytes(4, "little")
        blob += entry
        offset += len(entry)
    data = table + blob
    got = [(t, data[o:o + n]) for t, o, n in cat_entries(data)]
    assert got == [('"Ship horn". By X.', b"RIFF1234"), ('"Cow".', b"RIFFabcdefgh")]


def test_rcc_files():
    """A synthetic version-2 Qt resource bundle: root dir -> dir "snd" -> files "a.ogg", "b.wav"."""
    import struct

    from train.corpus.rcc import rcc_files

    def name(s):
        return struct.pack(">HI", len(s), 0) + s.encode("utf-16-be")

    names = name("snd") + name("a.ogg") + name("b.wav")
    n_a, n_b = len(name("snd")), len(name("snd")) + len(name("a.ogg"))
    content = struct.pack(">I", 3) + b"AAA" + struct.pack(">I", 2) + b"BB"
    mtime = b"\0" * 8
    tree = (struct.pack(">IHII", 0, 2, 1, 1) + mtime + struct.pack(">IHII", 0, 2, 2, 2) + mtime
            + struct.pack(">IHHHI", n_a, 0, 0, 0, 0) + mtime + struct.pack(">IHHHI", n_b, 0, 0, 0, 7) + mtime)
    header_len = 24
    data = (b"qres" + struct.pack(">IIIII", 2, header_len, header_len + len(tree),
                                  header_len + len(tree) + len(content), 0) + tree + content + names)
    files = rcc_files(data)
    assert [(p, data[o:o + n]) for p, _, o, n in files] == [("snd/a.ogg", b"AAA"), ("snd/b.wav", b"BB")]
    with pytest.raises(ValueError, match="qres"):
        rcc_files(b"nope" + data[4:])


def test_missing_packages_without_root_is_a_user_error(monkeypatch):
    from clap_rt.errors import UserError
    from train.corpus import build

    monkeypatch.setattr(build, "_installed", lambda p: p == "have-it")
    monkeypatch.setattr(build.os, "geteuid", lambda: 1000)
    build.ensure_packages(["have-it"])  # nothing missing: no apt, no error
    with pytest.raises(UserError) as e:
        build.ensure_packages(["have-it", "zz-pkg", "aa-pkg"])
    assert str(e.value) == ("packages aa-pkg zz-pkg are missing and installing them needs root "
                            "(run: sudo apt-get install -y aa-pkg zz-pkg)")


def test_cli_unknown_source_exits_2(tmp_path, capsys):
    from train.corpus.__main__ import main

    assert main(["build", str(tmp_path), "--sources", "no-such-source"]) == 2
    assert "--sources: unknown source 'no-such-source'" in capsys.readouterr().err


def test_a_task_can_take_its_recording_from_a_program(tmp_path):
    """Synthesised sources (espeak-ng) hand over a command whose stdout is an audio file."""
    script = ("import io, sys, numpy as np, soundfile as sf; b = io.BytesIO(); "
              "sf.write(b, 0.5 * np.sin(np.arange(33075) * 0.1), 22050, format='WAV'); "
              "sys.stdout.buffer.write(b.getvalue())")
    task = FileTask("stamp.txt", "clips/tts/x", "tts", "voice:m1", "robotic voice", "speech",
                    {"speaker": "robotic voice", "language": "English"}, command=(sys.executable, "-c", script))
    (row,) = run_task(task, str(tmp_path))
    assert row["path"] == "clips/tts/x_0.wav" and row["label"] == "robotic voice"
    assert abs(row["seconds"] - 1.5) < 0.05, f"{row['seconds']} s, expected the program's 1.5 s"
    assert row["caption"].startswith("a robotic voice")


def test_background_clips_are_seeded_noise_within_their_level_range(tmp_path):
    from train.corpus.captions import BACKGROUND_CAPTIONS
    from train.corpus.noise import LEVEL_RANGE_DBFS, SECONDS_RANGE, background_clip
    from train.corpus.sources import BACKGROUND_CLIPS, background_tasks

    tasks = background_tasks("synthetic-background", 1)
    assert len(tasks) == BACKGROUND_CLIPS and len({t.item for t in tasks}) == BACKGROUND_CLIPS
    (row,) = run_task(tasks[3], str(tmp_path))      # through the builder's command path
    assert row["label"] == "background noise" and row["source"] == "synthetic-background"
    assert set(row["captions"]) <= set(BACKGROUND_CAPTIONS) and len(row["captions"]) == 4
    clip, rate = sf.read(tmp_path / row["path"], dtype="float32")
    expected = background_clip(3)
    assert rate == 44100 and SECONDS_RANGE[0] <= len(clip) / rate <= SECONDS_RANGE[1]
    assert len(clip) == len(expected) and np.abs(clip - expected).max() < 1e-4, "16-bit copy of seed 3"
    levels = [20 * np.log10(np.sqrt(np.mean(background_clip(i) ** 2))) for i in range(20)]
    assert LEVEL_RANGE_DBFS[0] - 0.01 <= min(levels) and max(levels) <= LEVEL_RANGE_DBFS[1] + 0.01


def test_stamp_texts_by_language(tmp_path):
    f = tmp_path / "frog.txt"
    f.write_text("A frog.\nde.utf8=Ein Frosch.\nxx.utf8=Unknown.\nfr.utf8=Une grenouille.\n", encoding="utf-8")
    assert stamp_texts(str(f)) == {"en": "A frog.", "de": "Ein Frosch.", "fr": "Une grenouille."}
