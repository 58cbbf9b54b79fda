"""`python -m train --config FILE [flags]`: the Trainer of train/train.py (its flags, `--help`)."""
import sys

from .train import parse_args, run_cli, train


def main(argv: list[str] | None = None) -> int:
    return run_cli("python -m train", lambda a: parse_args(a, "python -m train"), train, argv)


if __name__ == "__main__":
    sys.exit(main())
