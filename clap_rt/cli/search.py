"""clap-rt search "text query" --index OUT.npz: text-to-audio retrieval over an index."""
from __future__ import annotations

import json

import numpy as np

from ..errors import UserError
from .common import add_model_options, load_clap


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="find the audio in an index that best matches a text query")
    p.add_argument("query", help='what to look for, e.g. "a dog barking"')
    p.add_argument("--index", required=True, help="an index written by `clap-rt embed -o`")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per result")
    add_model_options(p)
    p.set_defaults(func=run)


def load_index(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            return z["paths"], z["embeddings"].astype(np.float32)
    except FileNotFoundError:
        raise UserError(f"{path}: index not found; expected a .npz written by `clap-rt embed -o`")
    except (KeyError, ValueError, OSError):
        raise UserError(f"{path}: not an index; expected a .npz with 'paths' and 'embeddings'")


def run(args) -> int:
    if args.k < 1:
        raise UserError(f"-k: expected a positive number of results, got {args.k}")
    paths, embs = load_index(args.index)
    clap = load_clap(args)
    if embs.shape[1:] != (clap.config.projection.dim,):
        raise UserError(f"{args.index}: embeddings of size {embs.shape[1:]} do not match the model "
                        f"({clap.config.projection.dim}); re-run `clap-rt embed` with this model")
    for rank, (i, score) in enumerate(clap.search(args.query, embs, args.k), 1):
        if args.json:
            print(json.dumps({"rank": rank, "path": str(paths[i]), "score": score}))
        else:
            print(f"{rank}\t{score:.3f}\t{paths[i]}")
    return 0
