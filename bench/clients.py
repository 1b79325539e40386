"""Our client against httpx on trio: the same requests to the same peers, in this process.

httpx runs on trio through anyio (fine for a benchmark; trio_hface itself never uses anyio).
Peers, on the server core: nginx for HTTP/1.1 (one foreground process with its own
configuration in the benchmark's folder; ``trio-hface server`` when nginx is not installed,
said in the table), nginx for HTTP/2 too (nghttpd when nginx is absent), ngtcp2's gtlsserver for HTTP/3 (httpx has none).
Both clients keep at most 10 connections per origin (our default; httpx is told so).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import hpack
import httpx
import hyperframe.frame
import trio

from bench.peers import BenchError, Certs, Ports, free_port, nghttpd_argv, ours_argv, server, tool
from bench.report import Figure, Section, median
from trio_hface import ClientTLSConfig
from trio_hface.client import Client, ClientProtocol, ClientSession, Request

MIB = 1024 * 1024
SMALL = b"Hello, World!\n"
BATCH = 100  # requests in flight at once in the concurrent test
#: How long one client test may take before it counts as failed.
TEST_TIMEOUT = 300.0
#: Bytes asked of a raw TLS stream per read (as much as our connections ask).
RAW_RECEIVE_SIZE = 65536
#: Downloads per figure of the download comparison (the best one counts).
DOWNLOAD_RUNS = 3


@dataclass(frozen=True)
class Plan:
    """How many requests, and how large the download."""

    sequential: int
    concurrent: int  # a multiple of BATCH
    download_mib: int
    rounds: int = 1  # runs of both clients, in turn; each figure is the median of its rounds


@dataclass(frozen=True)
class Peer:
    """A server to measure against: how to start it, and the URLs of a small and a large body."""

    version: str
    protocol: ClientProtocol
    start: Callable[[], AbstractContextManager[object]]
    small: str
    large: str


class Fetcher:
    """Sequential, concurrent and download measurements for one client library."""

    async def get(self, url: str) -> int:
        """GET *url*; return the body length."""
        raise NotImplementedError

    async def download(self, url: str) -> int:
        """GET *url* reading the body as it arrives (never holding all of it); return its length."""
        raise NotImplementedError


class OurFetcher(Fetcher):
    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def get(self, url: str) -> int:
        return len((await self.session.dispatch(Request("GET", url))).content)

    async def download(self, url: str) -> int:
        received = 0
        async with self.session.stream(Request("GET", url)) as response:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
        return received


class HTTPXFetcher(Fetcher):
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, url: str) -> int:
        return len((await self.client.get(url)).content)

    async def download(self, url: str) -> int:
        received = 0
        async with self.client.stream("GET", url) as response:
            async for chunk in response.aiter_raw():
                received += len(chunk)
        return received


async def measure(fetcher: Fetcher, peer: Peer, plan: Plan) -> dict[str, float]:
    """The three figures for one client: sequential req/s, concurrent req/s, download MB/s."""
    figures: dict[str, float] = {}
    with trio.fail_after(TEST_TIMEOUT):
        if await fetcher.get(peer.small) != len(SMALL):  # also opens the connection
            raise AssertionError(f"wrong body length from {peer.small}")
        start = time.perf_counter()
        for _ in range(plan.sequential):
            await fetcher.get(peer.small)
        figures["sequential"] = plan.sequential / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(plan.concurrent // BATCH):
            async with trio.open_nursery() as nursery:
                for _ in range(BATCH):
                    nursery.start_soon(fetcher.get, peer.small)
        figures["concurrent"] = plan.concurrent // BATCH * BATCH / (time.perf_counter() - start)
        start = time.perf_counter()
        size = await fetcher.download(peer.large)
        figures["download"] = size / (time.perf_counter() - start) / 1e6
        if size != plan.download_mib * MIB:
            raise AssertionError(f"downloaded {size} bytes of {plan.download_mib * MIB}")
    return figures


async def ours(peer: Peer, plan: Plan, certs: Certs) -> dict[str, float]:
    client = Client(tls_config=ClientTLSConfig(cafile=str(certs.ca)), protocol=peer.protocol)
    async with client.session() as session:
        return await measure(OurFetcher(session), peer, plan)


async def theirs(peer: Peer, plan: Plan, certs: Certs) -> dict[str, float]:
    context = ssl.create_default_context(cafile=str(certs.ca))
    http2 = peer.protocol is ClientProtocol.HTTP2
    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(http1=not http2, http2=http2, verify=context, limits=limits) as client:
        return await measure(HTTPXFetcher(client), peer, plan)


#: nginx as an HTTP/1.1 TLS peer: one process (``master_process off``, so that it is the one
#: pinned and stopped, and never changes user), every path inside its own folder, keep-alive
#: for as many requests as the benchmark sends.
NGINX_CONF = """\
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl{http2};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {docs};
    }}
}}
"""


def nginx_peer(certs: Certs, folder: Path, docs: Path, protocol: ClientProtocol) -> Peer | None:
    """nginx serving *docs* over TLS, HTTP/1.1 or HTTP/2; ``None`` when nginx is absent."""
    try:
        nginx = tool("nginx")
    except BenchError:
        return None
    http2 = protocol is ClientProtocol.HTTP2
    port = free_port()
    prefix = folder / ("nginx-h2" if http2 else "nginx")
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            folder=prefix,
            port=port,
            http2=" http2" if http2 else "",
            cert=certs.cert,
            key=certs.key,
            docs=docs,
        )
    )
    argv = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf), "-g", "daemon off;"]
    log = folder / ("client-h2.log" if http2 else "client-h1.log")
    return Peer(
        f"HTTP/{'2' if http2 else '1.1'} TLS (peer: nginx)",
        protocol,
        partial(server, argv, log, tcp_ports=[port]),
        f"https://127.0.0.1:{port}/small",
        f"https://127.0.0.1:{port}/large",
    )


def http1_peer(plan: Plan, certs: Certs, folder: Path, docs: Path) -> Peer:
    """nginx serving *docs* over HTTP/1.1 TLS, or ``trio-hface server`` when nginx is absent."""
    peer = nginx_peer(certs, folder, docs, ClientProtocol.HTTP1)
    if peer is not None:
        return peer
    app = "trio_hface.server.examples.payload:app"
    h1 = Ports(free_port(), free_port())
    return Peer(
        "HTTP/1.1 TLS (peer: trio-hface server, nginx not installed)",
        ClientProtocol.HTTP1,
        partial(server, ours_argv(app, certs, h1), folder / "client-h1.log", tcp_ports=[h1.tls]),
        f"https://127.0.0.1:{h1.tls}/{len(SMALL)}",
        f"https://127.0.0.1:{h1.tls}/{plan.download_mib * MIB}",
    )


def http2_peer(plan: Plan, certs: Certs, folder: Path, docs: Path) -> Peer:
    """nginx serving *docs* over HTTP/2 (TLS, ALPN), or nghttpd when nginx is absent."""
    peer = nginx_peer(certs, folder, docs, ClientProtocol.HTTP2)
    if peer is not None:
        return peer
    port = free_port()
    nghttpd = nghttpd_argv(docs, port, certs)
    return Peer(
        "HTTP/2 TLS (peer: nghttpd, nginx not installed)",
        ClientProtocol.HTTP2,
        partial(server, nghttpd, folder / "client-h2.log", tcp_ports=[port]),
        f"https://127.0.0.1:{port}/small",
        f"https://127.0.0.1:{port}/large",
    )


def peers(plan: Plan, certs: Certs, folder: Path) -> list[Peer]:
    """The three peers; their files are made here (the large one once, in *folder*)."""
    docs = folder / "htdocs"
    docs.mkdir(exist_ok=True)
    (docs / "small").write_bytes(SMALL)
    with (docs / "large").open("wb") as large:
        block = b"x" * MIB
        for _ in range(plan.download_mib):
            large.write(block)
    h3 = free_port()
    key, cert = str(certs.key), str(certs.cert)
    gtlsserver = [tool("gtlsserver"), "-q", "-d", str(docs), "127.0.0.1", str(h3), key, cert]
    return [
        http1_peer(plan, certs, folder, docs),
        http2_peer(plan, certs, folder, docs),
        Peer(
            "HTTP/3 (peer: gtlsserver)",
            ClientProtocol.HTTP3,
            partial(server, gtlsserver, folder / "client-h3.log", udp_port=h3),
            f"https://127.0.0.1:{h3}/small",
            f"https://127.0.0.1:{h3}/large",
        ),
    ]


async def raw_download(url: str, certs: Certs) -> int:
    """GET *url* over a raw Trio TLS stream (HTTP/1.1 bytes written and parsed by hand, nothing
    else): read the head, then count the body as it arrives; return the body length.

    The reference of the download rows: the same bytes through the same TLS, without HTTP.
    """
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 443
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.set_alpn_protocols(["http/1.1"])
    stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
    async with stream:
        target = parsed.raw_path.decode()
        await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(RAW_RECEIVE_SIZE)
            if not data:
                raise AssertionError(f"{url}: the connection ended in the response head")
            head += data
        head, _, body = head.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        received = len(body)
        while received < length:
            data = await stream.receive_some(RAW_RECEIVE_SIZE)
            if not data:
                break
            received += len(data)
    return received


async def raw_h2_download(url: str, certs: Certs) -> int:
    """GET *url* over HTTP/2 on a raw Trio TLS stream: the request's frames made once by hand,
    then the response read by its frame headers alone (each DATA payload counted, not parsed,
    until END_STREAM); return the body length.

    The reference of an HTTP/2 download row: the same bytes, cut into TLS records the way the
    server cuts an HTTP/2 response, through the same TLS, with no HTTP/2 implementation. Our
    windows are opened wide at the start, so no WINDOW_UPDATE is due during the download.
    """
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 443
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.set_alpn_protocols(["h2"])
    stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
    async with stream:
        await stream.do_handshake()
        if stream.selected_alpn_protocol() != "h2":
            raise AssertionError(f"{url}: the server did not choose HTTP/2")
        largest_window = 2**31 - 1
        settings = hyperframe.frame.SettingsFrame(0, settings={0x4: largest_window})  # INITIAL_WINDOW_SIZE
        window = hyperframe.frame.WindowUpdateFrame(0, window_increment=largest_window - 65535)
        headers = hyperframe.frame.HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
        fields = [(":method", "GET"), (":scheme", "https"), (":authority", f"{host}:{port}")]
        headers.data = hpack.Encoder().encode([*fields, (":path", parsed.raw_path.decode())])
        request = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings.serialize() + window.serialize()
        await stream.send_all(request + headers.serialize())
        received = 0
        header = b""  # the part of a frame header received so far
        skip = 0  # payload bytes of the current frame still to come
        counting = ending = False  # the current frame: stream 1's DATA, with END_STREAM
        while True:
            data = await stream.receive_some(RAW_RECEIVE_SIZE)
            if not data:
                raise AssertionError(f"{url}: the connection ended in the response")
            position, size = 0, len(data)
            while True:
                if skip:
                    taken = min(skip, size - position)
                    if counting:
                        received += taken
                    skip -= taken
                    position += taken
                    if skip:
                        break  # the payload goes on in the next read
                    if ending:
                        return received
                if position >= size:
                    break
                need = 9 - len(header)
                header += data[position : position + need]
                position += min(need, size - position)
                if len(header) < 9:
                    break
                length = int.from_bytes(header[:3], "big")
                kind, flags, stream_id = header[3], header[4], int.from_bytes(header[5:9], "big")
                header = b""
                counting = kind == 0x0 and stream_id == 1
                ending = counting and bool(flags & 0x1)
                if counting and flags & 0x8:
                    raise AssertionError(f"{url}: padded DATA (not counted here)")
                if kind in (0x3, 0x7):
                    raise AssertionError(f"{url}: the server reset the stream or the connection")
                if kind == 0x4 and not flags & 0x1:  # the server's SETTINGS: acknowledge them
                    await stream.send_all(hyperframe.frame.SettingsFrame(0, flags=["ACK"]).serialize())
                skip = length
                if ending and not skip:
                    return received


async def timed_download(download: Callable[[], Awaitable[int]], plan: Plan) -> float:
    """The best MB/s of DOWNLOAD_RUNS downloads (a large transfer is at the mercy of the scheduler)."""
    best = 0.0
    with trio.fail_after(TEST_TIMEOUT):
        for _ in range(DOWNLOAD_RUNS):
            start = time.perf_counter()
            size = await download()
            best = max(best, size / (time.perf_counter() - start) / 1e6)
            if size != plan.download_mib * MIB:
                raise AssertionError(f"downloaded {size} bytes of {plan.download_mib * MIB}")
    return best


async def ours_download(peer: Peer, plan: Plan, certs: Certs) -> float:
    client = Client(tls_config=ClientTLSConfig(cafile=str(certs.ca)), protocol=peer.protocol)
    async with client.session() as session:
        return await timed_download(partial(OurFetcher(session).download, peer.large), plan)


def run_downloads(section: Section, plan: Plan, certs: Certs, folder: Path) -> None:
    """Our client's downloads (HTTP/1.1 and HTTP/2 from nginx), each against a raw Trio TLS
    stream reading the same response from the same server (for HTTP/2, its frames walked by
    hand: :func:`raw_h2_download`); add the rows to *section*."""
    found: list[Peer] = []
    section.part("download peers", lambda: found.extend(peers(plan, certs, folder)[:2]))
    for peer in found:

        def compare(peer: Peer = peer) -> None:
            raw = raw_h2_download if peer.protocol is ClientProtocol.HTTP2 else raw_download
            with peer.start():
                reference = trio.run(timed_download, partial(raw, peer.large, certs), plan)
                mine = trio.run(ours_download, peer, plan, certs)
            name = f"{peer.version}, {plan.download_mib} MiB download (raw: the same response, same server)"
            section.add(name, "MB/s", Figure(reference), Figure(mine))

        section.part(f"download {peer.version}", compare)


def run(section: Section, plan: Plan, certs: Certs, folder: Path) -> None:
    """Measure both clients against each peer; add the rows to *section*."""
    found: list[Peer] = []
    section.part("client peers", lambda: found.extend(peers(plan, certs, folder)))
    for peer in found:

        def compare(peer: Peer = peer) -> None:
            mine: list[dict[str, float]] = []
            other: list[dict[str, float]] = []
            with peer.start():
                for _ in range(plan.rounds):
                    mine.append(trio.run(ours, peer, plan, certs))
                    if peer.protocol is not ClientProtocol.HTTP3:
                        other.append(trio.run(theirs, peer, plan, certs))
            tests = (
                ("sequential", f"{plan.sequential} sequential GETs", "req/s"),
                ("concurrent", f"batches of {BATCH} concurrent GETs", "req/s"),
                ("download", f"{plan.download_mib} MiB download", "MB/s"),
            )
            for key, name, unit in tests:
                reference = (
                    median([Figure(run[key]) for run in other]) if other else Figure(None, "no HTTP/3")
                )
                section.add(
                    f"{peer.version}, {name}", unit, reference, median([Figure(run[key]) for run in mine])
                )

        section.part(f"client {peer.version}", compare)
