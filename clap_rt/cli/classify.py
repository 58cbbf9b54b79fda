"""clap-rt classify PATH... --labels "a,b,c": zero-shot labels for files and folders."""
from __future__ import annotations

import json
import sys

from ..audio import find_audio_files
from ..errors import UserError
from .common import add_label_options, add_model_options, add_pooling_option, load_clap, read_labels


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="zero-shot classification of audio files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (recursive)")
    add_label_options(p)
    add_model_options(p)
    add_pooling_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    labels = read_labels(args)
    files = find_audio_files(args.paths)
    if not files:
        raise UserError(f"{' '.join(args.paths)}: no audio files found")
    clap = load_clap(args)
    labels.scorer(clap, args.template)      # template and pack errors before any audio work
    failed = 0
    for path in files:
        try:
            (result,) = clap.classify([path], labels, args.template, pooling=args.pooling)
        except UserError as e:
            # One bad file is reported and skipped; the others are still classified.
            print(f"clap-rt classify: error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(result.to_json()), flush=True)
        else:
            print(f"{path}\t{result.label}\t{result.score:.3f}", flush=True)
    return 2 if failed else 0
