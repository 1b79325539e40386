"""An in-memory HTTP/3 link for sans-IO tests: a client and a server protocol moved by hand.

Datagrams are passed between the two protocols by :class:`Link`, and time comes
from a counter that only moves when a test (or the link) advances it.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.events import (
    DataReceived,
    Event,
)
from trio_hface.protocols import HTTP3Protocol
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ProtocolImpl, HTTP3ServerFactory

SERVER_ADDRESS = ("127.0.0.1", 4433)
CLIENT_ADDRESS = ("127.0.0.1", 50000)
# The link's round trip: each round of datagrams takes this long.
ROUND = 0.001
# Timers closer than this are run by Link.pump(); farther ones (idle) are not.
TIMER_HORIZON = 0.2

H3_NO_ERROR = 0x100
H3_REQUEST_CANCELLED = 0x10C
H3_MESSAGE_ERROR = 0x10E

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/upload")]
OK = [(b":status", b"200"), (b"content-type", b"text/plain")]


#: The QUIC stacks HTTP/3 runs on, as pytest parameters: aioquic, and qh3 where installed.
QUIC_STACKS = [
    pytest.param("aioquic"),
    pytest.param(
        "qh3",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("qh3") is None, reason="qh3 is not installed (the qh3 extra)"
        ),
    ),
]


def _use_stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, *, clients: bool) -> str:
    stack: str = request.param
    if stack == "qh3":
        import tests.pairs
        from trio_hface.protocols.http3 import Qh3ClientFactory, Qh3ServerFactory

        names: dict[str, type[object]] = {"HTTP3ServerFactory": Qh3ServerFactory}
        if clients:
            names["HTTP3ClientFactory"] = Qh3ClientFactory
        for module in {request.module, sys.modules[__name__], tests.pairs}:
            for name, factory in names.items():
                if hasattr(module, name):
                    monkeypatch.setattr(module, name, factory)
    return stack


@pytest.fixture(params=QUIC_STACKS)
def quic_stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on each QUIC stack: the HTTP/3 factories that its module,
    :func:`make_link` and ``tests.pairs.make_pair`` name are that stack's."""
    return _use_stack(request, monkeypatch, clients=True)


@pytest.fixture(params=QUIC_STACKS)
def quic_server_stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """As :func:`quic_stack`, for the server only (the client stays on aioquic)."""
    return _use_stack(request, monkeypatch, clients=False)


@dataclass(frozen=True)
class Certs:
    ca: trustme.CA
    cert: trustme.LeafCert
    certfile: str
    keyfile: str
    cafile: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    tmp: Path = tmp_path_factory.mktemp("h3certs")
    certfile, keyfile, cafile = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    cafile.write_bytes(ca.cert_pem.bytes())
    return Certs(ca, cert, str(certfile), str(keyfile), str(cafile))


def memory_server_tls(certs: Certs) -> ServerTLSConfig:
    chain = b"".join(blob.bytes() for blob in certs.cert.cert_chain_pems)
    return ServerTLSConfig(certdata=chain, keydata=certs.cert.private_key_pem.bytes())


def drain(protocol: HTTP3Protocol) -> list[Event]:
    """Take every event that *protocol* has now."""
    events: list[Event] = []
    while (event := protocol.next_event()) is not None:
        events.append(event)
    return events


class Link:
    """A client and a server joined by a lossless network, on a manual clock."""

    def __init__(self, client: HTTP3ProtocolImpl, server: HTTP3ProtocolImpl) -> None:
        self.client = client
        self.server = server
        self.now = 0.0
        self.client.clock(self.now)
        self.server.clock(self.now)

    def tick(self, until: float) -> None:
        """Move the clock to *until* and tell both sides."""
        self.now = max(self.now, until)
        self.client.clock(self.now)
        self.server.clock(self.now)

    def next_timer(self) -> float | None:
        timers = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
        return min(timers) if timers else None

    def xfer(self, sender: HTTP3ProtocolImpl, receiver: HTTP3ProtocolImpl) -> int:
        """Move what *sender* has to send into *receiver*; return how many datagrams moved."""
        source = SERVER_ADDRESS if sender is self.server else CLIENT_ADDRESS
        datagrams = sender.datagrams_to_send()
        for data, _ in datagrams:
            receiver.datagram_received((data, source))
        return len(datagrams)

    def pump(self, *, max_rounds: int = 20000) -> None:
        """Move datagrams both ways until quiet, running timers closer than TIMER_HORIZON."""
        for _ in range(max_rounds):
            moved = self.xfer(self.client, self.server) + self.xfer(self.server, self.client)
            if moved:
                self.tick(self.now + ROUND)
                continue
            timer = self.next_timer()
            if timer is None or timer > self.now + TIMER_HORIZON:
                return
            self.tick(max(timer, self.now + ROUND / 10))
        raise AssertionError(f"the link is still busy after {max_rounds} rounds")

    def run_timers_until(self, done: object, *, limit: float = 1000.0) -> None:
        """Pump and jump the clock from timer to timer until ``done()`` is true."""
        assert callable(done)
        while not done():
            self.pump()
            if done():  # the pump ran the timers that did it
                return
            timer = self.next_timer()
            if timer is None or timer > limit:
                raise AssertionError("no timer left to run")
            self.tick(timer)


def make_link(
    certs: Certs,
    *,
    client_factory: HTTP3ClientFactory | None = None,
    server_factory: HTTP3ServerFactory | None = None,
    server_tls: ServerTLSConfig | None = None,
    client_tls: ClientTLSConfig | None = None,
    handshake: bool = True,
    small_datagrams: bool = False,
) -> Link:
    """A link, by default between factories with default settings.

    With *small_datagrams* those factories discover no path MTU: every datagram
    stays within 1200 bytes, as on a path that carries no more (for tests that
    count packets).
    """
    settings: dict[str, Any] = {"max_probed_datagram_size": None} if small_datagrams else {}
    client = (client_factory or HTTP3ClientFactory(**settings))(
        remote_address=SERVER_ADDRESS,
        server_name="localhost",
        tls_config=client_tls or ClientTLSConfig(cadata=certs.ca.cert_pem.bytes()),
    )
    server = (server_factory or HTTP3ServerFactory(**settings))(
        tls_config=server_tls or memory_server_tls(certs)
    )
    assert isinstance(client, HTTP3ProtocolImpl) and isinstance(server, HTTP3ProtocolImpl)
    link = Link(client, server)
    if handshake:
        link.pump()
    return link


@pytest.fixture
def link(certs: Certs) -> Link:
    return make_link(certs)


def request(link: Link, headers: list[tuple[bytes, bytes]] = GET, *, end_stream: bool = True) -> int:
    stream_id = link.client.get_available_stream_id()
    link.client.submit_headers(stream_id, headers, end_stream=end_stream)
    return stream_id


def body_of(events: list[Event], stream_id: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id)


# -- connection --------------------------------------------------------------
