"""Tests of QUIC header sniffing, on packets from a real aioquic handshake."""

from __future__ import annotations

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.protocols.http3 import (
    HTTP3ClientFactory,
    HTTP3ServerFactory,
    QUICHeader,
    QUICPacketType,
    encode_version_negotiation,
    parse_quic_header,
)

SERVER_ADDRESS = ("127.0.0.1", 4433)
CLIENT_ADDRESS = ("127.0.0.1", 50000)
CID_LENGTH = 8
QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF


@pytest.fixture(scope="module")
def tls() -> tuple[ClientTLSConfig, ServerTLSConfig]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    return (
        ClientTLSConfig(cadata=ca.cert_pem.bytes()),
        ServerTLSConfig(certdata=cert.cert_chain_pems[0].bytes(), keydata=cert.private_key_pem.bytes()),
    )


def test_initial_packet_from_a_client(tls: tuple[ClientTLSConfig, ServerTLSConfig]) -> None:
    """A client's first datagram is a v1 Initial whose source ID is the client's."""
    client = HTTP3ClientFactory()(remote_address=SERVER_ADDRESS, server_name="localhost", tls_config=tls[0])
    client.clock(0.0)
    [(datagram, address)] = client.datagrams_to_send()
    assert address == SERVER_ADDRESS
    header = parse_quic_header(datagram, CID_LENGTH)
    assert header is not None
    assert header.is_long_header and header.is_initial and header.is_version_known
    assert header.version == QUIC_V1
    assert header.packet_type is QUICPacketType.INITIAL
    assert header.source_cid in client.connection_ids
    assert len(header.destination_cid) >= 8
    assert header.token == b""
    # A server routes the client's later Initials by that destination ID.
    server = HTTP3ServerFactory()(tls_config=tls[1])
    server.clock(0.0)
    assert server.connection_ids == []
    server.datagram_received((datagram, CLIENT_ADDRESS))
    assert header.destination_cid in server.connection_ids


def test_short_header_packets_after_the_handshake(tls: tuple[ClientTLSConfig, ServerTLSConfig]) -> None:
    """1-RTT packets have short headers whose destination ID routes them to the server."""
    client = HTTP3ClientFactory()(remote_address=SERVER_ADDRESS, server_name="localhost", tls_config=tls[0])
    server = HTTP3ServerFactory()(tls_config=tls[1])
    now = 0.0
    client.clock(now)
    server.clock(now)
    headers: list[QUICHeader] = []
    for _ in range(20):
        for data, _ in client.datagrams_to_send():
            header = parse_quic_header(data, CID_LENGTH)
            assert header is not None
            headers.append(header)
            server.datagram_received((data, CLIENT_ADDRESS))
        for data, _ in server.datagrams_to_send():
            client.datagram_received((data, SERVER_ADDRESS))
        now += 0.001
        client.clock(now)
        server.clock(now)
    assert client.is_available()
    stream_id = client.get_available_stream_id()
    client.submit_headers(
        stream_id, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/")]
    )
    short = [parse_quic_header(data, CID_LENGTH) for data, _ in client.datagrams_to_send()]
    assert short
    for header in short:
        assert header is not None
        assert not header.is_long_header and header.version is None
        assert header.packet_type is QUICPacketType.ONE_RTT and not header.is_initial
        assert header.destination_cid in server.connection_ids
        assert header.source_cid == b""
    # Handshake datagrams start with a long header packet (coalesced packets follow it).
    assert headers[0].is_initial and all(h.is_long_header for h in headers[:2])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x40",  # short header, no connection ID
        b"\x00" * 20,  # short header without the fixed bit
        b"\xc0\x00\x00",  # long header cut in the version
        b"\xc0\x00\x00\x00\x01\x08abc",  # destination ID cut
        b"\xc0\x00\x00\x00\x01\x15" + b"a" * 21 + b"\x00",  # v1 ID longer than 20 bytes
        b"\xc0\x00\x00\x00\x01\x08"
        + b"a" * 8
        + b"\x08"
        + b"b" * 8
        + b"\x00\x44\x00",  # length beyond the end
        b"\x80\x00\x00\x00\x00\x01a\x01b\x00\x00",  # version negotiation with a cut version
    ],
)
def test_garbage_gives_none(data: bytes) -> None:
    """What is not a QUIC packet parses to None."""
    assert parse_quic_header(data, CID_LENGTH) is None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1300), cid_length=st.integers(0, 20))
def test_parser_never_raises(data: bytes, cid_length: int) -> None:
    """Any bytes give a header or None, never an exception."""
    header = parse_quic_header(data, cid_length)
    assert header is None or isinstance(header, QUICHeader)


def test_unknown_version_keeps_the_invariant_fields() -> None:
    """A long header of an unknown version still gives its version and connection IDs."""
    data = b"\xc3" + (0x1A2A3A4A).to_bytes(4, "big") + b"\x04dcid" + b"\x03sci" + b"\xff" * 1200
    header = parse_quic_header(data, CID_LENGTH)
    assert header == QUICHeader(
        is_long_header=True, version=0x1A2A3A4A, packet_type=None, destination_cid=b"dcid", source_cid=b"sci"
    )
    assert not header.is_version_known and not header.is_initial


def test_version_negotiation_round_trip() -> None:
    """A Version Negotiation packet we build parses back with the same fields."""
    packet = encode_version_negotiation(
        source_cid=b"server-id", destination_cid=b"client", supported_versions=[QUIC_V1, QUIC_V2]
    )
    header = parse_quic_header(packet, CID_LENGTH)
    assert header is not None
    assert header.is_long_header and header.version == 0
    assert header.packet_type is QUICPacketType.VERSION_NEGOTIATION
    assert header.destination_cid == b"client" and header.source_cid == b"server-id"
    assert list(header.supported_versions) == [QUIC_V1, QUIC_V2]


def test_version_negotiation_checks_its_arguments() -> None:
    """Connection IDs longer than 255 bytes and versions beyond 32 bits are refused."""
    with pytest.raises(ValueError, match="255"):
        encode_version_negotiation(source_cid=b"x" * 256, destination_cid=b"", supported_versions=[QUIC_V1])
    with pytest.raises(ValueError, match="32 bits"):
        encode_version_negotiation(source_cid=b"", destination_cid=b"", supported_versions=[2**32])


def test_stateless_reset_tokens_are_derived_and_packets_look_like_short_headers() -> None:
    """Reset tokens derive from the key and the connection ID; a reset packet ends with its token."""
    from trio_hface.protocols.http3 import encode_stateless_reset, stateless_reset_token

    token = stateless_reset_token(b"key", b"\x01" * 8)
    assert len(token) == 16
    assert token == stateless_reset_token(b"key", b"\x01" * 8)
    assert token != stateless_reset_token(b"other", b"\x01" * 8)
    assert token != stateless_reset_token(b"key", b"\x02" * 8)
    packet = encode_stateless_reset(token, 40)
    assert len(packet) == 40 and packet.endswith(token)
    assert packet[0] & 0xC0 == 0x40  # short header form, fixed bit set
    with pytest.raises(ValueError):
        encode_stateless_reset(token, 20)


def test_server_connection_ids_carry_derived_tokens() -> None:
    """Every connection ID a server issues has the token its factory's key derives."""
    from aioquic.quic.configuration import QuicConfiguration

    from trio_hface.protocols.http3 import HTTP3ServerFactory, stateless_reset_token
    from trio_hface.protocols.http3._quic import FlowControlledQuicConnection

    factory = HTTP3ServerFactory(stateless_reset_key=b"k" * 32)
    assert factory.quic_stateless_reset_key == b"k" * 32
    assert HTTP3ServerFactory().quic_stateless_reset_key != HTTP3ServerFactory().quic_stateless_reset_key
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cert = trustme.CA().issue_cert("localhost")
    configuration = QuicConfiguration(is_client=False)
    configuration.certificate = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    configuration.private_key = load_pem_private_key(cert.private_key_pem.bytes(), None)
    connection = FlowControlledQuicConnection(
        configuration=configuration,
        max_streams_bidi=10,
        stateless_reset_key=b"k" * 32,
        original_destination_connection_id=b"o" * 8,
    )
    connection._remote_active_connection_id_limit = 4
    connection._replenish_connection_ids()  # what aioquic does once the handshake completes
    assert len(connection._host_cids) == 4
    for host_cid in connection._host_cids:
        assert host_cid.stateless_reset_token == stateless_reset_token(b"k" * 32, host_cid.cid)
