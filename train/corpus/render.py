"""General MIDI soundfont -> one long fluidsynth rendering -> one clip per scheduled note."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from clap_rt.audio import load_audio

from .audio import SAMPLE_RATE, make_clips, write_clip
from .clips import clip_row
from .gm import GM_DRUM_KITS, GM_DRUMS, GM_EVENT_PROGRAMS, GM_PROGRAMS
from .midi import Slot, gm_schedule, midi_bytes

SPARSE_PROGRAMS = frozenset(p for p, (_, label) in enumerate(GM_PROGRAMS)
                            if label in ("synthesizer", "synth pad", "synth bass"))


def render_midi(soundfont: str, midi: bytes, wav_path: str) -> None:
    """Render `midi` with fluidsynth (fast, no audio device, no reverb/chorus) to a 44.1 kHz WAV."""
    if not os.path.isfile(soundfont):  # fluidsynth silently falls back to another font otherwise
        raise RuntimeError(f"soundfont {soundfont} not found")
    if shutil.which("fluidsynth") is None:
        raise RuntimeError("rendering General MIDI requires the fluidsynth program (apt-get install fluidsynth)")
    with tempfile.NamedTemporaryFile(suffix=".mid") as f:
        f.write(midi)
        f.flush()
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6",
                        "-r", str(SAMPLE_RATE), "-T", "wav", "-F", wav_path, soundfont, f.name],
                       check=True, stdout=subprocess.DEVNULL)


def slot_row_args(slot: Slot) -> tuple[str, str, str, dict]:
    """(item, label, caption kind, caption args) for one scheduled note."""
    if slot.program < 0:
        phrase, label = GM_DRUMS[slot.pitch]
        args = {"drum": phrase, "dynamics": slot.dynamics}
        if GM_DRUM_KITS[slot.kit]:
            args["kit"] = GM_DRUM_KITS[slot.kit]
        # The item is the drum key, whatever the kit: a held-out key is held out in every kit.
        return f"gm-drum-{slot.pitch}", label, "drum", args
    phrase, label = GM_PROGRAMS[slot.program]
    item = f"gm-program-{slot.program}"
    if slot.program in GM_EVENT_PROGRAMS:
        return item, label, "event", {}
    return item, label, "note", {"instrument": phrase, "pitch": slot.pitch,
                                 "register": slot.register, "dynamics": slot.dynamics}


def render_source(name: str, soundfont: str, data_dir: str) -> list[dict]:
    """Render every GM program, and every drum note in each kit, of `soundfont`; cut per note,
    write clips + rows."""
    notes, slots = gm_schedule(list(range(128)), sorted(GM_DRUMS), SPARSE_PROGRAMS, tuple(GM_DRUM_KITS))
    wav = os.path.join(data_dir, f"render_{name}.tmp.wav")
    render_midi(soundfont, midi_bytes(notes), wav)
    audio = load_audio(wav, SAMPLE_RATE)
    rows = []
    for k, slot in enumerate(slots):
        piece = audio[int(slot.start * SAMPLE_RATE): int(slot.end * SAMPLE_RATE)]
        item, label, kind, args = slot_row_args(slot)
        for clip in make_clips(piece, 1):
            rel = f"clips/{name}/{item}_{k:04d}.wav"
            seconds = write_clip(os.path.join(data_dir, rel), clip)
            rows.append(clip_row(rel, name, item, label, kind, args, seconds))
    os.remove(wav)
    return rows
