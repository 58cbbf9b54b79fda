"""Errors a user can fix: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (a file, a flag, a field): the message names it and says what was expected."""
