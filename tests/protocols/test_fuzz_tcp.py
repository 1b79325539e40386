"""Hostile input to the HTTP/1.1 and HTTP/2 protocols: events, never exceptions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import HTTP1_IMPLEMENTATIONS, drain, exchange, http1_factories
from trio_hface.errors import LocalProtocolError
from trio_hface.events import ConnectionTerminated, DataReceived, Event
from trio_hface.protocols import HTTPOverTCPProtocol
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FACTORIES: dict[str, Callable[[], HTTPOverTCPProtocol]] = {
    "h1-client": HTTP1ClientFactory(),
    "h1-server": HTTP1ServerFactory(),
    "h2-client": HTTP2ClientFactory(),
    "h2-server": HTTP2ServerFactory(),
}

#: The servers the request corpora are fed to: each HTTP/1.1 implementation, and HTTP/2.
SERVERS = [*HTTP1_IMPLEMENTATIONS, pytest.param("h2")]


def new_protocol(name: str, client: bool = False) -> HTTPOverTCPProtocol:
    """A protocol of implementation *name* ("h11", "httptools" or "h2")."""
    if name == "h2":
        return HTTP2ClientFactory()() if client else HTTP2ServerFactory()()
    client_factory, server_factory = http1_factories(name)
    return (client_factory if client else server_factory)()()


H1_REQUESTS = (
    b"POST /a?b=c HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    b"GET /b HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    b"GET /c HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
)


def h2_client_bytes() -> bytes:
    """A real HTTP/2 client byte stream: preface, settings, three requests with bodies."""
    client, server = HTTP2ClientFactory()(), HTTP2ServerFactory()()
    out = bytearray(client.bytes_to_send())
    for n in range(3):
        sid = client.get_available_stream_id()
        path = b"/%d" % n
        client.submit_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", b"a"),
                (b":path", path),
                (b"x-n", path),
            ],
        )
        client.submit_data(sid, b"body" * (n + 1))
        client.submit_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
        out += client.bytes_to_send()
    del server
    return bytes(out)


H2_REQUESTS = h2_client_bytes()


def feed(protocol: HTTPOverTCPProtocol, chunks: list[bytes]) -> list[Event]:
    """Feed chunks and collect events; any exception fails the test."""
    events: list[Event] = []
    for chunk in chunks:
        protocol.bytes_received(chunk)
        new = drain(protocol)
        events.extend(new)
        protocol.bytes_to_send()
    protocol.eof_received()
    events.extend(drain(protocol))
    protocol.bytes_to_send()
    return events


def merge_data(events: list[Event]) -> list[object]:
    """Normalise events so that different splits of the same bytes compare equal."""
    out: list[object] = []
    for event in events:
        if isinstance(event, DataReceived):
            last = out[-1] if out else None
            if isinstance(last, tuple) and last[0] == "data" and last[1] == event.stream_id:
                out[-1] = ("data", event.stream_id, last[2] + event.data, event.end_stream)
            else:
                out.append(("data", event.stream_id, event.data, event.end_stream))
        elif isinstance(event, ConnectionTerminated):
            out.append(("terminated", event.error_code))
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("name", SERVERS)
@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
@FUZZ
@given(data=st.lists(st.binary(max_size=200), max_size=8))
def test_random_bytes_never_raise(name: str, client: bool, data: list[bytes]) -> None:
    """Random bytes into any TCP protocol produce events or nothing, never an exception."""
    feed(new_protocol(name, client), data)


def mutate(base: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(base)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    return bytes(buf)


@pytest.mark.parametrize("version", SERVERS)
@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 10_000),
)
def test_mutated_requests_never_raise(version: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Valid request streams with flipped bytes and truncation end in events, never exceptions."""
    base = H2_REQUESTS if version == "h2" else H1_REQUESTS
    data = mutate(base, edits)[: max(1, cut % (len(base) + 1))]
    feed(new_protocol(version), [data])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return [c for c in chunks if c]


def serve_corpus(version: str, chunks: list[bytes]) -> list[object]:
    """The events a server of *version* reports for *chunks*, answering each finished HTTP/1 request."""
    server = new_protocol(version)
    events: list[Event] = []
    for chunk in chunks:
        server.bytes_received(chunk)
        while (event := server.next_event()) is not None:
            events.append(event)
            # Answer each finished HTTP/1 request so the next one is parsed.
            if version != "h2" and getattr(event, "end_stream", False):
                try:
                    server.submit_headers(event.stream_id, [(b":status", b"204")], end_stream=True)  # type: ignore[attr-defined]
                except LocalProtocolError:
                    pass  # the connection ended after the request (queued behind it)
    server.eof_received()
    events.extend(drain(server))
    return merge_data(events)


@pytest.mark.parametrize("version", SERVERS)
@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, 100_000), max_size=20))
def test_same_events_however_split(version: str, cuts: list[int]) -> None:
    """HTTP/1 and HTTP/2 servers report the same events whether bytes come whole or in pieces."""
    base = H2_REQUESTS if version == "h2" else H1_REQUESTS
    whole = serve_corpus(version, [base])
    assert serve_corpus(version, split(base, cuts)) == whole
    assert len(whole) >= 3


#: Bytes to flip in: all but the control characters that h11 takes in a field value and
#: llhttp refuses (RFC 9110 section 5.5 allows either), so that the two must agree.
AGREED_BYTES = st.integers(0, 255).filter(lambda b: b in (0, 9, 10, 13) or 0x20 <= b != 0x7F)


@pytest.mark.parametrize("version", HTTP1_IMPLEMENTATIONS[1:])
@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), AGREED_BYTES), max_size=3),
    cuts=st.lists(st.integers(0, 100_000), max_size=5),
)
def test_http1_implementations_agree(version: str, edits: list[tuple[int, int]], cuts: list[int]) -> None:
    """Another HTTP/1.1 implementation reports what h11 reports, error codes included, for mutated requests."""
    data = mutate(H1_REQUESTS, edits)
    assert serve_corpus(version, split(data, cuts)) == serve_corpus("h11", [data])


def test_h2_client_bytes_are_valid() -> None:
    """The fuzz corpus is real: a server parses it into three full requests."""
    server = HTTP2ServerFactory()()
    server.bytes_received(H2_REQUESTS)
    events = drain(server)
    ends = [e for e in events if getattr(e, "end_stream", False)]
    assert len(ends) == 3 and not any(isinstance(e, ConnectionTerminated) for e in events)


def test_h2_pair_smoke() -> None:
    """Sanity check of the helpers used above."""
    client, server = HTTP2ClientFactory()(), HTTP2ServerFactory()()
    exchange(client, server)
    assert drain(server) == []


H1_RESPONSES = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: t\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
)


def read_response(version: str, method: bytes, chunks: list[bytes]) -> list[object]:
    """The events a client of *version* reports for *chunks* answering one request."""
    client = new_protocol(version, client=True)
    sid = client.get_available_stream_id()
    request = [(b":method", method), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
    client.submit_headers(sid, request, end_stream=True)
    client.bytes_to_send()
    events = feed(client, chunks)
    return merge_data(events)


@pytest.mark.parametrize("version", HTTP1_IMPLEMENTATIONS[1:])
@FUZZ
@given(
    base=st.sampled_from(H1_RESPONSES),
    method=st.sampled_from([b"GET", b"HEAD"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), AGREED_BYTES), max_size=3),
    cuts=st.lists(st.integers(0, 100_000), max_size=5),
)
def test_http1_clients_agree(
    version: str, base: bytes, method: bytes, edits: list[tuple[int, int]], cuts: list[int]
) -> None:
    """Another HTTP/1.1 client reports what h11's reports for mutated responses, to GET and HEAD."""
    data = mutate(base, edits)
    assert read_response(version, method, split(data, cuts)) == read_response("h11", method, [data])
