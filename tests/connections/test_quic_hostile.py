"""The QUIC router against hostile datagrams, over real loopback UDP sockets."""

from __future__ import annotations

import socket

import trio

from tests.conftest import Certs
from tests.handlers import Client, start_quic
from trio_hface.connections import HTTPOverQUICOpener
from trio_hface.networking import QUICListener
from trio_hface.protocols.http3 import HTTP3ClientFactory


async def test_version_negotiation_for_a_known_connection_is_dropped(certs: Certs) -> None:
    """A Version Negotiation packet naming a live connection is dropped by the router, never answered
    or delivered (RFC 9000 section 6.1); the connection goes on."""
    async with trio.open_nursery() as nursery:
        listener, address = await start_quic(nursery, certs)
        quic = listener._listeners[0]
        assert isinstance(quic, QUICListener)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                await client.fetch(b"/")
                cid = next(iter(quic._routes))
                before = quic.statistics()
                udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                await udp.bind(("127.0.0.1", 0))
                negotiation = (
                    bytes([0xC0, 0, 0, 0, 0, len(cid)]) + cid + b"\x08" + b"S" * 8 + b"\x00\x00\x00\x01"
                )
                for _ in range(10):
                    await udp.sendto(negotiation, address)
                # Then an unknown version, whose answer tells that the router read everything before it.
                probe = (
                    bytes([0xC0]) + (0x1A2A3A4A).to_bytes(4, "big") + b"\x08" + b"D" * 8 + b"\x08" + b"P" * 8
                )
                await udp.sendto(probe.ljust(1200, b"\x00"), address)
                reply, _ = await udp.recvfrom(2048)
                assert reply[6:14] == b"P" * 8  # the answer to the probe, none to the others
                after = quic.statistics()
                assert after.dropped_unroutable == before.dropped_unroutable + 10
                assert after.version_negotiations == before.version_negotiations + 1
                headers, _ = await client.fetch(b"/again")
                assert headers[b":status"] == b"200"
                udp.close()
        await listener.aclose()
        nursery.cancel_scope.cancel()
