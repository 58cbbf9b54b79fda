"""`clap-rt`: a thin argparse front over the library; one module per subcommand.

Each subcommand module exposes `add_parser(subparsers)` (which sets `func=run`) and
`run(args) -> int`. A `UserError` becomes one line on stderr and exit status 2 (`run_program`).
"""
from __future__ import annotations

import argparse
import importlib

from ..errors import run_program

SUBCOMMANDS = ("classify", "enrol", "embed", "search", "info", "convert", "listen", "calibrate", "devices", "serve",
               "caption")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clap-rt", description="Zero-shot audio understanding with CLAP models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_program(f"clap-rt {args.command}", lambda: args.func(args))
