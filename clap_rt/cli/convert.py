"""clap-rt convert --from {msclap,laion,hf} SRC OUT: a released checkpoint -> our model folder;
--from msclap-clapcap adds msclap's captioner to a folder converted from msclap."""
from __future__ import annotations

from ..errors import UserError
from ..tokenizer import GPT2_ASSETS


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert an msclap, LAION-CLAP or transformers checkpoint")
    p.add_argument("--from", dest="source", required=True, choices=("msclap", "laion", "hf", "msclap-clapcap"),
                   help="msclap: CLAP_weights_2023.pth; laion: 630k-*.pt (non-fusion); "
                        "hf: a transformers ClapModel.save_pretrained folder; msclap-clapcap: "
                        "clapcap_weights_2023.pth, added as the captioner of OUT (converted from msclap)")
    p.add_argument("src", metavar="SRC", help="checkpoint file (msclap, laion) or folder (hf)")
    p.add_argument("out", metavar="OUT", help="output model folder")
    p.add_argument("--tokenizer", default=None, metavar="DIR",
                   help="tokenizer folder (tokenizer.json, or vocab.json + merges.txt); default: the bundled "
                        "GPT-2 files for msclap, SRC for hf; required for laion (RoBERTa)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoints import save_model
    from ..converters import add_clapcap, convert_hf, convert_laion, convert_msclap
    from ..tokenizer import TextTokenizer

    if args.source == "msclap-clapcap":
        for line in add_clapcap(args.src, args.out):
            print(line)
        print(f"wrote the captioner of {args.out}")
        return 0

    tok_dir = args.tokenizer
    if tok_dir is None:
        if args.source == "laion":
            raise UserError("--tokenizer: LAION checkpoints carry no tokenizer; pass a folder with RoBERTa's "
                            "tokenizer.json or vocab.json + merges.txt")
        tok_dir = GPT2_ASSETS if args.source == "msclap" else args.src
    notes: list[str] = []
    convert = {"msclap": convert_msclap, "laion": convert_laion, "hf": convert_hf}[args.source]
    model = convert(args.src, notes=notes)
    try:
        tokenizer = TextTokenizer.from_dir(tok_dir, model.config.text)
    except FileNotFoundError as e:
        raise UserError(f"--tokenizer {tok_dir}: {e}")
    out = save_model(model, args.out, tokenizer, meta={"converted_from": args.source, "source": str(args.src)})
    for line in notes:
        print(line)
    n_audio = sum(p.numel() for p in model.audio.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({model.config.name}: audio tower {n_audio:,} params, total {n_all:,})")
    return 0
