"""Debian packages as raw material: download, unpack only their sound files, list them.

`apt-get download` + `dpkg-deb --fsys-tarfile` into a cache folder instead of `apt-get install`:
nothing is installed, a package is unpacked once (a marker holds its version), and only the
members a corpus can use are written (sound files, archives that may hold sound files, and the
copyright file for the attribution). Members of zip-family archives (.zip / .pk3 / .wz) are
listed as (archive, member) so a sound inside one is cut like any other file.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from clap_rt.audio import AUDIO_EXTENSIONS
from clap_rt.errors import UserError

ARCHIVE_EXTENSIONS = (".zip", ".pk3", ".wz")
# Reserved by the data policy for evaluation: never downloaded, listed or trained on.
RESERVED_PREFIXES = ("widelands", "megaglest", "wesnoth", "0ad", "unknown-horizons")


@dataclass(frozen=True)
class SoundFile:
    """One sound inside an unpacked package: `path` is relative to the package root (as the
    package installs it, without the leading /); `member` names it inside an archive at `path`."""

    package: str
    version: str
    path: str
    member: str = ""

    def key(self) -> str:
        return f"{self.package}:{self.path}" + (f"!{self.member}" if self.member else "")


def is_reserved(package: str) -> bool:
    return package.startswith(RESERVED_PREFIXES)


def _wanted(name: str) -> bool:
    low = name.lower()
    return low.endswith(AUDIO_EXTENSIONS + ARCHIVE_EXTENSIONS) or (
        low.startswith("./usr/share/doc/") and low.endswith("/copyright"))


def fetch_package(package: str, cache: Path) -> tuple[Path, str]:
    """Download and unpack `package` under `cache` (once); returns (root folder, version)."""
    if is_reserved(package):
        raise UserError(f"package {package}: reserved for evaluation, never used for training")
    root = cache / "unpacked" / package
    marker = root / ".version"
    if marker.exists():
        return root, marker.read_text().strip()
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise UserError(f"package {package}: fetching needs apt-get and dpkg-deb (a Debian system)")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        out = subprocess.run(["apt-get", "download", "-qq", package], cwd=debs, capture_output=True, text=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if out.returncode != 0 or not found:
            raise UserError(f"package {package}: apt-get download failed ({out.stderr.strip()[:200]}); "
                            f"run apt-get update first")
    deb = found[-1]
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    tmp = root.with_name(package + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for m in tar:
            if m.isfile() and _wanted(m.name):
                tar.extract(m, tmp, filter="data")
    if proc.wait() != 0:
        raise UserError(f"package {package}: {deb.name} is not a readable .deb")
    (tmp / ".version").write_text(version + "\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)           # the marker arrives with the folder: a crash re-unpacks
    deb.unlink()                    # the unpacked sounds are what is kept
    return root, version


def list_sounds(package: str, root: Path, version: str) -> list[SoundFile]:
    """Every sound file of an unpacked package, archives opened, in a stable order."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            low = name.lower()
            if low.endswith(AUDIO_EXTENSIONS):
                out.append(SoundFile(package, version, rel))
            elif low.endswith(ARCHIVE_EXTENSIONS):
                try:
                    with zipfile.ZipFile(full) as z:
                        members = sorted(n for n in z.namelist() if n.lower().endswith(AUDIO_EXTENSIONS))
                except (zipfile.BadZipFile, OSError):
                    continue        # not every .wz / .pk3 is a zip
                out += [SoundFile(package, version, rel, m) for m in members]
    return out


def member_bytes(archive: str | Path, member: str) -> bytes:
    """The encoded bytes of one sound inside a zip-family archive."""
    with zipfile.ZipFile(archive) as z:
        return z.read(member)


def licence_names(text: str) -> str:
    """The licence names of a Debian copyright file: its DEP-5 "License:" values, or for a
    free-form file the first two text lines under its "License:" heading."""
    lines = [x.strip() for x in text.splitlines()]
    names = []
    for i, line in enumerate(lines):
        if line.lower().startswith(("license:", "licence:")):
            value = line.split(":", 1)[1].strip() or " ".join([x for x in lines[i + 1: i + 8] if x][:2])[:160]
            names.append(value)
    return ", ".join(dict.fromkeys(n for n in names if n))


def copyright_licences(doc_root: Path, package: str) -> str:
    """licence_names of `doc_root`/usr/share/doc/`package`/copyright (doc_root "/" for an
    installed package, the unpacked folder for a fetched one)."""
    path = doc_root / "usr" / "share" / "doc" / package / "copyright"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "copyright file not found"
    return licence_names(text) or f"see /usr/share/doc/{package}/copyright"
