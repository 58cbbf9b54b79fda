"""Label taxonomy: tokenizer, stemmer, tsv loading errors, path matching and hierarchy captions."""
from __future__ import annotations

import random

import pytest

from train.corpus.taxonomy import FAMILIES, Label, load_taxonomy, normalize, tokens

HEADER = "label\tcategory\tfamily\tpatterns\taction\tsynonyms\n"


@pytest.fixture(scope="module")
def tax():
    return load_taxonomy()


@pytest.mark.parametrize("word, stem", [
    ("barking", "bark"), ("running", "run"), ("stopped", "stop"), ("falling", "fall"), ("buzzing", "buzz"),
    ("hissed", "hiss"), ("opened", "open"), ("speed", "speed"), ("ring", "ring"), ("bed", "bed"),
    ("flies", "fly"), ("dies", "die"), ("crashes", "crash"), ("glasses", "glass"), ("boxes", "box"),
    ("barks", "bark"), ("bus", "bus"), ("kiss", "kiss"), ("bonus", "bonus"), ("tennis", "tennis"),
    ("cats", "cat"), ("gas", "gas"), ("paintings", "paint"), ("Footsteps", "footstep"),
])
def test_normalize(word, stem):
    assert normalize(word) == stem


def test_tokens_split_case_digits_and_punctuation():
    assert tokens("FootStepGrass1") == ["foot", "step", "grass"]
    assert tokens("HTTPServer") == ["http", "server"]
    assert tokens("Data/Sounds/weapons/shotgun-fire.wav") == ["data", "sound", "weapon", "shotgun", "fire", "wav"]
    assert tokens("NYX_STEP_CONCRETE1") == ["nyx", "step", "concrete"]
    assert tokens("honkhonk-hi2") == ["honkhonk", "hi"]
    assert tokens("dogs_barking") == ["dog", "bark"]
    assert tokens("007") == []


def _write(tmp_path, body: str):
    path = tmp_path / "t.tsv"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_load_errors_name_file_line_and_field(tmp_path):
    path = _write(tmp_path, HEADER + "# comment\ndog\tpet\tanimalz\tdog\ta dog barking\t\n")
    with pytest.raises(ValueError) as e:
        load_taxonomy(path)
    assert str(e.value) == f"{path}:3: unknown family 'animalz' for label 'dog'"

    path = _write(tmp_path, HEADER + "dog\tpet\tanimal\tdog\ta dog barking\t\n\ndog\tpet\tanimal\tbark\tbarking\t\n")
    with pytest.raises(ValueError) as e:
        load_taxonomy(path)
    assert str(e.value) == f"{path}:4: duplicate label 'dog'"

    path = _write(tmp_path, HEADER + "dog\tpet\tanimal\t | \ta dog barking\t\n")
    with pytest.raises(ValueError) as e:
        load_taxonomy(path)
    assert str(e.value) == f"{path}:2: empty patterns for label 'dog'"

    path = _write(tmp_path, HEADER + "dog\tpet\tanimal\tdog\n")
    with pytest.raises(ValueError) as e:
        load_taxonomy(path)
    assert str(e.value) == f"{path}:2: expected 6 tab-separated fields, got 4"

    path = _write(tmp_path, HEADER + "-\tmusic\tanimal\tmusic\t\t\n")
    with pytest.raises(ValueError) as e:
        load_taxonomy(path)
    assert str(e.value) == f"{path}:2: skip row must have family 'skip', not 'animal'"

    path = _write(tmp_path, "label\tfamily\n")
    with pytest.raises(ValueError, match=r"t\.tsv:1: header must be"):
        load_taxonomy(path)


def test_small_taxonomy_ranking_and_glued_words(tmp_path):
    path = _write(tmp_path, HEADER + "\n".join([
        "-\tmusic\tskip\tmusic|theme\t\t",
        "dog\tdomestic animal\tanimal\tdog|bark\ta dog barking\tpuppy|hound",
        "bark alias\tdomestic animal\tanimal\tbark\ta dog barking again\t",
        "dog growl\tdomestic animal\tanimal\tdog growl\ta dog growling\t",
        "traffic\tvehicle\turban\ttraffic\ttraffic passing\t",
        "car\tvehicle\turban\tcar\ta car\t",
    ]) + "\n")
    t = load_taxonomy(path)
    assert list(t.labels) == ["dog", "bark alias", "dog growl", "traffic", "car"]
    assert t.labels["dog"].patterns == (("dog",), ("bark",))
    assert t.labels["dog"].synonyms == ("puppy", "hound")
    assert t.match("a/DogGrowl3.wav").name == "dog growl"  # two pattern words beat one
    assert t.match("a/barking.wav").name == "dog"  # a tie goes to the earlier row
    assert t.match("a/heavytraffic.ogg").name == "traffic"  # 5+ letter words match inside tokens
    assert t.match("a/sidecar.ogg") is None  # short words need a whole token
    assert t.match("cars/honk.ogg").name == "car"  # folder words are used when the stem says nothing
    assert t.match("dogs/car.ogg").name == "car"  # the stem outranks the folder
    assert t.match("music/dog.ogg") is None  # a skip in the folder vetoes
    assert t.match("a/dog_theme.ogg") is None  # a skip in the stem vetoes


def test_shipped_taxonomy_is_sane(tax):
    assert len(tax.labels) >= 300
    assert tax.skips
    for lab in tax.labels.values():
        assert isinstance(lab, Label)
        assert lab.family in FAMILIES
        assert lab.patterns and all(lab.patterns)
        assert lab.action and lab.category
        assert lab.name == lab.name.lower()


@pytest.mark.parametrize("path, label", [
    ("sounds/animals/DogBark2.ogg", "dog"),
    ("Data/Sounds/weapons/shotgun-fire.wav", "shotgun"),
    ("SOUND/RAIN.WAV", "rain"),
    ("SOUND/THUNDER.WAV", "thunder"),
    ("Sounds/NYX/NYX_STEP_CONCRETE1.ogg", "footsteps"),
    ("Sounds/FootStepSnow1.ogg", "footsteps"),
    ("mods/doors/sounds/doors_door_close.ogg", "door close"),
    ("mods/doors/sounds/doors_door_open.ogg", "door open"),
    ("sounds/olpc/MichaelBierylo/sfx_DoorSlam.wav", "door slam"),
    ("res/sounds/honkhonk-hi.wav", "car horn"),
    ("res/sounds/heavytraffic.wav", "traffic"),
    ("sounds/glass_break.wav", "glass breaking"),
    ("data/sounds/weapons/pistol/primary.ogg", "gunshot"),
    ("Data/Sounds/voices/Default/Ouch.ogg", "pain groan"),
    ("Data/Sounds/voices/Default/Laugh.ogg", "laughing"),
    ("Data/Sounds/voices/Robot/Hello.ogg", "hello"),
    ("sounds/crash.wav", "crash"),
    ("freedesktop/stereo/alarm-clock-elapsed.oga", "alarm clock"),
    ("freedesktop/stereo/camera-shutter.oga", "camera shutter"),
    ("sounds/minigun.wav", "machine gun"),
    ("Media/Sounds/Animal/SeaLion.mp3", "sea lion"),
    ("Media/Sounds/Percussion/CymbalCrash.wav", "cymbal"),
    ("sounds/chat_slap_01.ogg", "slap"),
    ("sound/sound/Krysa1.wav", "rat"),
    ("tileset/default/drop.wav", "object drop"),
    ("sounds/helicopter_engine_start.wav", "engine start"),
    ("sounds/cough-female.wav", "cough"),
    ("sound/snore.wav", "snoring"),
    ("sounds/territory_capture_land_02_drums.mp3", "drum"),
    ("wavs/beat/drum1.wav", "drum"),
])
def test_match_real_paths(tax, path, label):
    got = tax.match(path)
    assert got is not None and got.name == label, (path, got)


@pytest.mark.parametrize("path", [
    "music/battle.ogg",  # music folder
    "Sounds/Music1Snow.ogg",  # music in the stem beats "snow"
    "data/songs/sectoid/Feelings/guitar.ogg",  # a song's guitar stem
    "resource/on_pre_break.wav",  # a break-reminder chime, not something breaking
    "sounds/training.camp.underattack.wav",  # an unknown voice-over
    "sounds/leavemealone.ogg",  # speech, not leaves
    "sounds/xyzzy.wav",
    "sounds/sound073.wav",
])
def test_unlabelled_paths(tax, path):
    assert tax.match(path) is None


def test_hierarchy_captions_deterministic(tax):
    for name in ("cow", "rain", "footsteps", "gunshot", "door knock"):
        lab = tax.labels[name]
        a = tax.hierarchy_captions(lab, random.Random(7))
        b = tax.hierarchy_captions(lab, random.Random(7))
        assert a == b
        assert a[0] == lab.action
        assert 3 <= len(a) <= 5 and len(set(a)) == len(a)
    caps = {c for seed in range(30) for c in tax.hierarchy_captions(tax.labels["rain"], random.Random(seed))}
    assert "the sound of rain" in caps or "rain sound" in caps
    assert not any("a rain" in c for c in caps)


def test_match_speed(tax):
    import time
    paths = [f"sounds/weapons/Thing{i}_{w}.ogg" for i, w in enumerate(
        ["DogBark", "glass_break", "heavytraffic", "xyzzy", "FootStepGrass", "laser2", "door_open"] * 1400)]
    t0 = time.perf_counter()
    for p in paths:
        tax.match(p)
    assert time.perf_counter() - t0 < 5
