"""Options shared by several subcommands, declared once."""
from __future__ import annotations

import argparse
import os
import tempfile

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
        with open(args.labels_file, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{args.labels_file}: labels file not found; expected a text file with one label per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{args.labels_file}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        f"expected a UTF-8 text file with one label per line")
    return LabelSet.parse(text, args.labels_file)


def check_writable(path: str, flag: str) -> None:
    """Before any audio is read: `path` is a file that can be written (its folder exists and
    takes a new file), so a long run does not fail at its very end."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a folder; expected a file to write")
    if not os.path.isdir(folder):
        raise UserError(f"{flag} {path}: folder {folder} not found")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".clap-rt-probe.")
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write in {folder} ({e.strerror})")
    os.close(fd)
    os.unlink(probe)


def load_clap(args):
    from ..zeroshot import Clap
    return Clap.load(args.model, backend=args.backend, threads=args.threads, compile=args.compile)
