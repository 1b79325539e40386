"""Batched UDP: a flight per sendmsg (GSO), bursts per wakeup (GRO), and the plain fallback."""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from tests.handlers import Client, echo_handler, start_quic
from trio_hface import ServerTLSConfig
from trio_hface._typing import DatagramType
from trio_hface.connections import HTTPOverQUICListener, HTTPOverQUICOpener
from trio_hface.networking import DatagramStream, _udp
from trio_hface.networking._quic import open_udp_stream
from trio_hface.networking._udp import (
    MAX_GSO_BYTES,
    MAX_GSO_SEGMENTS,
    SOCKET_BUFFER_SIZE,
    SOL_UDP,
    UDP_GRO,
    UDPOffload,
    UDPSocket,
    udp_offload,
)
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ProtocolImpl, HTTP3ServerFactory

needs_gso = pytest.mark.skipif(not udp_offload().gso, reason="the kernel has no UDP GSO")
needs_gro = pytest.mark.skipif(not udp_offload().gro, reason="the kernel has no UDP GRO")

A = ("127.0.0.1", 1000)
B = ("127.0.0.1", 2000)


@pytest.fixture
def no_offload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sockets made from now on find neither GSO nor GRO, as on a kernel without them."""
    monkeypatch.setattr(_udp, "udp_offload", lambda: UDPOffload(gso=False, gro=False))


@pytest.fixture
def gro_receiver() -> Iterator[socket.socket]:
    """A plain socket with UDP_GRO on: a GSO send arrives there as one glued read."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(SOL_UDP, UDP_GRO, 1)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    yield receiver
    receiver.close()


def flight() -> list[bytes]:
    return [bytes([i]) * 1200 for i in range(10)] + [b"z" * 500]


async def bound_udp_socket() -> UDPSocket:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return UDPSocket(sock)


def reads(receiver: socket.socket, total: int) -> list[tuple[int, int]]:
    """Read until *total* bytes arrived; return (length, GRO segment size) per read."""
    out: list[tuple[int, int]] = []
    while sum(length for length, _ in out) < total:
        data, ancillary, _, _ = receiver.recvmsg(65535, socket.CMSG_SPACE(4))
        segment = 0
        for level, kind, value in ancillary:
            if level == SOL_UDP and kind == UDP_GRO:
                segment = int.from_bytes(value[:4], "little")
        out.append((len(data), segment))
    return out


def test_runs_group_what_one_gso_send_can_carry() -> None:
    """Runs: one address, the first datagram's size, only the last shorter, within the kernel's limits."""
    big, small = b"x" * 1200, b"y" * 100
    datagrams: list[DatagramType] = [(big, A), (big, A), (small, A), (big, A), (big, B), (small, A)]
    assert [(len(s), [len(d) for d in s], to) for s, to in _udp._runs(datagrams)] == [
        (3, [1200, 1200, 100], A),
        (1, [1200], A),
        (1, [1200], B),
        (1, [100], A),
    ]
    many = _udp._runs([(b"x" * 100, A)] * (MAX_GSO_SEGMENTS + 1))
    assert [len(segments) for segments, _ in many] == [MAX_GSO_SEGMENTS, 1]
    large = _udp._runs([(b"x" * 10000, A)] * 8)
    assert [len(segments) for segments, _ in large] == [MAX_GSO_BYTES // 10000, 8 - MAX_GSO_BYTES // 10000]
    assert _udp._runs([]) == []


@needs_gso
@needs_gro
async def test_gso_sends_a_flight_with_one_sendmsg(gro_receiver: socket.socket) -> None:
    """With GSO, a flight leaves as one buffer that the kernel cuts at the first datagram's size."""
    udp = await bound_udp_socket()
    assert udp.gso
    address = gro_receiver.getsockname()
    await udp.send_batch([(data, address) for data in flight()])
    assert reads(gro_receiver, 10 * 1200 + 500) == [(10 * 1200 + 500, 1200)]
    udp.close()


#: SO_NO_CHECK (asm-generic/socket.h): UDP without checksums, which GSO refuses (EINVAL).
SO_NO_CHECK = 11


@needs_gso
@needs_gro
async def test_a_socket_whose_gso_send_is_refused_falls_back(gro_receiver: socket.socket) -> None:
    """When the kernel refuses a GSO send on a socket, the batch still goes out, datagram by datagram, and so do later ones."""
    udp = await bound_udp_socket()
    udp._sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    address = gro_receiver.getsockname()
    await udp.send_batch([(data, address) for data in flight()])
    assert not udp.gso
    await udp.send_batch([(data, address) for data in flight()])
    assert reads(gro_receiver, 2 * (10 * 1200 + 500)) == 2 * ([(1200, 0)] * 10 + [(500, 0)])
    udp.close()


@needs_gro
async def test_without_gso_each_datagram_is_sent_alone(no_offload: None, gro_receiver: socket.socket) -> None:
    """The fallback: without GSO, a batch goes out one sendto per datagram, all of them, in order."""
    udp = await bound_udp_socket()
    assert not udp.gso
    address = gro_receiver.getsockname()
    await udp.send_batch([(data, address) for data in flight()])
    assert reads(gro_receiver, 10 * 1200 + 500) == [(1200, 0)] * 10 + [(500, 0)]
    udp.close()


@pytest.mark.parametrize("offload", ["kernel", "none"])
async def test_a_burst_is_received_in_one_wakeup(offload: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every datagram waiting comes from one receive_batch, split again where GRO glued them."""
    if offload == "none":
        monkeypatch.setattr(_udp, "udp_offload", lambda: UDPOffload(gso=False, gro=False))
    sender, receiver = await bound_udp_socket(), await bound_udp_socket()
    assert receiver.gro == (offload == "kernel" and udp_offload().gro)
    address = receiver.getsockname()
    sent = flight()
    await sender.send_batch([(data, address) for data in sent])
    await sender.send_batch([(b"last", address)])
    with trio.fail_after(5):
        batch = await receiver.receive_batch()
        while len(batch) < len(sent) + 1:  # the kernel may not have delivered them all yet
            batch += await receiver.receive_batch()
    assert [data for data, _ in batch] == [*sent, b"last"]
    assert {source for _, source in batch} == {sender.getsockname()}
    assert receiver.receive_nowait() == []
    sender.close()
    receiver.close()


async def test_receiving_waits_cancellably_and_ends_on_close(autojump_clock: trio.testing.MockClock) -> None:
    """A receive with nothing to read waits until cancelled; closing wakes it with ClosedResourceError."""
    udp = await bound_udp_socket()
    with trio.move_on_after(10) as scope:
        await udp.receive_batch()
    assert scope.cancelled_caught
    raised: list[BaseException] = []

    async def receive() -> None:
        try:
            await udp.receive_batch()
        except trio.ClosedResourceError as exc:
            raised.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.sleep(1)
        udp.close()
    assert len(raised) == 1
    with pytest.raises(trio.ClosedResourceError):
        await udp.send_batch([(b"x", A)])


def kernel_limit(name: str) -> int:
    return int(Path("/proc/sys/net/core", name).read_text())


async def test_socket_buffers_are_enlarged() -> None:
    """The socket asks for SOCKET_BUFFER_SIZE buffers, beyond the 208 KiB default, within the kernel's cap."""
    try:
        cap, default = kernel_limit("rmem_max"), kernel_limit("rmem_default")
    except OSError:
        pytest.skip("no /proc/sys/net/core")
    if cap <= default:
        pytest.skip("the kernel allows no larger buffers")
    udp = await bound_udp_socket()
    # Linux reports double the size asked for (its bookkeeping overhead).
    assert udp._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * min(cap, SOCKET_BUFFER_SIZE)
    udp.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_MTU_DISCOVER is Linux's")
async def test_udp_sockets_set_dont_fragment() -> None:
    """Datagrams leave with DF set and the kernel's ICMP-learnt path MTU ignored (RFC 9000 section 14)."""
    udp = await bound_udp_socket()
    assert udp._sock.getsockopt(socket.IPPROTO_IP, _udp.IP_MTU_DISCOVER) == _udp.PMTUDISC_PROBE
    udp.close()
    sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    await sock.bind(("::1", 0))
    udp6 = UDPSocket(sock)
    assert udp6._sock.getsockopt(socket.IPPROTO_IPV6, _udp.IPV6_MTU_DISCOVER) == _udp.PMTUDISC_PROBE
    udp6.close()


async def test_a_datagram_larger_than_the_path_is_lost_not_fatal() -> None:
    """A send the kernel refuses as too large (EMSGSIZE, as for a path MTU probe beyond
    the interface's MTU) is lost, as UDP allows, and the socket goes on sending."""
    sender = await bound_udp_socket()
    receiver = await bound_udp_socket()
    target = receiver.getsockname()
    await sender.send_batch([(b"x" * 65000 + b"y" * 600, target), (b"after", target)])  # over any UDP payload
    with trio.fail_after(5):
        ((data, _),) = await receiver.receive_batch()
    assert data == b"after"
    sender.close()
    receiver.close()


async def test_udp_stream_hands_out_a_burst_without_waiting() -> None:
    """A client's UDPStream: receive_nowait gives the datagrams that arrived, then WouldBlock."""
    server = await bound_udp_socket()
    stream = await open_udp_stream(server.getsockname())
    await stream.send_batch([(b"hello", server.getsockname())])
    with trio.fail_after(5):
        ((data, client),) = await server.receive_batch()
    assert data == b"hello"
    await server.send_batch([(b"one", client), (b"two", client), (b"three", client)])
    with trio.fail_after(5):
        first = await stream.receive()
    rest: list[bytes] = []
    with trio.fail_after(5):
        while len(rest) < 2:
            try:
                rest.append(stream.receive_nowait()[0])
            except trio.WouldBlock:
                await trio.sleep(0.01)
    assert [first[0], *rest] == [b"one", b"two", b"three"]
    with pytest.raises(trio.WouldBlock):
        stream.receive_nowait()
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        stream.receive_nowait()
    server.close()


async def _receive_into(stream: DatagramStream, raised: list[BaseException]) -> None:
    try:
        await stream.receive()
    except trio.ClosedResourceError as exc:
        raised.append(exc)


async def test_udp_stream_closed_while_a_receive_yields() -> None:
    """A receive that yields with a datagram pending, while another task closes the stream, raises ClosedResourceError.

    Trio runs the two tasks in either order; 20 rounds meet the interleaving
    where the close lands inside the receive's checkpoint.
    """
    server = await bound_udp_socket()
    for _ in range(20):
        stream = await open_udp_stream(server.getsockname())
        await stream.send_batch([(b"hello", server.getsockname())])
        with trio.fail_after(5):
            ((_, client),) = await server.receive_batch()
        await server.send_batch([(b"one", client), (b"two", client)])
        with trio.fail_after(5):
            assert (await stream.receive())[0] == b"one"
        # Loopback delivers within the send, so b"two" came in the same batch
        # and is pending now: the receive below checkpoints before handing it out.
        raised: list[BaseException] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, raised)
            await trio.lowlevel.checkpoint()
            await stream.aclose()
        assert len(raised) == 1
    server.close()


class _ListStream(DatagramStream):
    """A datagram stream with only the required methods, recording what it sends."""

    def __init__(self) -> None:
        self.sent: list[DatagramType] = []

    async def send(self, value: DatagramType) -> None:
        self.sent.append(value)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> DatagramType:
        raise trio.EndOfChannel

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_datagram_stream_defaults() -> None:
    """The interface's defaults: send_batch sends each datagram in order; receive_nowait has nothing."""
    stream = _ListStream()
    batch: Sequence[DatagramType] = [(b"a", A), (b"b", B)]
    await stream.send_batch(batch)
    assert stream.sent == list(batch)
    with pytest.raises(trio.WouldBlock):
        stream.receive_nowait()


@pytest.mark.parametrize("offload", ["kernel", "none"])
async def test_http3_over_either_udp_mode(
    offload: str, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 MiB HTTP/3 response crosses intact with the kernel's batching and with the plain fallback."""
    if offload == "none":
        monkeypatch.setattr(_udp, "udp_offload", lambda: UDPOffload(gso=False, gro=False))
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                body = b"batch" * 40000
                headers, data = await client.fetch(b"/", body, reply_size=1024 * 1024)
                assert headers[b"x-sha256"] == hashlib.sha256(body).hexdigest().encode()
                assert len(data) == 1024 * 1024
        await listener.aclose()
        nursery.cancel_scope.cancel()


class _AlwaysDue(HTTP3ProtocolImpl):
    """A protocol whose timer is always due, as pacing's is until the writer sends."""

    _last_now = 0.0

    def clock(self, now: float) -> None:
        self._last_now = now
        super().clock(now)

    def get_timer(self) -> float | None:
        return self._last_now


class _AlwaysDueFactory(HTTP3ServerFactory):
    def __call__(self, *, tls_config: ServerTLSConfig) -> HTTP3ProtocolImpl:
        protocol = super().__call__(tls_config=tls_config)
        protocol.__class__ = _AlwaysDue
        return protocol


async def test_a_timer_always_due_does_not_starve_input(certs: Certs) -> None:
    """The reader takes queued datagrams even while the protocol's timer is due at every turn."""
    listener = await HTTPOverQUICListener.create(
        _AlwaysDueFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server
    )
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(listener.serve, echo_handler)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(20):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                _, data = await client.fetch(b"/", b"ping", reply_size=100_000)
                assert len(data) == 100_000
        await listener.aclose()
        nursery.cancel_scope.cancel()
