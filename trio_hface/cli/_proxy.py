"""``trio-hface proxy``: a CONNECT proxy."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

import trio

from ..server import ProxyServer, ServerProtocol
from ._certs import add_dev_ca_dir
from ._server import (
    add_common,
    add_graceful_timeout,
    add_implementations,
    add_max_connections,
    add_workers,
    find_exception,
    parse_endpoints,
    serve,
    server_config,
    worker_count,
)

__all__ = ["add_proxy_parser", "run_proxy"]


def add_proxy_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "proxy",
        help="run a CONNECT proxy over HTTP/1.1, HTTP/2 and HTTP/3",
        description=(
            "Tunnel TCP connections with CONNECT. Without --cert and --key, the development CA "
            "(kept in --dev-ca-dir) issues a certificate for localhost and the CA file's path is printed."
        ),
    )
    parser.add_argument(
        "endpoints",
        metavar="ENDPOINT",
        nargs="*",  # or endpoints in the configuration file (parse_endpoints checks)
        help="where to listen: http://HOST:PORT or https://HOST:PORT",
    )
    parser.add_argument("--cert", help="PEM file with the proxy's certificate chain")
    parser.add_argument("--key", help="PEM file with the certificate's private key")
    add_dev_ca_dir(parser)
    versions = parser.add_mutually_exclusive_group()
    for name, value, text in (
        ("--tcp", ServerProtocol.TCP, "HTTP/1.1 and HTTP/2 (ALPN) on TCP only"),
        ("--http1", ServerProtocol.HTTP1, "HTTP/1.1 only"),
        ("--http2", ServerProtocol.HTTP2, "HTTP/2 only"),
        ("--http3", ServerProtocol.HTTP3, "HTTP/3 only"),
    ):
        versions.add_argument(name, dest="protocol", action="store_const", const=value, help=text)
    parser.add_argument(
        "--allow",
        action="append",
        metavar="HOST:PORT",
        help="allow only these destinations (shell wildcards, repeatable)",
    )
    add_graceful_timeout(parser)
    add_max_connections(parser)
    add_workers(parser)
    add_implementations(parser, clients=False)
    add_common(parser)
    parser.set_defaults(command=run_proxy, protocol=ServerProtocol.ALL, dev_ca=None)


def run_proxy(args: argparse.Namespace) -> int:
    endpoints = parse_endpoints(args)
    proxy = ProxyServer(
        config=server_config(args, endpoints, graceful_timeout=args.graceful_timeout), allow=args.allow
    )
    try:
        trio.run(
            functools.partial(serve, workers=worker_count(args), quic_lb=args.quic_lb, dev_ca=args.dev_ca),
            proxy,
            endpoints,
        )
    except BaseException as exc:
        if find_exception(exc, (KeyboardInterrupt,)) is not None:
            return 130
        problem = find_exception(exc, (OSError, ValueError, RuntimeError))
        if problem is None:
            raise
        print(f"trio-hface proxy: {problem}", file=sys.stderr)
        return 1 if isinstance(problem, OSError) else 2
    return 0
