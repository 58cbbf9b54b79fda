"""The corpus sources: which Debian packages hold them and how each becomes file tasks."""
from __future__ import annotations

import glob
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable

from pathlib import Path

from clap_rt.cache import cache_dir

from .clips import FileTask
from .sfx import EVERYDAY_HELDOUT, SFX_PACKAGES, SfxPackage, sfx_tasks
from .taxonomy import load_taxonomy
from .manifest import key_hash
from .labels import (ANIMAL_ACTIONS, DRUM_PATTERNS, FREEDESKTOP_EVENTS, GCOMPRIS_EVENTS, OPENTTD_EVENTS,
                     SONIC_PI_ACTIONS, SONIC_PI_PATTERNS, TUXPAINT_EVENTS, TUXPAINT_RENAME, match_label)

LANGUAGES = {
    "": "English", "en": "English", "be": "Belarusian", "bg": "Bulgarian", "ca": "Catalan",
    "da": "Danish", "el": "Greek", "es": "Spanish", "fr": "French", "nl": "Dutch",
    "ro": "Romanian", "ru": "Russian", "lt": "Lithuanian", "it": "Italian",
}
SPEECH_CAP = {"tuxpaint-stamps-default": 250, "asterisk-core-sounds": 300, "espeak-ng": 240}


def _keep(key: str, n: int, total: int) -> bool:
    """Deterministic ~n/total subsample by hash of `key` (caps speech without bias to one folder)."""
    return key_hash(key) / 0xFFFFFFFF < n / max(total, 1)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def tuxpaint_tasks(name: str, max_pieces: int) -> list[FileTask]:
    root = "/usr/share/tuxpaint/stamps"
    tasks = []
    for path in sorted(glob.glob(f"{root}/**/*.ogg", recursive=True) + glob.glob(f"{root}/**/*.wav", recursive=True)):
        stem = _stem(path)
        folder = os.path.dirname(path)
        if not any(os.path.exists(f"{folder}/{stem}.{e}") for e in ("png", "svg")):
            continue  # localized pronunciations of digits / letters, not stamp sounds
        if stem in TUXPAINT_EVENTS:
            label, action = TUXPAINT_EVENTS[stem]
        elif "/animals/" in path:
            label = TUXPAINT_RENAME.get(stem, stem.replace("_", " "))
            action = ANIMAL_ACTIONS.get(label)
        else:
            continue
        tasks.append(FileTask(path, f"clips/{name}/{stem}", name, f"stamp:{stem}", label, "event",
                              {"action": action} if action else {}, max_pieces))
    descs = sorted(glob.glob(f"{root}/**/*_desc*.ogg", recursive=True))
    for path in descs:
        m = re.match(r"(.+)_desc(?:_([a-z]{2}))?$", _stem(path))
        if not m or m.group(2) not in LANGUAGES and m.group(2) is not None:
            continue
        stem, lang = m.group(1), m.group(2) or ""
        if not _keep(path, SPEECH_CAP[name], len(descs)):
            continue
        # only English text goes into a caption: the text encoder reads English
        text = "" if lang else stamp_texts(os.path.join(os.path.dirname(path), f"{stem}.txt")).get("en", "")
        tasks.append(FileTask(path, f"clips/{name}/speech/{_stem(path)}", name, f"stamp:{stem}",
                              "speech", "speech",
                              {"speaker": "person", "language": LANGUAGES[lang], "text": text}, 1))
    return tasks


# espeak-ng voices for the "robotic voice" class: languages whose stamp descriptions are read
# out, and voice variants (the variant is the source item, so val holds out whole voices).
ESPEAK_LANGUAGES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
                    "nl": "Dutch", "ru": "Russian", "pl": "Polish"}
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "croak", "klatt", "klatt2", "klatt3", "whisper", "robosoft", "Storm", "antonio", "UniRobot")


def stamp_texts(path: str) -> dict[str, str]:
    """A stamp's descriptions by language code: the first line is English, then `xx.utf8=text`
    ({} when the file is missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return {}
    texts = {"en": lines[0]} if lines else {}
    for line in lines[1:]:
        code, _, text = line.partition(".utf8=")
        if text and code in ESPEAK_LANGUAGES and code != "en":
            texts[code] = text
    return texts


def espeak_tasks(name: str, max_pieces: int) -> list[FileTask]:
    """Tux Paint stamp descriptions read by espeak-ng in several languages and voice variants."""
    paths = sorted(glob.glob("/usr/share/tuxpaint/stamps/**/*.txt", recursive=True))
    tasks = []
    for path in paths:
        if not _keep(path, SPEECH_CAP[name], len(paths)):
            continue
        texts = stamp_texts(path)
        if not texts:
            continue
        h = key_hash(path)
        lang = sorted(texts)[h % len(texts)]
        variant = ESPEAK_VARIANTS[(h // 7) % len(ESPEAK_VARIANTS)]
        voice = lang + (f"+{variant}" if variant else "")
        tasks.append(FileTask(path, f"clips/{name}/{lang}_{_stem(path)}", name, f"voice:{variant or 'default'}",
                              "robotic voice", "speech",
                              {"speaker": "robotic voice", "language": ESPEAK_LANGUAGES[lang],
                               "text": texts[lang] if lang == "en" else ""},
                              1, command=("espeak-ng", "-v", voice, "--stdout", texts[lang])))
    return tasks


BACKGROUND_CLIPS = 200


def background_tasks(name: str, max_pieces: int) -> list[FileTask]:
    """Noise clips from train/corpus/noise.py (our code, seeded by clip number): "background noise"."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "noise.py")
    return [FileTask(script, f"clips/{name}/noise_{i:03d}", name, f"noise:{i}", "background noise", "background",
                     command=(sys.executable, "-m", "train.corpus.noise", str(i))) for i in range(BACKGROUND_CLIPS)]


def asterisk_tasks(name: str, max_pieces: int) -> list[FileTask]:
    files = sorted(glob.glob("/usr/share/asterisk/sounds/*_*_[fm]_*/**/*.wav", recursive=True))
    tasks = []
    for path in files:
        voice = path.split("/")[5]  # e.g. en_US_f_Allison
        lang, _, gender, _ = voice.split("_", 3)
        if not _keep(path, SPEECH_CAP[name], len(files)):
            continue
        rel = os.path.relpath(path, f"/usr/share/asterisk/sounds/{voice}")
        tasks.append(FileTask(path, f"clips/{name}/{voice}/{rel[:-4]}", name, f"phrase:{rel[:-4]}",
                              "speech", "speech",
                              {"speaker": "woman" if gender == "f" else "man", "language": LANGUAGES[lang]},
                              max_pieces))
    return tasks


def _table_tasks(name: str, folder: str, table: dict, max_pieces: int, ext: str = "ogg") -> list[FileTask]:
    tasks = []
    for path in sorted(glob.glob(f"{folder}/*.{ext}") + glob.glob(f"{folder}/*.wav")):
        if _stem(path) in table:
            label, action = table[_stem(path)]
            tasks.append(FileTask(path, f"clips/{name}/{_stem(path)}", name, f"sfx:{_stem(path)}",
                                  label, "event", {"action": action}, max_pieces))
    return tasks


def gcompris_tasks(name: str, max_pieces: int) -> list[FileTask]:
    from .rcc import rcc_files

    tasks, seen = [], set()
    for rcc in sorted(glob.glob("/usr/share/gcompris-qt/rcc/*.rcc")):
        with open(rcc, "rb") as f:
            files = rcc_files(f.read())
        for path, flags, offset, length in files:
            stem = _stem(path)
            if flags & 1 or stem not in GCOMPRIS_EVENTS or not path.endswith((".ogg", ".wav")) or stem in seen:
                continue  # compressed entries hold no sound here; a sound shared by activities once
            seen.add(stem)
            label, action = GCOMPRIS_EVENTS[stem]
            tasks.append(FileTask(rcc, f"clips/{name}/{stem}", name, f"sfx:{stem}", label, "event",
                                  {"action": action}, max_pieces, offset, length))
    return tasks


def freedesktop_tasks(name: str, max_pieces: int) -> list[FileTask]:
    folder = "/usr/share/sounds/freedesktop/stereo"
    tasks = _table_tasks(name, folder, FREEDESKTOP_EVENTS, max_pieces, "oga")
    for path in sorted(glob.glob(f"{folder}/audio-channel-*.oga")):
        words = _stem(path).removeprefix("audio-channel-").replace("-", " ")
        tasks.append(FileTask(path, f"clips/{name}/{_stem(path)}", name, f"sfx:{_stem(path)}", "speech",
                              "speech", {"speaker": "woman", "language": "English", "text": words}, 1))
    return tasks


def sonic_pi_tasks(name: str, max_pieces: int) -> list[FileTask]:
    tasks = []
    for path in sorted(glob.glob("/usr/share/sonic-pi/samples/*.flac")):
        hit = match_label(_stem(path), SONIC_PI_PATTERNS)
        if hit is None:
            continue
        label, kind = hit
        args = {"drum": label, "dynamics": "softly" if "soft" in _stem(path) else "loudly"} if kind == "drum" \
            else {"action": SONIC_PI_ACTIONS.get(label)}
        tasks.append(FileTask(path, f"clips/{name}/{_stem(path)}", name, f"sample:{_stem(path)}",
                              label, kind, args, max_pieces))
    return tasks


def cat_entries(data: bytes) -> list[tuple[str, int, int]]:
    """OpenTTD sample catalogue (.cat) -> (title, RIFF offset, RIFF length) per sample.

    The file starts with (offset | 0x80000000 flag, size) uint32 pairs; the first offset / 8 is
    the entry count; each entry is a length-prefixed, NUL-terminated title followed by a RIFF WAV.
    """
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    out = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        title_len = data[offset]
        title = data[offset + 1: offset + 1 + title_len].split(b"\0")[0].decode("utf-8", "replace")
        out.append((title, offset + 1 + title_len, size - 1 - title_len))
    return out


def openttd_tasks(name: str, max_pieces: int) -> list[FileTask]:
    path = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    with open(path, "rb") as f:
        entries = cat_entries(f.read())
    tasks = []
    for i, (title, offset, length) in enumerate(entries):
        if i not in OPENTTD_EVENTS:
            continue
        title = title.split('"')[1] if title.count('"') >= 2 else title  # drop the credits part
        label, action = OPENTTD_EVENTS[i]
        tasks.append(FileTask(path, f"clips/{name}/{i:02d}", name, f"sfx:{i}", label, "event",
                              {"action": action, "detail": title.lower()}, max_pieces, offset, length))
    return tasks


def hydrogen_tasks(name: str, max_pieces: int) -> list[FileTask]:
    tasks = []
    for xml in sorted(glob.glob("/usr/share/hydrogen/data/drumkits/*/drumkit.xml")):
        kit_dir = os.path.dirname(xml)
        kit = os.path.basename(kit_dir)
        root = ET.parse(xml).getroot()
        for el in root.iter():
            el.tag = el.tag.split("}")[-1]  # drop the XML namespace
        for n, inst in enumerate(root.iter("instrument")):
            inst_name = (inst.findtext("name") or "").strip()
            hit = match_label(inst_name, DRUM_PATTERNS)
            files = [f.text.strip() for f in inst.iter("filename") if f.text]
            if hit is None or not files:
                continue
            files = files[:: max(1, len(files) // 3)][:3]  # a few velocity layers, soft to hard
            for j, fname in enumerate(files):
                dyn = "softly" if j == 0 and len(files) > 1 else "loudly"
                safe = re.sub(r"[^A-Za-z0-9]+", "_", f"{kit}_{n}_{j}")
                tasks.append(FileTask(os.path.join(kit_dir, fname), f"clips/{name}/{safe}", name,
                                      f"kit:{kit}", hit[0], "drum",
                                      {"drum": hit[0], "dynamics": dyn}, max_pieces))
    return tasks


@dataclass(frozen=True)
class Source:
    """A corpus source: apt packages, a note for ATTRIBUTION.md, and its task builder
    (None for the General MIDI sources, which are rendered by gm_render)."""

    name: str
    packages: tuple[str, ...]
    used: str
    tasks: Callable[[str, int], list[FileTask]] | None = None
    soundfont: str = ""
    fetched: bool = False   # unpacked into the package cache (packages.fetch_package), not installed


SOURCES = [
    Source("tuxpaint-stamps-default", ("tuxpaint-stamps-default",),
           "stamp sound effects (animals, household, instruments) and up to 250 spoken descriptions",
           tuxpaint_tasks),
    Source("gm-fluidr3", ("fluidsynth", "fluid-soundfont-gm"),
           "FluidR3_GM.sf2 rendered with fluidsynth: 128 programs x 18 notes (synths x 6), 47 drum notes x 3",
           soundfont="/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Source("gm-timgm6mb", ("fluidsynth", "timgm6mb-soundfont"),
           "TimGM6mb.sf2 rendered with fluidsynth: 128 programs x 18 notes (synths x 6), 47 drum notes x 3",
           soundfont="/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Source("gm-musescore", ("fluidsynth", "musescore-general-soundfont-small"),
           "MuseScore_General.sf3 rendered with fluidsynth: 128 programs x 18 notes (synths x 6), 47 drum notes x 3",
           soundfont="/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    Source("asterisk-core-sounds", ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-es-wav",
                                    "asterisk-core-sounds-fr-wav"),
           "up to 300 prompts (English, Spanish, French)", asterisk_tasks),
    Source("gcompris-qt-data", ("gcompris-qt-data",),
           "instrument, farm-animal and sound-memory sounds cut out of the Qt .rcc bundles", gcompris_tasks),
    Source("sound-theme-freedesktop", ("sound-theme-freedesktop",),
           "desktop sounds with an acoustic meaning (alarm clock, phone, shutter) and channel names",
           freedesktop_tasks),
    Source("espeak-ng", ("espeak-ng", "tuxpaint-stamps-default"),
           "speech synthesis: up to 240 Tux Paint stamp descriptions read in 8 languages and 22 voice variants",
           espeak_tasks),
    Source("synthetic-background", (), f"{BACKGROUND_CLIPS} clips of white to brown noise made by "
           "train/corpus/noise.py (no recorded audio), captioned as background noise", background_tasks),
    Source("hydrogen-drumkits", ("hydrogen-drumkits", "hydrogen-drumkits-effects"),
           "drum-kit samples named in drumkit.xml (up to 3 velocity layers per instrument)", hydrogen_tasks),
    Source("sonic-pi-samples", ("sonic-pi-samples",), "samples whose name gives a clear label", sonic_pi_tasks),
    Source("openttd-opensfx", ("openttd-opensfx",), "titled sound effects from opensfx.cat", openttd_tasks),
]

def package_cache() -> Path:
    """Where fetched packages are unpacked: the clap_rt cache ($CLAP_RT_CACHE) / packages."""
    return cache_dir() / "packages"


def _sfx_source(spec: SfxPackage) -> Source:
    def tasks(name: str, max_pieces: int) -> list[FileTask]:
        return sfx_tasks(spec, load_taxonomy(), package_cache(), max_pieces)

    return Source(spec.package, (spec.package,), "sound effects labelled from their file names "
                  "(train/corpus/taxonomy.tsv)", tasks, fetched=True)


SOURCES += [_sfx_source(spec) for spec in SFX_PACKAGES]
DRUM_HELDOUT = ("hydrogen-drumkits", "sonic-pi-samples", "openttd-opensfx")
HELDOUT = DRUM_HELDOUT + EVERYDAY_HELDOUT
