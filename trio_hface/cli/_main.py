"""Argument parsing and the entry point of the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ._certs import DevCAError, add_ca_parser
from ._client import add_client_parser
from ._config import ConfigError, apply_config_file
from ._errors import CommandError
from ._logging import add_logging_options, configure_logging
from ._proxy import add_proxy_parser
from ._server import add_server_parser

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the usage is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``trio-hface``."""
    parser = _Parser(
        prog="trio-hface",
        description="Hackable HTTP/1.1, HTTP/2 and HTTP/3 for Trio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_logging_options(parser, after_command=False)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_server_parser(subparsers)
    add_client_parser(subparsers)
    add_proxy_parser(subparsers)
    add_ca_parser(subparsers)
    for command in subparsers.choices.values():
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error: its status
        return exc.code if isinstance(exc.code, int) else 2
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    if getattr(args, "config", None):
        try:
            apply_config_file(args.command_parser, args.config)
        except ConfigError as exc:
            print(f"trio-hface: {exc}", file=sys.stderr)
            return 2
        try:
            args = parser.parse_args(argv)  # the command line over the file's values
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 2
    configure_logging(args)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --reload runs again
    try:
        return int(args.command(args))
    except (CommandError, DevCAError) as exc:
        print(f"trio-hface: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
