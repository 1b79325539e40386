"""Argument parsing and the entry point of the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``trio-hface``."""
    parser = argparse.ArgumentParser(
        prog="trio-hface",
        description="Hackable HTTP/1.1, HTTP/2 and HTTP/3 for Trio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    build_parser().parse_args(argv)
    return 0
