"""Natural, varied English captions for corpus clips.

Every builder returns 3-5 distinct captions; the first is the main caption. Choices are drawn
from `rng` so a build is reproducible when the caller seeds it per clip.
"""
from __future__ import annotations

import random

_LOUDNESS = {"softly": "quiet", "moderately": "medium-loud", "loudly": "loud"}
_NOTE_NAMES = ["C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B"]


def article(phrase: str) -> str:
    """`phrase` with "a" / "an" in front (plural-looking phrases get none)."""
    if phrase.endswith(("s", "bells", "drums")) and not phrase.endswith(("ss", "us")):
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def note_name(pitch: int) -> str:
    """MIDI pitch -> spoken note name with octave, e.g. 60 -> "C4"."""
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _pick(rng: random.Random, options: list[str], k: int) -> list[str]:
    """k distinct options in random order (all of them when fewer are given)."""
    unique = list(dict.fromkeys(o for o in options if o))
    return rng.sample(unique, min(k, len(unique)))


def event_captions(label: str, action: str | None, rng: random.Random, detail: str = "") -> list[str]:
    """Captions for a sound event. `action` is a verb phrase such as "a dog barking"; `detail`
    is an optional free title ("ship horn in a harbour") kept as one of the captions."""
    noun = article(label)
    action = action or f"{noun} making a sound"
    options = [action, f"the sound of {noun}", f"{noun} can be heard", f"a recording of {action}",
               f"{label} sound", f"{action} in the distance" if rng.random() < 0.2 else "",
               f"{label} sound effect", f"someone recorded {action}"]
    main = [detail] if detail else [action]
    rest = _pick(rng, [o for o in options if o not in main], rng.randint(2, 4))
    return main + rest


def note_captions(instrument: str, pitch: int, register: str, dynamics: str,
                  rng: random.Random) -> list[str]:
    """Captions for one sustained note of a pitched instrument."""
    noun = article(instrument)
    options = [f"{noun} playing a {register} note", f"a single {register} {instrument} note",
               f"{noun} note played {dynamics}", f"{instrument} playing {note_name(pitch)}",
               f"someone plays a {register} note on {noun}", f"the sound of {noun}",
               f"a {_LOUDNESS[dynamics]} {instrument} tone"]
    return _pick(rng, options[:1], 1) + _pick(rng, options[1:], rng.randint(2, 4))


def drum_captions(drum: str, dynamics: str, rng: random.Random, kit: str = "") -> list[str]:
    """Captions for one hit of a drum or percussion instrument; `kit` optionally names the
    set it comes from ("a jazz drum kit")."""
    noun = article(drum)
    strength = {"softly": "soft", "moderately": "medium", "loudly": "hard"}[dynamics]
    options = [f"{noun} hit", f"a single {drum} hit", f"{noun} struck {dynamics}",
               f"a {strength} {drum} stroke", f"someone hits {noun}", f"the sound of {noun}",
               f"{drum} sample", f"{noun} from {kit}" if kit else ""]
    return _pick(rng, options[:1], 1) + _pick(rng, options[1:], rng.randint(2, 4))


BACKGROUND_CAPTIONS = ["background noise", "static noise", "a steady hiss", "noise in the background",
                       "room noise", "ambient noise", "quiet background noise", "room ambience",
                       "silence with faint noise", "a faint hiss", "nothing but noise"]


def background_captions(rng: random.Random) -> list[str]:
    """Captions for a clip in which nothing happens but noise."""
    return _pick(rng, BACKGROUND_CAPTIONS, 4)


def speech_captions(speaker: str, language: str, rng: random.Random, text: str = "") -> list[str]:
    """Captions for speech. `speaker` is e.g. "woman", "man", "child", "robotic voice"."""
    noun = article(speaker)
    options = [f"{noun} speaking {language}", f"{language} speech", f"{noun} talking in {language}",
               f"{noun} says something in {language}", f"a voice speaking {language}",
               f"someone speaking {language}"]
    if text:
        options.append(f'{noun} saying "{text}"')
    return _pick(rng, options[:1], 1) + _pick(rng, options[1:], rng.randint(2, 4))
