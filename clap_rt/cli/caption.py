"""clap-rt caption PATH... [--json] [--beam N]: a sentence describing each audio file."""
from __future__ import annotations

import json
import sys

from ..audio import find_audio_files
from ..errors import UserError
from .common import add_model_options, add_pooling_option, load_clap


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help="describe audio files in words (models with a captioner)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (recursive)")
    add_model_options(p)
    add_pooling_option(p)
    p.add_argument("--beam", type=int, default=1, metavar="N",
                   help="beam width (default: 1, greedy decoding)")
    p.add_argument("--json", action="store_true", help='one JSON object per file: {"path", "caption"}')
    p.set_defaults(func=run)


def run(args) -> int:
    if args.beam < 1:
        raise UserError(f"--beam: expected a beam width of at least 1, got {args.beam}")
    files = find_audio_files(args.paths)
    if not files:
        raise UserError(f"{' '.join(args.paths)}: no audio files found")
    clap = load_clap(args)
    clap.captioner      # a model without a captioner is one error before any audio work
    failed = 0
    for path in files:
        try:
            (text,) = clap.caption([path], beam=args.beam, pooling=args.pooling)
        except UserError as e:
            # One bad file is reported and skipped; the others are still captioned.
            print(f"clap-rt caption: error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({"path": str(path), "caption": text}), flush=True)
        else:
            print(f"{path}\t{text}", flush=True)
    return 2 if failed else 0
