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
    """An index from `clap-rt embed -o` -> (paths (N,) str, embeddings (N, D) float32); a missing,
    cut short or inconsistent file, or a non-finite embedding, is a one-line UserError."""
    import tokenize
    import zipfile
    import zlib
    expected = "expected a .npz written by `clap-rt embed -o`"
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise UserError(f"{path}: one .npy array, not an index; {expected} with 'paths' and 'embeddings'")
        with z:
            paths, embs = z["paths"], z["embeddings"]
    except FileNotFoundError:
        raise UserError(f"{path}: index not found; {expected}")
    except KeyError as e:
        raise UserError(f"{path}: not an index (no {e} array); {expected} with 'paths' and 'embeddings'")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
            MemoryError, tokenize.TokenError) as e:
        # zlib.error: damaged compressed data; NotImplementedError, RuntimeError: zip features
        # numpy cannot read (other compression methods, encryption); MemoryError: an array
        # header claiming more than the machine holds; TokenError: a Python 2 style header cut short
        why = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not an index, or cut short ({why}); {expected}")
    for name, a in (("paths", paths), ("embeddings", embs)):
        if not isinstance(a, np.ndarray):      # np.load hands a member without the .npy magic over as bytes
            raise UserError(f"{path}: '{name}' is not a .npy array; {expected}")
    if paths.ndim != 1 or paths.dtype.kind != "U":
        raise UserError(f"{path}: 'paths' is {paths.dtype} of shape {paths.shape}; {expected} (N,) strings")
    if embs.ndim != 2 or embs.dtype.kind != "f" or embs.shape[0] != paths.shape[0]:
        raise UserError(f"{path}: 'embeddings' is {embs.dtype} of shape {embs.shape} for {paths.shape[0]} paths; "
                        f"{expected} (N, D) floats")
    bad = np.flatnonzero(~np.isfinite(embs).all(axis=1))
    if bad.size:
        raise UserError(f"{path}: {bad.size} embedding(s) are not finite (NaN/Inf), the first for "
                        f"{paths[bad[0]]}; re-run `clap-rt embed`")
    return paths, embs.astype(np.float32)


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
