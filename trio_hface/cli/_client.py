"""``trio-hface client``: make one request and print the response."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio

from .._models import ClientTLSConfig
from ..client import Client, ClientProtocol, Request
from ..errors import HFaceError
from ._server import CommandError, find_exception

__all__ = ["add_client_parser", "run_client"]


def add_client_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "client",
        help="make an HTTP request and print the response body",
        description="Make one HTTP request over HTTP/1.1, HTTP/2 or HTTP/3 and print the response body.",
    )
    parser.add_argument("url", metavar="URL", help="http:// or https:// URL")
    parser.add_argument("-X", "--method", default=None, help="the method (default GET, or POST with --data)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="NAME: VALUE", help="add a header"
    )
    parser.add_argument("-d", "--data", help="request body; @FILE reads a file")
    parser.add_argument("-i", "--include", action="store_true", help="print the status line and headers too")
    parser.add_argument("--cacert", help="PEM file with CA certificates to trust")
    parser.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    versions = parser.add_mutually_exclusive_group()
    versions.add_argument(
        "--http1", dest="protocol", action="store_const", const=ClientProtocol.HTTP1, help="HTTP/1.1 only"
    )
    versions.add_argument(
        "--http2", dest="protocol", action="store_const", const=ClientProtocol.HTTP2, help="HTTP/2 only"
    )
    versions.add_argument(
        "--http3", dest="protocol", action="store_const", const=ClientProtocol.HTTP3, help="HTTP/3 only"
    )
    versions.add_argument(
        "--tcp",
        dest="protocol",
        action="store_const",
        const=ClientProtocol.TCP,
        help="HTTP/2 or HTTP/1.1 by ALPN; ignore Alt-Svc",
    )
    parser.add_argument("--proxy", metavar="URL", help="tunnel through this HTTP proxy (CONNECT)")
    proxy_versions = parser.add_mutually_exclusive_group()
    proxy_versions.add_argument(
        "--proxy-http1",
        dest="proxy_protocol",
        action="store_const",
        const=ClientProtocol.HTTP1,
        help="speak HTTP/1.1 with the proxy",
    )
    proxy_versions.add_argument(
        "--proxy-http2",
        dest="proxy_protocol",
        action="store_const",
        const=ClientProtocol.HTTP2,
        help="speak HTTP/2 with the proxy",
    )
    proxy_versions.add_argument(
        "--proxy-http3",
        dest="proxy_protocol",
        action="store_const",
        const=ClientProtocol.HTTP3,
        help="speak HTTP/3 with the proxy",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="connect and read timeout (default 30)"
    )
    parser.set_defaults(command=run_client, protocol=ClientProtocol.ALL, proxy_protocol=ClientProtocol.TCP)


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as f:
                return f.read()
        except OSError as exc:
            raise CommandError(f"cannot read {data[1:]}: {exc.strerror}") from None
    return data.encode()


def _headers(values: list[str]) -> list[tuple[bytes, bytes]]:
    headers = []
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise CommandError(f"a header is NAME: VALUE, not {value!r}")
        headers.append((name.strip().lower().encode("latin-1"), content.strip().encode("latin-1")))
    return headers


def run_client(args: argparse.Namespace) -> int:
    body = _body(args.data)
    try:
        request = Request(
            args.method or ("POST" if args.data is not None else "GET"),
            args.url,
            headers=_headers(args.header),
            content=body,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    tls = ClientTLSConfig(insecure=args.insecure, cafile=args.cacert)
    if args.cacert:
        try:
            with open(args.cacert, "rb"):
                pass
        except OSError as exc:
            raise CommandError(f"cannot read {args.cacert}: {exc.strerror}") from None
    try:
        client = Client(
            tls_config=tls,
            protocol=args.protocol,
            proxy_origin=args.proxy,
            proxy_protocol=args.proxy_protocol,
            connect_timeout=args.timeout,
            read_timeout=args.timeout,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    async def main() -> None:
        async with client.session() as session:
            response = await session.dispatch(request)
        if args.include:
            for status, headers in response.informational:
                _print_head(response.http_version, status, headers)
            _print_head(response.http_version, response.status, response.headers)
        sys.stdout.buffer.write(response.content)
        sys.stdout.flush()

    try:
        trio.run(main)
    except BaseException as exc:
        if find_exception(exc, (KeyboardInterrupt,)) is not None:
            return 130
        problem = find_exception(exc, (HFaceError, OSError, trio.TooSlowError, ValueError))
        if problem is None:
            raise
        message = str(problem) or type(problem).__name__
        if isinstance(problem, trio.TooSlowError):
            message = f"no answer in {args.timeout} s"
        print(f"trio-hface client: {message}", file=sys.stderr)
        return 1
    return 0


def _print_head(version: str, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    out = sys.stdout.buffer
    out.write(f"HTTP/{version} {status}\r\n".encode())
    for name, value in headers:
        out.write(name + b": " + value + b"\r\n")
    out.write(b"\r\n")
