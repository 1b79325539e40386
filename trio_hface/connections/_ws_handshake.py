"""The HTTP half of a WebSocket, on every version: keys, requests, extensions.

The handshake is ours (RFC 6455 section 4 on HTTP/1.1, RFC 8441 on HTTP/2,
RFC 9220 on HTTP/3); wsproto only frames the bytes that follow. This module
holds the pure pieces both sides share: the key and its accept value, the
recognition of a handshake request, the subprotocol and permessage-deflate
negotiation, and a permessage-deflate whose inflated size is bounded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

from .._typing import HeadersType

__all__ = [
    "BoundedDeflate",
    "accept_key",
    "accept_extensions",
    "header_tokens",
    "is_websocket_request",
    "new_key",
    "valid_key",
]

# RFC 6455 section 1.3: the GUID appended to the key.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def new_key() -> bytes:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16))


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value that answers *key*."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def valid_key(key: bytes | None) -> bool:
    """Whether *key* is a valid ``Sec-WebSocket-Key`` (16 bytes in base64, RFC 6455 section 4.1)."""
    if key is None:
        return False
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def header_tokens(headers: HeadersType, name: bytes) -> list[str]:
    """The comma-separated elements of every field *name*, stripped (case kept)."""
    tokens: list[str] = []
    for field, value in headers:
        if field.lower() == name:
            tokens += [t.strip() for t in value.decode("latin-1").split(",") if t.strip()]
    return tokens


def is_websocket_request(headers: HeadersType) -> bool:
    """Whether the request headers open a WebSocket.

    HTTP/1.1: ``GET`` with ``Upgrade: websocket`` and ``Connection: upgrade``;
    HTTP/2 and HTTP/3: extended ``CONNECT`` with ``:protocol websocket``.
    """
    method = protocol = None
    upgrade: list[bytes] = []
    connection: list[bytes] = []
    # One walk: the pseudo-headers, then the two fields (every request of a
    # server goes through here, nearly all of them no WebSocket).
    for name, value in headers:
        if name.startswith(b":"):
            if name == b":method":
                method = value
            elif name == b":protocol":
                protocol = value
            continue
        if method != b"GET":
            break
        if len(name) == 7:
            if name.lower() == b"upgrade":
                upgrade.append(value)
        elif len(name) == 10 and name.lower() == b"connection":
            connection.append(value)
    if method == b"CONNECT":
        return protocol is not None and protocol.lower() == b"websocket"
    if method != b"GET" or not upgrade or not connection:
        return False
    return _has_token(upgrade, b"websocket") and _has_token(connection, b"upgrade")


def _has_token(values: list[bytes], token: bytes) -> bool:
    """Whether one of the comma-separated elements of *values* is *token* (case-insensitive)."""
    return any(element.strip().lower() == token for value in values for element in value.split(b","))


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate (RFC 7692) that refuses to inflate a message past *max_size* bytes.

    wsproto inflates each received piece whole; a few kilobytes of deflate
    can inflate to gigabytes. Here each piece inflates only up to what the
    message may still take, and a message that would be bigger fails with
    1009 (message too big) before the memory is spent.
    """

    def __init__(self, max_size: int, **options: bool | int | None) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._max_size = max_size
        self._inflated = 0

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        room = self._max_size - self._inflated
        try:
            out = self._decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        self._inflated += len(out)
        return out

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin:
            return None
        if not self._inbound_is_compressible or not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        # RFC 7692 section 7.2.2: the sender removed this empty block's tail.
        out = self._inflate(b"\x00\x00\xff\xff")
        self._inflated = 0
        if isinstance(out, CloseReason):
            return out
        no_context_takeover = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return out


def accept_extensions(offers: list[str], max_size: int) -> tuple[list[PerMessageDeflate], str | None]:
    """A server's answer to the client's ``Sec-WebSocket-Extensions``: the extensions and the header value.

    Only permessage-deflate is known; the first acceptable offer of it wins.
    """
    for offer in offers:
        name = offer.split(";", 1)[0].strip().lower()
        if name != PerMessageDeflate.name:
            continue
        extension = BoundedDeflate(max_size)
        accepted = extension.accept(offer)
        if accepted is None or accepted is False:
            continue
        value = name if accepted is True or not accepted else f"{name}; {accepted}"
        return [extension], value
    return [], None
