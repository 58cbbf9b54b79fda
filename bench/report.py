"""What every benchmark prints and writes: aligned figure rows, and its results as JSON."""
from __future__ import annotations

import json
from pathlib import Path

# The SIMD flags that decide conv and int8 speed: every figure is printed beside them.
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> list[str]:
    """The SIMD flags of this CPU among SIMD_FLAGS, from /proc/cpuinfo ([] where unreadable)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(flags & set(SIMD_FLAGS))


def cpu_line() -> str:
    """`cpu_flags` as one line to print beside figures."""
    flags = cpu_flags()
    return "cpu flags: " + (" ".join(flags) if flags else "none of " + ", ".join(SIMD_FLAGS))


def print_rows(rows: list[tuple[str, str]], indent: str = "") -> None:
    """(name, value) rows, the values aligned in one column."""
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{indent}{k:<{w}}  {v}")


def write_json(doc, dest: str | None, indent: int = 2) -> None:
    """`doc` as JSON to `dest`: '-' prints it, a path is written atomically, None skips."""
    if dest == "-":
        print(json.dumps(doc, indent=indent))
    elif dest:
        from clap_rt.checkpoints import atomic_write_bytes
        atomic_write_bytes(dest, (json.dumps(doc, indent=indent) + "\n").encode())
