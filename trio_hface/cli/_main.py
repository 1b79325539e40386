"""Argument parsing and the entry point of the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ._certs import DevCAError, add_ca_parser
from ._client import add_client_parser
from ._proxy import add_proxy_parser
from ._server import CommandError, add_server_parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``trio-hface``."""
    parser = argparse.ArgumentParser(
        prog="trio-hface",
        description="Hackable HTTP/1.1, HTTP/2 and HTTP/3 for Trio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_server_parser(subparsers)
    add_client_parser(subparsers)
    add_proxy_parser(subparsers)
    add_ca_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.command(args))
    except (CommandError, DevCAError) as exc:
        print(f"trio-hface: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
