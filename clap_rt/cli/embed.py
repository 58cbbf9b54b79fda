"""clap-rt embed PATH... -o OUT.npz: audio embeddings for files and folders.

With -o, each finished file is kept in OUT.npz.partial (`clap_rt.journal`) and OUT.npz is
written once, atomically, at the end: an interrupted run leaves OUT.npz as it was and resumes
from the journal when run again; a run where no file could be embedded leaves it unchanged.
"""
from __future__ import annotations

import io
import json
import sys

import numpy as np

from ..audio import find_audio_files
from ..checkpoints import atomic_write_bytes
from ..errors import UserError
from ..journal import SUFFIX, Journal
from .common import add_model_options, add_pooling_option, check_writable, load_clap

PROG = "clap-rt embed"


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="audio embeddings of files or folders (an index for `search`)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (recursive)")
    p.add_argument("-o", "--output", help="write an index .npz (paths, embeddings); an interrupted run "
                                          "resumes from OUT.npz.partial")
    p.add_argument("--json", action="store_true", help='one JSON object per file: {"path", "embedding"}')
    add_model_options(p)
    add_pooling_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if not args.output and not args.json:
        raise UserError("embed: expected -o OUT.npz and/or --json")
    if args.output:
        if not args.output.endswith(".npz"):
            raise UserError(f"{args.output}: expected an output path ending in .npz")
        check_writable(args.output, "-o")
    files = find_audio_files(args.paths)
    if not files:
        raise UserError(f"{' '.join(args.paths)}: no audio files found")
    clap = load_clap(args)
    dim = clap.config.projection.dim
    journal = None
    if args.output:
        journal = Journal(args.output + SUFFIX, {"model": clap.config.name, "model_id": clap.model_id,
                                                 "pooling": args.pooling}, dim).open()
        if journal.discarded:
            print(f"{PROG}: {journal.path} was left by a run with another model or --pooling; starting over",
                  file=sys.stderr)
        elif journal.resumed:
            print(f"{PROG}: resuming: {journal.resumed} file(s) already embedded in {journal.path}", file=sys.stderr)
    failed = 0
    try:
        for path in files:
            if journal is not None and path in journal.rows:
                continue
            try:
                e = clap.embed_audio([path], pooling=args.pooling)[0]
            except UserError as err:
                print(f"{PROG}: error: {err}", file=sys.stderr)     # reported and skipped
                failed += 1
                continue
            if journal is not None:
                journal.add(path, e)
            if args.json:
                print(json.dumps({"path": path, "embedding": [round(float(x), 6) for x in e]}), flush=True)
    except KeyboardInterrupt:
        if journal is not None:
            journal.close()
            print(f"{PROG}: interrupted; {len(journal.rows)} file(s) kept in {journal.path}: run the same "
                  f"command again to resume", file=sys.stderr)
        raise
    if journal is not None:
        done = [p for p in files if p in journal.rows]
        if not done:
            journal.remove()
            raise UserError(f"{args.output}: no file could be embedded; the output was not written")
        buf = io.BytesIO()
        np.savez(buf, paths=np.array(done, dtype=str), embeddings=np.stack([journal.rows[p] for p in done]),
                 model=np.array(clap.config.name))
        atomic_write_bytes(args.output, buf.getvalue())
        journal.remove()
    return 2 if failed else 0
