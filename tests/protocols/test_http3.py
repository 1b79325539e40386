"""Sans-IO tests of the HTTP/3 protocol: a client and a server moved by hand.

Datagrams are passed between the two protocols by :class:`Link`, and time comes
from a counter that only moves when a test (or the link) advances it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The link's fixtures (certs, link) come from tests/protocols/conftest.py.
from tests.h3link import (
    CLIENT_ADDRESS,
    GET,
    H3_MESSAGE_ERROR,
    H3_NO_ERROR,
    H3_REQUEST_CANCELLED,
    OK,
    POST,
    ROUND,
    SERVER_ADDRESS,
    Certs,
    Link,
    body_of,
    drain,
    make_link,
    memory_server_tls,
    request,
)
from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.errors import FlowControlError, LocalProtocolError, StreamResetByPeerError
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    StreamResetReceived,
    StreamResetSent,
)
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ProtocolImpl, HTTP3ServerFactory
from trio_hface.protocols.http3._protocol import PRE_HANDSHAKE_SEND_LIMIT, PRE_HANDSHAKE_STREAMS
from trio_hface.protocols.http3._quic import PacedCredit

#: Every test runs on each QUIC stack (tests/h3link.py).
pytestmark = pytest.mark.usefixtures("quic_stack")


def test_handshake(link: Link) -> None:
    """The handshake completes with in-memory certificates and the client may open a stream."""
    assert link.client.handshake_completed and link.server.handshake_completed
    assert link.client.is_available()
    assert link.client.get_available_stream_id() == 0
    assert not link.client.has_expired() and not link.server.has_expired()
    assert not link.server.is_available()
    assert link.client.connection_ids and link.server.connection_ids
    assert drain(link.client) == [] and drain(link.server) == []
    assert link.client.http_version == "3" and link.client.multiplexed


def test_handshake_with_certificate_files(certs: Certs) -> None:
    """Certificates load from files, and the client trusts a CA file."""
    link = make_link(
        certs,
        server_tls=ServerTLSConfig(certfile=certs.certfile, keyfile=certs.keyfile),
        client_tls=ClientTLSConfig(cafile=certs.cafile),
    )
    assert link.client.is_available()


def test_handshake_with_key_in_certificate_file(certs: Certs, tmp_path: Path) -> None:
    """A certificate file that holds the key too is enough."""
    combined = tmp_path / "combined.pem"
    combined.write_bytes(Path(certs.certfile).read_bytes() + Path(certs.keyfile).read_bytes())
    link = make_link(certs, server_tls=ServerTLSConfig(certfile=str(combined)))
    assert link.client.is_available()


def test_untrusted_certificate_fails_the_handshake(certs: Certs) -> None:
    """Verification is on by default: a server certificate from an unknown CA is refused."""
    other = trustme.CA()
    link = make_link(certs, client_tls=ClientTLSConfig(cadata=other.cert_pem.bytes()))
    events = drain(link.client)
    assert len(events) == 1 and isinstance(events[0], ConnectionTerminated)
    assert events[0].error_code != 0
    assert not link.client.is_available() and link.client.has_expired()


def test_client_trusts_der_ca_data(certs: Certs) -> None:
    """CA data given as DER bytes, as the ssl module accepts it, is trusted too."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(certs.ca.cert_pem.bytes()).public_bytes(Encoding.DER)
    link = make_link(certs, client_tls=ClientTLSConfig(cadata=der))
    assert link.client.is_available()


def test_factories_check_their_settings() -> None:
    """Nonsensical QUIC settings are refused when the factory is made."""
    with pytest.raises(ValueError, match="quic_connection_id_length"):
        HTTP3ServerFactory(quic_connection_id_length=4)
    with pytest.raises(ValueError, match="max_datagram_size"):
        HTTP3ClientFactory(max_datagram_size=1000)
    with pytest.raises(ValueError, match="quic_supported_versions"):
        HTTP3ServerFactory(quic_supported_versions=[0x1A2A3A4A])
    factory = HTTP3ServerFactory(quic_connection_id_length=12)
    assert factory.quic_connection_id_length == 12
    assert list(factory.alpn_protocols) == ["h3"]
    assert list(factory.quic_supported_versions) == [0x00000001, 0x6B3343CF]


def test_insecure_client_accepts_any_certificate(certs: Certs) -> None:
    """An insecure client skips verification."""
    link = make_link(certs, client_tls=ClientTLSConfig(insecure=True))
    assert link.client.is_available()


def test_calls_before_clock_are_refused(certs: Certs) -> None:
    """Using a protocol before clock() is a caller error, not a crash."""
    server = HTTP3ServerFactory()(tls_config=memory_server_tls(certs))
    with pytest.raises(LocalProtocolError):
        server.datagram_received((b"\xc0" * 1200, CLIENT_ADDRESS))


# -- requests and responses -------------------------------------------------------


def test_get_with_end_stream_on_headers(link: Link) -> None:
    """A GET ends with its headers; the response comes back with a body."""
    stream_id = request(link)
    link.pump()
    assert drain(link.server) == [HeadersReceived(stream_id, GET, end_stream=True)]
    link.server.submit_headers(stream_id, OK)
    link.server.submit_data(stream_id, b"hello", end_stream=True)
    link.pump()
    assert drain(link.client) == [
        HeadersReceived(stream_id, OK, end_stream=False),
        DataReceived(stream_id, b"hello", end_stream=True),
    ]


def test_post_with_body(link: Link) -> None:
    """A POST body arrives whole, ended by an empty end of stream."""
    stream_id = request(link, POST, end_stream=False)
    link.client.submit_data(stream_id, b"part one, ")
    link.client.submit_data(stream_id, b"part two")
    link.client.submit_data(stream_id, b"", end_stream=True)
    link.pump()
    events = drain(link.server)
    assert events[0] == HeadersReceived(stream_id, POST, end_stream=False)
    assert body_of(events, stream_id) == b"part one, part two"
    last = events[-1]
    assert isinstance(last, DataReceived) and last.end_stream
    link.server.submit_headers(stream_id, [(b":status", b"204")], end_stream=True)
    link.pump()
    assert drain(link.client) == [HeadersReceived(stream_id, [(b":status", b"204")], end_stream=True)]


def test_large_body_moves_in_window_sized_pieces(link: Link) -> None:
    """A 5 MiB body, larger than every window, goes through in pieces of the send window."""
    size = 5 * 1024 * 1024
    body = random.Random(1).randbytes(size)
    stream_id = request(link, POST, end_stream=False)
    sent = 0
    received: list[bytes] = []
    pieces = 0
    ended = False
    while not ended:
        window = link.client.get_send_window(stream_id)
        if sent < size and window:
            piece = min(window, size - sent)
            link.client.submit_data(stream_id, body[sent : sent + piece], end_stream=sent + piece == size)
            sent += piece
            pieces += 1
        link.pump()
        for event in drain(link.server):
            if isinstance(event, DataReceived):
                received.append(event.data)
                ended = event.end_stream
        assert pieces < 1000, "no progress"
    assert sent == size
    assert b"".join(received) == body
    assert pieces >= 5  # the 1 MiB windows were used up and granted again


def test_full_packets_offer_no_more_stream_frames(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten responses sent at once arrive whole, and once a packet is full aioquic's STREAM
    frame writer is not asked again for it: about one call per packet, not one per stream."""
    from aioquic.quic.connection import QuicConnection

    link = make_link(certs, small_datagrams=True)

    calls = 0
    write_stream_frame = QuicConnection._write_stream_frame

    def counted(self: QuicConnection, *args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        return int(write_stream_frame(self, *args, **kwargs))  # type: ignore[arg-type]

    monkeypatch.setattr(QuicConnection, "_write_stream_frame", counted)
    stream_ids = [request(link) for _ in range(10)]
    link.pump()
    drain(link.server)
    bodies = {stream_id: random.Random(stream_id).randbytes(200_000) for stream_id in stream_ids}
    for stream_id, body in bodies.items():
        link.server.submit_headers(stream_id, OK)
        link.server.submit_data(stream_id, body, end_stream=True)
    packets = 0
    events: list[Event] = []
    for _ in range(1000):
        moved = link.xfer(link.server, link.client)
        packets += moved
        link.xfer(link.client, link.server)
        events += drain(link.client)
        if not moved and all(body_of(events, s) == bodies[s] for s in stream_ids):
            break
        link.tick(link.now + ROUND)
    assert all(body_of(events, s) == bodies[s] for s in stream_ids)
    assert packets >= 2_000_000 // 1500
    assert calls < packets + 10 * len(stream_ids)  # without the check: about ten per packet


def assert_nothing_held(protocol: HTTP3ProtocolImpl) -> None:
    """Check that QUIC sent every queued byte: the send window never over-promised."""
    quic = protocol._quic
    assert quic is not None
    for stream in quic._streams.values():
        assert stream.sender.buffer_is_empty, stream.stream_id


def _stall_link(certs: Certs, *, max_data: int, max_stream_data: int) -> Link:
    return make_link(
        certs, server_factory=HTTP3ServerFactory(max_data=max_data, max_stream_data=max_stream_data)
    )


def _fill(link: Link, stream_ids: list[int]) -> int:
    """Submit on every stream while there is send window; return the bytes submitted."""
    total = 0
    for _ in range(1000):
        progressed = False
        for stream_id in stream_ids:
            window = link.client.get_send_window(stream_id)
            if window:
                link.client.submit_data(stream_id, b"x" * window)
                total += window
                progressed = True
        link.pump()
        if not progressed:
            return total
    raise AssertionError("the sender never stalled")


def test_receiver_that_does_not_read_stalls_the_sender(certs: Certs) -> None:
    """Credit follows consumption: an unread stream stops the sender at one stream window."""
    window = 32 * 1024
    link = _stall_link(certs, max_data=1024 * 1024, max_stream_data=window)
    stream_id = request(link, POST, end_stream=False)
    link.pump()
    submitted = _fill(link, [stream_id])
    assert link.client.get_send_window(stream_id) == 0
    assert_nothing_held(link.client)
    # Everything submitted arrived, and it is no more than one window (the
    # request's HEADERS frame and the DATA frame headers used the rest).
    assert window - 200 < submitted <= window
    events = drain(link.server)
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == submitted
    # Consuming returns the credit: the sender may go on.
    link.pump()
    assert link.client.get_send_window(stream_id) >= window // 2
    more = _fill(link, [stream_id])
    assert window // 2 <= more <= window


def test_streams_awaiting_new_limits_are_bounded(link: Link) -> None:
    """The streams whose limit is to be worked out again stay at most one more than the
    open streams, even when the stack discards streams before their next packet."""
    quic = link.server._quic
    assert quic is not None
    paced = cast(PacedCredit, quic)  # every stack's connection class is one
    for _ in range(30):
        stream_id = request(link, POST, end_stream=False)
        link.client.submit_data(stream_id, b"x" * 3000)
        link.pump()
        drain(link.server)  # consumed: the stream's limit is due
        assert stream_id in paced._credit_due
        del quic._streams[stream_id]  # gone before a packet worked its limit out
        assert len(paced._credit_due) <= len(quic._streams) + 1
    stream_id = request(link, POST, end_stream=False)
    link.client.submit_data(stream_id, b"x" * 3000)
    link.pump()
    drain(link.server)
    link.pump()
    assert stream_id not in paced._credit_due  # worked out in the next packet


def test_receiver_that_does_not_read_stalls_the_connection(certs: Certs) -> None:
    """Credit follows consumption: unread streams stop the sender at one connection window."""
    window = 64 * 1024
    link = _stall_link(certs, max_data=window, max_stream_data=48 * 1024)
    stream_ids = []
    for _ in range(3):
        stream_ids.append(request(link, POST, end_stream=False))
    link.pump()
    submitted = _fill(link, stream_ids)
    assert all(link.client.get_send_window(s) == 0 for s in stream_ids)
    assert_nothing_held(link.client)
    assert window - 500 < submitted <= window
    events = drain(link.server)
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == submitted
    link.pump()
    assert sum(link.client.get_send_window(s) for s in stream_ids) > 0
    assert 0 < _fill(link, stream_ids) <= window


def _assert_credit_totals_agree(protocol: HTTP3ProtocolImpl) -> int:
    quic = protocol._quic
    assert quic is not None
    credit = quic.connection_send_credit()
    assert credit == quic.connection_send_credit_by_streams()
    return credit


def test_connection_credit_totals_agree_with_the_streams(certs: Certs) -> None:
    """The connection's send credit, kept as running totals, equals the sum over its streams:
    with bytes queued but unsent, after a reset of ours, and after the peer's STOP_SENDING."""
    link = _stall_link(certs, max_data=64 * 1024, max_stream_data=48 * 1024)
    first, second, third = (request(link, POST, end_stream=False) for _ in range(3))
    link.pump()
    start = _assert_credit_totals_agree(link.client)
    link.client.submit_data(first, b"x" * 20_000)
    link.client.submit_data(second, b"y" * 30_000)  # queued, nothing sent yet
    assert _assert_credit_totals_agree(link.client) < start - 50_000
    link.client.submit_stream_reset(first, H3_REQUEST_CANCELLED)  # its 20,000 bytes are abandoned
    _assert_credit_totals_agree(link.client)
    link.pump()
    drain(link.server)
    server_quic = link.server._quic
    assert server_quic is not None
    link.client.submit_data(third, b"z" * 5_000)  # queued when STOP_SENDING arrives
    server_quic.stop_stream(third, H3_REQUEST_CANCELLED)
    link.xfer(link.server, link.client)
    _assert_credit_totals_agree(link.client)
    link.pump()
    drain(link.client)
    drain(link.server)
    _assert_credit_totals_agree(link.client)
    link.client.submit_data(second, b"y" * 1_000, end_stream=True)
    link.pump()
    assert _assert_credit_totals_agree(link.client) > 0


def test_submitting_more_than_the_window_raises(link: Link) -> None:
    """FlowControlError names the numbers, and the stream stays usable."""
    stream_id = request(link, POST, end_stream=False)
    window = link.client.get_send_window(stream_id)
    with pytest.raises(FlowControlError, match=str(window)):
        link.client.submit_data(stream_id, b"x" * (window + 1))
    link.client.submit_data(stream_id, b"x" * window, end_stream=True)
    link.pump()
    assert len(body_of(drain(link.server), stream_id)) == window


def test_trailers_before_a_separate_fin_are_held(link: Link) -> None:
    """Trailers whose FIN arrives later are reported once, with end_stream set."""
    stream_id = request(link, POST, end_stream=False)
    link.client.submit_data(stream_id, b"body")
    link.pump()
    drain(link.server)
    # Send trailers and the FIN in separate packets, through aioquic directly.
    h3 = link.client._h3
    assert h3 is not None
    h3.send_headers(stream_id, [(b"x-late", b"1")])
    link.pump()
    assert drain(link.server) == []
    h3._quic.send_stream_data(stream_id, b"", end_stream=True)
    link.pump()
    assert drain(link.server) == [HeadersReceived(stream_id, [(b"x-late", b"1")], end_stream=True)]


def test_a_request_retransmitted_after_its_answer_is_ignored(link: Link) -> None:
    """The request comes again in a new packet (the client's PTO fired before our ACK
    arrived) after the server answered and forgot the stream: it is a duplicate, not a
    new request, and the answer, lost once, still arrives whole."""
    stream_id = request(link)
    link.xfer(link.client, link.server)
    assert [type(e) for e in drain(link.server)] == [HeadersReceived]
    link.server.submit_headers(stream_id, OK)
    link.server.submit_data(stream_id, b"hello", end_stream=True)
    assert link.server.datagrams_to_send()  # the answer and the ACK of the request: lost
    timer = link.client.get_timer()
    assert timer is not None
    link.tick(timer)  # the client's PTO: it sends its oldest packet's data again
    assert link.xfer(link.client, link.server)
    assert drain(link.server) == []
    events: list[Event] = []

    def answered() -> bool:
        events.extend(drain(link.client))
        return any(
            isinstance(e, (DataReceived, StreamResetReceived)) and e.stream_id == stream_id for e in events
        )

    link.run_timers_until(answered, limit=link.now + 5)
    assert not [e for e in events if isinstance(e, StreamResetReceived)]
    assert body_of(events, stream_id) == b"hello"


def test_a_reset_after_the_whole_request_was_delivered_is_ignored(link: Link) -> None:
    """RFC 9000 section 3.2: once all of a stream's data was received, a RESET_STREAM
    may be ignored, and it is, on every stack (as aioquic does): the answer goes out."""
    stream_id = request(link)
    link.pump()
    assert [type(e) for e in drain(link.server)] == [HeadersReceived]
    quic = link.client._quic
    assert quic is not None
    quic.reset_stream(stream_id, H3_REQUEST_CANCELLED)  # RESET_STREAM alone, no STOP_SENDING
    link.pump()
    assert drain(link.server) == []
    link.server.submit_headers(stream_id, OK, end_stream=True)
    link.pump()
    assert [type(e) for e in drain(link.client)] == [HeadersReceived]


# -- resets ------------------------------------------------------------------


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_reset_stream_is_forgotten_on_both_sides(link: Link, side: str) -> None:
    """After a reset, neither protocol keeps state for the stream (the reset itself: test_versions.py)."""
    stream_id = request(link, POST, end_stream=False)
    link.client.submit_data(stream_id, b"some")
    link.pump()
    drain(link.server)
    resetter = link.client if side == "client" else link.server
    resetter.submit_stream_reset(stream_id, H3_REQUEST_CANCELLED)
    link.pump()
    assert StreamResetReceived(stream_id, H3_REQUEST_CANCELLED) in drain(
        link.server if side == "client" else link.client
    )
    with pytest.raises(LocalProtocolError):
        link.client.get_send_window(stream_id)
    assert link.client._streams == {} and link.server._streams == {}


def test_stop_sending_alone_resets_the_stream(link: Link) -> None:
    """A peer's STOP_SENDING is reported once as a reset, and the stream is aborted both ways."""
    stream_id = request(link, POST, end_stream=False)
    link.pump()
    drain(link.server)
    quic = link.server._quic
    assert quic is not None
    quic.stop_stream(stream_id, H3_REQUEST_CANCELLED)  # STOP_SENDING without RESET_STREAM
    link.pump()
    assert drain(link.client) == [StreamResetReceived(stream_id, H3_REQUEST_CANCELLED)]
    link.pump()
    assert link.client._streams == {}


def test_stop_sending_after_a_complete_response_is_not_an_error(link: Link) -> None:
    """RFC 9114 section 4.1.1: a server may stop an unneeded request body with H3_NO_ERROR."""
    stream_id = request(link, POST, end_stream=False)
    link.pump()
    drain(link.server)
    link.server.submit_headers(stream_id, OK, end_stream=True)
    quic = link.server._quic
    assert quic is not None
    quic.stop_stream(stream_id, H3_NO_ERROR)
    link.pump()
    assert drain(link.client) == [HeadersReceived(stream_id, OK, end_stream=True)]
    with pytest.raises(LocalProtocolError):
        link.client.submit_data(stream_id, b"unwanted")
    assert link.client._streams == {}


def test_reset_of_an_unknown_stream_is_refused(link: Link) -> None:
    """Resetting a stream that does not exist is a caller error."""
    with pytest.raises(LocalProtocolError):
        link.client.submit_stream_reset(8)


# -- closing -------------------------------------------------------------------------


def test_graceful_close_sends_goaway(link: Link) -> None:
    """submit_close sends GOAWAY, then CONNECTION_CLOSE; the peer sees both in order."""
    stream_id = request(link)
    link.pump()
    drain(link.server)
    link.server.submit_close()
    assert drain(link.server) == [ConnectionTerminated(0)]
    assert link.server.has_expired()
    link.pump()
    assert drain(link.client) == [GoawayReceived(stream_id, 0), ConnectionTerminated(0)]
    assert not link.client.is_available() and link.client.has_expired()
    with pytest.raises(LocalProtocolError):
        link.client.get_available_stream_id()
    link.server.submit_close()  # idempotent
    assert drain(link.server) == []


def test_close_with_an_error_code(link: Link) -> None:
    """An error code given to submit_close reaches the peer."""
    link.client.submit_close(0x102)
    assert drain(link.client) == [ConnectionTerminated(0x102)]
    link.pump()
    events = drain(link.server)
    assert events[-1] == ConnectionTerminated(0x102)
    assert isinstance(events[0], GoawayReceived)


def test_goaway_refuses_newer_streams(link: Link) -> None:
    """After a server's GOAWAY, the client sees streams above it refused and may not open more."""
    first = request(link)
    link.pump()
    drain(link.server)
    second = request(link)  # crosses the GOAWAY
    link.server.submit_goaway()
    assert link.server.has_expired()
    link.pump()
    events = drain(link.client)
    assert events[0] == GoawayReceived(first, 0)
    assert StreamResetReceived(second, 0x10B) in events
    assert not link.client.is_available()
    link.server.submit_headers(first, OK, end_stream=True)
    link.pump()
    assert drain(link.client) == [HeadersReceived(first, OK, end_stream=True)]


def test_idle_timeout(certs: Certs) -> None:
    """The idle timer fires through clock() and get_timer(), ending both sides."""
    link = make_link(
        certs,
        client_factory=HTTP3ClientFactory(idle_timeout=5.0),
        server_factory=HTTP3ServerFactory(idle_timeout=5.0),
    )
    start = link.now
    timer = link.client.get_timer()
    assert timer is not None and timer > start
    link.run_timers_until(lambda: not link.client.is_available() and link.server.has_expired())
    assert 5.0 - 0.01 <= link.now - start <= 5.0 + 0.01
    assert drain(link.client) == [ConnectionTerminated(0)]
    assert drain(link.server) == [ConnectionTerminated(0)]
    assert link.client.datagrams_to_send() == []


def test_connection_lost(link: Link) -> None:
    """connection_lost ends the connection with one event; nothing more is sent."""
    link.client.connection_lost()
    link.client.connection_lost()
    events = drain(link.client)
    assert len(events) == 1 and isinstance(events[0], ConnectionTerminated)
    assert link.client.datagrams_to_send() == [] and link.client.get_timer() is None


# -- streams -------------------------------------------------------------------------------


def test_hundred_concurrent_streams(certs: Certs) -> None:
    """The client opens what the server allows, completes them, then opens more."""
    link = make_link(certs, server_factory=HTTP3ServerFactory(max_concurrent_streams=100))
    opened: list[int] = []
    while link.client.is_available():
        opened.append(request(link))
    assert len(opened) == 100
    with pytest.raises(LocalProtocolError):
        link.client.get_available_stream_id()
    with pytest.raises(LocalProtocolError):
        link.client.submit_headers(opened[-1] + 4, GET, end_stream=True)
    link.pump()
    requests = drain(link.server)
    assert sorted(e.stream_id for e in requests if isinstance(e, HeadersReceived)) == opened
    for stream_id in opened:
        link.server.submit_headers(stream_id, OK)
        link.server.submit_data(stream_id, str(stream_id).encode(), end_stream=True)
    link.pump()
    responses = drain(link.client)
    for stream_id in opened:
        assert body_of(responses, stream_id) == str(stream_id).encode()
    assert link.client.is_available()
    more: list[int] = []
    while link.client.is_available() and len(more) < 150:
        more.append(request(link))
    assert len(more) == 100 and more[0] == opened[-1] + 4
    link.pump()
    assert len([e for e in drain(link.server) if isinstance(e, HeadersReceived)]) == 100
    # Per-stream state is forgotten once both directions are done.
    assert set(link.client._streams) == set(more)
    for stream_id in more:
        link.server.submit_headers(stream_id, OK, end_stream=True)
    link.pump()
    drain(link.client)
    assert link.client._streams == {} and link.server._streams == {}


def test_requests_before_the_handshake(certs: Certs) -> None:
    """A fresh client takes a request at once; it goes out when the handshake completes, as in hface."""
    link = make_link(certs, handshake=False)
    client = link.client
    assert not client.handshake_completed and client.is_available()
    stream_id = client.get_available_stream_id()
    assert stream_id == 0
    client.submit_headers(stream_id, POST)
    assert 0 < client.get_send_window(stream_id) <= PRE_HANDSHAKE_SEND_LIMIT
    client.submit_data(stream_id, b"early body", end_stream=True)
    second = request(link)
    assert second == 4
    # Initial; the server's Initial and Handshake (a round more where the
    # ClientHello takes two datagrams, as qh3's post-quantum key share does);
    # the client's Finished, then (paced) the requests in 1-RTT.
    for _ in range(2):
        link.xfer(client, link.server)
        link.xfer(link.server, client)
        if link.client.handshake_completed:  # not `client.`: mypy would keep it narrowed to False
            break
    assert link.client.handshake_completed
    for _ in range(3):
        link.xfer(client, link.server)
        link.tick(link.now + ROUND)
    assert link.server.handshake_completed
    assert drain(link.server) == [
        HeadersReceived(stream_id, POST),
        DataReceived(stream_id, b"early body", end_stream=True),
        HeadersReceived(second, GET, end_stream=True),
    ]
    link.server.submit_headers(stream_id, OK)
    link.server.submit_data(stream_id, b"thanks", end_stream=True)
    link.server.submit_headers(second, OK, end_stream=True)
    link.pump()
    assert drain(client) == [
        HeadersReceived(stream_id, OK),
        DataReceived(stream_id, b"thanks", end_stream=True),
        HeadersReceived(second, OK, end_stream=True),
    ]


def test_what_is_queued_before_the_handshake_is_bounded(certs: Certs) -> None:
    """Before the handshake, at most PRE_HANDSHAKE_STREAMS streams and PRE_HANDSHAKE_SEND_LIMIT bytes are queued."""
    link = make_link(certs, handshake=False)
    client = link.client
    opened = [request(link, POST, end_stream=False)]
    window = client.get_send_window(opened[0])
    client.submit_data(opened[0], b"x" * window)
    assert client.get_send_window(opened[0]) == 0
    with pytest.raises(FlowControlError):
        client.submit_data(opened[0], b"x")
    while client.is_available():
        opened.append(request(link))
    assert len(opened) == PRE_HANDSHAKE_STREAMS
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    link.pump()
    # The handshake tells the real limits: the server's window, and its 100 streams (aioquic's default).
    assert client.get_send_window(opened[0]) > window
    client.submit_data(opened[0], b"y", end_stream=True)
    link.pump()
    events = drain(link.server)
    assert sorted(e.stream_id for e in events if isinstance(e, HeadersReceived)) == opened
    assert body_of(events, opened[0]) == b"x" * window + b"y"


def test_misuse_of_streams_is_refused(link: Link) -> None:
    """Data on unknown streams, after end_stream or before headers is refused; the stream survives."""
    with pytest.raises(LocalProtocolError):
        link.client.submit_data(0, b"no stream yet")
    with pytest.raises(LocalProtocolError):
        link.client.submit_headers(4, GET)  # not the next stream
    stream_id = request(link)
    with pytest.raises(LocalProtocolError):
        link.client.submit_data(stream_id, b"after end")
    with pytest.raises(LocalProtocolError):
        link.client.get_send_window(stream_id)
    link.pump()
    drain(link.server)
    with pytest.raises(LocalProtocolError):
        link.server.submit_data(stream_id, b"before headers")
    link.server.submit_headers(stream_id, OK, end_stream=True)
    with pytest.raises(LocalProtocolError):
        link.server.submit_headers(stream_id, OK)
    link.pump()
    assert drain(link.client) == [HeadersReceived(stream_id, OK, end_stream=True)]


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"GET"), (b":path", b"/")],  # no :scheme
        [*GET, (b"Upper", b"x")],
        [*GET, (b"connection", b"close")],
        [*GET, (b"te", b"gzip")],
        [*GET, (b"x-bad", b"a\r\nb")],
        [(b"x-first", b"1"), *GET],
        [*GET, (b":status", b"200")],
        [(b":method", b"GET"), (b":method", b"GET"), *GET[1:]],
    ],
)
def test_invalid_outgoing_request_headers_raise(link: Link, headers: list[tuple[bytes, bytes]]) -> None:
    """Invalid request headers raise LocalProtocolError and open no stream."""
    with pytest.raises(LocalProtocolError):
        link.client.submit_headers(0, headers)
    assert link.client.get_available_stream_id() == 0
    request(link)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b":status", b"2000")],
        [(b":status", b"101")],
        [(b":status", b"200"), (b":path", b"/")],
        [(b":status", b"200"), (b"transfer-encoding", b"chunked")],
    ],
)
def test_invalid_outgoing_response_headers_raise(link: Link, headers: list[tuple[bytes, bytes]]) -> None:
    """Invalid response headers raise LocalProtocolError; a valid response may follow."""
    stream_id = request(link)
    link.pump()
    drain(link.server)
    with pytest.raises(LocalProtocolError):
        link.server.submit_headers(stream_id, headers)
    link.server.submit_headers(stream_id, OK, end_stream=True)


@pytest.mark.parametrize(
    ("headers", "checked_by"),
    [
        ([*GET, (b"Upper-Case", b"x")], "aioquic"),
        ([*GET, (b"connection", b"keep-alive")], "aioquic"),
        ([(b":method", b"GET"), (b":authority", b"localhost")], "trio_hface"),  # no :scheme, :path
        ([*GET, (b"content-length", b"5")], "aioquic"),  # ends without the 5 bytes
        ([*GET, (b"x-space", b"trailing ")], "aioquic"),
    ],
)
def test_invalid_incoming_headers_reset_only_that_stream(
    link: Link, headers: list[tuple[bytes, bytes]], checked_by: str
) -> None:
    """A malformed request is reset with H3_MESSAGE_ERROR; the connection keeps working."""
    h3 = link.client._h3
    assert h3 is not None
    bad = link.client.get_available_stream_id()
    h3.send_headers(bad, headers, end_stream=True)  # bypass the client's own checks
    link.pump()
    assert drain(link.server) == [StreamResetSent(bad, H3_MESSAGE_ERROR)]
    assert not link.server.has_expired()
    good = link.client.get_available_stream_id()
    assert good == bad + 4
    link.client.submit_headers(good, GET, end_stream=True)
    link.pump()
    assert drain(link.server) == [HeadersReceived(good, GET, end_stream=True)]
    link.server.submit_headers(good, OK, end_stream=True)
    link.pump()
    assert drain(link.client) == [HeadersReceived(good, OK, end_stream=True)]


def test_oversized_headers_frame_resets_the_stream(certs: Certs) -> None:
    """A HEADERS frame larger than the stream window, which could never complete, is refused."""
    link = make_link(certs, server_factory=HTTP3ServerFactory(max_stream_data=16 * 1024))
    quic = link.client._quic
    assert quic is not None
    bad = link.client.get_available_stream_id()
    # A HEADERS frame (type 0x01) announcing 64 KiB (a 4-byte varint), then some of it.
    quic.send_stream_data(bad, b"\x01" + (0x80000000 | 65536).to_bytes(4, "big") + b"\x00" * 1000)
    link.pump()
    assert drain(link.server) == [StreamResetSent(bad, H3_MESSAGE_ERROR)]
    good = request(link)
    link.pump()
    assert drain(link.server) == [HeadersReceived(good, GET, end_stream=True)]


def test_invalid_incoming_response_resets_the_stream(link: Link) -> None:
    """A malformed response is reset on the client with H3_MESSAGE_ERROR."""
    stream_id = request(link)
    link.pump()
    drain(link.server)
    h3 = link.server._h3
    assert h3 is not None
    h3.send_headers(stream_id, [(b":status", b"200"), (b"keep-alive", b"1")], end_stream=True)
    link.pump()
    assert drain(link.client) == [StreamResetSent(stream_id, H3_MESSAGE_ERROR)]
    assert link.client.is_available()


def test_extended_connect_passes_protocol_through(link: Link) -> None:
    """:protocol reaches the server when it enables extended CONNECT."""
    headers = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", b"/chat"),
    ]
    stream_id = request(link, headers, end_stream=False)
    link.pump()
    assert drain(link.server) == [HeadersReceived(stream_id, headers)]


def test_extended_connect_refused_when_disabled(certs: Certs) -> None:
    """A client may not send :protocol to a server that did not enable it."""
    link = make_link(certs, server_factory=HTTP3ServerFactory(enable_connect_protocol=False))
    headers = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", b"/chat"),
    ]
    with pytest.raises(LocalProtocolError, match="extended CONNECT"):
        link.client.submit_headers(link.client.get_available_stream_id(), headers)


# -- robustness ----------------------------------------------------------------------


def _established_datagrams(certs: Certs) -> Iterator[bytes]:
    """Datagrams of a real exchange (handshake, request, response), client to server."""
    link = make_link(certs, handshake=False)
    captured: list[bytes] = []
    for _ in range(50):
        datagrams = link.client.datagrams_to_send()
        captured.extend(d for d, _ in datagrams)
        for data, _ in datagrams:
            link.server.datagram_received((data, CLIENT_ADDRESS))
        link.xfer(link.server, link.client)
        link.tick(link.now + ROUND)
        if link.client.is_available() and len(captured) > 5:
            break
    request(link, POST, end_stream=False)
    link.client.submit_data(0, b"payload" * 50, end_stream=True)
    captured.extend(d for d, _ in link.client.datagrams_to_send())
    return iter(captured)


@pytest.fixture(scope="module")
def sample_datagrams(certs: Certs) -> list[bytes]:
    return list(_established_datagrams(certs))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.lists(st.binary(min_size=0, max_size=1500), min_size=1, max_size=5))
def test_random_datagrams_never_raise(certs: Certs, link: Link, garbage: list[bytes]) -> None:
    """Random bytes fed to a fresh server and to both sides of a live connection never raise."""
    fresh = HTTP3ServerFactory()(tls_config=memory_server_tls(certs))
    fresh.clock(0.0)
    for data in garbage:
        fresh.datagram_received((data, CLIENT_ADDRESS))
        link.server.datagram_received((data, CLIENT_ADDRESS))
        link.client.datagram_received((data, SERVER_ADDRESS))
    fresh.datagrams_to_send()
    link.pump()
    drain(fresh)
    drain(link.server)
    drain(link.client)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_datagrams_never_raise(
    certs: Certs, sample_datagrams: list[bytes], data: st.DataObject
) -> None:
    """Valid datagrams with flipped, cut or inserted bytes never make a server raise."""
    server = HTTP3ServerFactory()(tls_config=memory_server_tls(certs))
    server.clock(0.0)
    for original in sample_datagrams:
        mutated = bytearray(original)
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "keep"]))
        if action == "flip" and mutated:
            for _ in range(data.draw(st.integers(1, 8))):
                index = data.draw(st.integers(0, len(mutated) - 1))
                mutated[index] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
        elif action == "insert":
            index = data.draw(st.integers(0, len(mutated)))
            mutated[index:index] = data.draw(st.binary(min_size=1, max_size=16))
        server.datagram_received((bytes(mutated), CLIENT_ADDRESS))
        server.datagrams_to_send()
        server.clock(1.0)
    drain(server)


def test_rapid_reset_flood_gets_excessive_load(link: Link) -> None:
    """A client that opens and resets request streams without end is closed with H3_EXCESSIVE_LOAD."""
    server_quic = link.server._quic
    assert server_quic is not None
    client_events: list[Event] = []
    for n in range(20000):
        if server_quic._close_event is not None:
            break
        if n % 20 == 19 or not link.client.is_available():
            link.pump()  # stream credit comes back as the reset streams close
            for event in drain(link.server):
                if isinstance(event, StreamResetReceived):
                    try:
                        link.server.submit_stream_reset(
                            event.stream_id, 0x10C
                        )  # the application gives up too
                    except LocalProtocolError:
                        pass  # nothing left to reset
            client_events += drain(link.client)
            continue
        stream_id = request(link, end_stream=False)
        link.xfer(link.client, link.server)  # the request goes out, then its reset
        link.client.submit_stream_reset(stream_id, 0x10C)
    assert server_quic._close_event is not None, f"only {link.server._requests.resets.reset} resets"
    assert server_quic._close_event.error_code == 0x107  # H3_EXCESSIVE_LOAD
    assert link.server._requests.resets.reset == 1001

    def client_told() -> bool:
        client_events.extend(drain(link.client))
        return any(isinstance(e, ConnectionTerminated) and e.error_code == 0x107 for e in client_events)

    link.pump()  # the CONNECTION_CLOSE reaches the client
    assert client_told()


def test_sending_on_a_stream_the_peer_reset_says_so(link: Link) -> None:
    """Data for a stream the peer reset raises StreamResetByPeerError with the peer's code."""
    stream_id = request(link, end_stream=False)
    link.pump()
    assert isinstance(drain(link.server)[0], HeadersReceived)
    link.server.submit_stream_reset(stream_id, 0x10C)
    link.pump()
    assert StreamResetReceived(stream_id, 0x10C) in drain(link.client)
    with pytest.raises(StreamResetByPeerError) as raised:
        link.client.submit_data(stream_id, b"late")
    assert raised.value.error_code == 0x10C and isinstance(raised.value, LocalProtocolError)
