"""``trio-hface client``: make requests and print the responses, as curl does.

Theory of operation
-------------------

Every URL is dispatched at once, in one :class:`.ClientSession`, so requests to
one origin share its HTTP/2 or HTTP/3 connection. What each URL prints goes
through its :class:`~._client_output.Output`, in the order of the URLs: the
response whose turn it is streams to standard output as it arrives; the
others are spooled (bounded in memory, on disk beyond) until their turn. They
keep being read meanwhile, so a response waiting for its turn never holds
back the connection's flow-control window. A body for ``-o FILE`` goes to its
file as it arrives. At most ``MAX_REQUESTS_IN_FLIGHT`` requests run at once.

Each URL's failure is one line and an exit status (curl's numbers, see
:mod:`._client_status`); the command exits with the first failed URL's.
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from typing import Any

import trio

from .. import __version__
from .._models import ClientTLSConfig
from ..client import Client, ClientProtocol, ClientSession, Request, StreamingResponse
from ..errors import HFaceError
from . import _client_status as status
from ._client_output import (
    WRITE_OUT_VARIABLES,
    FileSink,
    Output,
    Progress,
    WriteOut,
    format_head,
    trace_connection,
    trace_head,
)
from ._errors import CommandError
from ._server import add_implementations, find_exception, http1_factory, http3_factory
from ._websocket import is_websocket_url, run_websocket

__all__ = ["add_client_parser", "run_client"]

#: Requests dispatched at once: RFC 9113 section 6.5.2's recommended minimum
#: of concurrent streams, so one HTTP/2 or HTTP/3 connection can carry them all.
MAX_REQUESTS_IN_FLIGHT = 100

#: The ``user-agent`` sent unless ``-A`` or ``-H`` gives one.
USER_AGENT = f"trio-hface/{__version__}"

#: The flags that choose the version spoken with the proxy, and that version.
_PROXY_FLAGS = {
    ClientProtocol.HTTP1: ("--proxy-http1", "HTTP/1.1"),
    ClientProtocol.HTTP2: ("--proxy-http2", "HTTP/2"),
    ClientProtocol.HTTP3: ("--proxy-http3", "HTTP/3"),
}


def add_client_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "client",
        help="make HTTP requests and print the response bodies",
        description=(
            "Make HTTP requests over HTTP/1.1, HTTP/2 or HTTP/3, all at once in one session, "
            "and print the response bodies in the order of the URLs (as they arrive)."
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
    parser.add_argument("-A", "--user-agent", metavar="TEXT", help=f"the user-agent (default {USER_AGENT})")
    parser.add_argument("-d", "--data", help="request body; @FILE reads a file")
    _add_output_options(parser)
    _add_connection_options(parser)
    add_implementations(parser, clients=True)
    parser.set_defaults(command=run_client, protocol=ClientProtocol.ALL, proxy_protocol=None)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """What is printed, and where."""
    parser.add_argument("-i", "--include", action="store_true", help="print the status line and headers too")
    parser.add_argument(
        "-I", "--head", action="store_true", help="send HEAD and print the status line and headers"
    )
    parser.add_argument(
        "-o",
        "--output",
        action="append",
        default=[],
        metavar="FILE",
        help="write the body to FILE instead of standard output; once per URL, in order",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on standard error for -o downloads (default: when standard error is a terminal)",
    )
    parser.add_argument(
        "-L",
        "--location",
        action="store_true",
        help="follow redirects (301, 302, 303, 307, 308; at most --max-redirs in a row)",
    )
    parser.add_argument(
        "--max-redirs",
        type=_redirect_limit,
        default=20,
        metavar="N",
        help="with -L, how many redirects in a row are followed (default 20); more fail with exit 47",
    )
    parser.add_argument(
        "-f", "--fail", action="store_true", help="exit with 22, printing no body, on a status of 400 or more"
    )
    parser.add_argument(
        "-s", "--silent", action="store_true", help="print no error lines and no progress bar"
    )
    parser.add_argument("-S", "--show-error", action="store_true", help="print error lines even with -s")
    parser.add_argument(
        "-w",
        "--write-out",
        metavar="FORMAT",
        help="print FORMAT after each URL, with curl's %%{variable}s: " + ", ".join(WRITE_OUT_VARIABLES),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest="trace",
        action="store_true",
        help="print a curl-style trace on standard error: the connection, the request's and the response's heads",
    )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Versions, certificates, the proxy and timeouts."""
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
    parser.add_argument(
        "--proxy-cacert", metavar="FILE", help="PEM file with CA certificates to trust for the proxy"
    )
    proxy_versions = parser.add_mutually_exclusive_group()
    for protocol, (flag, version) in _PROXY_FLAGS.items():
        proxy_versions.add_argument(
            flag,
            dest="proxy_protocol",
            action="store_const",
            const=protocol,
            help=f"speak {version} with the proxy",
        )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long each wait for the response may take (default 30)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long opening a connection (TCP and TLS, or QUIC) may take (default 10, at most --timeout)",
    )


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


def _headers(args: argparse.Namespace) -> list[tuple[bytes, bytes]]:
    headers = []
    for value in args.header:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise CommandError(f"a header is NAME: VALUE, not {value!r}")
        headers.append((name.strip().lower().encode("latin-1"), content.strip().encode("latin-1")))
    if not any(name == b"user-agent" for name, _ in headers):
        headers.insert(0, (b"user-agent", (args.user_agent or USER_AGENT).encode("latin-1")))
    return headers


def _check_cafile(option: str, path: str | None) -> None:
    """A CA file that cannot be used is a one-line error naming it, before any connection."""
    if path is None:
        return
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise CommandError(f"{option} {path}: not a PEM file of CA certificates") from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def _client(args: argparse.Namespace) -> Client:
    """The client the command line asks for (its mistakes are one-line errors)."""
    if args.proxy is None:
        if args.proxy_protocol is not None:
            raise CommandError(f"{_PROXY_FLAGS[args.proxy_protocol][0]} needs --proxy")
        if args.proxy_cacert is not None:
            raise CommandError("--proxy-cacert needs --proxy")
    _check_cafile("--cacert", args.cacert)
    _check_cafile("--proxy-cacert", args.proxy_cacert)
    for option in ("timeout", "connect_timeout"):
        if not getattr(args, option) > 0:
            raise CommandError(f"--{option.replace('_', '-')} must be positive, not {getattr(args, option)}")
    tls = ClientTLSConfig(insecure=args.insecure, cafile=args.cacert)
    proxy_tls = None
    if args.proxy_cacert is not None:
        proxy_tls = ClientTLSConfig(insecure=args.insecure, cafile=args.proxy_cacert)
    try:
        return Client(
            tls_config=tls,
            protocol=args.protocol,
            proxy_origin=args.proxy,
            proxy_protocol=args.proxy_protocol or ClientProtocol.TCP,
            proxy_tls_config=proxy_tls,
            connect_timeout=min(args.connect_timeout, args.timeout),
            read_timeout=args.timeout,
            follow_redirects=args.location,
            max_redirects=args.max_redirs,
            http1_factory=http1_factory(args, clients=True),
            http3_factory=http3_factory(args, clients=True),
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _redirect_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a number of redirects, 0 or more, not {text!r}")
    return value


#: What a URL's failure may be (anything else is a bug, with its traceback).
_FAILURES = (HFaceError, OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError, status.WriteError)


def _message(problem: BaseException, args: argparse.Namespace) -> str:
    if isinstance(problem, trio.TooSlowError) and not str(problem):
        return f"no answer in {args.timeout} s"
    return str(problem) or type(problem).__name__


class _Transfer:
    """One URL: its request, its output, and what ``-w`` reports of it."""

    def __init__(self, request: Request, url: str, output_file: str | None) -> None:
        self.request = request
        self.url = url
        self.output_file = output_file
        self.out = Output(url)
        self.response: StreamingResponse | None = None
        self.size = 0
        self.start = self.head_at = self.end = 0.0

    def write_out_values(self) -> dict[str, str]:
        response = self.response
        total = self.end - self.start
        address = response.connection.extra_attributes.get("remote_address") if response else None
        content_type = (
            next((v for n, v in response.headers if n == b"content-type"), b"") if response else b""
        )
        return {
            "http_code": f"{response.status:03d}" if response else "000",
            "response_code": f"{response.status:03d}" if response else "000",
            "http_version": response.http_version if response else "0",
            "time_total": f"{total:.6f}",
            "time_starttransfer": f"{(self.head_at - self.start) if response else 0.0:.6f}",
            "size_download": str(self.size),
            "speed_download": str(int(self.size / total) if total > 0 else 0),
            "content_type": content_type.decode("latin-1"),
            "url": self.url,
            "url_effective": str(response.url) if response and response.url else self.url,
            "num_redirects": str(len(response.history)) if response else "0",
            "remote_ip": str(address[0]) if address else "",
            "remote_port": str(address[1]) if address else "",
            "exitcode": str(self.out.status),
            "errormsg": self.out.error or "",
        }


class _Run:
    """The transfers of one command, in one session."""

    def __init__(self, args: argparse.Namespace, transfers: list[_Transfer]) -> None:
        self.args = args
        self.transfers = transfers
        self.write_out = WriteOut(args.write_out) if args.write_out is not None else None
        progress = args.progress if args.progress is not None else sys.stderr.isatty()
        self.progress = progress and not args.silent
        self.seen_connections: set[int] = set()  # ids of the connections the trace has shown

    async def fetch(self, session: ClientSession, transfer: _Transfer, slots: trio.Semaphore) -> None:
        args, out = self.args, transfer.out
        transfer.start = trio.current_time()
        sink: FileSink | None = None
        try:
            async with session.stream(transfer.request) as response:
                transfer.response = response
                transfer.head_at = trio.current_time()
                if args.trace:
                    self._trace(transfer, response)
                if args.fail and response.status >= 400:
                    out.fail(status.HTTP_ERROR, f"the server answered {response.status}")
                    return
                write = out.write
                if transfer.output_file is not None:
                    sink = FileSink(transfer.output_file)
                    write = sink.write
                    if self.progress:
                        length = next((v for n, v in response.headers if n == b"content-length"), b"")
                        total = int(length) if length.isdigit() else None
                        out.progress = Progress(transfer.output_file, total)
                        if out.live:
                            out.progress.show()
                if args.include or args.head:
                    for code, fields in response.informational:
                        write(format_head(response.http_version, code, fields))
                    write(format_head(response.http_version, response.status, response.headers))
                async for chunk in response.aiter_bytes():
                    write(chunk)
                    transfer.size += len(chunk)
                    if out.progress is not None:
                        out.progress.update(len(chunk))
        except BaseException as exc:
            if find_exception(exc, (trio.Cancelled, KeyboardInterrupt)) is not None:
                raise
            problem = find_exception(exc, _FAILURES)
            if problem is None:
                raise
            out.fail(status.classify(exc), _message(problem, args))
        finally:
            transfer.end = trio.current_time()
            try:
                if sink is not None:
                    sink.close()
            except status.WriteError as exc:
                out.fail(status.WRITE, str(exc))
            if out.progress is not None:
                out.progress.finish()
            slots.release()
            self._finish(transfer)

    def _finish(self, transfer: _Transfer) -> None:
        out = transfer.out
        try:
            if self.write_out is not None:
                out.write(self.write_out.render(transfer.write_out_values()).encode())
        except status.WriteError as exc:
            out.fail(status.WRITE, str(exc))
        out.done.set()

    def _trace(self, transfer: _Transfer, response: StreamingResponse) -> None:
        connection = response.connection
        attributes = dict(connection.extra_attributes)
        url = transfer.request.parsed_url
        by_alt_svc = self.args.protocol is ClientProtocol.ALL

        def connected() -> str:
            # On the URL's turn, so that the first URL of a connection says "Connected".
            reused = id(connection) in self.seen_connections
            self.seen_connections.add(id(connection))
            lines = trace_connection(
                url.origin.host, attributes, response.http_version, reused=reused, alt_svc=by_alt_svc
            )
            return "".join(lines)

        transfer.out.note(connected)
        lines: list[str] = []
        target = url.origin.authority.decode() if transfer.request.method.upper() == "CONNECT" else url.target
        sent: list[tuple[bytes, bytes]] = [(b"host", url.origin.authority)]
        sent += [(n, v) for n, v in transfer.request.header_pairs if n != b"host"]
        content = transfer.request.content
        if isinstance(content, bytes) and content and not any(n == b"content-length" for n, _ in sent):
            sent.append((b"content-length", b"%d" % len(content)))
        lines += trace_head(
            response.http_version,
            f"{transfer.request.method.upper()} {target}",
            sent,
            response.informational,
            response.status,
            response.headers,
        )
        alt_svc = [v.decode("latin-1") for n, v in response.headers if n == b"alt-svc"]
        if alt_svc and response.http_version != "3":
            later = (
                "later requests of this session may use HTTP/3"
                if by_alt_svc
                else f"not used with --{self.args.protocol.value}"
            )
            lines.append(f"* Alt-Svc: {', '.join(alt_svc)} ({later})\n")
        for line in lines:
            transfer.out.note(line)

    async def main(self, client: Client) -> int:
        first_failure = 0
        async with client.session() as session, trio.open_nursery() as nursery:
            slots = trio.Semaphore(MAX_REQUESTS_IN_FLIGHT)

            async def dispatch_all() -> None:
                # Acquired here, in URL order, so earlier URLs never wait for later ones.
                for transfer in self.transfers:
                    await slots.acquire()
                    nursery.start_soon(self.fetch, session, transfer, slots)

            nursery.start_soon(dispatch_all)
            for transfer in self.transfers:
                out = transfer.out
                try:
                    out.go_live()
                except status.WriteError as exc:
                    out.fail(status.WRITE, str(exc))
                await out.done.wait()
                if out.error is not None:
                    first_failure = first_failure or out.status
                    if not self.args.silent or self.args.show_error:
                        print(f"trio-hface client: {out.url}: {out.error}", file=sys.stderr)
        return first_failure


def run_client(args: argparse.Namespace) -> int:
    if not logging.getLogger().isEnabledFor(logging.INFO):
        # aioquic warns of every failed handshake: the command's own line says it once.
        logging.getLogger("quic").setLevel(logging.ERROR)
    body = _body(args.data)
    headers = _headers(args)
    if any(is_websocket_url(url) for url in args.urls):
        return run_websocket(args, _client(args), headers)
    if len(args.output) > len(args.urls):
        raise CommandError(
            f"{len(args.output)} -o files for {len(args.urls)} URLs: give one -o per URL at most"
        )
    method = args.method or ("HEAD" if args.head else "POST" if args.data is not None else "GET")
    try:
        requests = [Request(method, url, headers=headers, content=body) for url in args.urls]
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    outputs: list[str | None] = [*args.output, *[None] * (len(args.urls) - len(args.output))]
    transfers = [
        _Transfer(request, url, output)
        for request, url, output in zip(requests, args.urls, outputs, strict=True)
    ]
    run = _Run(args, transfers)  # checks -w before anything starts
    client = _client(args)
    try:
        return trio.run(run.main, client)
    except BaseException as exc:
        if find_exception(exc, (KeyboardInterrupt,)) is not None:
            return 130
        problem = find_exception(exc, _FAILURES)
        if problem is None:
            raise
        if not args.silent or args.show_error:
            print(f"trio-hface client: {_message(problem, args)}", file=sys.stderr)
        return status.classify(exc)
    finally:
        for transfer in transfers:
            transfer.out.spool.close()
