"""HTTP/2 bulk data: the DATA frames we frame ourselves are exactly those h2 would send."""

from __future__ import annotations

import binascii

import hyperframe.frame
import pytest

from tests.helpers import exchange, h2_frames, xfer
from trio_hface.events import DataReceived
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ProtocolImpl, HTTP2ServerFactory

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/")]
OK = [(b":status", b"200")]
FRAME = 16384  # the default SETTINGS_MAX_FRAME_SIZE


def answered_pair() -> tuple[HTTP2ProtocolImpl, HTTP2ProtocolImpl, int]:
    """A client and a server with big windows, a GET answered with its response head (already sent)."""
    window = 8 * 1024 * 1024
    client = HTTP2ClientFactory(stream_window=window, connection_window=window)()
    server = HTTP2ServerFactory(stream_window=window, connection_window=window)()
    exchange(client, server)
    sid = client.get_available_stream_id()
    client.submit_headers(sid, GET, end_stream=True)
    xfer(client, server)
    server.submit_headers(sid, OK)
    xfer(server, client)
    return client, server, sid


@pytest.mark.parametrize("size", [0, 1, FRAME, 2 * FRAME, 2 * FRAME + 1, 5 * FRAME - 3, 1024 * 1024])
@pytest.mark.parametrize("end_stream", [False, True])
def test_data_frames_are_those_h2_sends(size: int, end_stream: bool) -> None:
    """submit_data's wire bytes and windows equal h2's own send_data, frame by frame, for any size."""
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    ours_client, ours, sid = answered_pair()
    _, reference, _ = answered_pair()
    ours.submit_data(sid, body, end_stream=end_stream)
    view = memoryview(body)
    for start in range(0, max(size, 1), FRAME):
        last = start + FRAME >= size
        reference._h2.send_data(sid, bytes(view[start : start + FRAME]), end_stream=end_stream and last)
    if not end_stream:  # (an ended stream has no window to ask about)
        assert ours.get_send_window(sid) == reference.get_send_window(sid) == 8 * 1024 * 1024 - size
    assert ours._h2.outbound_flow_control_window == reference._h2.outbound_flow_control_window
    wire = ours.bytes_to_send()
    assert wire == reference.bytes_to_send()
    sent = h2_frames(wire)
    assert all(isinstance(frame, hyperframe.frame.DataFrame) for frame in sent)
    assert [("END_STREAM" in frame.flags) for frame in sent] == [False] * (len(sent) - 1) + [end_stream]
    ours_client.bytes_received(wire)
    received = b"".join(e.data for e in iter(ours_client.next_event, None) if isinstance(e, DataReceived))
    assert received == body


def test_data_frames_keep_their_place_among_other_output() -> None:
    """A PING queued before a large body goes out before its DATA frames; a GOAWAY after them, after."""
    _, server, sid = answered_pair()
    server.submit_ping(b"12345678")
    server.submit_data(sid, b"x" * (4 * FRAME), end_stream=True)
    server.submit_goaway()
    sent = h2_frames(server.bytes_to_send())
    kinds = [type(frame).__name__ for frame in sent]
    assert kinds == ["PingFrame", *["DataFrame"] * 4, "GoAwayFrame"]
    assert not server.has_output()


def test_a_body_of_bytearray_is_copied_before_it_is_framed() -> None:
    """A mutable body is taken as it was when submitted, even if it changes before it is sent."""
    client, server, sid = answered_pair()
    body = bytearray(b"a" * (4 * FRAME))
    server.submit_data(sid, body, end_stream=True)  # type: ignore[arg-type]  # bytes-like, as callers do
    body[:] = b"b" * len(body)
    client.bytes_received(server.bytes_to_send())
    received = b"".join(e.data for e in iter(client.next_event, None) if isinstance(e, DataReceived))
    assert received == b"a" * (4 * FRAME)


def test_received_data_is_not_hex_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Receiving DATA does not hex-encode its payload (h2 builds every received frame's repr for a trace log)."""
    encoded: list[int] = []
    hexlify = binascii.hexlify

    def counting_hexlify(data: bytes) -> bytes:
        encoded.append(len(data))
        return hexlify(data)

    monkeypatch.setattr(binascii, "hexlify", counting_hexlify)  # what hyperframe's reprs call
    client, server, sid = answered_pair()
    server.submit_data(sid, bytes(1024 * 1024), end_stream=True)
    client.bytes_received(server.bytes_to_send())
    received = sum(len(e.data) for e in iter(client.next_event, None) if isinstance(e, DataReceived))
    assert received == 1024 * 1024
    assert sum(encoded) < 1024  # (other frames' reprs may encode a few bytes)
