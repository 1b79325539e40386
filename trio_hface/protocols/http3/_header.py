"""QUIC packet header sniffing, for routing datagrams before a connection exists.

A server's UDP demultiplexer needs the destination connection ID of every
datagram, and for long-header packets the version and the source connection
ID (to answer an unknown version with Version Negotiation). These fields are
version-independent (RFC 8999 section 5); the packet type and the token are
read with aioquic for the versions it knows.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from aioquic._buffer import Buffer, BufferReadError
from aioquic.quic.packet import (
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..._typing import AddressType

__all__ = [
    "QUICPacketType",
    "QUICHeader",
    "QUICRetry",
    "parse_quic_header",
    "encode_version_negotiation",
    "stateless_reset_token",
    "encode_stateless_reset",
]

# RFC 8999 section 5.1: the first bit of a long header packet.
LONG_HEADER_BIT = 0x80
# RFC 9000 section 17.2: a connection ID is at most 20 bytes in QUIC v1 and v2.
MAX_CONNECTION_ID_LENGTH = 20
# RFC 8999 section 5.1: a long header may carry connection IDs of up to 255
# bytes in versions we do not know.
MAX_INVARIANT_CONNECTION_ID_LENGTH = 255
# RFC 9000 section 17.2.1 and RFC 8999 section 6: version 0 is Version Negotiation.
VERSION_NEGOTIATION = 0

_KNOWN_VERSIONS = frozenset(int(v) for v in QuicProtocolVersion if v != QuicProtocolVersion.NEGOTIATION)


class QUICPacketType(Enum):
    """The type of a QUIC packet (RFC 9000 section 17)."""

    INITIAL = "initial"
    ZERO_RTT = "0rtt"
    HANDSHAKE = "handshake"
    RETRY = "retry"
    VERSION_NEGOTIATION = "version_negotiation"
    ONE_RTT = "1rtt"


_TYPES = {
    QuicPacketType.INITIAL: QUICPacketType.INITIAL,
    QuicPacketType.ZERO_RTT: QUICPacketType.ZERO_RTT,
    QuicPacketType.HANDSHAKE: QUICPacketType.HANDSHAKE,
    QuicPacketType.RETRY: QUICPacketType.RETRY,
    QuicPacketType.VERSION_NEGOTIATION: QUICPacketType.VERSION_NEGOTIATION,
    QuicPacketType.ONE_RTT: QUICPacketType.ONE_RTT,
}


@dataclass(frozen=True)
class QUICHeader:
    """The routing-relevant fields of the first QUIC packet in a datagram.

    Obtain instances from :func:`parse_quic_header`.
    """

    #: Whether the packet has a long header (Initial, 0-RTT, Handshake, Retry,
    #: Version Negotiation, or any packet of an unknown version).
    is_long_header: bool

    #: The QUIC version, or ``None`` for a short header packet; ``0`` for
    #: Version Negotiation.
    version: int | None

    #: The packet type, or ``None`` for a long header packet of a version that
    #: we do not know.
    packet_type: QUICPacketType | None

    #: The destination connection ID.
    destination_cid: bytes

    #: The source connection ID (``b""`` for a short header packet).
    source_cid: bytes = b""

    #: The address-validation token of an Initial or Retry packet (else ``b""``).
    token: bytes = b""

    #: The versions listed by a Version Negotiation packet (else empty).
    supported_versions: Sequence[int] = field(default=())

    @property
    def is_initial(self) -> bool:
        """Whether this is an Initial packet, the only kind that may open a connection."""
        return self.packet_type is QUICPacketType.INITIAL

    @property
    def is_version_known(self) -> bool:
        """Whether the version is one we can speak (always true for short headers)."""
        return self.version is None or self.version in _KNOWN_VERSIONS


def parse_quic_header(data: bytes, cid_length: int) -> QUICHeader | None:
    """Parse the header of the first QUIC packet in a datagram.

    Never raises: anything that is not a QUIC packet gives ``None``.

    :param data: the datagram
    :param cid_length: the length of our connection IDs, which short header
        packets do not encode
    :returns: the header, or ``None`` if *data* is not a QUIC packet
    """
    if not data:
        return None
    if data[0] & LONG_HEADER_BIT:
        return _parse_long_header(data)
    if len(data) < 1 + cid_length:
        return None
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=cid_length)
    except (BufferReadError, ValueError):
        return None
    return QUICHeader(
        is_long_header=False,
        version=None,
        packet_type=QUICPacketType.ONE_RTT,
        destination_cid=header.destination_cid,
    )


def _parse_long_header(data: bytes) -> QUICHeader | None:
    # The invariant part first (RFC 8999 section 5.1).
    buf = Buffer(data=data)
    try:
        buf.pull_uint8()
        version = buf.pull_uint32()
        destination_cid = buf.pull_bytes(buf.pull_uint8())
        source_cid = buf.pull_bytes(buf.pull_uint8())
    except BufferReadError:
        return None
    if version == VERSION_NEGOTIATION:
        rest = data[buf.tell() :]
        if not rest or len(rest) % 4:
            return None
        versions = tuple(int.from_bytes(rest[i : i + 4], "big") for i in range(0, len(rest), 4))
        return QUICHeader(
            is_long_header=True,
            version=version,
            packet_type=QUICPacketType.VERSION_NEGOTIATION,
            destination_cid=destination_cid,
            source_cid=source_cid,
            supported_versions=versions,
        )
    if version not in _KNOWN_VERSIONS:
        return QUICHeader(
            is_long_header=True,
            version=version,
            packet_type=None,
            destination_cid=destination_cid,
            source_cid=source_cid,
        )
    if len(destination_cid) > MAX_CONNECTION_ID_LENGTH or len(source_cid) > MAX_CONNECTION_ID_LENGTH:
        return None
    try:
        header = pull_quic_header(Buffer(data=data))
    except (BufferReadError, ValueError, KeyError):
        return None
    return QUICHeader(
        is_long_header=True,
        version=version,
        packet_type=_TYPES[header.packet_type],
        destination_cid=header.destination_cid,
        source_cid=header.source_cid,
        token=header.token,
    )


def encode_version_negotiation(
    *, source_cid: bytes, destination_cid: bytes, supported_versions: Sequence[int]
) -> bytes:
    """Build a Version Negotiation packet (RFC 9000 section 17.2.1).

    A server answers a long header packet of an unknown version with it; the
    connection IDs are those of that packet, swapped.

    :param source_cid: our connection ID: the packet's destination connection ID
    :param destination_cid: the client's: the packet's source connection ID
    :param supported_versions: the versions we accept
    :raises ValueError: if a connection ID is longer than 255 bytes or a version
        does not fit in 32 bits
    """
    if (
        len(source_cid) > MAX_INVARIANT_CONNECTION_ID_LENGTH
        or len(destination_cid) > MAX_INVARIANT_CONNECTION_ID_LENGTH
    ):
        raise ValueError("connection IDs must be at most 255 bytes long")
    for version in supported_versions:
        if not 0 <= version < 2**32:
            raise ValueError(f"a QUIC version must fit in 32 bits, not {version!r}")
    return encode_quic_version_negotiation(
        source_cid=source_cid, destination_cid=destination_cid, supported_versions=list(supported_versions)
    )


#: Length of a stateless reset token (RFC 9000 section 10.3).
STATELESS_RESET_TOKEN_SIZE = 16

#: Smallest stateless reset: 5 unpredictable bytes and the token (RFC 9000 section 10.3).
MIN_STATELESS_RESET_SIZE = 21


def stateless_reset_token(key: bytes, connection_id: bytes) -> bytes:
    """Derive the stateless reset token of a connection ID from a server secret.

    A server that derives its tokens this way can send a valid stateless reset
    for a connection it no longer knows (RFC 9000 section 10.3.2).

    :param key: the server's secret
    :param connection_id: the connection ID the token belongs to
    """
    return hmac.new(key, b"stateless reset:" + connection_id, hashlib.sha256).digest()[
        :STATELESS_RESET_TOKEN_SIZE
    ]


def encode_stateless_reset(token: bytes, size: int) -> bytes:
    """Build a stateless reset packet: it looks like a short header packet and ends with *token*.

    :param token: the stateless reset token of the connection ID being reset
    :param size: the packet size, at least 21 bytes
    :raises ValueError: if *size* is too small or the token has the wrong length
    """
    if len(token) != STATELESS_RESET_TOKEN_SIZE:
        raise ValueError(f"a stateless reset token has 16 bytes, not {len(token)}")
    if size < MIN_STATELESS_RESET_SIZE:
        raise ValueError(f"a stateless reset needs at least {MIN_STATELESS_RESET_SIZE} bytes, not {size}")
    unpredictable = bytearray(os.urandom(size - STATELESS_RESET_TOKEN_SIZE))
    unpredictable[0] = 0x40 | (unpredictable[0] & 0x3F)  # fixed bit set, short header form
    return bytes(unpredictable) + token


class QUICRetry:
    """Address validation with Retry packets (RFC 9000 section 8.1.2), for a server's router.

    The router answers an Initial packet that has no token with a Retry
    packet carrying an encrypted token (the client's address, its original
    destination connection ID, a new connection ID and the time); a client
    that repeats its Initial with that token from the same address has proved
    it receives there. Tokens are valid for 30 seconds and only for the
    instance that issued them.

    :param connection_id_length: the length of the connection ID to issue
    :param key: a 16-, 24- or 32-byte AES-GCM key for the tokens, so that
        several instances (worker processes) validate each other's tokens;
        ``None`` draws one for this instance. Instances that share a key must
        also share the clock of ``now``.
    """

    def __init__(self, connection_id_length: int, key: bytes | None = None) -> None:
        self._handler = QuicRetryTokenHandler()
        if key is not None:
            # aioquic's handler draws its own key; a shared one replaces it.
            self._handler._aead = AESGCM(key)
        self._cid_length = connection_id_length

    def retry_packet(self, header: QUICHeader, address: AddressType, now: float) -> bytes:
        """Build the Retry packet that answers an Initial *header* from *address*."""
        assert header.version is not None
        retry_cid = os.urandom(self._cid_length)
        token = self._handler.create_token(
            address=address,
            original_destination_connection_id=header.destination_cid,
            retry_source_connection_id=retry_cid,
            now=now,
        )
        return encode_quic_retry(
            version=header.version,
            source_cid=retry_cid,
            destination_cid=header.source_cid,
            original_destination_cid=header.destination_cid,
            retry_token=token,
        )

    def validate(self, header: QUICHeader, address: AddressType, now: float) -> tuple[bytes, bytes] | None:
        """Check the token of an Initial packet.

        :returns: ``(original destination CID, retry source CID)`` for a valid
            token, ``None`` otherwise
        """
        try:
            original = self._handler.validate_token(
                address=address, destination_cid=header.destination_cid, token=header.token, now=now
            )
        except (ValueError, IndexError, BufferReadError):
            return None
        return original, header.destination_cid
