"""General MIDI names mapped to short class labels and the phrase used in captions."""
from __future__ import annotations

# (instrument phrase for captions, short label), indexed by 0-based GM program number.
GM_PROGRAMS: list[tuple[str, str]] = [
    ("acoustic grand piano", "piano"), ("bright piano", "piano"), ("electric grand piano", "piano"),
    ("honky-tonk piano", "piano"), ("electric piano", "electric piano"),
    ("electric piano", "electric piano"), ("harpsichord", "harpsichord"), ("clavinet", "clavinet"),
    ("celesta", "celesta"), ("glockenspiel", "glockenspiel"), ("music box", "music box"),
    ("vibraphone", "vibraphone"), ("marimba", "marimba"), ("xylophone", "xylophone"),
    ("tubular bell", "tubular bells"), ("dulcimer", "dulcimer"), ("drawbar organ", "organ"),
    ("percussive organ", "organ"), ("rock organ", "organ"), ("church organ", "church organ"),
    ("reed organ", "organ"), ("accordion", "accordion"), ("harmonica", "harmonica"),
    ("tango accordion", "accordion"), ("nylon-string acoustic guitar", "acoustic guitar"),
    ("steel-string acoustic guitar", "acoustic guitar"), ("jazz guitar", "electric guitar"),
    ("clean electric guitar", "electric guitar"), ("muted electric guitar", "electric guitar"),
    ("overdriven guitar", "distorted guitar"), ("distortion guitar", "distorted guitar"),
    ("guitar harmonics", "electric guitar"), ("acoustic bass", "bass guitar"),
    ("fingered electric bass", "bass guitar"), ("picked electric bass", "bass guitar"),
    ("fretless bass", "bass guitar"), ("slap bass", "bass guitar"), ("slap bass", "bass guitar"),
    ("synth bass", "synth bass"), ("synth bass", "synth bass"), ("violin", "violin"),
    ("viola", "viola"), ("cello", "cello"), ("double bass", "double bass"),
    ("tremolo strings", "strings"), ("pizzicato strings", "strings"), ("harp", "harp"),
    ("timpani", "timpani"), ("string ensemble", "strings"), ("string ensemble", "strings"),
    ("synth strings", "synthesizer"), ("synth strings", "synthesizer"), ("choir singing aah", "choir"),
    ("voice singing ooh", "choir"), ("synth voice", "synthesizer"), ("orchestra hit", "orchestra hit"),
    ("trumpet", "trumpet"), ("trombone", "trombone"), ("tuba", "tuba"), ("muted trumpet", "trumpet"),
    ("french horn", "french horn"), ("brass section", "brass"), ("synth brass", "synthesizer"),
    ("synth brass", "synthesizer"), ("soprano saxophone", "saxophone"),
    ("alto saxophone", "saxophone"), ("tenor saxophone", "saxophone"),
    ("baritone saxophone", "saxophone"), ("oboe", "oboe"), ("english horn", "english horn"),
    ("bassoon", "bassoon"), ("clarinet", "clarinet"), ("piccolo", "piccolo"), ("flute", "flute"),
    ("recorder", "recorder"), ("pan flute", "pan flute"), ("blown bottle", "blown bottle"),
    ("shakuhachi", "shakuhachi"), ("whistle", "whistling"), ("ocarina", "ocarina"),
    ("square-wave synth lead", "synthesizer"), ("sawtooth synth lead", "synthesizer"),
    ("calliope", "synthesizer"), ("chiff synth lead", "synthesizer"),
    ("charang synth lead", "synthesizer"), ("synth voice lead", "synthesizer"),
    ("fifths synth lead", "synthesizer"), ("bass and lead synth", "synthesizer"),
    ("new age synth pad", "synth pad"), ("warm synth pad", "synth pad"),
    ("polysynth pad", "synth pad"), ("choir synth pad", "synth pad"), ("bowed synth pad", "synth pad"),
    ("metallic synth pad", "synth pad"), ("halo synth pad", "synth pad"),
    ("sweep synth pad", "synth pad"), ("rain synth effect", "synthesizer"),
    ("soundtrack synth effect", "synthesizer"), ("crystal synth effect", "synthesizer"),
    ("atmosphere synth effect", "synthesizer"), ("brightness synth effect", "synthesizer"),
    ("goblins synth effect", "synthesizer"), ("echoes synth effect", "synthesizer"),
    ("sci-fi synth effect", "synthesizer"), ("sitar", "sitar"), ("banjo", "banjo"),
    ("shamisen", "shamisen"), ("koto", "koto"), ("kalimba", "kalimba"), ("bagpipe", "bagpipes"),
    ("fiddle", "violin"), ("shanai", "shehnai"), ("tinkle bell", "bell"), ("agogo", "agogo"),
    ("steel drums", "steel drum"), ("woodblock", "wood block"), ("taiko drum", "taiko drum"),
    ("melodic tom", "tom drum"), ("synth drum", "electronic drum"), ("reverse cymbal", "cymbal"),
    ("guitar fret noise", "guitar fret noise"), ("breath noise", "breathing"), ("seashore", "ocean waves"),
    ("bird tweet", "bird"), ("telephone ring", "telephone ringing"), ("helicopter", "helicopter"),
    ("applause", "applause"), ("gunshot", "gunshot"),
]
assert len(GM_PROGRAMS) == 128

# GM percussion key map (channel 10): MIDI note -> (caption phrase, label).
GM_DRUMS: dict[int, tuple[str, str]] = {
    35: ("acoustic bass drum", "kick drum"), 36: ("bass drum", "kick drum"),
    37: ("side stick", "rimshot"), 38: ("acoustic snare drum", "snare drum"),
    39: ("hand clap", "hand clap"), 40: ("electric snare drum", "snare drum"),
    41: ("low floor tom", "tom drum"), 42: ("closed hi-hat", "hi-hat"),
    43: ("high floor tom", "tom drum"), 44: ("pedal hi-hat", "hi-hat"), 45: ("low tom", "tom drum"),
    46: ("open hi-hat", "hi-hat"), 47: ("low-mid tom", "tom drum"), 48: ("high-mid tom", "tom drum"),
    49: ("crash cymbal", "crash cymbal"), 50: ("high tom", "tom drum"),
    51: ("ride cymbal", "ride cymbal"), 52: ("chinese cymbal", "crash cymbal"),
    53: ("ride bell", "ride cymbal"), 54: ("tambourine", "tambourine"),
    55: ("splash cymbal", "crash cymbal"), 56: ("cowbell", "cowbell"),
    57: ("crash cymbal", "crash cymbal"), 58: ("vibraslap", "vibraslap"),
    59: ("ride cymbal", "ride cymbal"), 60: ("high bongo", "bongo"), 61: ("low bongo", "bongo"),
    62: ("muted high conga", "conga"), 63: ("open high conga", "conga"), 64: ("low conga", "conga"),
    65: ("high timbale", "timbales"), 66: ("low timbale", "timbales"), 67: ("high agogo", "agogo"),
    68: ("low agogo", "agogo"), 69: ("cabasa", "shaker"), 70: ("maracas", "maracas"),
    71: ("short whistle", "whistle"), 72: ("long whistle", "whistle"), 73: ("short guiro", "guiro"),
    74: ("long guiro", "guiro"), 75: ("claves", "claves"), 76: ("high wood block", "wood block"),
    77: ("low wood block", "wood block"), 78: ("muted cuica", "cuica"), 79: ("open cuica", "cuica"),
    80: ("muted triangle", "triangle"), 81: ("open triangle", "triangle"),
}

# GM/GS drum kits rendered (program number on the drum channel) -> caption phrase ("" for the
# standard kit). The orchestra kit (48) is left out: it puts timpani on the tom and hi-hat keys.
GM_DRUM_KITS: dict[int, str] = {
    0: "", 8: "a drum kit in a room", 16: "a rock drum kit", 24: "an electronic drum kit",
    25: "a TR-808 drum machine", 32: "a jazz drum kit", 40: "a drum kit played with brushes",
}

# Programs whose sound is an event, not a musical note: captions must not say "playing a note".
GM_EVENT_PROGRAMS = {120, 121, 122, 123, 124, 125, 126, 127}
