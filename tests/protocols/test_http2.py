"""HTTP/2 sans-IO protocol (h2): client and server wired together in memory."""

from __future__ import annotations

import h2.stream
import hpack
import hyperframe.frame
import pytest

from tests.helpers import drain, exchange, h2_frames, xfer
from trio_hface.errors import LocalProtocolError, StreamResetByPeerError
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    PingAckReceived,
    StreamResetReceived,
    StreamResetSent,
)
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ProtocolImpl, HTTP2ServerFactory

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/up")]
OK = [(b":status", b"200")]


def pair(
    client_factory: HTTP2ClientFactory | None = None, server_factory: HTTP2ServerFactory | None = None
) -> tuple[HTTP2ProtocolImpl, HTTP2ProtocolImpl]:
    client = (client_factory or HTTP2ClientFactory())()
    server = (server_factory or HTTP2ServerFactory())()
    exchange(client, server)
    assert drain(client) == [] and drain(server) == []
    return client, server


def test_get_round_trip() -> None:
    """A GET and its response keep their HTTP/2 headers and end_stream flags."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    assert xfer(client, server) == [HeadersReceived(sid, GET, end_stream=True)]
    server.submit_headers(sid, [*OK, (b"content-type", b"text/plain")])
    server.submit_data(sid, b"It works!", end_stream=True)
    assert xfer(server, client) == [
        HeadersReceived(sid, [*OK, (b"content-type", b"text/plain")]),
        DataReceived(sid, b"It works!", end_stream=True),
    ]


def test_post_with_body() -> None:
    """A request body arrives as data; the last piece ends the stream."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST)
    client.submit_data(sid, b"abc")
    client.submit_data(sid, b"", end_stream=True)
    assert xfer(client, server) == [
        HeadersReceived(sid, POST),
        DataReceived(sid, b"abc"),
        DataReceived(sid, b"", end_stream=True),
    ]


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_body_larger_than_every_window(direction: str) -> None:
    """5 MiB move in window-sized pieces, the sender waiting for credit between them."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST, end_stream=direction == "download")
    xfer(client, server)
    sender, receiver = (client, server) if direction == "upload" else (server, client)
    if direction == "download":
        server.submit_headers(sid, OK)
        xfer(server, client)
    payload = bytes(range(251)) * (5 * 1024 * 1024 // 251)
    sent = 0
    received = bytearray()
    ended = False
    waits = 0
    while not ended:
        window = sender.get_send_window(sid)
        if window == 0:
            waits += 1
        piece = payload[sent : sent + window]
        sent += len(piece)
        sender.submit_data(sid, piece, end_stream=sent == len(payload))
        for event in xfer(sender, receiver):
            assert isinstance(event, DataReceived)
            received += event.data
            ended = event.end_stream
        exchange(sender, receiver)  # WINDOW_UPDATE back to the sender
    assert bytes(received) == payload
    # The default windows (1 MiB per stream, 2 MiB per connection) were exhausted.
    assert sent > 2 * 1024 * 1024


def test_data_is_split_at_max_frame_size() -> None:
    """Data larger than the peer's SETTINGS_MAX_FRAME_SIZE goes out in several frames."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST)
    xfer(client, server)
    client.submit_data(sid, b"z" * 40000, end_stream=True)
    assert [frame.body_len for frame in h2_frames(client.bytes_to_send())] == [16384, 16384, 7232]


def test_reset_of_unseen_stream_is_dropped() -> None:
    """A stream reset before the application saw it vanishes with its events (rapid reset)."""
    client, server = pair()
    for _ in range(50):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, POST)
        client.submit_data(sid, b"x" * 1000)
        client.submit_stream_reset(sid)
    server.bytes_received(client.bytes_to_send())
    assert drain(server) == []
    # The dropped data returned its credit: the connection still moves data.
    exchange(client, server)
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    assert xfer(client, server) == [HeadersReceived(sid, GET, end_stream=True)]


def test_close_with_error() -> None:
    """submit_close with an error sends GOAWAY; the peer sees GoawayReceived and ConnectionTerminated."""
    client, server = pair()
    client.submit_close(client.error_codes.protocol_error)
    assert drain(client) == [ConnectionTerminated(1)]
    assert xfer(client, server) == [GoawayReceived(0, 1), ConnectionTerminated(1)]
    assert server.has_expired()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, GET)


def test_hundred_concurrent_streams() -> None:
    """100 streams run at once; the peer's MAX_CONCURRENT_STREAMS is respected."""
    client, server = pair(server_factory=HTTP2ServerFactory(max_concurrent_streams=100))
    ids = []
    while client.is_available():
        sid = client.get_available_stream_id()
        client.submit_headers(sid, [*GET[:3], (b":path", b"/%d" % sid)], end_stream=True)
        ids.append(sid)
    assert len(ids) == 100
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    requests = xfer(client, server)
    assert [e.stream_id for e in requests if isinstance(e, HeadersReceived)] == ids
    for sid in reversed(ids):
        server.submit_headers(sid, OK)
        server.submit_data(sid, b"%d" % sid, end_stream=True)
    responses = xfer(server, client)
    bodies = {e.stream_id: e.data for e in responses if isinstance(e, DataReceived)}
    assert bodies == {sid: b"%d" % sid for sid in ids}
    assert client.is_available()


def _walked_open_streams(protocol: HTTP2ProtocolImpl, parity: int) -> int:
    """The open streams of one parity, counted as h2 itself counts them (walking every stream)."""
    return sum(1 for sid, stream in protocol._h2.streams.items() if stream.open and sid % 2 == parity)


def _counted_open_streams(protocol: HTTP2ProtocolImpl) -> int:
    """The open streams that the client opened, as the protocol's h2 counts them."""
    return int(protocol._h2.open_outbound_streams if protocol._client else protocol._h2.open_inbound_streams)


def test_open_streams_are_counted_as_they_change_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The open-stream counts follow opens, ends and resets both ways, and asking for them walks no stream."""
    client, server = pair(server_factory=HTTP2ServerFactory(max_concurrent_streams=100))
    for count in (10, 100):
        ids: list[int] = []
        while len(ids) < count:
            sid = client.get_available_stream_id()
            client.submit_headers(sid, [*GET[:3], (b":path", b"/%d" % sid)], end_stream=sid % 4 == 1)
            ids.append(sid)
        xfer(client, server)
        assert _counted_open_streams(client) == _walked_open_streams(client, 1) == count
        assert _counted_open_streams(server) == _walked_open_streams(server, 1) == count
        walked = 0

        def counted(stream: h2.stream.H2Stream) -> bool:
            nonlocal walked
            walked += 1
            return bool(h2.stream.STREAM_OPEN[stream.state_machine.state])

        with monkeypatch.context() as patched:
            patched.setattr(h2.stream.H2Stream, "open", property(counted))
            for _ in range(5):
                assert client.is_available() == (count < 100)
        assert walked == 0  # however many streams are open
        for n, sid in enumerate(ids):  # a third reset by the server, a third answered, a third reset by us
            if n % 3 == 0:
                server.submit_stream_reset(sid, 8)
            elif n % 3 == 1:
                server.submit_headers(sid, OK, end_stream=True)
            else:
                client.submit_stream_reset(sid, 8)
        exchange(client, server)
        drain(client), drain(server)
        for protocol in (client, server):
            assert _counted_open_streams(protocol) == _walked_open_streams(protocol, 1)
        # The answered requests that the client had not ended are still open on both sides.
        half_open = [sid for n, sid in enumerate(ids) if n % 3 == 1 and sid % 4 != 1]
        assert _counted_open_streams(client) == len(half_open)
        for sid in half_open:
            client.submit_data(sid, b"", end_stream=True)
        exchange(client, server)
        drain(client), drain(server)
        assert _counted_open_streams(client) == _counted_open_streams(server) == 0
        assert not client._h2.streams and not server._h2.streams  # closed streams are let go


def test_ping_ack() -> None:
    """A PING we send is acknowledged as PingAckReceived."""
    client, server = pair()
    client.submit_ping(b"12345678")
    exchange(client, server)
    assert drain(client) == [PingAckReceived(b"12345678")]
    with pytest.raises(LocalProtocolError):
        client.submit_ping(b"short")


def test_connect_and_extended_connect() -> None:
    """CONNECT passes h2's validation; a server advertises extended CONNECT by default, as on HTTP/3."""
    client, server = pair()
    sid = client.get_available_stream_id()
    connect = [(b":method", b"CONNECT"), (b":authority", b"example.com:443")]
    client.submit_headers(sid, connect)
    assert xfer(client, server) == [HeadersReceived(sid, connect)]
    sid = client.get_available_stream_id()
    websocket = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *GET[1:]]
    client.submit_headers(sid, websocket)
    assert xfer(client, server) == [HeadersReceived(sid, websocket)]


@pytest.mark.parametrize(
    "headers",
    [
        [*GET, (b"connection", b"keep-alive")],
        [*GET, (b"Upper", b"case")],
        [*GET, (b"te", b"gzip")],
        [(b":method", b"GET"), (b":path", b"/")],
        [*GET, (b"x", b"a\nb")],
        [(b"x", b"1"), *GET],
    ],
)
def test_invalid_outgoing_headers_raise(headers: list[tuple[bytes, bytes]]) -> None:
    """Invalid outgoing headers raise LocalProtocolError; the connection stays usable."""
    client, server = pair()
    sid = client.get_available_stream_id()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(sid, headers, end_stream=True)
    client.submit_headers(client.get_available_stream_id(), GET, end_stream=True)
    assert isinstance(xfer(client, server)[0], HeadersReceived)


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ([*GET, (b"Bad", b"1")], None),  # upper case name
        ([*GET, (b"connection", b"keep-alive")], None),  # connection-specific
        ([(b":method", b"GET"), (b":path", b"/")], None),  # no :scheme
        ([*GET, (b"content-length", b"x")], None),  # not a number
        ([*GET, (b"content-length", b"5")], b"too long by far"),  # body longer than announced
        # RFC 9113 section 8.2.1 (h2 >= 4.3): characters no field may carry.
        ([*GET, (b"x-nul", b"a\x00b")], None),
        ([*GET, (b"x-cr", b"a\rb")], None),
        ([*GET, (b"x-lf", b"a\nb")], None),
        ([*GET, (b"bad name", b"1")], None),  # a space in the name
        ([*GET, (b"x-Mixed", b"1")], None),  # upper case after the first character
        # RFC 9110 section 8.6 (h2 >= 4.4): conflicting values, and values off its grammar.
        ([*POST, (b"content-length", b"5"), (b"content-length", b"6")], b"12345"),
        ([*POST, (b"content-length", b"5, 6")], b"12345"),
        ([*POST, (b"content-length", b"+5")], b"12345"),
        # Checked by the rules every version shares (validate_headers), as HTTP/3 is.
        ([*GET, (b'x"quoted', b"1")], None),  # RFC 9110 section 5.1: a name is a token
        ([*GET, (b"x-ws", b"a ")], None),  # surrounding whitespace
        ([*GET, (b"te", b"gzip")], None),  # te other than trailers
        ([*GET, (b"host", b"elsewhere")], None),  # host differs from :authority
        ([*GET, (b":path", b"/again")], None),  # a repeated pseudo-header
        ([*GET[:2], (b"x", b"1"), *GET[2:]], None),  # a pseudo-header after a regular field
        ([*GET, (b":status", b"200")], None),  # a response's pseudo-header
        ([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")], None),  # no authority
    ],
)
def test_malformed_request_is_a_stream_error(headers: list[tuple[bytes, bytes]], data: bytes | None) -> None:
    """RFC 9113 section 8.1.1: a malformed request gets RST_STREAM PROTOCOL_ERROR; other streams go on."""
    client, server = pair()
    # Bypass our validation: write the frames through h2 itself.
    client._h2.config.validate_outbound_headers = False
    client._h2.config.normalize_outbound_headers = False
    client._h2.send_headers(1, headers, end_stream=data is None)
    if data is not None:
        client._h2.send_data(1, data, end_stream=True)
    client._h2.send_headers(3, GET, end_stream=True)
    events = xfer(client, server)
    assert StreamResetSent(1, 1) in events
    (good,) = [e for e in events if isinstance(e, HeadersReceived) and e.stream_id == 3]
    assert good.end_stream
    assert not any(isinstance(e, ConnectionTerminated) for e in events)
    assert StreamResetReceived(1, 1) in xfer(server, client)
    server.submit_headers(3, [(b":status", b"200")], end_stream=True)
    assert HeadersReceived(3, [(b":status", b"200")], end_stream=True) in xfer(server, client)
    assert not server.has_expired()


def test_malformed_response_is_a_stream_error() -> None:
    """A response with an invalid field resets its stream; the client's connection goes on."""
    client, server = pair()
    client.submit_headers(1, GET, end_stream=True)
    xfer(client, server)
    server._h2.config.validate_outbound_headers = False
    server._h2.send_headers(1, [(b":status", b"200"), (b"x-bad", b"a\x00b")], end_stream=True)
    events = xfer(server, client)
    assert events == [StreamResetSent(1, 1)]
    client.submit_headers(3, GET, end_stream=True)
    assert isinstance(xfer(client, server)[0], HeadersReceived)


def test_malformed_trailers_are_a_stream_error() -> None:
    """Trailers with a pseudo-header reset their stream; the connection goes on."""
    client, server = pair()
    client.submit_headers(1, POST)
    client.submit_data(1, b"x")
    xfer(client, server)
    client._h2.send_headers(1, [(b":path", b"/")], end_stream=True)
    assert StreamResetSent(1, 1) in xfer(client, server)
    client.submit_headers(3, GET, end_stream=True)
    assert isinstance(xfer(client, server)[0], HeadersReceived)


def _goaway_code(data: bytes) -> int | None:
    """The error code of the GOAWAY frame in *data*, if there is one."""
    codes = [f.error_code for f in h2_frames(data) if isinstance(f, hyperframe.frame.GoAwayFrame)]
    assert len(codes) <= 1
    return codes[0] if codes else None


def _header_frame(block: bytes, stream_id: int = 1) -> bytes:
    frame = hyperframe.frame.HeadersFrame(stream_id)
    frame.data = block
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


#: GET encoded by hand (RFC 7541 appendix A): :method GET, :scheme https, :path /, then
#: :authority as a literal with an indexed name.
_REST_OF_GET = b"\x82\x87\x84\x41\x0bexample.com"


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b"\xff\xff\xff\xff\xff", id="truncated-integer"),
        pytest.param(b"\xbf\x7f", id="index-out-of-range"),  # index 63: 61 static entries, an empty table
        pytest.param(b"\x3f\xe1\xff\x03" + _REST_OF_GET, id="table-size-above-limit"),  # 65536 > 4096
        pytest.param(_REST_OF_GET + b"\x20", id="table-size-update-after-a-field"),
        pytest.param(b"\x82\xff" + b"\xff" * 20 + b"\x01", id="integer-overflow"),
        pytest.param(b"\x00\x81\xff\x81\xff", id="bad-huffman"),
    ],
)
def test_hpack_errors_are_compression_errors(block: bytes) -> None:
    """RFC 9113 section 4.3: a header block that cannot be decoded is GOAWAY COMPRESSION_ERROR (0x9)."""
    _client, server = pair()
    server.bytes_received(_header_frame(block))
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 9
    assert _goaway_code(server.bytes_to_send()) == 9
    assert server.has_expired()


def test_oversized_header_list_stays_enhance_your_calm() -> None:
    """A header list over our limit decodes, but is refused as abuse: ENHANCE_YOUR_CALM, not COMPRESSION_ERROR."""
    _client, server = pair(server_factory=HTTP2ServerFactory(max_header_list_size=4096))
    server.bytes_received(_header_frame(hpack.Encoder().encode([*GET, (b"x-big", b"a" * 8000)])))
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 0xB


def _frame_header(length: int, frame_type: int, stream_id: int, flags: int = 0) -> bytes:
    return length.to_bytes(3, "big") + bytes([frame_type, flags]) + stream_id.to_bytes(4, "big")


@pytest.mark.parametrize(
    ("frame_type", "stream_id"),
    [(0x0, 1), (0x1, 3), (0x9, 1), (0x4, 0), (0x6, 0)],
    ids=["DATA", "HEADERS", "CONTINUATION", "SETTINGS", "PING"],
)
@pytest.mark.parametrize("side", ["server", "client"])
def test_oversized_frame_is_refused_on_its_header(side: str, frame_type: int, stream_id: int) -> None:
    """RFC 9113 section 4.2: a frame header announcing more than our SETTINGS_MAX_FRAME_SIZE gets
    GOAWAY FRAME_SIZE_ERROR as soon as its 9 bytes arrive (trickled one by one), before any payload."""
    client, server = pair()
    client.submit_headers(1, POST)
    xfer(client, server)
    receiver = server if side == "server" else client
    header = _frame_header((1 << 24) - 1, frame_type, stream_id)
    for byte in header[:-1]:
        receiver.bytes_received(bytes([byte]))
        assert drain(receiver) == [] and receiver.bytes_to_send() == b""
    receiver.bytes_received(header[-1:])
    (event,) = drain(receiver)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 6
    assert _goaway_code(receiver.bytes_to_send()) == 6
    receiver.bytes_received(b"x" * 65536)  # the payload that follows is ignored
    assert drain(receiver) == []


def test_frame_boundaries_are_followed_across_reads() -> None:
    """Frames of exactly SETTINGS_MAX_FRAME_SIZE, fed in odd pieces, pass; an oversized header
    after them is refused, and what came before it in the same read is reported."""
    client, server = pair()
    client.submit_headers(1, POST)
    client.submit_data(1, b"a" * 16384)
    client.submit_data(1, b"b" * 16384)
    data = client.bytes_to_send()
    *pieces, last = [data[start : start + 999] for start in range(0, len(data), 999)]
    for piece in pieces:
        server.bytes_received(piece)
    server.bytes_received(last + _frame_header(16385, 0x0, 1) + b"x" * 10)
    events = drain(server)
    assert events[0] == HeadersReceived(1, POST)
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"a" * 16384 + b"b" * 16384
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error_code == 6


_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _ping() -> bytes:
    ping = hyperframe.frame.PingFrame(0)
    ping.opaque_data = b"12345678"
    return bytes(ping.serialize())


def _settings_ack() -> bytes:
    return bytes(hyperframe.frame.SettingsFrame(0, flags=["ACK"]).serialize())


def _window_update() -> bytes:
    frame = hyperframe.frame.WindowUpdateFrame(0)
    frame.window_increment = 1000
    return bytes(frame.serialize())


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(_ping(), id="PING"),
        pytest.param(_header_frame(hpack.Encoder().encode(GET)), id="HEADERS"),
        pytest.param(_window_update(), id="WINDOW_UPDATE"),
        pytest.param(_settings_ack(), id="SETTINGS-ACK"),
    ],
)
def test_client_preface_must_be_followed_by_settings(first: bytes) -> None:
    """RFC 9113 section 3.4: a first frame after the client preface that is not SETTINGS gets GOAWAY
    PROTOCOL_ERROR at once (h2 answered a PING and served a HEADERS)."""
    server = HTTP2ServerFactory()()
    server.bytes_to_send()  # our own SETTINGS
    server.bytes_received(_PREFACE + first)
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 1
    assert _goaway_code(server.bytes_to_send()) == 1


@pytest.mark.parametrize(
    "first",
    [pytest.param(_ping(), id="PING"), pytest.param(_window_update(), id="WINDOW_UPDATE")],
)
def test_server_first_frame_must_be_settings(first: bytes) -> None:
    """RFC 9113 section 3.4: a server whose first frame is not SETTINGS gets GOAWAY PROTOCOL_ERROR."""
    client = HTTP2ClientFactory()()
    client.bytes_to_send()  # preface and SETTINGS
    client.bytes_received(first + bytes(hyperframe.frame.SettingsFrame(0).serialize()))
    (event,) = drain(client)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 1
    assert _goaway_code(client.bytes_to_send()) == 1


def test_settings_first_then_anything() -> None:
    """A preface and SETTINGS in one read, then PING, are served (the rule is only about the first frame)."""
    server = HTTP2ServerFactory()()
    server.bytes_to_send()
    server.bytes_received(_PREFACE + bytes(hyperframe.frame.SettingsFrame(0).serialize()) + _ping())
    assert drain(server) == []
    frames = h2_frames(server.bytes_to_send())
    assert [type(f).__name__ for f in frames] == ["SettingsFrame", "PingFrame"]


def test_garbage_is_a_connection_error() -> None:
    """Bytes that are not HTTP/2 end the connection with GOAWAY, not an exception."""
    server = HTTP2ServerFactory()()
    server.bytes_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 1
    assert server.has_expired()
    server.bytes_received(b"more")
    assert drain(server) == []


def test_events_before_a_broken_frame_are_kept() -> None:
    """What arrived before a broken frame in the same read is still reported."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    bad = hyperframe.frame.WindowUpdateFrame(0)
    bad.window_increment = 0  # RFC 9113 section 6.9: a zero increment is PROTOCOL_ERROR
    server.bytes_received(client.bytes_to_send() + bad.serialize())
    events = drain(server)
    assert events[0] == HeadersReceived(sid, GET, end_stream=True)
    assert isinstance(events[-1], ConnectionTerminated)


def test_oversized_header_list_is_refused() -> None:
    """A header list over SETTINGS_MAX_HEADER_LIST_SIZE ends the connection."""
    client, server = pair(server_factory=HTTP2ServerFactory(max_header_list_size=4096))
    sid = client.get_available_stream_id()
    client.submit_headers(sid, [*GET, (b"x-big", b"a" * 8000)], end_stream=True)
    events = xfer(client, server)
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error_code != 0


def test_misuse_raises_typed_errors() -> None:
    """Wrong stream IDs raise LocalProtocolError.

    (Server-opened streams and data after end_stream: tests/protocols/test_versions.py.)
    """
    client, _ = pair()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(7, GET)
    with pytest.raises(LocalProtocolError):
        client.get_send_window(99)


def test_rapid_reset_flood_gets_enhance_your_calm() -> None:
    """A client that opens and resets streams without end is sent GOAWAY ENHANCE_YOUR_CALM."""
    client, server = pair()
    terminated = None
    for _ in range(2000):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, GET)
        client.submit_stream_reset(sid, 8)
        for event in xfer(client, server):
            assert not isinstance(event, HeadersReceived), "reset before being seen: never reported"
            if isinstance(event, ConnectionTerminated):
                terminated = event
        if terminated is not None:
            break
    assert terminated is not None and terminated.error_code == 0xB
    assert any(isinstance(e, GoawayReceived) and e.error_code == 0xB for e in xfer(server, client))


def test_a_client_that_cancels_some_requests_is_served() -> None:
    """Cancelling a third of many requests is normal browsing, not an attack."""
    client, server = pair()
    for n in range(3000):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, GET, end_stream=True)
        if n % 3 == 0:
            client.submit_stream_reset(sid, 8)
        for event in xfer(client, server):
            assert not isinstance(event, ConnectionTerminated)
            if isinstance(event, HeadersReceived):
                server.submit_headers(event.stream_id, OK, end_stream=True)
        xfer(server, client)
    assert not server.has_expired()


def test_sending_on_a_stream_the_peer_reset_says_so() -> None:
    """Data for a stream the peer reset raises StreamResetByPeerError with the peer's code."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST)
    xfer(client, server)
    server.submit_stream_reset(sid, 8)
    assert StreamResetReceived(sid, 8) in xfer(server, client)
    for call in (lambda: client.submit_data(sid, b"late"), lambda: client.get_send_window(sid)):
        with pytest.raises(StreamResetByPeerError) as raised:
            call()
        assert raised.value.error_code == 8 and raised.value.stream_id == sid
        assert isinstance(raised.value, LocalProtocolError)
    with pytest.raises(LocalProtocolError) as unknown:
        client.submit_data(99, b"never opened")
    assert not isinstance(unknown.value, StreamResetByPeerError)


def test_ping_flood_without_reading_gets_enhance_your_calm() -> None:
    """PINGs whose acknowledgements pile up unsent (the peer does not read) end the connection."""
    _client, server = pair()
    frames = b""
    for n in range(1001):
        ping = hyperframe.frame.PingFrame(0)
        ping.opaque_data = n.to_bytes(8, "big")
        frames += ping.serialize()
    server.bytes_received(frames)  # nothing taken from the server meanwhile
    (event,) = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 0xB


def test_pings_that_are_answered_are_fine() -> None:
    """Many PINGs are no problem while their acknowledgements go out."""
    client, server = pair()
    for n in range(3000):
        client.submit_ping(n.to_bytes(8, "big"))
        xfer(client, server)
        xfer(server, client)
    assert not server.has_expired() and drain(server) == []


def test_empty_data_frames_are_credited_and_not_reported() -> None:
    """A flood of empty (padded) DATA frames reports nothing, and its credit goes back: more
    padding than the stream's window passes without a flow-control error."""
    client, server = pair()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, POST)
    xfer(client, server)
    frame = hyperframe.frame.DataFrame(sid)
    frame.flags.add("PADDED")
    frame.pad_length = 255
    flood = frame.serialize() * 5000  # 1.28 MB of padding, beyond the 1 MiB stream window
    for start in range(0, len(flood), 65536):
        server.bytes_received(flood[start : start + 65536])
        assert drain(server) == []
        server.bytes_to_send()  # WINDOW_UPDATEs (a sender may go on)
    client.submit_data(sid, b"real", end_stream=True)
    assert xfer(client, server) == [DataReceived(sid, b"real", end_stream=True)]


def test_malformed_requests_flood_without_reading_gets_enhance_your_calm() -> None:
    """Malformed requests each make us send RST_STREAM; a peer that never reads those is cut off."""
    _client, server = pair()
    encoder = hpack.Encoder()  # raw frames: a client's own stream limit would stop the flood
    events: list[Event] = []
    for n in range(1100):
        frame = hyperframe.frame.HeadersFrame(2 * n + 1)
        frame.data = encoder.encode([*GET, (b"Bad", b"1")])
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        server.bytes_received(frame.serialize())  # the server's answers are never taken
        events += drain(server)
        if any(isinstance(e, ConnectionTerminated) for e in events):
            break
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error_code == 0xB
    assert sum(isinstance(e, StreamResetSent) for e in events) == 1001


def test_extended_connect_only_where_the_server_enabled_it() -> None:
    """Without SETTINGS_ENABLE_CONNECT_PROTOCOL, our client refuses :protocol and our server resets it."""
    client, server = pair(server_factory=HTTP2ServerFactory(enable_connect_protocol=False))
    websocket = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *GET[1:]]
    with pytest.raises(LocalProtocolError, match="extended CONNECT"):
        client.submit_headers(client.get_available_stream_id(), websocket)
    # A client that sends it anyway (its encoder driven by hand) gets RST_STREAM PROTOCOL_ERROR.
    sid = client.get_available_stream_id()
    block = client._h2.encoder.encode(websocket)
    frame = hyperframe.frame.HeadersFrame(sid, block, flags=["END_HEADERS"])
    server.bytes_received(frame.serialize())
    assert drain(server) == [StreamResetSent(sid, 1)]
    out = server.bytes_to_send()
    assert out[3] == 0x3 and int.from_bytes(out[5:9], "big") == sid  # RST_STREAM on that stream
    assert int.from_bytes(out[9:13], "big") == 1  # PROTOCOL_ERROR
    assert not server.has_expired()  # a stream error: the connection goes on
