"""A tiny Standard MIDI File writer and the note schedule used to render General MIDI soundfonts.

One long MIDI file per soundfont is rendered by fluidsynth in a single process; the schedule
returned here says where each note lies in the rendering so that it can be cut into clips.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

TICKS_PER_BEAT = 480
TEMPO_US_PER_BEAT = 500_000  # 120 bpm -> one tick is 1/960 s
TICKS_PER_SECOND = TICKS_PER_BEAT * 1_000_000 // TEMPO_US_PER_BEAT  # 960
DRUM_CHANNEL = 9  # GM channel 10, zero-based


@dataclass(frozen=True)
class Note:
    """One note: `start` and `duration` in seconds, GM `program` (on the drum channel: the
    drum kit, which GM synthesizers select by a program change there)."""

    start: float
    duration: float
    pitch: int
    velocity: int
    channel: int = 0
    program: int = 0


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    if value < 0:
        raise ValueError(f"negative MIDI delta time {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(notes: list[Note]) -> bytes:
    """Encode `notes` as a format-0 Standard MIDI File (one track, 120 bpm, 480 ticks per beat).

    A program change is sent on a note's channel (the drum channel included, where it selects
    the kit) whenever its program differs from the last one sent there; it is placed at the
    note-on time, before the note-on.
    """
    events: list[tuple[int, int, bytes]] = []  # (tick, order, message); order puts offs before ons
    for note in notes:
        if not (0 <= note.pitch < 128 and 0 < note.velocity < 128 and 0 <= note.channel < 16):
            raise ValueError(f"note out of MIDI range: {note}")
        on = round(note.start * TICKS_PER_SECOND)
        off = round((note.start + note.duration) * TICKS_PER_SECOND)
        events.append((on, 2, bytes([0x90 | note.channel, note.pitch, note.velocity])))
        events.append((off, 0, bytes([0x80 | note.channel, note.pitch, 0])))
    last_program: dict[int, int] = {}
    for note in sorted(notes, key=lambda n: n.start):
        if last_program.get(note.channel) != note.program:
            last_program[note.channel] = note.program
            tick = round(note.start * TICKS_PER_SECOND)
            events.append((tick, 1, bytes([0xC0 | note.channel, note.program])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03" + TEMPO_US_PER_BEAT.to_bytes(3, "big"))
    now = 0
    for tick, _, message in events:
        track += _varlen(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def read_note_ons(data: bytes) -> list[tuple[float, int, int, int]]:
    """Parse a file written by `midi_bytes` back to (seconds, channel, pitch, velocity) note-ons.

    Only what `midi_bytes` emits is supported (format 0, fixed tempo); used to check the writer.
    """
    if data[:4] != b"MThd" or data[14:18] != b"MTrk":
        raise ValueError("not a format-0 MIDI file written by midi_bytes")
    (length,) = struct.unpack(">I", data[18:22])
    pos, end, tick, out = 22, 22 + length, 0, []
    while pos < end:
        delta = 0
        while True:
            byte = data[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        tick += delta
        status = data[pos]
        if status == 0xFF:
            pos += 3 + data[pos + 2]
        elif status & 0xF0 == 0xC0:
            pos += 2
        else:
            if status & 0xF0 == 0x90:
                out.append((tick / TICKS_PER_SECOND, status & 0x0F, data[pos + 1], data[pos + 2]))
            pos += 3
    return out


# Per-program register: (low, mid, high) MIDI pitches where the instrument sounds natural.
_BASS_PROGRAMS = set(range(32, 40)) | {42, 43, 58, 70}
_HIGH_PROGRAMS = {8, 9, 10, 13, 14, 40, 72, 73, 74, 75, 79, 64, 65, 68, 78}


def program_pitches(program: int) -> list[tuple[str, int]]:
    """(register word, MIDI pitch) pairs played for a GM `program` (0-based): two each of low,
    middle and high around the instrument's natural range."""
    if program >= 120:  # sound effects: pitch mostly changes the speed; stay near the sample pitch
        return [("middle", p) for p in (55, 57, 60, 62, 64, 67)]
    base = 43 if program in _BASS_PROGRAMS else 72 if program in _HIGH_PROGRAMS else 60
    offsets = {"low": (-12, -7), "middle": (0, 5), "high": (12, 19)}
    return [(reg, base + o) for reg, pair in offsets.items() for o in pair]


VELOCITIES = {"softly": 45, "moderately": 85, "loudly": 120}
DRUM_VELOCITIES = {"softly": 55, "moderately": 90, "loudly": 125}
# Drum notes are held and their slots long enough for a crash cymbal to ring out (clips are
# trimmed where the sound falls 45 dB under its peak; some fonts damp a cymbal at note-off):
# cut shorter, cymbals sound like no real recording of one.
NOTE_SECONDS, SFX_NOTE_SECONDS, DRUM_NOTE_SECONDS, DRUM_SLOT_SECONDS, GAP_SECONDS = 1.6, 4.0, 1.5, 4.0, 1.2


@dataclass(frozen=True)
class Slot:
    """Where one rendered note lies: [start, end) seconds in the rendering and what it is."""

    start: float
    end: float
    program: int  # -1 for drums
    pitch: int
    register: str  # "low" / "middle" / "high", or "" for drums
    dynamics: str  # "softly" / "loudly"
    kit: int = 0  # GM drum kit (program number on the drum channel), drums only


def gm_schedule(programs: list[int], drum_notes: list[int], sparse: frozenset[int] = frozenset(),
                kits: tuple[int, ...] = (0,)) -> tuple[list[Note], list[Slot]]:
    """Notes to render every program at 6 pitches x 3 velocities, then each drum note at 3
    velocities in each drum kit of `kits` (in that order: earlier slots keep their positions
    when kits are added).
    Programs in `sparse` get the middle velocity only (many GM synth programs share one label,
    and all 18 notes of each would flood the corpus with "synthesizer").

    Returns (notes for `midi_bytes`, slots to cut the rendering with). Each slot covers the note
    and the gap after it, so release tails stay in their own clip.
    """
    notes, slots, t = [], [], 0.5
    for program in programs:
        held = SFX_NOTE_SECONDS if program >= 120 else NOTE_SECONDS
        for register, pitch in program_pitches(program):
            for dynamics, velocity in VELOCITIES.items():
                if program in sparse and dynamics != "moderately":
                    continue
                notes.append(Note(t, held, pitch, velocity, 0, program))
                slots.append(Slot(t, t + held + GAP_SECONDS, program, pitch, register, dynamics))
                t += held + GAP_SECONDS
    for kit in kits:
        for pitch in drum_notes:
            for dynamics, velocity in DRUM_VELOCITIES.items():
                notes.append(Note(t, DRUM_NOTE_SECONDS, pitch, velocity, DRUM_CHANNEL, kit))
                slots.append(Slot(t, t + DRUM_SLOT_SECONDS, -1, pitch, "", dynamics, kit))
                t += DRUM_SLOT_SECONDS
    return notes, slots
