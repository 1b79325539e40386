"""The command line's own error: bad input, printed as one line."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A problem with the command line's input: printed as one line, exit status 2."""
