"""Logging for the command line: ``-v``/``--log-level``, before or after the command's name."""

from __future__ import annotations

import argparse
import logging

__all__ = ["LIBRARY_LOGGERS", "add_logging_options", "configure_logging", "log_level"]

#: The loggers of the libraries underneath (aioquic's QUIC and HTTP/3, hpack):
#: kept at ``WARNING`` unless ``-vvv`` asks for everything, so that their
#: ``INFO`` and ``DEBUG`` lines (one per QUIC connection, one per header) stay
#: out of the server's log.
LIBRARY_LOGGERS = ("quic", "http3", "hpack", "h2", "h11", "wsproto")

#: The names that ``--log-level`` takes.
LEVELS = ("debug", "info", "warning", "error", "critical")


def _level(text: str) -> int:
    name = text.lower()
    if name not in LEVELS:
        raise argparse.ArgumentTypeError(f"not a level: {text!r} (choose from {', '.join(LEVELS)})")
    level: int = getattr(logging, name.upper())
    return level


def add_logging_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """``-v``/``--verbose`` and ``--log-level LEVEL``.

    The main parser and the commands' parsers both have them (``trio-hface -v
    server`` and ``trio-hface server -v``); a command's ``-v`` adds to the
    main one, and its ``--log-level`` wins.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        dest="command_verbose" if after_command else "verbose",
        action="count",
        default=argparse.SUPPRESS if after_command else 0,
        help="log more: -v info (with the access log), -vv debug, -vvv the libraries' debug too",
    )
    parser.add_argument(
        "--log-level",
        type=_level,
        default=argparse.SUPPRESS if after_command else None,
        metavar="LEVEL",
        help=f"the lowest level logged: {', '.join(LEVELS)} (default warning, or as -v says)",
    )


def log_level(args: argparse.Namespace) -> int:
    """The level that ``-v`` and ``--log-level`` ask for."""
    if args.log_level is not None:
        level: int = args.log_level
        return level
    return logging.WARNING - 10 * min(verbosity(args), 2)


def verbosity(args: argparse.Namespace) -> int:
    """How many ``-v`` were given, before and after the command's name."""
    count: int = args.verbose + getattr(args, "command_verbose", 0)
    return count


def configure_logging(args: argparse.Namespace) -> None:
    """Log on standard error at the level asked for.

    The lines of shutdown (``trio_hface.server.lifecycle``) show at the
    default level too; the libraries' loggers stay at ``WARNING`` below ``-vvv``.
    """
    level = log_level(args)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbosity(args) < 3:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
    if level <= logging.WARNING:
        logging.getLogger("trio_hface.server.lifecycle").setLevel(min(level, logging.INFO))
