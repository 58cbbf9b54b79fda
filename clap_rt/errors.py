"""Errors a user can fix, and the one way every program reports them: one line, exit status 2."""
from __future__ import annotations

import json
import os
import sys
from typing import Callable, Optional


class UserError(Exception):
    """Bad input (a file, a flag, a field): the message names it and says what was expected."""


def read_json_file(path: str | os.PathLike, missing: str, name: str | None = None, expected: str = ""):
    """Parse the JSON file `path`. A missing file raises UserError(`missing`); invalid JSON (bytes
    that are not UTF-8 and nesting too deep for the parser included) raises
    "<name>: invalid JSON (<why>)[; <expected>]", name defaulting to the path."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError(missing)
    tail = f"; {expected}" if expected else ""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{name or path}: invalid JSON (not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start})"
                        + tail)
    except json.JSONDecodeError as e:
        raise UserError(f"{name or path}: invalid JSON ({e.msg} at line {e.lineno})" + tail)
    except RecursionError:
        raise UserError(f"{name or path}: invalid JSON (nested too deeply)" + tail)


def run_program(prog: str, body: Callable[[], Optional[int]],
                also: tuple[type[Exception], ...] = ()) -> int:
    """Run a program's `body` and return its exit status (None counts as 0).

    A UserError, or one of `also` (e.g. the RuntimeError naming a missing package), prints
    "<prog>: error: <message>" as one line on stderr and gives status 2, without a traceback,
    the way argparse reports a bad flag. Ctrl-C gives 130; a closed output pipe (`| head`) 0.
    """
    try:
        return int(body() or 0)
    except (UserError, *also) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
