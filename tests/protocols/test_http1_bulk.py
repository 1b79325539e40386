"""HTTP/1.1 bodies received in pieces: the same events whichever way the bytes are cut, bounded, uncopied."""

from __future__ import annotations

import random

import pytest

from tests.helpers import HTTP1_IMPLEMENTATIONS, drain, http1_factories, xfer
from trio_hface.events import ConnectionTerminated, DataReceived, Event, HeadersReceived
from trio_hface.protocols import HTTPOverTCPProtocol
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"), (b":path", b"/up")]


def response_bytes(impl: str, body: bytes, framing: str) -> tuple[HTTPOverTCPProtocol, bytes]:
    """A client that sent a GET, and the bytes of a server's response with *body* (sent in two pieces)."""
    client_factory, server_factory = http1_factories(impl)
    client, server = client_factory()(), server_factory()()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    xfer(client, server)
    head = [(b":status", b"200")]
    if framing == "content-length":
        head.append((b"content-length", b"%d" % len(body)))
    server.submit_headers(sid, head)
    server.submit_data(sid, body[: len(body) // 2])
    server.submit_data(sid, body[len(body) // 2 :], end_stream=True)
    return client, server.bytes_to_send()


def received(client: HTTPOverTCPProtocol, pieces: list[bytes]) -> list[Event]:
    """Feed *pieces* one by one, taking the events after each (as a reader and its application do)."""
    events: list[Event] = []
    for piece in pieces:
        client.bytes_received(piece)
        events += drain(client)
    return events


def summary(events: list[Event]) -> list[tuple[str, int, bytes, bool]]:
    """Events with consecutive data joined: what an application sees, whatever the piece sizes."""
    result: list[tuple[str, int, bytes, bool]] = []
    for event in events:
        if isinstance(event, DataReceived):
            if result and result[-1][0] == "data" and result[-1][1] == event.stream_id:
                _, sid, data, _ = result.pop()
                result.append(("data", sid, data + event.data, event.end_stream))
            else:
                result.append(("data", event.stream_id, event.data, event.end_stream))
        elif isinstance(event, HeadersReceived):
            result.append(("headers", event.stream_id, b"", event.end_stream))
        else:
            result.append((type(event).__name__, 0, b"", False))
    return [entry for entry in result if entry != ("data", entry[1], b"", False)]


@pytest.mark.parametrize("impl", HTTP1_IMPLEMENTATIONS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("seed", range(4))
def test_body_cut_anywhere_gives_the_same_events(impl: str, framing: str, seed: int) -> None:
    """A response body cut into random pieces (1 byte to 64 KiB) yields the same data and ends as in one piece."""
    body = random.Random(seed).randbytes(300_000)
    client, wire = response_bytes(impl, body, framing)
    expected = summary(received(client, [wire]))
    assert expected == [("headers", 1, b"", False), ("data", 1, body, True)]
    client, wire = response_bytes(impl, body, framing)
    rng = random.Random(seed)
    pieces = []
    while wire:
        size = rng.choice([1, 2, 5, 100, 4096, 16384, 65536])
        pieces.append(wire[:size])
        wire = wire[size:]
    assert summary(received(client, pieces)) == expected


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_pieces_are_handed_on_uncopied(framing: str) -> None:
    """A piece that lies wholly inside a body comes out of h11's protocol as the very object fed in."""
    body = bytes(range(256)) * 1024
    client, wire = response_bytes("h11", body, framing)
    start = wire.index(b"\r\n\r\n") + 4 + (len(b"%x\r\n" % (len(body) // 2)) if framing == "chunked" else 0)
    head, middle, rest = wire[:start], wire[start : start + 50_000], wire[start + 50_000 :]
    client.bytes_received(head)
    drain(client)
    client.bytes_received(middle)
    (event,) = drain(client)
    assert isinstance(event, DataReceived) and event.data is middle
    client.bytes_received(rest)
    assert summary(drain(client))[0] == ("data", 1, body[50_000:], True)


def test_unread_body_stays_bounded() -> None:
    """A peer sending a body far ahead of an application that takes nothing is cut off, as without the shortcut."""
    client_factory = HTTP1ServerFactory(max_buffer_size=256 * 1024)
    server = client_factory()
    client = HTTP1ClientFactory()()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [*POST, (b"content-length", b"%d" % (64 * 1024 * 1024))])
    server.bytes_received(client.bytes_to_send())
    assert isinstance(server.next_event(), HeadersReceived)
    piece = bytes(65536)
    sent = 0
    while not server.has_expired() and sent < 1000:
        server.bytes_received(piece)
        sent += 1
    # At most MAX_QUEUED_PIECES (16) pieces past h11, then 4 pieces fill its 256 KiB: the 21st is too many.
    assert sent == 21
    events = drain(server)
    assert isinstance(events[-1], ConnectionTerminated)
