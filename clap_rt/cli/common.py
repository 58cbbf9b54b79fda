"""Options shared by several subcommands, declared once."""
from __future__ import annotations

import argparse

from ..engine import BACKENDS
from ..errors import UserError
from ..pooling import POOLINGS


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder (default: the bundled clap-rt-small model)")
    p.add_argument("--backend", default="auto", help=f"audio engine: {', '.join(BACKENDS)} (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all)")
    p.add_argument("--compile", action="store_true",
                   help="with --backend cuda: torch.compile the audio tower (faster, ~30 s of setup)")


def add_pooling_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pooling", choices=POOLINGS, default="loudest",
                   help="a file longer than the model window: embed its loudest window, or average "
                        "all windows (steady sounds) (default: loudest)")


def add_label_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--labels", help='comma-separated labels, e.g. "siren,glass breaking"; @FILE adds the '
                                    'labels of a pack from `clap-rt enrol` ("siren, @labels.clap")')
    g.add_argument("--labels-file", help="a text file with one label (or @FILE) per line")
    p.add_argument("--template", default=None, help='prompt template with {} for the text labels (default: the model\'s)')


def read_labels(args):
    """--labels / --labels-file -> a LabelSet (text labels and the labels of @FILE packs)."""
    from ..labelset import LabelSet
    if args.labels is not None:
        return LabelSet.parse(args.labels, "--labels")
    try:
        with open(args.labels_file, encoding="utf-8") as f:
            text = f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{args.labels_file}: labels file not found; expected a text file with one label per line")
    return LabelSet.parse(text, args.labels_file)


def load_clap(args):
    from ..zeroshot import Clap
    return Clap.load(args.model, backend=args.backend, threads=args.threads, compile=args.compile)
