"""HTTP/3 connections over real loopback UDP sockets."""

from __future__ import annotations

import hashlib
import socket
from typing import Any

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from tests.handlers import Client, echo_handler, start_quic
from tests.peers import refusing_port
from trio_hface import ClientTLSConfig
from trio_hface.connections import (
    HTTPConnection,
    HTTPMultiListener,
    HTTPOverQUICConnection,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
)
from trio_hface.errors import ConnectError
from trio_hface.events import ConnectionTerminated
from trio_hface.networking import QUICListener, SystemNetworking
from trio_hface.protocols import ALPNHTTPFactory, HTTPOverQUICProtocol
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from trio_hface.protocols.http3._factories import MAX_UDP_PAYLOAD_SIZE


async def test_http3_end_to_end(certs: Certs) -> None:
    """A request with a body and a 1 MiB response cross HTTP/3 intact."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                assert connection.http_version == "3"
                client = Client(connection)
                nursery.start_soon(client.run)
                body = b"quic!" * 20000
                headers, data = await client.fetch(b"/", body, reply_size=1024 * 1024)
                assert headers[b"x-sha256"] == hashlib.sha256(body).hexdigest().encode()
                assert len(data) == 1024 * 1024
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_http3_over_loopback_discovers_its_path_mtu(certs: Certs) -> None:
    """Over loopback (64 KiB) path MTU discovery raises the client's datagrams to the
    stack's largest, and a 1 MiB upload and download cross intact at that size."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                await client.fetch(b"/", b"", reply_size=10)
                body = bytes(range(256)) * 4096
                headers, data = await client.fetch(b"/", body, reply_size=1024 * 1024)
                assert headers[b"x-sha256"] == hashlib.sha256(body).hexdigest().encode()
                assert len(data) == 1024 * 1024
                quic = connection._quic._quic  # type: ignore[attr-defined]  # (aioquic's, in the driver)
                assert quic._max_datagram_size == MAX_UDP_PAYLOAD_SIZE
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_http3_hundred_streams_and_big_bodies(certs: Certs) -> None:
    """100 concurrent HTTP/3 streams on one connection (the server's limit), then 8 MiB each way."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(120):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                done: list[int] = []

                async def one(n: int) -> None:
                    headers, data = await client.fetch(b"/%d" % n, b"y" * n, reply_size=n)
                    assert headers[b"x-size"] == b"%d" % n and len(data) == n
                    done.append(n)

                async with trio.open_nursery() as inner:
                    for n in range(100):
                        inner.start_soon(one, n)
                assert sorted(done) == list(range(100))
                big = bytes(range(256)) * (8 * 4096)
                headers, data = await client.fetch(b"/big", big, reply_size=len(big))
                assert headers[b"x-sha256"] == hashlib.sha256(big).hexdigest().encode()
                assert len(data) == len(big)
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_http3_connection_takes_requests_before_its_handshake(certs: Certs) -> None:
    """A connection around a fresh HTTP/3 client protocol sends requests at once; they go out after the handshake."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        protocol = HTTP3ClientFactory()(
            remote_address=address, server_name="localhost", tls_config=certs.client
        )
        stream = await SystemNetworking().connect_udp(address)
        extra = {"tls_version": "TLSv1.3", "alpn_protocol": "h3", "remote_address": address}
        with trio.fail_after(30):
            async with HTTPOverQUICConnection(protocol, stream, extra) as connection:
                assert not protocol.handshake_completed and connection.is_available()
                client = Client(connection)
                nursery.start_soon(client.run)
                # Bigger than what may be queued before the handshake: send_data waits for the real window.
                body = b"early" * 20000

                async def fetch(n: int) -> None:
                    headers, data = await client.fetch(b"/%d" % n, body, reply_size=1000)
                    assert headers[b"x-sha256"] == hashlib.sha256(body).hexdigest().encode()
                    assert len(data) == 1000

                async with trio.open_nursery() as inner:
                    for n in range(3):
                        inner.start_soon(fetch, n)
                assert protocol.handshake_completed
        # The opener still hands out connections that have shaken hands.
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                assert isinstance(connection.protocol, HTTPOverQUICProtocol)
                assert connection.protocol.handshake_completed
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_bad_certificate_is_a_connect_error(certs: Certs) -> None:
    """A client that does not trust the server's CA gets ConnectError from the opener."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=ClientTLSConfig())
        with trio.fail_after(30), pytest.raises(ConnectError):
            await opener(address, server_name="localhost")
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_no_server_is_a_connect_error() -> None:
    """An address where nobody listens fails within the handshake timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    opener = HTTPOverQUICOpener(HTTP3ClientFactory(), handshake_timeout=1.0)
    try:
        with trio.fail_after(10), pytest.raises(ConnectError):
            await opener(("127.0.0.1", port), server_name="localhost")
    finally:
        sock.close()


async def test_closed_udp_port_fails_at_once() -> None:
    """ICMP port unreachable ends the handshake at once with a ConnectError, long before its timeout."""
    with refusing_port(socket.SOCK_DGRAM) as port:
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), handshake_timeout=60.0)
        start = trio.current_time()
        with trio.fail_after(30), pytest.raises(ConnectError, match="nobody listens") as caught:
            await opener(("127.0.0.1", port), server_name="localhost")
    assert trio.current_time() - start < 5.0
    assert isinstance(caught.value.__cause__, ConnectError)
    assert isinstance(caught.value.__cause__.__cause__, ConnectionRefusedError)


async def _relay(
    address: tuple[str, int], task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Relay UDP between one client and *address*; when cancelled, its port closes without a word."""
    front, back = trio.socket.socket(type=socket.SOCK_DGRAM), trio.socket.socket(type=socket.SOCK_DGRAM)
    with front, back:
        await front.bind(("127.0.0.1", 0))
        await back.bind(("127.0.0.1", 0))
        task_status.started(front.getsockname())
        data, client = await front.recvfrom(65536)
        await back.sendto(data, address)
        async with trio.open_nursery() as nursery:

            async def forward(source: trio.socket.SocketType, sink: trio.socket.SocketType, to: Any) -> None:
                while True:
                    data, _ = await source.recvfrom(65536)
                    await sink.sendto(data, to)

            nursery.start_soon(forward, front, back, address)
            nursery.start_soon(forward, back, front, client)


async def test_server_gone_after_the_handshake_ends_the_connection(certs: Certs) -> None:
    """Once the server's UDP port closes, ICMP port unreachable ends the connection at once, not at its idle timeout."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        async with trio.open_nursery() as relay:
            relay_address = await relay.start(_relay, address)
            opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
            connection = await opener(relay_address, server_name="localhost")
            relay.cancel_scope.cancel()  # the port closes; the server says nothing
        request = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", b"/"),
        ]
        async with connection:
            start = trio.current_time()
            stream_id = connection.get_available_stream_id()
            await connection.send_headers(stream_id, request, end_stream=True)
            with trio.fail_after(20):
                event = await connection.receive_event()
                while not isinstance(event, ConnectionTerminated):
                    event = await connection.receive_event()
            assert trio.current_time() - start < 5.0
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_version_negotiation_and_garbage(certs: Certs) -> None:
    """An unknown QUIC version gets Version Negotiation; garbage is dropped and counted."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", 0))
        # A long header with version 0x1a2a3a4a, DCID and SCID of 8 bytes, padded to 1200 bytes.
        packet = bytes([0xC0]) + (0x1A2A3A4A).to_bytes(4, "big") + b"\x08" + b"D" * 8 + b"\x08" + b"S" * 8
        await udp.sendto(b"\x00garbage", address)
        await udp.sendto(packet.ljust(1200, b"\x00"), address)
        with trio.fail_after(10):
            reply, _ = await udp.recvfrom(2048)
        assert reply[1:5] == b"\x00\x00\x00\x00"  # version 0: Version Negotiation
        assert reply[6:14] == b"S" * 8 and reply[15:23] == b"D" * 8
        quic = listener._listeners[0]
        assert isinstance(quic, QUICListener)
        # The garbage went first, so it was handled before the reply was sent.
        assert quic.statistics().dropped_unroutable == 1
        assert quic.statistics().version_negotiations == 1
        udp.close()
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_multi_listener_serves_every_version(certs: Certs) -> None:
    """One HTTPMultiListener serves HTTP/1.1 and HTTP/2 (ALPN) on TCP and HTTP/3 on UDP."""

    async def handler(connection: HTTPConnection) -> None:
        await echo_handler(connection)

    async with trio.open_nursery() as nursery:
        tcp = await HTTPOverTCPListener.create(
            ALPNHTTPFactory([HTTP2ServerFactory(), HTTP1ServerFactory()]),
            local_address=("127.0.0.1", 0),
            tls_config=certs.server,
        )
        quic = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server
        )
        multi = HTTPMultiListener([tcp, quic])
        addresses = await nursery.start(multi.serve, handler)
        assert len(addresses) == 2
        tcp_address, quic_address = addresses
        openers = [
            (HTTPOverTCPOpener(HTTP1ClientFactory(), tls_config=certs.client), tcp_address, "1"),
            (HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client), tcp_address, "2"),
            (HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client), quic_address, "3"),
        ]
        for opener, address, version in openers:
            with trio.fail_after(30):
                async with await opener(address, tls=True, server_name="localhost") as connection:
                    assert connection.http_version == version
                    client = Client(connection)
                    nursery.start_soon(client.run)
                    headers, _ = await client.fetch(b"/", b"abc")
                    assert headers[b"x-sha256"] == hashlib.sha256(b"abc").hexdigest().encode()
        await multi.aclose()
        nursery.cancel_scope.cancel()


async def test_retry_validates_addresses(certs: Certs) -> None:
    """With Retry on, a client completes the handshake after one Retry; forged tokens are dropped."""
    async with trio.open_nursery() as nursery:
        listener = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server, retry=True
        )
        (address, *_) = await nursery.start(listener.serve, echo_handler)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                headers, _ = await client.fetch(b"/", b"validated")
                assert headers[b"x-sha256"] == hashlib.sha256(b"validated").hexdigest().encode()
        quic = listener._listeners[0]
        assert isinstance(quic, QUICListener)
        assert quic.statistics().retries == 1
        # An Initial with a made-up token is dropped, not answered.
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", 0))
        forged = bytes([0xC0]) + (1).to_bytes(4, "big") + b"\x08" + b"D" * 8 + b"\x08" + b"S" * 8
        forged += b"\x10" + b"T" * 16  # token length 16, then the token
        await udp.sendto(forged.ljust(1200, b"\x00"), address)
        # A probe of an unknown version comes back as Version Negotiation: once
        # it does, the router has handled the forged packet sent before it.
        probe = bytes([0xC0]) + (0x0A0A0A0A).to_bytes(4, "big") + b"\x08" + b"P" * 8 + b"\x08" + b"Q" * 8
        await udp.sendto(probe.ljust(1200, b"\x00"), address)
        with trio.fail_after(10):
            await udp.recvfrom(2048)
        udp.close()
        assert quic.statistics().invalid_tokens == 1
        assert quic.statistics().retries == 1
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_closed_quic_listener_keeps_running_connections(certs: Certs) -> None:
    """Closing an HTTP/3 listener stops new handshakes; a connection already open goes on."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client, handshake_timeout=1.0)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                await listener.aclose()
                with pytest.raises(ConnectError):
                    await opener(address, server_name="localhost")
                for n in range(3):
                    headers, _ = await client.fetch(b"/%d" % n, b"still here")
                    assert headers[b"x-sha256"] == hashlib.sha256(b"still here").hexdigest().encode()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_shutdown_example_drains_running_connections(certs: Certs, version: str) -> None:
    """examples/shutdown.py: after stop, no new connection is accepted; a running one finishes, then serve ends."""
    from examples.shutdown import serve_until

    if version == "3":
        listener: HTTPOverQUICListener | HTTPOverTCPListener = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server
        )
        opener: HTTPOverQUICOpener | HTTPOverTCPOpener = HTTPOverQUICOpener(
            HTTP3ClientFactory(), tls_config=certs.client, handshake_timeout=1.0
        )
    else:
        listener = await HTTPOverTCPListener.create(
            HTTP2ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server
        )
        opener = HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client)
    address = listener.addresses[0]
    stop = trio.Event()
    served = trio.Event()

    async def run_server() -> None:
        await serve_until(listener, echo_handler, stop, grace=20)
        served.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_server)
            await trio.testing.wait_all_tasks_blocked()
            connection = await opener(address, tls=True, server_name="localhost")
            async with connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                stop.set()
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(ConnectError):
                    await opener(address, tls=True, server_name="localhost")
                headers, _ = await client.fetch(b"/", b"late request")
                assert headers[b":status"] == b"200"
                assert not served.is_set()
            await served.wait()
