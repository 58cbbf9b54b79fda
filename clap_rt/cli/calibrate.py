"""clap-rt calibrate: per-label on/off thresholds from example clips and background audio.

    clap-rt calibrate --labels "siren,dog" --examples DIR --background street.wav -o thresholds.json

--examples takes a folder with one sub-folder per label (DIR/siren/*.wav), or LABEL=PATH
items (PATH a file or a folder). `clap-rt listen --thresholds thresholds.json` reads the result.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..audio import find_audio_files, read_blocks
from ..detect import Thresholds, fit_thresholds
from ..errors import UserError
from .common import add_label_options, add_model_options, check_writable, load_clap, read_labels
from .listen import add_stream_options, background_prompts


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="set per-label detection thresholds from example clips")
    add_label_options(p)
    add_model_options(p)
    p.add_argument("--examples", nargs="+", default=[], metavar="DIR|LABEL=PATH",
                   help="a folder with a sub-folder per label, or LABEL=FILE_OR_FOLDER items")
    p.add_argument("--background", dest="background_audio", nargs="+", default=[],
                   metavar="FILE", help="recordings of the scene without the labelled sounds")
    add_stream_options(p)
    p.add_argument("-o", "--output", required=True, help="thresholds JSON to write")
    p.set_defaults(func=run)


def example_files(items: list[str], labels: list[str]) -> dict[str, list[str]]:
    """--examples items -> {label: [files]}."""
    out: dict[str, list[str]] = {label: [] for label in labels}
    for item in items:
        if "=" in item and not os.path.exists(item):
            label, path = item.split("=", 1)
            if label not in out:
                raise UserError(f"--examples {item}: label {label!r} is not one of --labels {labels}")
            if not os.path.exists(path):
                raise UserError(f"--examples {item}: {path} not found")
            out[label] += find_audio_files([path])
        elif os.path.isdir(item):
            found = False
            for label in labels:
                sub = os.path.join(item, label)
                if os.path.isdir(sub):
                    out[label] += find_audio_files([sub])
                    found = True
            if not found:
                raise UserError(f"--examples {item}: expected one sub-folder per label ({', '.join(labels)})")
        else:
            raise UserError(f"--examples {item}: expected a folder with a sub-folder per label, or LABEL=PATH")
    return out


def window_scores(stream, path: str) -> np.ndarray:
    """Every window of the file `path`, decoded block by block and resampled to the stream's
    input rate -> (K, L) scores; the stream is reset. A bad file is a UserError naming it."""
    from ..sources import BlockSource
    from ..stream import run_stream
    rows: list = []
    stream.reset()
    run_stream(BlockSource(read_blocks(path, stream.input_rate, block_seconds=1.0), stream.input_rate), stream,
               lambda w: rows.append(w.scores), live=False)
    return np.stack(rows)


def run(args) -> int:
    from ..stream import ClapStream
    label_set = read_labels(args)
    labels = label_set.names
    check_writable(args.output, "-o")
    examples = example_files(args.examples, labels)
    if not any(examples.values()) and not args.background_audio:
        raise UserError("calibrate: expected example clips (--examples) and/or background audio (--background)")
    clap = load_clap(args)
    prompts = background_prompts(args, Thresholds())
    stream = ClapStream(clap, label_set, clap.sample_rate, hop=args.hop, window=args.window,
                        background=prompts, template=args.template)
    peaks = {label: [] for label in labels}
    negatives = {label: [] for label in labels}
    failed = 0

    def scores(path: str):
        """(K, L) window scores of `path`, or None: a bad file is reported and skipped."""
        nonlocal failed
        try:
            return window_scores(stream, path)
        except UserError as e:
            print(f"clap-rt calibrate: error: {e}", file=sys.stderr)
            failed += 1
            return None

    for label, files in examples.items():
        for path in files:
            s = scores(path)      # (K, L)
            for j, other in enumerate(labels):
                if s is None:
                    break
                if other == label:
                    peaks[other].append(float(s[:, j].max()))
                else:
                    negatives[other] += s[:, j].tolist()
    for path in args.background_audio:
        s = scores(path)
        for j, label in enumerate(labels if s is not None else []):
            negatives[label] += s[:, j].tolist()
    th = Thresholds(background=prompts, template=args.template,
                    meta={"model": clap.config.name, "hop": args.hop, "window": args.window})
    for label in labels:
        if not peaks[label] and not negatives[label]:
            raise UserError(f"--examples: no clips for label {label!r} and no background audio")
        on, off, note = fit_thresholds(peaks[label], negatives[label])
        th.on[label], th.off[label] = on, off
        print(f"{label}: on {on:.3f} off {off:.3f}  ({len(peaks[label])} examples, {len(negatives[label])} "
              f"negative windows; {note})", file=sys.stderr)
    th.save(args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 2 if failed else 0

