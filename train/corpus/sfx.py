"""Sound-effect packages labelled from their file and folder names through the taxonomy.

One declarative row per package (`SfxPackage`): the package, an optional pattern of paths never
to use (music, voice-overs, files whose name says nothing), and how many clips one file may
give. Everything else is the taxonomy's: a file whose name matches no label is not used.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .clips import FileTask
from .packages import SoundFile, fetch_package, list_sounds
from .taxonomy import Taxonomy, tokens

# Folders that locate sounds inside a package but say nothing about them.
_PREFIX = re.compile(r"^usr/(share|lib)/(games/)?")


@dataclass(frozen=True)
class SfxPackage:
    """A package of sound effects: `exclude` is a regex searched in the path inside the package
    (case-insensitive); `max_pieces` caps the clips one file gives (ambience loops are long)."""

    package: str
    exclude: str = ""
    max_pieces: int = 2


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def naming_path(sound: SoundFile) -> str:
    """The part of a sound's path that names it: install prefix and the folders named after the
    package dropped ("planetblupi/" would read as "plane"), archive member joined."""
    parts = _PREFIX.sub("", sound.path).split("/")
    package = _squash(sound.package)
    while len(parts) > 1 and (_squash(parts[0]) in package or package in _squash(parts[0])):
        parts = parts[1:]
    path = "/".join(parts)
    return f"{path}/{sound.member}" if sound.member else path


def file_detail(sound: SoundFile) -> str:
    """The file's own name as words ("FootStepGrass1.ogg" -> "foot step grass"): a caption that
    keeps what the label drops (the grass)."""
    stem = Path(sound.member or sound.path).stem
    return " ".join(re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", stem)).lower()


def sfx_tasks(spec: SfxPackage, taxonomy: Taxonomy, cache: Path, max_pieces: int) -> list[FileTask]:
    """One task per labelled sound file of `spec.package` (fetched into `cache` when missing)."""
    root, version = fetch_package(spec.package, cache)
    exclude = re.compile(spec.exclude, re.I) if spec.exclude else None
    tasks = []
    for sound in list_sounds(spec.package, root, version):
        named = naming_path(sound)
        if exclude and exclude.search(named):
            continue
        label = taxonomy.match(named)
        if label is None:
            continue
        rng = random.Random(sound.key())
        caps = taxonomy.hierarchy_captions(label, rng)
        detail = file_detail(sound)
        if detail and detail != label.name and tokens(detail) != tokens(label.name):
            caps.append(f"{label.action}, {detail}")
        stem = re.sub(r"[^A-Za-z0-9]+", "_", named.rsplit(".", 1)[0]).strip("_")
        # The item groups numbered takes of one sound ("Bark2", "Bark3") on one side of a split.
        item = f"{spec.package}:{re.sub(r'[0-9_ -]+$', '', stem.lower())}"
        provenance = {"package": spec.package, "version": version, "package_path": "/" + sound.path,
                      "member": sound.member, "family": label.family, "category": label.category}
        tasks.append(FileTask(str(root / sound.path), f"clips/{spec.package}/{stem}", spec.package, item,
                              label.name, "given", {"captions": caps}, min(spec.max_pieces, max_pieces),
                              member=sound.member, provenance=provenance))
    return tasks


# Every package of sound effects the corpus reads (Debian bookworm, main). kajongg is left out:
# its sounds are tile names spoken in several voices.
SFX_PACKAGES = (
    SfxPackage("amphetamine-data"), SfxPackage("ardentryst"), SfxPackage("atanks-data"),
    SfxPackage("bambam"), SfxPackage("berusky2-data"), SfxPackage("boswars-data"),
    SfxPackage("brainparty-data"), SfxPackage("btanks-data"), SfxPackage("bucklespring-data"),
    SfxPackage("bzflag-data"), SfxPackage("caveexpress-data"), SfxPackage("colobot-common-sounds"),
    SfxPackage("crossfire-client"), SfxPackage("crrcsim-data"), SfxPackage("csmash-data"),
    SfxPackage("cube2-data"), SfxPackage("davegnukem-data"), SfxPackage("deepin-sound-theme"),
    SfxPackage("endless-sky-data"), SfxPackage("enigma-data"), SfxPackage("etw-data"),
    SfxPackage("excellent-bifurcation"), SfxPackage("extremetuxracer-data"), SfxPackage("flare-game"),
    SfxPackage("flightgear-data-base"), SfxPackage("flobopuyo"), SfxPackage("freecol"),
    SfxPackage("freedink-data"), SfxPackage("freedroid-data"), SfxPackage("freegish-data"),
    SfxPackage("freeorion-data"), SfxPackage("freetennis-common"), SfxPackage("frozen-bubble-data"),
    SfxPackage("gamine-data"), SfxPackage("garden-of-coloured-lights-data"),
    SfxPackage("gigalomania-data"), SfxPackage("heroes-sound-effects"), SfxPackage("jag"),
    SfxPackage("krank"), SfxPackage("lbreakout2-data"), SfxPackage("libreoffice-common"),
    SfxPackage("lincity-ng-data"), SfxPackage("lomiri-sounds"), SfxPackage("lugaru-data"),
    SfxPackage("madbomber-data"), SfxPackage("manaplus-data"), SfxPackage("marsshooter-data"),
    SfxPackage("mazeofgalious-data"), SfxPackage("meritous-data"), SfxPackage("micropolis-data"),
    SfxPackage("minetest-data"), SfxPackage("mirrormagic-data"), SfxPackage("naev-data"),
    SfxPackage("netpanzer-data"), SfxPackage("neverball-common"), SfxPackage("overgod-data"),
    SfxPackage("oxygen-sounds"), SfxPackage("pekka-kana-2-data"), SfxPackage("pinball-data"),
    SfxPackage("pinball-table-gnu-data"), SfxPackage("planetblupi-common"),
    SfxPackage("plee-the-bear-data"), SfxPackage("powermanga-data"), SfxPackage("redeclipse-data"),
    SfxPackage("scratch"), SfxPackage("sdl-ball-data"), SfxPackage("seahorse-adventures"),
    SfxPackage("searchandrescue-data"), SfxPackage("simutrans-pak64"), SfxPackage("solarwolf"),
    SfxPackage("sound-icons"), SfxPackage("starfighter-data"), SfxPackage("starvoyager-data"),
    SfxPackage("supertuxkart-data"), SfxPackage("tecnoballz-data"), SfxPackage("torcs-data"),
    SfxPackage("trackballs-data"), SfxPackage("triplea"), SfxPackage("trophy-data"),
    SfxPackage("tumiki-fighters-data"), SfxPackage("tuxpaint-plugins-default"), SfxPackage("tuxtype-data"),
    SfxPackage("tworld-data"), SfxPackage("ukui-media"), SfxPackage("warmux-data"),
    SfxPackage("wizznic-data"), SfxPackage("wordwarvi-sound"), SfxPackage("workrave-data"),
    SfxPackage("yaru-theme-sound"),
    SfxPackage("hedgewars-data"), SfxPackage("scorched3d-data"), SfxPackage("supertux-data"),
    SfxPackage("freedroidrpg-data"), SfxPackage("minetest-mod-mesecons"), SfxPackage("lbreakouthd-data"),
    SfxPackage("tuxpaint-data"), SfxPackage("acm"), SfxPackage("afterstep-data"),
    SfxPackage("gnome-audio"), SfxPackage("performous"), SfxPackage("pysiogame"),
    SfxPackage("minetest-mod-homedecor"), SfxPackage("psi-plus-sounds"), SfxPackage("tuxfootball"),
    SfxPackage("epiphany-data"), SfxPackage("freeciv-data"), SfxPackage("pushover"),
    SfxPackage("rockdodger"), SfxPackage("tuxmath-data"), SfxPackage("hex-a-hop-data"),
    SfxPackage("open-invaders-data"), SfxPackage("icebreaker"), SfxPackage("minetest-mod-nether"),
    SfxPackage("pathological"), SfxPackage("wing-data"), SfxPackage("xboard"), SfxPackage("coccinella"),
    SfxPackage("dopewars-data"), SfxPackage("dustracing2d-data"), SfxPackage("gunroar-data"),
    SfxPackage("monsterz-data"), SfxPackage("pingus-data"), SfxPackage("zaz-data"),
    SfxPackage("ceferino-data"), SfxPackage("cuyo-data"), SfxPackage("gemdropx"),
    SfxPackage("gl-117-data"), SfxPackage("hannah-data"), SfxPackage("kgoldrunner"),
    SfxPackage("moon-lander-data"), SfxPackage("abe-data"), SfxPackage("alienblaster-data"),
    SfxPackage("barrage"), SfxPackage("bugsquish"), SfxPackage("burgerspace"),
    SfxPackage("circuslinux-data"), SfxPackage("lmarbles"), SfxPackage("rrootage-data"),
    SfxPackage("titanion-data"), SfxPackage("whichwayisup"), SfxPackage("angrydd"),
)

# Whole packages held out as the everyday zero-shot benchmark (never trained on, never used to
# choose a recipe): animals, people, household and city sounds, weather, vehicles, fire. Named
# everyday recordings are spread thin (most labels have 1-3 files in a package), so it takes
# twelve packages, about a third of the labelled everyday files, for 25+ labels of 8+ clips.
EVERYDAY_HELDOUT = ("scratch", "lugaru-data", "micropolis-data", "flightgear-data-base", "minetest-data",
                    "redeclipse-data", "scorched3d-data", "berusky2-data", "supertuxkart-data", "triplea",
                    "ukui-media", "pekka-kana-2-data")
# Whole packages on which recipes are chosen (`--val-source`); trained on by the final model.
EVERYDAY_VAL = ("lincity-ng-data", "warmux-data", "flare-game", "cube2-data", "wordwarvi-sound",
                "caveexpress-data", "torcs-data", "searchandrescue-data")
