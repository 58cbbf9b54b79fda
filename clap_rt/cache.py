"""The one folder where clap_rt keeps what it computes once: $CLAP_RT_CACHE or ~/.cache/clap_rt.

Exported graphs, backend choices, training features and the corpus's fetched packages all
live below it, so one variable moves all of them (a read-only home, a shared scratch disk).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$CLAP_RT_CACHE when set (and not empty), else ~/.cache/clap_rt."""
    return Path(os.environ.get("CLAP_RT_CACHE") or Path.home() / ".cache" / "clap_rt")
