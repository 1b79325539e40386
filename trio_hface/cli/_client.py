"""``trio-hface client``: make requests and print the responses.

Theory of operation
-------------------

Every URL is dispatched at once, in one :class:`.ClientSession`, so requests to
one origin share its HTTP/2 or HTTP/3 connection. The bodies are printed in
the order of the URLs: the response whose turn it is streams to standard
output as it arrives; the others are kept in a spool (a
:class:`tempfile.SpooledTemporaryFile`: in memory up to ``SPOOL_MEMORY``
bytes, on disk beyond) until their turn. They keep being read meanwhile, so a
response waiting for its turn never holds back the connection's flow-control
window. At most ``MAX_REQUESTS_IN_FLIGHT`` requests run at once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

import trio

from .._models import ClientTLSConfig
from ..client import Client, ClientProtocol, ClientSession, Request
from ..errors import HFaceError
from ._server import CommandError, add_http1_impl, find_exception, http1_factory
from ._websocket import is_websocket_url, run_websocket

__all__ = ["add_client_parser", "run_client"]

#: Bytes of a response body kept in memory while earlier URLs print; the rest
#: goes to a temporary file (a few typical pages; hface kept everything).
SPOOL_MEMORY = 256 * 1024
#: Requests dispatched at once: RFC 9113 section 6.5.2's recommended minimum
#: of concurrent streams, so one HTTP/2 or HTTP/3 connection can carry them all.
MAX_REQUESTS_IN_FLIGHT = 100


def add_client_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "client",
        help="make HTTP requests and print the response bodies",
        description=(
            "Make HTTP requests over HTTP/1.1, HTTP/2 or HTTP/3, all at once in one session, "
            "and print the response bodies in the order of the URLs."
        ),
    )
    parser.add_argument(
        "urls",
        metavar="URL",
        nargs="+",
        help="http:// or https:// URL; or one ws:// or wss:// URL: a WebSocket between stdin and stdout",
    )
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
    add_http1_impl(parser, clients=True)
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


@dataclass
class _Output:
    """Where one URL's response goes: standard output once it is its turn, a spool before."""

    url: str
    spool: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(SPOOL_MEMORY))
    live: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    error: str | None = None

    def write(self, data: bytes) -> None:
        if self.live:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            self.spool.write(data)

    def go_live(self) -> None:
        """Print what was spooled and stream the rest (no checkpoint: no write comes between)."""
        self.spool.seek(0)
        while chunk := self.spool.read(65536):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        self.spool.close()
        self.live = True


def _client(args: argparse.Namespace) -> Client:
    """The client the command line asks for (its mistakes are one-line errors)."""
    tls = ClientTLSConfig(insecure=args.insecure, cafile=args.cacert)
    if args.cacert:
        try:
            with open(args.cacert, "rb"):
                pass
        except OSError as exc:
            raise CommandError(f"cannot read {args.cacert}: {exc.strerror}") from None
    try:
        return Client(
            tls_config=tls,
            protocol=args.protocol,
            proxy_origin=args.proxy,
            proxy_protocol=args.proxy_protocol,
            connect_timeout=args.timeout,
            read_timeout=args.timeout,
            http1_factory=http1_factory(args, clients=True),
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def run_client(args: argparse.Namespace) -> int:
    body = _body(args.data)
    headers = _headers(args.header)
    if any(is_websocket_url(url) for url in args.urls):
        return run_websocket(args, _client(args), headers)
    method = args.method or ("POST" if args.data is not None else "GET")
    try:
        requests = [Request(method, url, headers=headers, content=body) for url in args.urls]
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    client = _client(args)
    outputs = [_Output(url) for url in args.urls]

    async def fetch(session: ClientSession, request: Request, out: _Output, slots: trio.Semaphore) -> None:
        try:
            async with session.stream(request) as response:
                if args.include:
                    for status, fields in response.informational:
                        out.write(_head(response.http_version, status, fields))
                    out.write(_head(response.http_version, response.status, response.headers))
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        except BaseException as exc:
            problem = find_exception(exc, (HFaceError, OSError, trio.TooSlowError, ValueError))
            if problem is None or find_exception(exc, (trio.Cancelled, KeyboardInterrupt)) is not None:
                raise
            message = str(problem) or type(problem).__name__
            if isinstance(problem, trio.TooSlowError):
                message = f"no answer in {args.timeout} s"
            out.error = message
        finally:
            slots.release()
            out.done.set()

    async def main() -> int:
        failed = 0
        async with client.session() as session, trio.open_nursery() as nursery:
            slots = trio.Semaphore(MAX_REQUESTS_IN_FLIGHT)

            async def dispatch_all() -> None:
                # Acquired here, in URL order, so earlier URLs never wait for later ones.
                for request, out in zip(requests, outputs, strict=True):
                    await slots.acquire()
                    nursery.start_soon(fetch, session, request, out, slots)

            nursery.start_soon(dispatch_all)
            for out in outputs:
                out.go_live()
                await out.done.wait()
                if out.error is not None:
                    failed += 1
                    print(f"trio-hface client: {out.url}: {out.error}", file=sys.stderr)
        return 1 if failed else 0

    try:
        return trio.run(main)
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
    finally:
        for out in outputs:
            out.spool.close()


def _head(version: str, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [f"HTTP/{version} {status}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join(lines) + b"\r\n"
