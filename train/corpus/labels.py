"""Hand-written maps from source file names to clean labels and caption verb phrases."""
from __future__ import annotations

import re

# Animal label -> what it does, for "a dog barking"-style captions.
ANIMAL_ACTIONS = {
    "dog": "a dog barking", "cat": "a cat meowing", "cow": "a cow mooing", "pig": "a pig grunting",
    "horse": "a horse neighing", "sheep": "a sheep bleating", "lamb": "a lamb bleating",
    "goat": "a goat bleating", "donkey": "a donkey braying", "lion": "a lion roaring",
    "tiger": "a tiger growling", "elephant": "an elephant trumpeting", "bee": "a bee buzzing",
    "hornet": "a hornet buzzing", "frog": "a frog croaking", "crow": "a crow cawing",
    "rooster": "a rooster crowing", "owl": "an owl hooting", "duck": "a duck quacking",
    "hen": "a hen clucking", "turkey": "a turkey gobbling", "seagull": "a seagull crying",
    "cuckoo": "a cuckoo calling", "bear": "a bear growling", "whale": "a whale singing",
    "dolphin": "a dolphin clicking", "sea lion": "a sea lion barking", "goose": "a goose honking",
    "mouse": "a mouse squeaking", "bat": "a bat squeaking", "grasshopper": "a grasshopper chirping",
    "monkey": "a monkey screaming", "chimpanzee": "a chimpanzee screaming", "bird": "a bird singing",
    "blackbird": "a blackbird singing", "lark": "a lark singing", "wolf": "a wolf howling",
    "gorilla": "a gorilla grunting", "camel": "a camel grunting", "deer": "a deer calling",
}

# Tux Paint stamp file stems whose name is not already the label.
TUXPAINT_RENAME = {
    "cow_white": "cow", "bull": "cow", "pig_golden": "pig", "pig_golden2": "pig",
    "sheep_lamb": "lamb", "ram": "sheep", "mountaingoat": "goat", "blackcat": "cat",
    "bat_left": "bat", "gander": "goose", "drake": "duck", "doe": "deer", "chimp": "chimpanzee",
    "heron_greatblue_flying": "heron", "tucan": "toucan", "nandou": "rhea", "dromedary": "camel",
    "sea_lion": "sea lion",
}

# Tux Paint non-animal stamps with an audible event: stem -> (label, action).
TUXPAINT_EVENTS = {
    "vacuum_cleaner": ("vacuum cleaner", "a vacuum cleaner running"),
    "toilet": ("toilet", "a toilet flushing"), "kettle": ("kettle", "a kettle boiling"),
    "hammer": ("hammer", "someone hammering"), "saw": ("saw", "someone sawing wood"),
    "mallet_metal": ("mallet", "a mallet hitting metal"),
    "Washing-machine": ("washing machine", "a washing machine running"),
    "scissors_small_open": ("scissors", "scissors cutting"),
    "scissors_small_closed": ("scissors", "scissors snipping"),
    "cello": ("cello", "a cello playing"), "violin": ("violin", "a violin playing"),
    "bassoon": ("bassoon", "a bassoon playing"), "cymbal_crash": ("crash cymbal", "a crash cymbal"),
    "drum_tomtom_floor": ("tom drum", "a floor tom being played"),
    "drumkit": ("drum kit", "a drum kit being played"),
    "camera_35mm": ("camera shutter", "a camera shutter clicking"),
    "fireworks": ("fireworks", "fireworks exploding"), "lightningbolt": ("thunder", "thunder rumbling"),
    "firetruck": ("siren", "a fire truck siren wailing"), "rubberduck": ("squeaky toy", "a rubber duck squeaking"),
    "bottle": ("bottle", "a glass bottle clinking"), "glass": ("glass", "glass clinking"),
    "apollo_lander": ("rocket", "a rocket engine roaring"),
}

FREEDESKTOP_EVENTS = {
    "alarm-clock-elapsed": ("alarm clock", "an alarm clock ringing"), "bell": ("bell", "a small bell ringing"),
    "camera-shutter": ("camera shutter", "a camera shutter clicking"),
    "phone-incoming-call": ("telephone ringing", "a telephone ringing"),
    "phone-outgoing-busy": ("busy signal", "a telephone busy signal"),
    "phone-outgoing-calling": ("ringback tone", "a telephone ringback tone"),
    "trash-empty": ("crumpling", "paper being crumpled"), "complete": ("chime", "a notification chime"),
    "message": ("chime", "a message notification chime"), "message-new-instant": ("chime", "a short notification chime"),
    "dialog-warning": ("alert", "a computer warning sound"), "dialog-error": ("alert", "a computer error sound"),
    "screen-capture": ("camera shutter", "a screenshot shutter sound"),
}

# GCompris sound file stems -> (label, action); instruments and farm animals come from activities
# that name them, the rest from the sound-memory game.
GCOMPRIS_EVENTS = {
    "tambourine": ("tambourine", "a tambourine being shaken"), "snare_drum": ("snare drum", "a snare drum being played"),
    "harmonica": ("harmonica", "a harmonica playing"), "violin": ("violin", "a violin playing"),
    "cello": ("cello", "a cello playing"), "accordion": ("accordion", "an accordion playing"),
    "bongo": ("bongo", "bongo drums being played"), "electric_guitar": ("electric guitar", "an electric guitar playing"),
    "banjo": ("banjo", "a banjo playing"), "triangle": ("triangle", "a triangle ringing"),
    "trumpet": ("trumpet", "a trumpet playing"), "horn": ("french horn", "a french horn playing"),
    "piano": ("piano", "a piano playing"), "cymbal": ("cymbal", "a cymbal crashing"), "harp": ("harp", "a harp playing"),
    "timpani": ("timpani", "timpani drums rolling"), "saxophone": ("saxophone", "a saxophone playing"),
    "maracas": ("maracas", "maracas being shaken"), "clarinet": ("clarinet", "a clarinet playing"),
    "guitar": ("acoustic guitar", "an acoustic guitar playing"), "tuba": ("tuba", "a tuba playing"),
    "trombone": ("trombone", "a trombone playing"), "organ": ("organ", "an organ playing"),
    "drum_kit": ("drum kit", "a drum kit being played"), "castanets": ("castanets", "castanets clicking"),
    "flute_traversiere": ("flute", "a flute playing"),
    "owl": ("owl", "an owl hooting"), "pig": ("pig", "a pig grunting"), "chickens": ("hen", "chickens clucking"),
    "cat": ("cat", "a cat meowing"), "horse": ("horse", "a horse neighing"), "cow": ("cow", "a cow mooing"),
    "dog": ("dog", "a dog barking"), "duck": ("duck", "a duck quacking"), "sheep": ("sheep", "a sheep bleating"),
    "LRStartAndStopCarEngine1LACut": ("car engine", "a car engine starting and stopping"),
    "LRFireballs_01_LA": ("fire", "fireballs whooshing"), "LRObject_falling_01_LA": ("falling object", "an object falling"),
    "LRObject_falling_02_LA": ("falling object", "an object falling to the floor"),
    "LRBuddhist_gong_05_LA": ("gong", "a gong being struck"), "LRRing_01_LA": ("bell", "a bell ringing"),
    "LRFactory_noise_01_LA": ("machine", "factory machines running"), "LRFactory_noise_02_LA": ("machine", "factory noise"),
    "LRFactory_noise_03_LA": ("machine", "industrial machinery"), "LRDoor_Open_2_LA": ("door", "a door creaking open"),
    "LRTrain_slowing_down_01_LA_cut": ("train", "a train slowing down"), "LRBark_1_LA_cut": ("dog", "a dog barking"),
    "LRBark_3_LA_cut": ("dog", "a dog barking"), "LRApplauses_1_LA_cut": ("applause", "people applauding"),
    "LRHeart_beat_01_LA": ("heartbeat", "a heart beating"), "LRFrogsInPondDuringStormLACut": ("frog", "frogs croaking in a storm"),
    "LRRain_in_garden_01_LA_cut": ("rain", "rain falling in a garden"), "drip": ("water drip", "water dripping"),
    "bubble": ("bubbles", "bubbles popping"),
}

# OpenTTD OpenSFX sample index -> (label, action); the sample's own title becomes a caption too.
OPENTTD_EVENTS = {
    3: ("whistle", "a factory whistle blowing"), 4: ("train", "a steam train departing"),
    5: ("train", "a steam engine entering a tunnel"), 6: ("ship horn", "a ship horn blowing"),
    7: ("ship horn", "a ferry horn blowing"), 8: ("airplane", "a propeller plane starting"),
    9: ("airplane", "a jet taking off"), 10: ("train", "a train horn and departure"),
    11: ("machine", "mining machinery running"), 12: ("electric sparks", "electricity sparking"),
    13: ("steam", "steam hissing"), 14: ("level crossing", "a level crossing bell ringing"),
    17: ("crash", "a vehicle crash"), 18: ("explosion", "an explosion"), 19: ("crash", "a big crash"),
    20: ("cash register", "a cash register"), 21: ("beep", "an electronic beep"),
    22: ("morse code", "morse code beeping"), 24: ("helicopter", "a helicopter flying"),
    25: ("truck", "a truck starting and pulling away"), 26: ("truck", "a truck starting with a horn"),
    27: ("bus", "a bus starting"), 28: ("bus", "an old bus starting"), 29: ("applause", "an audience applauding"),
    33: ("jackhammer", "a jackhammer drilling"), 35: ("car horn", "a car horn honking"),
    36: ("sheep", "sheep bleating"), 37: ("cow", "a cow mooing"), 38: ("horse", "a horse neighing"),
    39: ("hammer", "hammering metal in a smithy"), 40: ("saw", "a circular saw cutting"),
    46: ("bubbles", "bubbles bubbling"), 52: ("wind", "wind blowing"), 54: ("tree falling", "a tree crashing down"),
    55: ("tree falling", "a tree being cut and falling"), 56: ("chainsaw", "a chainsaw cutting"),
    57: ("wind", "a strong wind howling"), 59: ("airplane", "a jet taking off"),
    61: ("airplane", "a jet taking off"), 65: ("train", "a train departing"), 66: ("bird", "a tropical bird calling"),
    67: ("lion", "a lion roaring"), 68: ("monkey", "monkeys screaming"), 69: ("airplane", "a propeller plane taking off"),
    71: ("train", "a train passing by"), 72: ("bird", "a tropical bird calling"),
}

# Drum-kit instrument names (hydrogen drumkit.xml) -> label, first matching pattern wins.
DRUM_PATTERNS = [
    (r"kick|bass ?drum|\bbd\b", "kick drum"), (r"snare|\bsd\b", "snare drum"),
    (r"\bhh\b|hat|hihat", "hi-hat"), (r"crash|splash|china", "crash cymbal"), (r"ride", "ride cymbal"),
    (r"tom", "tom drum"), (r"cowbell", "cowbell"), (r"clap", "hand clap"), (r"stick|rim", "rimshot"),
    (r"tamb", "tambourine"), (r"shaker|maraca|cabasa", "shaker"), (r"conga", "conga"),
    (r"bongo", "bongo"), (r"wood ?block", "wood block"), (r"whistle", "whistle"),
    (r"triangle", "triangle"), (r"djemb", "djembe"), (r"guitar|strum", "acoustic guitar"),
    (r"glass", "glass clink"), (r"clave", "claves"), (r"timbal", "timbales"), (r"agogo", "agogo"),
    (r"cymbal", "cymbal"), (r"zap", "laser zap"),
]

# Sonic Pi sample name prefix -> (label, kind); kind "drum" gets hit captions, else event.
SONIC_PI_PATTERNS = [
    (r"^(bd_|drum_bass|drum_heavy_kick|elec_.*kick)", "kick drum", "drum"),
    (r"^(sn_|drum_snare|elec_.*snare)", "snare drum", "drum"),
    (r"^drum_cymbal_(closed|pedal)", "hi-hat", "drum"), (r"^drum_splash", "crash cymbal", "drum"),
    (r"^(drum_cymbal|elec_cymbal)", "cymbal", "drum"), (r"^drum_tom|^elec_fuzz_tom", "tom drum", "drum"),
    (r"^drum_cowbell", "cowbell", "drum"), (r"^drum_roll", "drum roll", "event"),
    (r"tabla", "tabla", "drum"), (r"^elec_triangle", "triangle", "drum"),
    (r"^(elec_bell|elec_chime|perc_bell)", "bell", "event"), (r"^ambi_choir", "choir", "event"),
    (r"^ambi_piano", "piano", "event"), (r"woosh|swoosh|swash", "whoosh", "event"),
    (r"^guit_", "electric guitar", "event"), (r"^bass_", "synth bass", "event"),
    (r"^vinyl_hiss", "vinyl crackle", "event"), (r"^vinyl_", "vinyl scratch", "event"),
    (r"^misc_crow", "crow", "event"), (r"^misc_burp", "burp", "event"),
    (r"^misc_cineboom|^perc_impact", "boom", "event"), (r"^perc_door", "door", "event"),
    (r"^perc_snap", "finger snap", "event"), (r"^perc_till", "cash register", "event"),
    (r"phone", "telephone ringing", "event"), (r"robot", "robotic voice", "event"),
    (r"^loop_(amen|breakbeat)", "drum loop", "event"), (r"^loop_3d_printer", "3d printer", "event"),
    (r"^elec_(beep|blip|blup|ping|plip|twip|pop|tick|flip|bong)", "electronic beep", "event"),
    (r"^ambi_glass", "glass harmonica", "event"),
]

SONIC_PI_ACTIONS = {
    "choir": "a choir singing", "crow": "a crow cawing", "burp": "someone burping",
    "vinyl scratch": "a DJ scratching a vinyl record", "vinyl crackle": "a vinyl record crackling",
    "finger snap": "fingers snapping", "telephone ringing": "a telephone ringing",
    "robotic voice": "a robotic voice talking", "drum loop": "a drum loop playing",
    "3d printer": "a 3d printer whirring", "drum roll": "a drum roll", "whoosh": "a whoosh",
    "electric guitar": "an electric guitar playing", "synth bass": "a synth bass note",
    "piano": "a piano playing softly", "bell": "a bell ringing", "cash register": "a cash register",
}


def match_label(name: str, patterns: list) -> tuple | None:
    """First (label, ...) whose regex matches `name` (case-insensitive), else None."""
    for pattern, *rest in patterns:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return tuple(rest)
    return None
