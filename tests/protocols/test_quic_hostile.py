"""Denial-of-service classes of QUIC against our HTTP/3 server protocol, sans-IO.

The attacker is our client's own aioquic connection after a real handshake:
frames are built with aioquic's packet builder, sealed with the client's
1-RTT keys and handed to the server protocol as datagrams.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from aioquic import tls
from aioquic.buffer import encode_uint_var
from aioquic.quic.packet import QuicErrorCode, QuicFrameType, QuicPacketType
from aioquic.quic.packet_builder import QuicPacketBuilder

# The link's fixtures (certs, link) come from tests/protocols/conftest.py.
from tests.h3link import (
    CLIENT_ADDRESS,
    GET,
    H3_REQUEST_CANCELLED,
    Certs,
    Link,
    drain,
    make_link,
    request,
)
from trio_hface.events import ConnectionTerminated, HeadersReceived
from trio_hface.protocols.http3 import HTTP3ProtocolImpl
from trio_hface.protocols.http3._quic import FlowControlledQuicConnection

#: Every test runs on each QUIC stack of the server (tests/h3link.py).
pytestmark = pytest.mark.usefixtures("quic_server_stack")

# RFC 9000 section 14: the datagram size every path carries.
DATAGRAM_SIZE = 1200


def sealed(link: Link, frames: list[tuple[int, bytes]]) -> list[bytes]:
    """Build 1-RTT datagrams from the client to the server carrying *frames* (type, payload)."""
    quic = link.client._quic
    assert isinstance(quic, FlowControlledQuicConnection) and quic._peer_cid is not None
    builder = QuicPacketBuilder(
        host_cid=quic.host_cid,
        peer_cid=quic._peer_cid.cid,
        version=quic._version or 1,
        is_client=True,
        max_datagram_size=DATAGRAM_SIZE,
        packet_number=quic._packet_number,
    )
    crypto = quic._cryptos[tls.Epoch.ONE_RTT]
    for frame_type, payload in frames:
        builder.start_packet(QuicPacketType.ONE_RTT, crypto)
        if builder.remaining_flight_space < len(payload) + 8:
            builder.start_packet(QuicPacketType.ONE_RTT, crypto)  # this one is full: a new packet
        buf = builder.start_frame(frame_type)
        buf.push_bytes(payload)
    datagrams, _ = builder.flush()
    quic._packet_number = builder.packet_number
    return datagrams


def feed(server: HTTP3ProtocolImpl, datagrams: list[bytes]) -> None:
    for datagram in datagrams:
        server.datagram_received((datagram, CLIENT_ADDRESS))


def close_code(server: HTTP3ProtocolImpl) -> int | None:
    events = [e for e in drain(server) if isinstance(e, ConnectionTerminated)]
    return events[0].error_code if events else None


def still_serves(link: Link) -> None:
    stream_id = request(link)
    link.pump()
    assert HeadersReceived(stream_id, GET, end_stream=True) in drain(link.server)


def ack_frame(largest: int, ranges: int) -> bytes:
    """An ACK frame of *ranges* + 1 one-packet ranges below *largest*, gaps of one."""
    payload = encode_uint_var(largest) + encode_uint_var(0) + encode_uint_var(ranges) + encode_uint_var(0)
    payload += (encode_uint_var(0) + encode_uint_var(0)) * ranges
    return payload


def test_ack_flood_with_many_ranges_stays_cheap(certs: Certs) -> None:
    """(a) 2000 datagrams of ACK frames with 290 ranges each, for packets the server sent, take
    bounded CPU and memory and do not disturb the connection."""
    link = make_link(certs, small_datagrams=True)
    stream_id = request(link)
    link.pump()
    drain(link.server)
    link.server.submit_headers(stream_id, [(b":status", b"200")])
    link.server.submit_data(stream_id, b"x" * 800_000, end_stream=True)  # over 600 packets
    link.pump()
    drain(link.client)
    server_quic = link.server._quic
    assert server_quic is not None
    # The server did send this one (aioquic numbers packets with one counter,
    # qh3 with one per packet number space: both take the largest).
    sent = getattr(server_quic, "_packet_number", None)
    if sent is None:
        stack_connection: Any = server_quic  # qh3's, whose spaces each number their packets
        sent = max(space.packet_number for space in stack_connection._spaces.values())
    largest = sent - 1
    assert largest > 600
    frame = ack_frame(largest, 290)
    tracemalloc.start()
    started = time.process_time()
    for _ in range(200):
        feed(link.server, sealed(link, [(QuicFrameType.ACK, frame)] * 10))
    cpu = time.process_time() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"ACK flood: 2000 datagrams, {cpu:.2f} s CPU, {peak} bytes peak")
    assert cpu < 60, f"{cpu:.1f} s of CPU"
    assert peak < 5_000_000
    link.pump()
    assert close_code(link.server) is None
    still_serves(link)


@pytest.mark.parametrize("padding", [1, 700, 1100])
def test_the_frame_after_padding_is_read(certs: Certs, padding: int) -> None:
    """PADDING is skipped to its last zero byte and no further (trio_hface steps over it in C,
    not a byte at a time): the CONNECTION_CLOSE behind it, in the same packet, closes the
    connection with its code."""
    link = make_link(certs)
    close = encode_uint_var(H3_REQUEST_CANCELLED) + encode_uint_var(0)
    frames = bytes(padding) + encode_uint_var(QuicFrameType.APPLICATION_CLOSE) + close
    # One frame of the builder's carrying both (the builder starts a packet per frame).
    feed(link.server, sealed(link, [(QuicFrameType.PADDING, frames[1:])]))
    link.pump()
    assert close_code(link.server) == H3_REQUEST_CANCELLED


def test_datagrams_of_nothing_but_padding_are_ignored(certs: Certs) -> None:
    """Full datagrams of PADDING alone (not ack-eliciting) change nothing."""
    link = make_link(certs)
    for _ in range(50):
        feed(link.server, sealed(link, [(QuicFrameType.PADDING, bytes(1100))]))
    link.pump()
    assert close_code(link.server) is None
    still_serves(link)


def test_a_fin_below_data_already_received_is_final_size_error(certs: Certs) -> None:
    """RFC 9000 section 4.5: a final size smaller than the data already received on the
    stream is a FINAL_SIZE_ERROR, on every stack (qh3 alone took the smaller size)."""
    link = make_link(certs)
    stream_id = link.client.get_available_stream_id()
    # The start of a HEADERS frame of 200 bytes: the HTTP/3 layer waits for the rest.
    data = b"\x01\x40\xc8" + bytes(97)
    feed(link.server, sealed(link, [stream_frame(stream_id, 0, data)]))
    feed(link.server, sealed(link, [stream_frame(stream_id, 0, data[:10], fin=True)]))
    link.pump()
    assert close_code(link.server) == QuicErrorCode.FINAL_SIZE_ERROR


def test_ack_of_a_packet_never_sent_is_a_protocol_violation(certs: Certs) -> None:
    """(a) An ACK for packet numbers the server never sent (RFC 9000 section 13.1) closes with PROTOCOL_VIOLATION."""
    link = make_link(certs)
    feed(link.server, sealed(link, [(QuicFrameType.ACK, ack_frame(2**40, 100))]))
    assert close_code(link.server) == QuicErrorCode.PROTOCOL_VIOLATION


def test_crypto_data_far_beyond_the_handshake_is_crypto_buffer_exceeded(certs: Certs) -> None:
    """(b) CRYPTO data at a 16 MiB offset closes with CRYPTO_BUFFER_EXCEEDED, allocating nothing big."""
    link = make_link(certs)
    payload = encode_uint_var(16 << 20) + encode_uint_var(100) + b"\x00" * 100
    tracemalloc.start()
    feed(link.server, sealed(link, [(QuicFrameType.CRYPTO, payload)]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert close_code(link.server) == QuicErrorCode.CRYPTO_BUFFER_EXCEEDED
    assert peak < 2_000_000


def test_path_challenge_flood_queues_few_responses(certs: Certs) -> None:
    """(c) 3000 PATH_CHALLENGE frames queue at most 32 PATH_RESPONSEs and a bounded answer."""
    link = make_link(certs)
    server_quic = link.server._quic
    assert server_quic is not None
    challenges = [(int(QuicFrameType.PATH_CHALLENGE), n.to_bytes(8, "big")) for n in range(3000)]
    feed(link.server, sealed(link, challenges))
    queued = sum(len(path.remote_challenges) for path in server_quic._network_paths)
    assert queued <= 32
    answer = link.server.datagrams_to_send()
    assert sum(len(data) for data, _ in answer) < 64 * DATAGRAM_SIZE
    link.pump()
    assert close_code(link.server) is None
    still_serves(link)


def stream_frame(stream_id: int, offset: int, data: bytes, *, fin: bool = False) -> tuple[int, bytes]:
    # STREAM with the OFF and LEN bits, and FIN if asked (RFC 9000 section 19.8).
    return (
        QuicFrameType.STREAM_BASE | 0x04 | 0x02 | (0x01 if fin else 0),
        encode_uint_var(stream_id) + encode_uint_var(offset) + encode_uint_var(len(data)) + data,
    )


def test_sparse_stream_data_within_the_windows_is_bounded(certs: Certs) -> None:
    """(d) One byte at the end of each of 3 stream windows costs at most the connection window in memory."""
    link = make_link(certs)
    frames = [stream_frame(4 * n, (1 << 20) - 1, b"x") for n in range(3)]
    tracemalloc.start()
    feed(link.server, sealed(link, frames))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"sparse STREAM data: {peak} bytes peak")
    assert peak < 5 * (1 << 20)  # the connection window is 4 MiB
    assert close_code(link.server) is None


def test_stream_data_beyond_max_stream_data_is_flow_control_error(certs: Certs) -> None:
    """(d) A byte beyond a stream's window (1 MiB) closes with FLOW_CONTROL_ERROR."""
    link = make_link(certs)
    feed(link.server, sealed(link, [stream_frame(0, 1 << 20, b"x")]))
    assert close_code(link.server) == QuicErrorCode.FLOW_CONTROL_ERROR


def test_stream_data_beyond_max_data_is_flow_control_error(certs: Certs) -> None:
    """(d) Bytes at the end of five stream windows exceed the connection window (4 MiB): FLOW_CONTROL_ERROR."""
    link = make_link(certs)
    frames = [stream_frame(4 * n, (1 << 20) - 1, b"x") for n in range(5)]
    feed(link.server, sealed(link, frames))
    assert close_code(link.server) == QuicErrorCode.FLOW_CONTROL_ERROR


def test_blocked_frames_do_not_raise_the_limits(certs: Certs) -> None:
    """(d) DATA_BLOCKED and STREAM_DATA_BLOCKED at our limits grant no credit (qh3 would double
    them): data beyond the windows is still FLOW_CONTROL_ERROR."""
    link = make_link(certs)
    window, connection_window = 1 << 20, 4 << 20
    frames = [stream_frame(0, window - 1, b"x")]
    frames += [(QuicFrameType.DATA_BLOCKED, encode_uint_var(connection_window))] * 3
    frames += [(QuicFrameType.STREAM_DATA_BLOCKED, encode_uint_var(0) + encode_uint_var(window))] * 3
    feed(link.server, sealed(link, frames))
    link.pump()
    assert close_code(link.server) is None
    feed(link.server, sealed(link, [stream_frame(0, window, b"x")]))
    assert close_code(link.server) == QuicErrorCode.FLOW_CONTROL_ERROR


def test_blocked_frames_do_not_raise_the_connection_limit(certs: Certs) -> None:
    """(d) Likewise for the connection: after DATA_BLOCKED, five stream windows still exceed it."""
    link = make_link(certs)
    feed(link.server, sealed(link, [(QuicFrameType.DATA_BLOCKED, encode_uint_var(4 << 20))] * 3))
    link.pump()
    assert close_code(link.server) is None
    frames = [stream_frame(4 * n, (1 << 20) - 1, b"x") for n in range(5)]
    feed(link.server, sealed(link, frames))
    assert close_code(link.server) == QuicErrorCode.FLOW_CONTROL_ERROR


def test_version_negotiation_to_the_server_is_ignored(certs: Certs) -> None:
    """(e) A Version Negotiation packet for a server connection gets no answer and changes nothing."""
    link = make_link(certs)
    server_quic = link.server._quic
    client_quic = link.client._quic
    assert server_quic is not None and client_quic is not None
    packet = (
        bytes([0xC0])
        + b"\x00\x00\x00\x00"
        + bytes([len(server_quic.host_cid)])
        + server_quic.host_cid
        + bytes([len(client_quic.host_cid)])
        + client_quic.host_cid
        + b"\x1a\x2a\x3a\x4a\x00\x00\x00\x01"
    )
    link.server.datagrams_to_send()
    feed(link.server, [packet] * 10)
    assert link.server.datagrams_to_send() == []
    assert close_code(link.server) is None
    still_serves(link)
