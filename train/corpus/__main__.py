"""python -m train.corpus build DATA_DIR [--sources a,b] [--max-per-item N] [--jobs N]"""
from __future__ import annotations

import argparse
import json
import sys

from clap_rt.errors import UserError, run_program

PROG = "python -m train.corpus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build or resume the training corpus")
    b.add_argument("data_dir")
    b.add_argument("--sources", default="", help="comma-separated source names (default: all)")
    b.add_argument("--max-per-item", type=int, default=4, help="max clips cut from one recording")
    b.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    from .build import build

    def run() -> None:
        if args.max_per_item < 1 or args.jobs < 1:
            raise UserError("--max-per-item and --jobs must be >= 1")
        names = [n for n in args.sources.split(",") if n] or None
        stats = build(args.data_dir, names, args.max_per_item, args.jobs)
        print(json.dumps(stats.get("total", {}), indent=1))

    return run_program(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
