"""Sound-effect packages: a real .deb built in the test is fetched, unpacked (sounds, archives and
copyright only), listed with zip members, labelled by the taxonomy and cut into clips with their
provenance; the everyday benchmark's balancing rule and the corpus's family caps."""
import io
import shutil
import subprocess
import zipfile
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from clap_rt.errors import UserError
from train.corpus.benchmark import (BENCHMARK_NAMES, EVERYDAY_FAMILIES, MAX_FAMILY_SHARE, MIN_CLIPS, benchmark_name,
                                    describe, everyday_benchmark)
from train.corpus.build import FAMILY_CAPS, cap_families, drop_copies
from train.corpus.clips import run_task
from train.corpus.packages import (SoundFile, copyright_licences, fetch_package, licence_names, list_sounds,
                                   member_bytes)
from train.corpus.sfx import SfxPackage, file_detail, naming_path, sfx_tasks
from train.corpus.taxonomy import load_taxonomy

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (a Debian system)")


def _wav_bytes(seed: int, seconds: float = 1.5, sr: int = 22050) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) * np.exp(-t * rng.uniform(1, 4))
    buf = io.BytesIO()
    sf.write(buf, audio.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _make_deb(tmp_path, name="demo-sounds-data"):
    """A .deb in `cache/debs` with two named sounds, one unnamed, a zip of two, a text file and
    a DEP-5 copyright file."""
    root = tmp_path / "pkg"
    snd = root / "usr/share/games/demo-sounds/sounds"
    snd.mkdir(parents=True)
    (snd / "DogBark2.wav").write_bytes(_wav_bytes(1))
    (snd / "glass_break.wav").write_bytes(_wav_bytes(2))
    (snd / "sfx042.wav").write_bytes(_wav_bytes(3))
    (snd / "readme.txt").write_text("not a sound")
    with zipfile.ZipFile(snd / "extra.zip", "w") as z:
        z.writestr("animals/CowMoo.wav", _wav_bytes(4))
        z.writestr("notes.txt", "x")
    doc = root / f"usr/share/doc/{name}"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: dep5\n\nFiles: *\nLicense: GPL-2+\n\nFiles: sounds/*\nLicense: CC-BY-3.0\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(f"Package: {name}\nVersion: 1.2-3\nArchitecture: all\n"
                                         f"Maintainer: test <t@example.org>\nDescription: test sounds\n")
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root),
                    str(cache / "debs" / f"{name}_1.2-3_all.deb")], check=True, capture_output=True)
    return cache


@needs_dpkg
def test_fetch_unpacks_only_sounds_and_lists_archive_members(tmp_path):
    cache = _make_deb(tmp_path)
    root, version = fetch_package("demo-sounds-data", cache)
    assert version == "1.2-3"
    assert not list((cache / "debs").glob("*.deb"))       # the .deb goes once unpacked
    assert not (root / "usr/share/games/demo-sounds/sounds/readme.txt").exists()
    sounds = list_sounds("demo-sounds-data", root, version)
    assert [(s.path.rsplit("/", 1)[1], s.member) for s in sounds] == [
        ("DogBark2.wav", ""), ("extra.zip", "animals/CowMoo.wav"), ("glass_break.wav", ""), ("sfx042.wav", "")]
    assert member_bytes(root / sounds[1].path, sounds[1].member) == _wav_bytes(4)
    assert copyright_licences(root, "demo-sounds-data") == "GPL-2+, CC-BY-3.0"
    # A second fetch reads the marker: nothing is downloaded or unpacked again.
    assert fetch_package("demo-sounds-data", cache) == (root, "1.2-3")


def test_reserved_packages_are_refused(tmp_path):
    with pytest.raises(UserError) as e:
        fetch_package("wesnoth-1.16-data", tmp_path)
    assert str(e.value) == "package wesnoth-1.16-data: reserved for evaluation, never used for training"


def test_naming_path_drops_install_prefix_and_package_folders():
    s = SoundFile("planetblupi-common", "1", "usr/share/planetblupi/sound/en/sound001.wav")
    assert naming_path(s) == "sound/en/sound001.wav"        # "planetblupi" would read as "plane"
    z = SoundFile("demo-data", "1", "usr/share/games/demo/sfx.zip", "animals/CowMoo.wav")
    assert naming_path(z) == "sfx.zip/animals/CowMoo.wav"
    assert file_detail(SoundFile("p", "1", "a/FootStepGrass1.ogg")) == "foot step grass"
    assert file_detail(SoundFile("p", "1", "a/door_creak-2.wav")) == "door creak"


def test_licence_names_free_form_heading():
    text = "This package was debianized.\n\nLicense:\n\n  Creative Commons Attribution 3.0\n  see below\n"
    assert licence_names(text) == "Creative Commons Attribution 3.0 see below"


@needs_dpkg
def test_sfx_tasks_label_by_name_and_carry_provenance(tmp_path):
    cache = _make_deb(tmp_path)
    tax = load_taxonomy()
    tasks = sfx_tasks(SfxPackage("demo-sounds-data", max_pieces=3), tax, cache, max_pieces=2)
    by_name = {t.provenance["member"] or t.provenance["package_path"].rsplit("/", 1)[1]: t for t in tasks}
    assert set(by_name) == {"DogBark2.wav", "animals/CowMoo.wav", "glass_break.wav"}  # sfx042 says nothing
    dog = by_name["DogBark2.wav"]
    assert dog.label == tax.match("sounds/DogBark2.wav").name
    assert dog.max_pieces == 2                              # the smaller of the package's and the run's cap
    assert dog.provenance == {"package": "demo-sounds-data", "version": "1.2-3",
                              "package_path": "/usr/share/games/demo-sounds/sounds/DogBark2.wav", "member": "",
                              "family": "animal", "category": tax.labels[dog.label].category}
    assert dog.args["captions"][0] == tax.labels[dog.label].action
    assert dog.args["captions"][-1].endswith(", dog bark")  # the file's own words are kept
    # The numbered takes of one sound share an item, so a split never divides them.
    assert dog.item == "demo-sounds-data:dogbark"
    rows = run_task(by_name["animals/CowMoo.wav"], str(tmp_path / "corpus"))
    assert len(rows) == 1 and rows[0]["member"] == "animals/CowMoo.wav" and rows[0]["version"] == "1.2-3"
    assert rows[0]["label"] == tax.match("animals/CowMoo.wav").name
    excluded = sfx_tasks(SfxPackage("demo-sounds-data", exclude=r"\.zip/"), tax, cache, 2)
    assert {t.provenance["member"] for t in excluded} == {""}


def _bench_rows(spec):
    """Test rows from {(label, family): n}."""
    rows = []
    for (label, family), n in spec.items():
        rows += [{"path": f"clips/{label}/{i}.wav", "label": label, "family": family, "split": "test",
                  "source": "pkg"} for i in range(n)]
    return rows


def test_everyday_benchmark_rule():
    others = [f for f in EVERYDAY_FAMILIES if f != "animal"]
    spec = {(f"animal{i}", "animal"): 30 for i in range(4)}
    spec.update({(f"thing{i}", fam): 10 for i, fam in enumerate(others)})
    spec[("rare", others[0])] = MIN_CLIPS - 1
    spec[("laser", "synthetic")] = 40                       # not an everyday family
    rows = _bench_rows(spec) + [dict(r, split="train") for r in _bench_rows({("dog", "animal"): 20})]
    bench = everyday_benchmark(rows, {"pkg"})
    counts = Counter(r["label"] for r in bench)
    assert not {"rare", "dog", "laser"} & set(counts)       # too few clips; not a test row; not everyday
    assert min(counts.values()) >= MIN_CLIPS
    fam = Counter(r["family"] for r in bench)
    assert max(fam.values()) <= MAX_FAMILY_SHARE * len(bench), fam
    # 80 clips of other families leave room for one animal label of 8 clips (8 <= 0.15 * 88).
    assert fam["animal"] == MIN_CLIPS and len(bench) == 80 + MIN_CLIPS
    assert everyday_benchmark(rows, {"pkg"}) == bench       # deterministic
    d = describe(bench)
    assert d["labels"] == len(others) + 1 and d["clips"] == len(bench) and d["chance"] == round(1 / d["labels"], 4)


def test_benchmark_names_merge_variants_into_taxonomy_labels():
    from train.corpus.taxonomy import load_taxonomy
    labels = load_taxonomy().labels
    merged = [lab for group in BENCHMARK_NAMES.values() for lab in group]
    assert len(merged) == len(set(merged)) and not set(merged) & set(BENCHMARK_NAMES)
    for name, group in BENCHMARK_NAMES.items():
        assert name in labels and set(group) <= set(labels), name
        assert {labels[g].family for g in group} == {labels[name].family}, name   # one family each
    assert benchmark_name("door slam") == "door" and benchmark_name("door knock") == "door knock"
    # Five door variants of 2 clips reach MIN_CLIPS together; the taxonomy label stays beside it.
    spec = {(v, "domestic"): 2 for v in BENCHMARK_NAMES["door"]}
    spec.update({(f"thing{i}", fam): 10 for i, fam in enumerate(EVERYDAY_FAMILIES) if fam != "domestic"})
    bench = everyday_benchmark(_bench_rows(spec), {"pkg"})
    doors = [r for r in bench if r["label"] == "door"]
    assert len(doors) == 10 and {r["corpus_label"] for r in doors} == set(BENCHMARK_NAMES["door"])


def test_cap_families_thins_trainable_rows_only():
    rows = []
    for i in range(400):
        rows.append({"path": f"gm/{i}.wav", "label": "piano", "source": "gm-fluidr3", "split": "train"})
    for i in range(600):
        rows.append({"path": f"fx/{i}.wav", "label": "dog", "source": "x", "family": "animal", "split": "train"})
    for i in range(300):
        rows.append({"path": f"sp/{i}.wav", "label": "speech", "source": "asterisk-core-sounds", "split": "train"})
    for i in range(50):
        rows.append({"path": f"t/{i}.wav", "label": "tom", "source": "hydrogen-drumkits", "split": "test"})
    out = cap_families(rows)
    train = [r for r in out if r["split"] != "test"]
    music = sum(r["family"] == "music" for r in train)
    assert music <= FAMILY_CAPS["music"] * len(train) + 1, (music, len(train))
    assert music >= FAMILY_CAPS["music"] * len(train) - 2
    # Each cap counts the trainable rows left after the caps before it.
    speech = sum(r["family"] == "speech" for r in train)
    assert FAMILY_CAPS["speech"] * len(train) - 2 <= speech <= FAMILY_CAPS["speech"] * len(train) + 1, (speech, len(train))
    assert sum(r["split"] == "test" for r in out) == 50     # held-out rows are never dropped
    assert cap_families(rows) == out


def test_drop_copies_keeps_the_first_and_counts(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    a = np.frombuffer(_wav_bytes(7, 2.0, 44100)[44:], dtype=np.int16).astype(np.float32) / 32768
    sf.write(clips / "a.wav", a, 44100)
    sf.write(clips / "a_quiet.wav", 0.25 * a, 44100)        # a gain-changed copy
    (clips / "a_same.wav").write_bytes((clips / "a.wav").read_bytes())
    sf.write(clips / "b.wav", np.frombuffer(_wav_bytes(8, 2.0, 44100)[44:], dtype=np.int16) / 32768, 44100)
    rows = [{"path": f"clips/{n}.wav", "source": s} for n, s in
            (("a", "test-pkg"), ("a_quiet", "train-pkg"), ("a_same", "test-pkg"), ("b", "train-pkg"))]
    kept, counts = drop_copies(rows, str(tmp_path), jobs=1)
    assert [r["path"] for r in kept] == ["clips/a.wav", "clips/b.wav"]
    assert counts["dropped"] == 2
    assert counts["waveform, across sources"] == 1 and counts["bytes, same source"] == 1
