"""The development CA on the command line: ``--dev-ca-dir``, ``trio-hface ca``, and the server's certificate."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from .._models import ServerTLSConfig
from ..server import DevelopmentCA, default_dev_ca_directory

__all__ = [
    "DevCAError",
    "add_ca_parser",
    "add_dev_ca_dir",
    "announce_dev_ca",
    "dev_ca_tls",
    "open_dev_ca",
    "run_ca",
]


class DevCAError(RuntimeError):
    """The development CA's directory cannot be used: one line, exit status 2.

    A :class:`RuntimeError`, so that the servers' handling of errors from
    inside :func:`trio.run` reports it in one line too.
    """


def add_dev_ca_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--dev-ca-dir`` option of ``server``, ``proxy`` and ``ca``."""
    parser.add_argument(
        "--dev-ca-dir",
        metavar="DIR",
        default=None,
        help=f"the directory of the development CA, reused across runs (default {default_dev_ca_directory()})",
    )


def add_ca_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ca",
        help="print the path of the development CA's certificate (making the CA if needed)",
        description=(
            "Print the path of the certificate of the development CA that trio-hface server and proxy use "
            "without --cert and --key, creating the CA if there is none: give it to clients "
            '(curl --cacert "$(trio-hface ca)").'
        ),
    )
    parser.add_argument(
        "--write",
        metavar="FILE",
        help="also write the CA certificate to FILE (- for standard output, then no path is printed)",
    )
    add_dev_ca_dir(parser)
    parser.set_defaults(command=run_ca)


def open_dev_ca(args: argparse.Namespace, *, save: bool) -> DevelopmentCA:
    """The development CA of ``--dev-ca-dir``; with *save* false nothing is written yet.

    :raises DevCAError: if its directory cannot be read (or written)
    """
    try:
        return DevelopmentCA.open(args.dev_ca_dir, save=save)
    except OSError as exc:
        raise DevCAError(
            f"cannot use the development CA in {_where(args)}: {_reason(exc, _where(args))}"
        ) from None


def dev_ca_tls(args: argparse.Namespace) -> tuple[ServerTLSConfig, DevelopmentCA]:
    """A server certificate from the development CA, which is saved once the server listens (:func:`announce_dev_ca`)."""
    ca = open_dev_ca(args, save=False)
    return ca.server_tls_config(), ca


def announce_dev_ca(ca: DevelopmentCA) -> None:
    """Save the development CA (the server listens now) and print the path of its certificate.

    :raises DevCAError: if the CA cannot be written
    """
    if ca.replaced is not None:
        print(f"trio-hface: {ca.replaced}: made a new development CA", file=sys.stderr, flush=True)
    try:
        saved = ca.save()
    except OSError as exc:
        raise DevCAError(
            f"cannot save the development CA in {ca.directory}: {_reason(exc, ca.directory)}"
        ) from None
    cafile = ca.cafile
    if not saved:
        # Another process saved its own CA at the same moment: ours signed this
        # server's certificate, so hand out ours from a private temporary file.
        cafile = Path(tempfile.mkdtemp(prefix="trio-hface-")) / "ca.pem"
        cafile.write_bytes(ca.cert_pem)
        print(f"trio-hface: another process saved a development CA in {ca.directory} first", file=sys.stderr)
    print(f"development certificate for localhost, 127.0.0.1 and ::1; trust its CA: {cafile}", flush=True)


def run_ca(args: argparse.Namespace) -> int:
    ca = open_dev_ca(args, save=True)
    if ca.replaced is not None:
        print(f"trio-hface: {ca.replaced}: made a new development CA", file=sys.stderr)
    if args.write == "-":
        sys.stdout.buffer.write(ca.cert_pem)
        return 0
    if args.write is not None:
        try:
            Path(args.write).write_bytes(ca.cert_pem)
        except OSError as exc:
            raise DevCAError(f"cannot write {args.write}: {_reason(exc)}") from None
    print(ca.cafile)
    return 0


def _where(args: argparse.Namespace) -> str:
    return str(args.dev_ca_dir or default_dev_ca_directory())


def _reason(exc: OSError, directory: object = None) -> str:
    text = exc.strerror or str(exc)
    # The file, unless it is the directory that the message names already.
    named = exc.filename and str(exc.filename) != str(directory)
    where = f" ({exc.filename})" if named else ""
    return f"{text[:1].lower()}{text[1:]}{where}"
