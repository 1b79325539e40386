"""Path MTU discovery (RFC 8899, RFC 9000 section 14.3): the search, and HTTP/3 links whose paths carry more, or less."""

from __future__ import annotations

import random

import pytest

from tests.h3link import (
    CLIENT_ADDRESS,
    OK,
    ROUND,
    SERVER_ADDRESS,
    Certs,
    Link,
    body_of,
    drain,
    make_link,
    request,
)
from trio_hface.events import Event
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ProtocolImpl, HTTP3ServerFactory
from trio_hface.protocols.http3._factories import MAX_UDP_PAYLOAD_SIZE
from trio_hface.protocols.http3._pmtu import BLACK_HOLE_PTOS, MAX_PROBES, PathMTUSearch

# -- the search ------------------------------------------------------------------


def test_search_climbs_the_steps_to_the_ceiling() -> None:
    search = PathMTUSearch(1200, 16384)
    sizes = []
    while (size := search.next_probe()) is not None:
        assert search.next_probe() is None  # one probe in flight at a time
        assert search.acknowledged(size)
        sizes.append(search.size)
    assert sizes == [1452, 4096, 8192, 16384] and search.done


def test_three_losses_of_a_size_end_the_search_at_the_last_size_acknowledged() -> None:
    search = PathMTUSearch(1200, 16384)
    first = search.next_probe()
    assert first == 1452 and search.acknowledged(first)
    for _ in range(MAX_PROBES):
        assert not search.done
        size = search.next_probe()
        assert size == 4096
        search.lost(size)
    assert search.done and search.size == 1452 and search.next_probe() is None


def test_a_late_answer_to_an_old_probe_changes_nothing() -> None:
    search = PathMTUSearch(1200, 16384)
    size = search.next_probe()
    assert size is not None
    search.restart()  # a new path
    assert not search.acknowledged(size) and search.size == 1200
    search.lost(size)
    assert search.next_probe() == 1452


def test_the_peer_limit_caps_the_search() -> None:
    search = PathMTUSearch(1200, 16384)
    search.limit(5000)
    sizes = []
    while (size := search.next_probe()) is not None:
        search.acknowledged(size)
        sizes.append(size)
    assert sizes == [1452, 4096, 5000] and search.size == 5000
    low = PathMTUSearch(1200, 16384)
    low.limit(1200)
    assert low.done and low.next_probe() is None


def test_black_hole_falls_back_to_the_base_for_good() -> None:
    search = PathMTUSearch(1200, 16384)
    size = search.next_probe()
    assert size is not None and search.acknowledged(size)
    assert search.black_hole() and search.size == 1200 and search.done
    assert not search.black_hole()


def test_factories_check_the_sizes() -> None:
    with pytest.raises(ValueError, match="max_probed_datagram_size"):
        HTTP3ServerFactory(max_probed_datagram_size=1000)
    with pytest.raises(ValueError, match="max_probed_datagram_size"):
        HTTP3ClientFactory(max_probed_datagram_size=MAX_UDP_PAYLOAD_SIZE + 1)
    with pytest.raises(ValueError, match="max_datagram_size"):
        HTTP3ServerFactory(max_datagram_size=MAX_UDP_PAYLOAD_SIZE + 1)


# -- links whose paths carry a given size ----------------------------------------


class PathLink(Link):
    """A link whose path drops datagrams larger than *mtu* bytes (as a router, or the
    kernel refusing a send, would); records the sizes that crossed."""

    def __init__(self, link: Link, mtu: int) -> None:
        super().__init__(link.client, link.server)
        self.now = link.now
        self.mtu = mtu
        self.crossed: list[int] = []

    def xfer(self, sender: HTTP3ProtocolImpl, receiver: HTTP3ProtocolImpl) -> int:
        source = SERVER_ADDRESS if sender is self.server else CLIENT_ADDRESS
        datagrams = sender.datagrams_to_send()
        for data, _ in datagrams:
            if len(data) <= self.mtu:
                self.crossed.append(len(data))
                receiver.datagram_received((data, source))
        return len(datagrams)


def path_link(certs: Certs, mtu: int) -> PathLink:
    link = PathLink(make_link(certs, handshake=False), mtu)
    link.pump()
    return link


def download(link: Link, size: int) -> bytes:
    stream_id = request(link)
    link.pump()
    drain(link.server)
    body = random.Random(size).randbytes(size)
    link.server.submit_headers(stream_id, OK)
    link.server.submit_data(stream_id, body, end_stream=True)
    events: list[Event] = []
    for _ in range(20000):
        link.pump()
        events += drain(link.client)
        if body_of(events, stream_id) == body:
            return body
        timer = link.next_timer()
        if timer is None:
            break
        link.tick(timer)
    raise AssertionError(f"{len(body_of(events, stream_id))} of {size} bytes arrived")


def datagram_size(protocol: HTTP3ProtocolImpl) -> int:
    quic = protocol._quic
    assert quic is not None
    return int(quic._max_datagram_size)  # type: ignore[attr-defined]


def test_a_path_that_carries_more_gets_larger_datagrams(certs: Certs) -> None:
    """Over a path carrying 64 KiB (loopback) both sides reach the stack's largest
    size, and a 1 MB body moves in an eighth of the datagrams 1200 bytes would take."""
    link = path_link(certs, 65535)
    assert datagram_size(link.server) == datagram_size(link.client) == MAX_UDP_PAYLOAD_SIZE
    link.crossed.clear()
    download(link, 1_000_000)
    assert max(link.crossed) == MAX_UDP_PAYLOAD_SIZE
    assert len(link.crossed) < 1_000_000 // 1200 // 8


def test_ethernet_settles_at_1452(certs: Certs) -> None:
    """Over a path of 1500-byte Ethernet (UDP payloads of 1472 bytes under IPv4) the size
    stops at 1452: the larger probe is lost three times, and then the search ends."""
    link = path_link(certs, 1472)
    download(link, 300_000)
    assert datagram_size(link.server) == 1452
    quic = link.server._quic
    assert quic is not None and quic._pmtu is not None and quic._pmtu.done  # type: ignore[attr-defined]
    assert max(link.crossed) == 1452


def test_probes_are_not_counted_in_flight(certs: Certs) -> None:
    """Congestion control neither waits for probes nor takes their loss for congestion
    (RFC 9000 section 14.4): each probe is sent as a packet out of bytes in flight."""
    link = PathLink(make_link(certs, handshake=False), 1472)
    probes = 0
    for _ in range(2000):
        moved = link.xfer(link.client, link.server) + link.xfer(link.server, link.client)
        quic = link.server._quic  # (made by the client's first datagram)
        assert quic is not None
        recovery = quic._loss  # type: ignore[attr-defined]
        counted = 0
        for space in quic._spaces.values():  # type: ignore[attr-defined]
            for packet in space.sent_packets.values():
                if packet.sent_bytes > datagram_size(link.server):
                    assert not packet.in_flight
                    probes += 1
                elif packet.in_flight:
                    counted += packet.sent_bytes
        assert recovery.bytes_in_flight == counted
        if not moved and quic._pmtu.done:  # type: ignore[attr-defined]
            break
        link.tick(link.now + ROUND * 10)
    assert probes >= 3 and datagram_size(link.server) == 1452


def test_without_discovery_datagrams_stay_small(certs: Certs) -> None:
    link = PathLink(
        make_link(
            certs,
            handshake=False,
            client_factory=HTTP3ClientFactory(max_probed_datagram_size=None),
            server_factory=HTTP3ServerFactory(max_probed_datagram_size=None),
        ),
        65535,
    )
    link.pump()
    download(link, 200_000)
    assert max(link.crossed) <= 1200 and datagram_size(link.server) == 1200


def test_a_black_hole_falls_back_to_small_datagrams_and_the_transfer_goes_on(certs: Certs) -> None:
    """The path stops carrying large datagrams (a route change): after a few probe
    timeouts the server sends 1200-byte datagrams again, and the body arrives whole."""
    link = path_link(certs, 65535)
    assert datagram_size(link.server) == MAX_UDP_PAYLOAD_SIZE
    link.mtu = 1400
    link.crossed.clear()
    download(link, 200_000)
    assert datagram_size(link.server) == 1200
    quic = link.server._quic
    assert quic is not None and quic._loss._pto_count < BLACK_HOLE_PTOS  # type: ignore[attr-defined]


def test_a_new_path_starts_from_the_base_size(certs: Certs) -> None:
    """When the client moves (a new address), the server's datagrams go back to 1200 bytes
    until probes on the new path succeed."""
    link = path_link(certs, 65535)
    quic = link.server._quic
    assert quic is not None
    stream_id = request(link)
    link.pump()
    drain(link.server)
    # The client's next datagrams come from another port: the server validates the new path.
    moved = ("127.0.0.1", 50001)
    sizes: list[int] = []
    link.server.submit_headers(stream_id, OK)
    link.server.submit_data(stream_id, b"x" * 100_000, end_stream=True)
    used: list[int] = []  # the server's datagram size after each of its sends
    for _ in range(200):
        for data, _ in link.client.datagrams_to_send():
            link.server.datagram_received((data, moved))
        for data, _ in link.server.datagrams_to_send():
            sizes.append(len(data))
            link.client.datagram_received((data, SERVER_ADDRESS))
        used.append(datagram_size(link.server))
        link.tick(link.now + ROUND)
    assert used[0] == MAX_UDP_PAYLOAD_SIZE and 1200 in used  # back to the base on the new path
    path = quic._network_paths[0]
    assert path.addr == moved and path.is_validated
    assert quic._pmtu_path is path  # type: ignore[attr-defined]
    assert MAX_UDP_PAYLOAD_SIZE in sizes  # probes on the new path raised the size again
    assert datagram_size(link.server) == MAX_UDP_PAYLOAD_SIZE
