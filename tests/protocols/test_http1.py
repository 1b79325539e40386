"""HTTP/1.1 sans-IO protocols (h11, and httptools where installed): client and server wired together in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from tests.helpers import HTTP1_IMPLEMENTATIONS, drain, http1_factories, xfer
from trio_hface.errors import LocalProtocolError
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    HeadersReceived,
)
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http1._common import HTTP1Base
from trio_hface.protocols.http1._factories import HTTP1FactoryBase

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"), (b":path", b"/x?y=1")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"), (b":path", b"/up")]


# The implementation under test: every test runs on each (see the fixture).
ClientFactory: type[HTTP1FactoryBase] = HTTP1ClientFactory
ServerFactory: type[HTTP1FactoryBase] = HTTP1ServerFactory


@pytest.fixture(autouse=True, params=HTTP1_IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[None]:
    global ClientFactory, ServerFactory
    ClientFactory, ServerFactory = http1_factories(request.param)
    yield
    ClientFactory, ServerFactory = HTTP1ClientFactory, HTTP1ServerFactory


def server_of(factory: HTTP1FactoryBase, tls_version: str | None = None) -> HTTP1Base:
    return cast(HTTP1Base, factory(tls_version=tls_version))


def pair() -> tuple[HTTP1Base, HTTP1Base]:
    return server_of(ClientFactory()), server_of(ServerFactory())


def test_get_round_trip() -> None:
    """A GET becomes a request line with Host, and comes back as HTTP/2-style headers."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    assert client.bytes_to_send() == b"GET /x?y=1 HTTP/1.1\r\nhost: example.com\r\n\r\n"
    server.bytes_received(b"GET /x?y=1 HTTP/1.1\r\nhost: example.com\r\n\r\n")
    assert drain(server) == [HeadersReceived(1, GET, end_stream=True)]
    server.submit_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    server.submit_data(1, b"hello", end_stream=True)
    events = xfer(server, client)
    assert events == [
        HeadersReceived(
            sid, [(b":status", b"200"), (b"content-type", b"text/plain"), (b"transfer-encoding", b"chunked")]
        ),
        DataReceived(sid, b"hello", end_stream=True),
    ]


def test_https_scheme_from_tls() -> None:
    """A server on TLS reports :scheme https."""
    server = server_of(ServerFactory(), "TLSv1.3")
    server.bytes_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    (event,) = drain(server)
    assert isinstance(event, HeadersReceived)
    assert (b":scheme", b"https") in event.headers


def test_post_with_body_and_content_length() -> None:
    """A request body with Content-Length arrives as data ending the stream."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [*POST, (b"content-length", b"6")])
    client.submit_data(sid, b"abc")
    client.submit_data(sid, b"def", end_stream=True)
    events = xfer(client, server)
    assert events[0] == HeadersReceived(1, [*POST, (b"content-length", b"6")])
    body = b"".join(e.data for e in events[1:] if isinstance(e, DataReceived))
    assert body == b"abcdef"
    assert isinstance(events[-1], DataReceived) and events[-1].end_stream


def test_chunked_body_of_unknown_length() -> None:
    """A body without Content-Length is sent chunked."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST)
    client.submit_data(sid, b"x" * 10)
    client.submit_data(sid, b"", end_stream=True)
    raw = client.bytes_to_send()
    assert b"transfer-encoding: chunked" in raw and raw.endswith(b"0\r\n\r\n")
    server.bytes_received(raw)
    events = drain(server)
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"x" * 10


def test_large_body_streams_through() -> None:
    """Several MiB move in pieces; the window is unlimited in HTTP/1.1."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST)
    assert client.get_send_window(sid) >= 2**31
    payload = bytes(range(256)) * (5 * 4096)
    received = bytearray()
    for start in range(0, len(payload), 65536):
        client.submit_data(sid, payload[start : start + 65536])
        for event in xfer(client, server):
            if isinstance(event, DataReceived):
                received += event.data
    client.submit_data(sid, b"", end_stream=True)
    events = xfer(client, server)
    assert events[-1] == DataReceived(1, b"", end_stream=True)
    assert bytes(received) == payload


def test_keep_alive_several_requests() -> None:
    """Requests follow each other on one connection, with new stream IDs."""
    client, server = pair()
    for n in range(3):
        sid = client.get_available_stream_id()
        assert sid == 1 + 2 * n
        client.submit_headers(sid, GET, end_stream=True)
        assert not client.is_available()
        (request,) = xfer(client, server)
        assert isinstance(request, HeadersReceived) and request.stream_id == sid
        server.submit_headers(sid, [(b":status", b"200"), (b"content-length", b"1")])
        server.submit_data(sid, b"!", end_stream=True)
        assert xfer(server, client)[-1] == DataReceived(sid, b"!", end_stream=True)
        assert client.is_available() and not client.has_expired()


def test_pipelined_requests_are_served_in_order() -> None:
    """Two requests sent at once are handed out one after the other."""
    server = server_of(ServerFactory())
    server.bytes_received(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    (first,) = drain(server)
    assert isinstance(first, HeadersReceived) and (b":path", b"/a") in first.headers
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    (second,) = drain(server)
    assert (
        isinstance(second, HeadersReceived) and second.stream_id == 3 and (b":path", b"/b") in second.headers
    )


def test_head_response_has_no_body_framing() -> None:
    """A response to HEAD that ends at once gets no Content-Length: 0."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [(b":method", b"HEAD"), *GET[1:]], end_stream=True)
    xfer(client, server)
    server.submit_headers(1, [(b":status", b"200"), (b"content-length", b"1000")], end_stream=True)
    events = xfer(server, client)
    assert events == [
        HeadersReceived(sid, [(b":status", b"200"), (b"content-length", b"1000")], end_stream=True)
    ]


def test_connection_close_expires() -> None:
    """A response with Connection: close leaves the connection expired."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    xfer(client, server)
    server.submit_headers(
        1, [(b":status", b"200"), (b"connection", b"close"), (b"content-length", b"0")], end_stream=True
    )
    xfer(server, client)
    assert client.has_expired() and server.has_expired() and not client.is_available()


def test_draining_server_adds_connection_close() -> None:
    """start_draining() makes the next response say Connection: close."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    xfer(client, server)
    server.start_draining()
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    assert b"connection: close" in server.bytes_to_send().lower()
    assert server.has_expired()


def test_peer_eof_mid_response() -> None:
    """A response cut short by EOF ends the connection, not with an exception: the stream never
    ended, and the code is 0 (the peer closed, it sent nothing wrong), as in HTTP/2."""
    client, _ = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    client.eof_received()
    events = drain(client)
    assert events[0] == HeadersReceived(sid, [(b":status", b"200"), (b"content-length", b"10")])
    assert events[1] == DataReceived(sid, b"abc")
    assert len(events) == 3 and isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == 0 and "closed by the peer" in str(events[-1].message)


def test_response_without_request_ends_the_connection() -> None:
    """A second response after the exchange is done ends the connection with 400, not an exception."""
    client, _ = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    client.bytes_received(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    events = drain(client)
    assert events[0] == HeadersReceived(sid, [(b":status", b"204")], end_stream=True)
    assert len(events) == 2 and isinstance(events[1], ConnectionTerminated) and events[1].error_code == 400


def test_garbage_request_gets_400() -> None:
    """A malformed request line is answered with 400 and ends the connection."""
    server = server_of(ServerFactory())
    server.bytes_received(b"\x00\x01 garbage\r\n\r\n")
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400
    assert server.bytes_to_send().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert server.has_expired()
    server.bytes_received(b"more")
    assert drain(server) == []


def test_oversized_headers_get_431() -> None:
    """A header block over the limit is refused with 431."""
    server = server_of(ServerFactory(max_header_size=1024))
    server.bytes_received(b"GET / HTTP/1.1\r\nHost: a\r\nx-big: " + b"a" * 2000 + b"\r\n\r\n")
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 431
    assert server.bytes_to_send().startswith(b"HTTP/1.1 431 ")


def test_input_beyond_buffer_limit_is_refused() -> None:
    """A peer that sends far ahead of the application is cut off, not buffered."""
    server = server_of(ServerFactory(max_header_size=1024, max_buffer_size=4096))
    server.bytes_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
    server.bytes_received(b"x" * 3000)
    server.bytes_received(b"x" * 3000)
    events = drain(server)
    assert isinstance(events[-1], ConnectionTerminated)


def test_missing_host_is_400() -> None:
    """An HTTP/1.1 request without Host is rejected (RFC 9112 section 3.2)."""
    server = server_of(ServerFactory())
    server.bytes_received(b"GET / HTTP/1.1\r\n\r\n")
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400


def test_absolute_form_target() -> None:
    """An absolute-form target is split into :scheme, :authority and :path."""
    server = server_of(ServerFactory())
    server.bytes_received(b"GET http://other:8080/p?q HTTP/1.1\r\nHost: other:8080\r\n\r\n")
    (event,) = drain(server)
    assert isinstance(event, HeadersReceived)
    assert list(event.headers[:4]) == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"other:8080"),
        (b":path", b"/p?q"),
    ]


def test_connect_tunnel() -> None:
    """CONNECT opens a tunnel: raw bytes become data both ways, end_stream half-closes."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")])
    assert client.get_send_window(sid) == 0
    assert xfer(client, server) == [
        HeadersReceived(1, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")])
    ]
    server.submit_headers(1, [(b":status", b"200")])
    assert xfer(server, client) == [HeadersReceived(sid, [(b":status", b"200")])]
    assert client.get_send_window(sid) > 0
    client.submit_data(sid, b"\x16\x03\x01 tls bytes")
    assert xfer(client, server) == [DataReceived(1, b"\x16\x03\x01 tls bytes")]
    server.submit_data(1, b"reply", end_stream=True)
    assert server.eof_to_send() and not server.eof_to_send()
    assert xfer(server, client) == [DataReceived(sid, b"reply")]
    client.eof_received()
    assert drain(client) == [DataReceived(sid, b"", end_stream=True)]
    client.submit_data(sid, b"", end_stream=True)
    assert client.eof_to_send()
    assert drain(client) == [ConnectionTerminated(0)]


def test_connect_refused_is_a_normal_response() -> None:
    """A non-2xx answer to CONNECT is an ordinary response with a body."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [(b":method", b"CONNECT"), (b":authority", b"blocked:443")])
    xfer(client, server)
    server.submit_headers(1, [(b":status", b"403"), (b"content-length", b"2")])
    server.submit_data(1, b"no", end_stream=True)
    events = xfer(server, client)
    assert events[-1] == DataReceived(sid, b"no", end_stream=True)


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"GET"), (b":path", b"/")],  # no :scheme
        [*GET, (b"bad name", b"v")],
        [*GET, (b"x", b"line\r\nbreak")],
        [*GET, (b"x", b" padded")],
        [(b":status", b"200")],
        [*GET, (b":extra", b"1")],
    ],
)
def test_invalid_request_headers_raise(headers: list[tuple[bytes, bytes]]) -> None:
    """Invalid outgoing headers raise LocalProtocolError and leave the connection usable."""
    client, _ = pair()
    sid = client.get_available_stream_id()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(sid, headers)
    assert client.is_available()
    client.submit_headers(sid, GET, end_stream=True)


def test_misuse_raises_typed_errors() -> None:
    """Wrong stream IDs and a second request before the first is answered raise LocalProtocolError.

    (Server-opened streams and data after end_stream: tests/protocols/test_versions.py.)
    """
    client, _ = pair()
    sid = client.get_available_stream_id()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(sid + 2, GET)
    client.submit_headers(sid, GET, end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_data(99, b"x")
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()


def test_content_length_overrun_raises() -> None:
    """More data than the declared Content-Length is the caller's error."""
    client, _ = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [*POST, (b"content-length", b"2")])
    with pytest.raises(LocalProtocolError):
        client.submit_data(sid, b"toolong")


def test_server_upgrade_tunnel_carries_bytes_both_ways() -> None:
    """After its 101 Switching Protocols, a server sends the tunnel's bytes as data of the stream."""
    server = server_of(ServerFactory())
    server.bytes_received(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nhi")
    (request,) = drain(server)
    assert isinstance(request, HeadersReceived) and request.end_stream
    server.submit_headers(1, [(b":status", b"101"), (b"connection", b"upgrade"), (b"upgrade", b"echo")])
    assert server.bytes_to_send().startswith(b"HTTP/1.1 101 ")
    assert drain(server) == [DataReceived(1, b"hi")]
    server.submit_data(1, b"hello")
    assert server.bytes_to_send() == b"hello"
    server.bytes_received(b" there")
    assert drain(server) == [DataReceived(1, b" there")]
    server.submit_data(1, b"", end_stream=True)
    assert server.eof_to_send()


def test_has_output_tells_when_there_is_something_to_send() -> None:
    """Receiving a request body makes nothing to send; a response does (the writer's wake-up hint)."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [*POST, (b"content-length", b"3")])
    assert client.has_output()
    server.bytes_received(client.bytes_to_send())
    assert not client.has_output()
    client.submit_data(sid, b"abc", end_stream=True)
    server.bytes_received(client.bytes_to_send())
    drain(server)
    assert not server.has_output()
    server.submit_headers(sid, [(b":status", b"204")], end_stream=True)
    assert server.has_output()
    server.bytes_to_send()
    assert not server.has_output()


WRITES = {
    "http/1.0 peer, unknown length": (b"GET / HTTP/1.0\r\n\r\n", [(b":status", b"200")], [b"abc", b""]),
    "http/1.0 peer, HEAD": (b"HEAD / HTTP/1.0\r\n\r\n", [(b":status", b"200")], [b""]),
    "chunked with trailers": (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        [(b":status", b"200"), (b"Transfer-Encoding", b"chunked")],
        [b"ab", b"", b"cd"],
    ),
    "client asks to close": (
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        [(b":status", b"200"), (b"connection", b"keep-alive, x-opt"), (b"content-length", b"2")],
        [b"ok"],
    ),
    "HEAD, unknown length": (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", [(b":status", b"200")], [b""]),
    "204 without framing": (b"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", [(b":status", b"204")], [b""]),
    "informational first": (
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        [(b":status", b"100")],
        [b"1xx"],
    ),
}


@pytest.mark.parametrize("case", sorted(WRITES))
def test_responses_are_written_as_h11_writes_them(case: str) -> None:
    """Every implementation puts the same response bytes on the wire as h11 (framing, Connection, chunks)."""
    raw, headers, pieces = WRITES[case]

    def written(factory: type[HTTP1FactoryBase]) -> bytes:
        server = server_of(factory())
        server.bytes_received(raw)
        (request,) = drain(server)
        assert isinstance(request, HeadersReceived) and request.end_stream
        server.submit_headers(1, headers, end_stream=not pieces)
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            if piece == b"1xx":
                server.submit_headers(1, [(b":status", b"200"), (b"x-after", b"100")], end_stream=True)
            elif last and case == "chunked with trailers":
                server.submit_headers(1, [(b"x-sum", b"1")], end_stream=True)
            else:
                server.submit_data(1, piece, end_stream=last)
        return server.bytes_to_send()

    assert written(ServerFactory) == written(HTTP1ServerFactory)


def test_requests_are_written_as_h11_writes_them() -> None:
    """Every implementation puts the same request bytes on the wire as h11 (Host, chunks, trailers, lengths)."""

    def written(factory: type[HTTP1FactoryBase]) -> bytes:
        client = server_of(factory())
        out = b""
        for headers, pieces, trailers in (
            ([*POST, (b"x-a", b"1")], [b"abc", b"", b"de"], [(b"x-sum", b"2")]),
            ([*POST, (b"Content-Length", b"3")], [b"ab", b"c"], []),
            ([*GET, (b"host", b"ignored"), (b"connection", b"close")], [], []),
        ):
            sid = client.get_available_stream_id()
            client.submit_headers(sid, headers, end_stream=not pieces)
            for piece in pieces:
                client.submit_data(sid, piece)
            if trailers:
                client.submit_headers(sid, trailers, end_stream=True)
            elif pieces:
                client.submit_data(sid, b"", end_stream=True)
            out += client.bytes_to_send()
            client.bytes_received(b"HTTP/1.1 204 No Content\r\n\r\n")
            drain(client)
        return out

    assert written(ClientFactory) == written(HTTP1ClientFactory)


@pytest.mark.parametrize("control", [b"\x0b", b"\x0c"])
@pytest.mark.parametrize("kind", ["request", "response", "informational"])
def test_vertical_tab_and_form_feed_are_never_sent(control: bytes, kind: str) -> None:
    """RFC 9110 section 5.5: VT and FF have no place in a field value; a request, a response or a
    1xx that holds one is refused (LocalProtocolError) and nothing is written; a tab is fine."""
    client, server = pair()
    bad = (b"x-bad", b"a" + control + b"b")
    if kind == "request":
        with pytest.raises(LocalProtocolError, match="x-bad"):
            client.submit_headers(client.get_available_stream_id(), [*GET, bad], end_stream=True)
        assert client.bytes_to_send() == b""
        client.submit_headers(client.get_available_stream_id(), [*GET, (b"x-ok", b"a\tb")], end_stream=True)
        assert b"x-ok: a\tb\r\n" in client.bytes_to_send()
        return
    server.bytes_received(b"GET / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n")
    drain(server)
    status = b"100" if kind == "informational" else b"200"
    with pytest.raises(LocalProtocolError, match="x-bad"):
        server.submit_headers(1, [(b":status", status), bad])
    assert server.bytes_to_send() == b""
    server.submit_headers(1, [(b":status", status), (b"x-ok", b"a\tb")])
    assert b"x-ok: a\tb\r\n" in server.bytes_to_send()
