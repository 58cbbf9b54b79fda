"""Errors a user can fix: the CLI prints them as one line and exits with status 2."""
from __future__ import annotations

import json
import os


class UserError(Exception):
    """Bad input (a file, a flag, a field): the message names it and says what was expected."""


def read_json_file(path: str | os.PathLike, missing: str, name: str | None = None, expected: str = ""):
    """Parse the JSON file `path`. A missing file raises UserError(`missing`); invalid JSON raises
    "<name>: invalid JSON (<why> at line N)[; <expected>]", name defaulting to the path."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(missing)
    except json.JSONDecodeError as e:
        raise UserError(f"{name or path}: invalid JSON ({e.msg} at line {e.lineno})" + (f"; {expected}" if expected else ""))
