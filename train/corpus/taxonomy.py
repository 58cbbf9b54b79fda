"""Sound-effect label taxonomy: load `taxonomy.tsv` and label game / app sound files by name.

The corpus takes sound files out of Debian packages. Their file and folder names ("DogBark2.ogg",
"sounds/doors/door_slam.wav", "heavytraffic.ogg") are the only hint of what they sound like, so
this module turns a relative path into one everyday label ("dog", "door slam", "traffic") with a
category, a family and caption phrases, or into nothing when the name does not say (or says it is
music / speech we cannot transcribe).

`taxonomy.tsv` (next to this file) has one row per label:

    label  category  family  patterns  action  synonyms

`patterns` are `|`-separated; each is a set of space-separated words that must all occur among the
file's tokens. Rows with label `-` and family `skip` list patterns that veto any label.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass

from .captions import article

FAMILIES = ("animal", "nature", "human", "domestic", "urban", "tools", "weapons", "impacts", "signals",
            "music", "speech", "synthetic")
COLUMNS = ("label", "category", "family", "patterns", "action", "synonyms")
SKIP_FAMILY = "skip"
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "taxonomy.tsv")

# Pattern words at least this long also match inside a glued token ("traffic" in "heavytraffic");
# shorter ones would hit by accident ("cat" in "location"), so they must equal a token.
MIN_SUBSTRING = 5

_LETTER_RUNS = re.compile(r"[^\W\d_]+")
# Letters that double in base words ("fall", "kiss", "sniff", "buzz"): keep them when a suffix goes.
_KEEP_DOUBLE = set("lsfz")
_VOWELS = set("aeiou")


def normalize(word: str) -> str:
    """A tiny deterministic stemmer, applied alike to file tokens and pattern words.

    Rules, on the lowercased word, in this order (at most one plural rule, then at most one verb rule):
      1. plural: `ies` -> `y` when the word is longer than 4 letters ("flies" -> "fly");
         else drop `es` after `sh`, `ch`, `x` or `ss` ("crashes" -> "crash", "glasses" -> "glass");
         else drop a final `s` unless the word ends in `ss`, `us` or `is` or is shorter than 4 letters
         ("barks" -> "bark", "bus" and "kiss" stay).
      2. verb: drop `ing` when at least 3 letters remain, else drop `ed` when at least 3 letters remain
         and the word does not end in `eed` ("speed" stays); a doubled final consonant left behind is
         undoubled unless it is l, s, f or z ("running" -> "run", "stopped" -> "stop",
         "falling" -> "fall", "buzzing" -> "buzz").
    """
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif w.endswith("es") and w[:-2].endswith(("sh", "ch", "x", "ss")):
        w = w[:-2]
    elif w.endswith("s") and len(w) >= 4 and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ing") and len(w) - 3 >= 3:
        w = _undouble(w[:-3])
    elif w.endswith("ed") and len(w) - 2 >= 3 and not w.endswith("eed"):
        w = _undouble(w[:-2])
    return w


def _undouble(stem: str) -> str:
    """Drop the second of two equal final consonants ("runn" -> "run"), except l, s, f, z."""
    if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS and stem[-1] not in _KEEP_DOUBLE:
        return stem[:-1]
    return stem


def _split_case(run: str) -> list[str]:
    """Split a run of letters at camelCase / TitleCase boundaries: "HTTPServer" -> HTTP, Server."""
    parts, start = [], 0
    for i in range(1, len(run)):
        prev, cur = run[i - 1], run[i]
        lower_to_upper = prev.islower() and cur.isupper()
        # The last capital of an acronym starts the next word when a lowercase letter follows it.
        acronym_end = prev.isupper() and cur.isupper() and i + 1 < len(run) and run[i + 1].islower()
        if lower_to_upper or acronym_end:
            parts.append(run[start:i])
            start = i
    parts.append(run[start:])
    return parts


def tokens(text: str) -> list[str]:
    """Normalized words of a path or stem: split on non-letters (digits too) and case changes."""
    return [normalize(part) for run in _LETTER_RUNS.findall(text) for part in _split_case(run)]


@dataclass(frozen=True)
class Label:
    name: str
    category: str
    family: str
    action: str
    synonyms: tuple[str, ...]
    patterns: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Pattern:
    words: frozenset[str]
    rank: tuple[int, int, int]  # (word count, total letters, -row): bigger wins
    label: Label | None  # None for a skip pattern


class Taxonomy:
    """Labels in file order plus an index from pattern words to patterns for fast matching."""

    def __init__(self, labels: list[Label], skips: list[tuple[str, ...]]):
        self.labels: dict[str, Label] = {lab.name: lab for lab in labels}
        self.skips: tuple[tuple[str, ...], ...] = tuple(skips)
        compiled = [_Pattern(frozenset(p), (len(set(p)), sum(map(len, set(p))), -row), None)
                    for row, p in enumerate(skips)]
        self._skip_patterns = compiled
        self._label_patterns = [_Pattern(frozenset(p), (len(set(p)), sum(map(len, set(p))), -row), lab)
                                for row, lab in enumerate(labels) for p in lab.patterns]
        self._words = {w for pat in compiled + self._label_patterns for w in pat.words}
        self._long_words = {w for w in self._words if len(w) >= MIN_SUBSTRING}
        self._by_word: dict[str, list[_Pattern]] = {}
        for pat in compiled + self._label_patterns:
            for w in pat.words:
                self._by_word.setdefault(w, []).append(pat)

    def _present(self, toks: list[str]) -> set[str]:
        """The pattern words that `toks` contain: equal tokens, plus long words found inside tokens."""
        found = {t for t in toks if t in self._words}
        for t in toks:
            for i in range(len(t) - MIN_SUBSTRING + 1):
                for j in range(i + MIN_SUBSTRING, len(t) + 1):
                    if t[i:j] in self._long_words:
                        found.add(t[i:j])
        return found

    def _matches(self, present: set[str]) -> list[_Pattern]:
        candidates = {id(p): p for w in present for p in self._by_word[w]}
        return [p for p in candidates.values() if p.words <= present]

    def match(self, path: str) -> Label | None:
        """The label for a relative sound path, or None. Stem words outrank folder words; skips veto."""
        path = path.replace("\\", "/")
        folder, _, name = path.rpartition("/")
        stem = name.rsplit(".", 1)[0] if "." in name else name
        stem_present = self._present(tokens(stem))
        folder_present = self._present(tokens(folder))
        for present in (stem_present, folder_present):
            if any(p.label is None for p in self._matches(present)):
                return None
        for present in (stem_present, stem_present | folder_present):
            hits = [p for p in self._matches(present) if p.label is not None]
            if hits:
                return max(hits, key=lambda p: p.rank).label
        return None

    def hierarchy_captions(self, label: Label, rng: random.Random) -> list[str]:
        """3-5 distinct captions, the action first, then picks from the label, category, family, synonyms."""
        named = _with_article(label.name)
        options = [rng.choice([f"the sound of {named}", f"{named} sound", f"{label.name} sound effect"]),
                   rng.choice([f"{article(label.category)} sound", f"{label.category} sounds"]),
                   rng.choice(_FAMILY_PHRASES[label.family])]
        if label.synonyms:
            options.append(rng.choice(label.synonyms))
        options = [o for o in dict.fromkeys(options) if o != label.action]
        keep = sorted(rng.sample(range(len(options)), rng.randint(min(2, len(options)), len(options))))
        return [label.action] + [options[i] for i in keep]


# Labels read as mass nouns take no article: "the sound of rain", not "the sound of a rain".
_MASS_NOUNS = {"rain", "wind", "thunder", "traffic", "applause", "laughter", "fire", "water", "static",
               "noise", "gunfire", "snow", "hail", "lava", "steam", "electricity", "machinery", "music",
               "speech", "footsteps", "gravel", "mud", "sand", "chatter", "crowd", "rumble", "birdsong",
               "surf", "hum", "bubbles", "dishes", "cutlery", "coins", "fireworks", "bagpipes", "keys"}


def _with_article(name: str) -> str:
    """`name` with "a"/"an" unless it reads as a mass noun or plural ("rain", "footsteps")."""
    if name.split()[-1] in _MASS_NOUNS or name.split()[-1].endswith("ing"):
        return name
    return article(name)


_FAMILY_PHRASES = {
    "animal": ["an animal making a sound", "an animal sound", "animal noises"],
    "nature": ["a natural sound", "sounds of nature", "an outdoor nature sound"],
    "human": ["a human sound", "a person making a sound", "a sound made by a person"],
    "domestic": ["a household sound", "a sound at home", "an indoor domestic sound"],
    "urban": ["an urban sound", "a city or traffic sound", "an outdoor urban sound"],
    "tools": ["a tool being used", "a tool sound", "a mechanical tool sound"],
    "weapons": ["a weapon sound", "a weapon being used", "combat sounds"],
    "impacts": ["an impact sound", "something hitting something", "a collision sound"],
    "signals": ["a signal sound", "an alert or signal", "an electronic signal tone"],
    "music": ["a musical sound", "a musical instrument", "music"],
    "speech": ["someone speaking", "a spoken voice", "human speech"],
    "synthetic": ["a synthetic sound effect", "a video game sound effect", "an electronic sound effect"],
}


def _split_patterns(field: str) -> tuple[tuple[str, ...], ...]:
    """`a b|c` -> (("a", "b"), ("c",)) with normalized words; empty alternatives are dropped."""
    out = []
    for alt in field.split("|"):
        # Split pattern words exactly like file names ("power-up" -> power, up) so both sides agree.
        words = tuple(dict.fromkeys(tokens(alt.lower())))
        if words:
            out.append(words)
    return tuple(out)


def load_taxonomy(path: str | None = None) -> Taxonomy:
    """Read a taxonomy tsv (default: the one shipped here). Bad rows raise ValueError with file:line."""
    path = path or DEFAULT_PATH
    labels: list[Label] = []
    skips: list[tuple[str, ...]] = []
    seen: set[str] = set()
    header_seen = False
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue

            def bad(msg: str) -> ValueError:
                return ValueError(f"{path}:{lineno}: {msg}")

            fields = line.split("\t")
            if not header_seen:
                if tuple(f.strip() for f in fields) != COLUMNS:
                    raise bad(f"header must be {' / '.join(COLUMNS)}")
                header_seen = True
                continue
            if len(fields) != len(COLUMNS):
                raise bad(f"expected {len(COLUMNS)} tab-separated fields, got {len(fields)}")
            name, category, family, pattern_field, action, synonym_field = (x.strip() for x in fields)
            patterns = _split_patterns(pattern_field)
            if not patterns:
                raise bad(f"empty patterns for label {name!r}")
            if name == "-":
                if family != SKIP_FAMILY:
                    raise bad(f"skip row must have family {SKIP_FAMILY!r}, not {family!r}")
                skips.extend(patterns)
                continue
            if family not in FAMILIES:
                raise bad(f"unknown family {family!r} for label {name!r}")
            if not name or name != name.lower():
                raise bad(f"label must be non-empty lowercase, got {name!r}")
            if name in seen:
                raise bad(f"duplicate label {name!r}")
            if not category:
                raise bad(f"empty category for label {name!r}")
            if not action:
                raise bad(f"empty action for label {name!r}")
            seen.add(name)
            synonyms = tuple(s.strip() for s in synonym_field.split("|") if s.strip())
            labels.append(Label(name, category, family, action, synonyms, patterns))
    if not header_seen:
        raise ValueError(f"{path}: no header line")
    return Taxonomy(labels, skips)
