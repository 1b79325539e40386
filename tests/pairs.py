"""A connected client/server pair of sans-IO protocols, for any HTTP version.

:func:`make_pair` builds a client and a server protocol of HTTP/1.1, HTTP/2 or
HTTP/3 and joins them in memory; :meth:`Pair.exchange` moves bytes (TCP) or
datagrams (QUIC, on the manual clock of :class:`tests.h3link.Link`) both ways
until neither side has anything to send. Events stay queued in the protocols
until a test takes them with :meth:`Pair.events`, so a test decides when the
application "reads" (which is when flow-control credit goes back).

The same test body then runs on every version; where a version legitimately
differs (an HTTP/1.1 reset closes the connection, HTTP/1.1 has no GOAWAY frame
and no flow control of its own), the test asks :attr:`Pair.multiplexed`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import trustme

from tests.h3link import SERVER_ADDRESS, Link
from tests.helpers import drain, exchange
from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface._typing import HeadersType
from trio_hface.events import DataReceived, Event
from trio_hface.protocols import HTTPOverQUICProtocol, HTTPOverTCPProtocol, HTTPProtocol
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ProtocolImpl, HTTP3ServerFactory

#: Every HTTP version, for ``@pytest.mark.parametrize("version", VERSIONS)``.
VERSIONS = ("1", "2", "3")

GET: HeadersType = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/"),
]
POST: HeadersType = [
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/upload"),
]
OK: HeadersType = [(b":status", b"200")]


@functools.cache
def _tls() -> tuple[ClientTLSConfig, ServerTLSConfig]:
    """In-memory certificates for HTTP/3 pairs, made once per test run."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    server = ServerTLSConfig(certdata=chain, keydata=cert.private_key_pem.bytes())
    return ClientTLSConfig(cadata=ca.cert_pem.bytes()), server


@dataclass
class Pair:
    """A client and a server protocol of one HTTP version, joined in memory."""

    client: HTTPProtocol
    server: HTTPProtocol
    #: The in-memory QUIC network of an HTTP/3 pair (``None`` for TCP).
    link: Link | None = None

    @property
    def version(self) -> str:
        return self.client.http_version

    @property
    def multiplexed(self) -> bool:
        """Whether streams are independent: resets, GOAWAY and flow control of their own."""
        return self.client.multiplexed

    def exchange(self) -> None:
        """Move bytes or datagrams both ways until quiet (near timers run; events stay queued)."""
        if self.link is not None:
            self.link.pump()
            return
        assert isinstance(self.client, HTTPOverTCPProtocol) and isinstance(self.server, HTTPOverTCPProtocol)
        exchange(self.client, self.server)

    def events(self, protocol: HTTPProtocol) -> list[Event]:
        """Take every event that *protocol* has now (handing out data returns its credit)."""
        return drain(protocol)

    def pump(self) -> tuple[list[Event], list[Event]]:
        """Exchange until quiet, then take the client's and the server's events."""
        self.exchange()
        return drain(self.client), drain(self.server)

    def peer(self, protocol: HTTPProtocol) -> HTTPProtocol:
        return self.server if protocol is self.client else self.client

    def end_transport(self) -> None:
        """The transport goes away under both sides: EOF then loss for TCP, loss for QUIC."""
        for protocol in (self.client, self.server):
            if isinstance(protocol, HTTPOverTCPProtocol):
                protocol.eof_received()
            assert isinstance(protocol, (HTTPOverTCPProtocol, HTTPOverQUICProtocol))
            protocol.connection_lost()

    def request(self, headers: HeadersType = GET, *, end_stream: bool = True) -> int:
        """Open a stream on the client with *headers*; return its ID (nothing is moved yet)."""
        stream_id = self.client.get_available_stream_id()
        self.client.submit_headers(stream_id, headers, end_stream=end_stream)
        return stream_id

    def framed(self, headers: HeadersType) -> HeadersType:
        """*headers* of a message without Content-Length as the peer receives them.

        HTTP/1.1 frames such a body with chunked encoding and says so in a header.
        """
        if self.multiplexed:
            return list(headers)
        return [*headers, (b"transfer-encoding", b"chunked")]


def make_pair(version: str, *, receive_window: int | None = None) -> Pair:
    """A connected client/server pair of HTTP/*version* ("1", "2" or "3"), settings exchanged.

    :param receive_window: the server's stream and connection receive windows
        (HTTP/2 and HTTP/3; HTTP/1.1 has none and ignores it)
    """
    if version == "1":
        # On TLS, as every other version is, so requests say :scheme https.
        return Pair(
            HTTP1ClientFactory()(), HTTP1ServerFactory()(tls_version="TLSv1.3", alpn_protocol="http/1.1")
        )
    if version == "2":
        h2_server = HTTP2ServerFactory()
        if receive_window is not None:
            h2_server = HTTP2ServerFactory(stream_window=receive_window, connection_window=receive_window)
        pair = Pair(HTTP2ClientFactory()(), h2_server())
    elif version == "3":
        client_tls, server_tls = _tls()
        h3_server = HTTP3ServerFactory()
        if receive_window is not None:
            h3_server = HTTP3ServerFactory(max_data=receive_window, max_stream_data=receive_window)
        client = HTTP3ClientFactory()(
            remote_address=SERVER_ADDRESS, server_name="localhost", tls_config=client_tls
        )
        server = h3_server(tls_config=server_tls)
        assert isinstance(client, HTTP3ProtocolImpl) and isinstance(server, HTTP3ProtocolImpl)
        pair = Pair(client, server, Link(client, server))
    else:
        raise ValueError(f"version must be '1', '2' or '3', not {version!r}")
    pair.exchange()  # settings and, for QUIC, the handshake
    assert drain(pair.client) == [] and drain(pair.server) == []
    return pair


def body_of(events: list[Event], stream_id: int) -> bytes:
    """The data of *stream_id* among *events*, joined."""
    return b"".join(e.data for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id)
