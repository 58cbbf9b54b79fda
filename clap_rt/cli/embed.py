"""clap-rt embed PATH... -o OUT.npz: audio embeddings for files and folders."""
from __future__ import annotations

import io
import json
import sys

import numpy as np

from ..audio import find_audio_files
from ..checkpoints import atomic_write_bytes
from ..errors import UserError
from .common import add_model_options, add_pooling_option, load_clap


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="audio embeddings of files or folders (an index for `search`)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (recursive)")
    p.add_argument("-o", "--output", help="write an index .npz (paths, embeddings)")
    p.add_argument("--json", action="store_true", help='one JSON object per file: {"path", "embedding"}')
    add_model_options(p)
    add_pooling_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if not args.output and not args.json:
        raise UserError("embed: expected -o OUT.npz and/or --json")
    if args.output and not args.output.endswith(".npz"):
        raise UserError(f"{args.output}: expected an output path ending in .npz")
    files = find_audio_files(args.paths)
    if not files:
        raise UserError(f"{' '.join(args.paths)}: no audio files found")
    clap = load_clap(args)
    paths, embs, failed = [], [], 0
    for path in files:
        try:
            e = clap.embed_audio([path], pooling=args.pooling)[0]
        except UserError as err:
            print(f"clap-rt embed: error: {err}", file=sys.stderr)
            failed += 1
            continue
        paths.append(path)
        embs.append(e)
        if args.json:
            print(json.dumps({"path": path, "embedding": [round(float(x), 6) for x in e]}), flush=True)
    if args.output:
        buf = io.BytesIO()
        np.savez(buf, paths=np.array(paths, dtype=str),
                 embeddings=np.stack(embs) if embs else np.zeros((0, clap.config.projection.dim), np.float32),
                 model=np.array(clap.config.name))
        atomic_write_bytes(args.output, buf.getvalue())
    return 2 if failed else 0
