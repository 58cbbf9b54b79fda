"""clap-rt enrol NAME EXAMPLES... -o labels.clap: a label known by example recordings.

    clap-rt enrol doorbell ding1.wav ding2.wav ding3.wav --text "a doorbell" -o labels.clap
    clap-rt enrol knock knocks/ --add -o labels.clap          # a second label in the same pack
    clap-rt listen --labels "siren, @labels.clap"             # used beside text labels
"""
from __future__ import annotations

import os
import sys

from ..audio import find_audio_files
from ..errors import UserError
from ..prototypes import DEFAULT_TEXT_WEIGHT, SCORINGS
from .common import add_model_options, check_writable, load_clap


def add_parser(sub) -> None:
    p = sub.add_parser("enrol", help="enrol a label from example recordings into a label pack")
    p.add_argument("name", metavar="NAME", help="the label's name, e.g. doorbell")
    p.add_argument("examples", nargs="+", metavar="EXAMPLE",
                   help="recordings of the sound: files or folders (recursive)")
    p.add_argument("--text", default=None, help='a description mixed into the label\'s score, e.g. "a doorbell"')
    p.add_argument("--text-weight", type=float, default=None,
                   help=f"the description's weight in [0, 1] (default: {DEFAULT_TEXT_WEIGHT})")
    p.add_argument("--background", nargs="+", default=[], metavar="FILE",
                   help="recordings of the scene without the sound, for the thresholds "
                        "(default: noise and silence made in code)")
    p.add_argument("--add", action="store_true",
                   help="grow the existing pack -o: a new NAME adds a label, a NAME it holds gets more examples")
    p.add_argument("--scoring", choices=SCORINGS, default=None,
                   help="how prototypes score a new pack (default: mean; see docs/enrol.md)")
    p.add_argument("-o", "--output", required=True, metavar="PACK", help="the label pack to write (.clap)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..enrol import check_name
    from ..labelpack import LabelPack
    name = check_name(args.name)
    if args.add and not os.path.exists(args.output):
        raise UserError(f"{args.output}: label pack not found; --add grows an existing pack (drop --add to make one)")
    if not args.add and os.path.exists(args.output):
        raise UserError(f"{args.output}: already exists; pass --add to grow it, or choose another -o")
    check_writable(args.output, "-o")
    pack = LabelPack.load(args.output) if args.add else None
    files = find_audio_files(args.examples)
    if not files:
        raise UserError(f"{' '.join(args.examples)}: no audio files found")
    clap = load_clap(args)
    pack = clap.enrol(name, files, text=args.text, text_weight=args.text_weight,
                      background=args.background, pack=pack, scoring=args.scoring)
    pack.save(args.output)
    for label in pack:
        windows = sum(e["windows"] for e in label.examples)
        text = f", text {label.text!r} x {label.text_weight}" if label.text else ""
        print(f"{label.name}: {len(label.examples)} examples, {windows} sound windows{text}; on {label.on:.3f} "
              f"off {label.off:.3f} ({label.note})", file=sys.stderr)
    print(f"wrote {args.output} ({len(pack)} label{'s' * (len(pack) > 1)}, scoring {pack.scoring}, "
          f"model {pack.model_name})", file=sys.stderr)
    return 0
