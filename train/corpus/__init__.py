"""Offline training corpus builder (see `python -m train.corpus build --help`)."""
from .manifest import load_manifest, write_manifest

__all__ = ["load_manifest", "write_manifest"]
