"""Hostile input to the HTTP/1.1 and HTTP/2 protocols: events, never exceptions."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import drain, exchange
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


@FUZZ
@given(name=st.sampled_from(sorted(FACTORIES)), data=st.lists(st.binary(max_size=200), max_size=8))
def test_random_bytes_never_raise(name: str, data: list[bytes]) -> None:
    """Random bytes into any TCP protocol produce events or nothing, never an exception."""
    feed(FACTORIES[name](), data)


def mutate(base: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(base)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    return bytes(buf)


@FUZZ
@given(
    version=st.sampled_from(["h1", "h2"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 10_000),
)
def test_mutated_requests_never_raise(version: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Valid request streams with flipped bytes and truncation end in events, never exceptions."""
    base = H1_REQUESTS if version == "h1" else H2_REQUESTS
    data = mutate(base, edits)[: max(1, cut % (len(base) + 1))]
    server = HTTP1ServerFactory()() if version == "h1" else HTTP2ServerFactory()()
    feed(server, [data])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return [c for c in chunks if c]


@settings(max_examples=200, deadline=None)
@given(version=st.sampled_from(["h1", "h2"]), cuts=st.lists(st.integers(0, 100_000), max_size=20))
def test_same_events_however_split(version: str, cuts: list[int]) -> None:
    """HTTP/1 and HTTP/2 servers report the same events whether bytes come whole or in pieces."""
    base = H1_REQUESTS if version == "h1" else H2_REQUESTS

    def run(chunks: list[bytes]) -> list[object]:
        server = HTTP1ServerFactory()() if version == "h1" else HTTP2ServerFactory()()
        events: list[Event] = []
        for chunk in chunks:
            server.bytes_received(chunk)
            while (event := server.next_event()) is not None:
                events.append(event)
                # Answer each finished HTTP/1 request so the next one is parsed.
                if version == "h1" and getattr(event, "end_stream", False):
                    server.submit_headers(event.stream_id, [(b":status", b"204")], end_stream=True)  # type: ignore[attr-defined]
        return merge_data(events)

    whole = run([base])
    assert run(split(base, cuts)) == whole
    assert len(whole) >= 3


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
