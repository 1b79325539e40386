"""Connection IDs that route themselves: a worker byte, and QUIC-LB server IDs.

Theory of operation
-------------------

A server with several worker processes on one UDP port must deliver every
datagram of a connection to the worker that owns it, also after the client's
address changes, when the 4-tuple no longer says anything. The connection ID
the client puts in each packet is the only stable thing, so the server issues
connection IDs that name their worker: the **first octet** of every
connection ID we issue, taken modulo the number of workers, is the worker's
index. The kernel (a classic BPF program on the reuse-port group, see
``networking/_reuseport.py``) or, failing that, the workers themselves read
that octet and steer the datagram. A client's first Initial packet carries a
connection ID of its own choosing, so it lands on whichever worker its random
first octet names; that worker then owns the connection, and the connection
IDs it issues from then on carry its own index.

The same connection IDs can also follow the plaintext algorithm of QUIC-LB
(draft-ietf-quic-load-balancers-19, section 5.1), for a connection-ID-aware
layer-4 load balancer in front of several machines: the first octet holds the
**config rotation** codepoint in its three most significant bits, the next
octets hold the machine's **server ID**, and a **nonce** of at least four
random octets follows. The five low bits of the first octet, which the draft
leaves random unless the length is self-encoded, are where the worker index
goes: they are chosen so that the whole octet modulo the number of workers is
the index (any number of workers up to 32 fits).

Nothing here does I/O; the caller hands in randomness by using this module's
:func:`os.urandom` (allowed in protocols: it is no clock and no socket).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["MAX_WORKERS", "ConnectionIDRouting", "QUICLBConfig"]

#: Workers a routing can address: the first octet has 256 values (and with
#: QUIC-LB, 32 free values below the config rotation bits).
MAX_WORKERS = 256

#: QUIC-LB config rotation codepoints in use (0-6); 7 (0b111) means "route by
#: 4-tuple" (draft-ietf-quic-load-balancers-19, section 3.1).
MAX_CONFIG_ROTATION = 6

#: QUIC-LB lengths (draft section 4.4): a server ID of 1-15 octets, a nonce of
#: at least 4, and both together at most 19 (QUIC v1 connection IDs have at
#: most 20 octets, one of which is the first octet).
MAX_SERVER_ID_LENGTH = 15
MIN_NONCE_LENGTH = 4
MAX_SERVER_ID_AND_NONCE = 19

# The five low bits of a QUIC-LB first octet.
_LOW_BITS = 32


@dataclass(frozen=True)
class QUICLBConfig:
    """A QUIC-LB plaintext configuration: what a load balancer and this server agree on.

    :param server_id: this server's ID, 1-15 octets, unique in the pool
    :param config_rotation: the configuration's codepoint, 0-6 (three bits)
    :param nonce_length: random octets after the server ID, at least 4; the
        connection IDs are ``1 + len(server_id) + nonce_length`` octets long
    :raises ValueError: for a value out of these ranges

    The configuration agent (the operator) gives every server the same
    *config_rotation* and lengths, and each server its own *server_id*.
    """

    server_id: bytes
    config_rotation: int = 0
    nonce_length: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.config_rotation <= MAX_CONFIG_ROTATION:
            raise ValueError(
                f"config_rotation must be in 0-{MAX_CONFIG_ROTATION}, not {self.config_rotation!r}"
            )
        if not 1 <= len(self.server_id) <= MAX_SERVER_ID_LENGTH:
            raise ValueError(
                f"server_id must have 1-{MAX_SERVER_ID_LENGTH} octets, not {len(self.server_id)}"
            )
        if self.nonce_length < MIN_NONCE_LENGTH:
            raise ValueError(f"nonce_length must be at least {MIN_NONCE_LENGTH}, not {self.nonce_length!r}")
        if len(self.server_id) + self.nonce_length > MAX_SERVER_ID_AND_NONCE:
            raise ValueError(
                f"server_id and nonce must have at most {MAX_SERVER_ID_AND_NONCE} octets together, "
                f"not {len(self.server_id) + self.nonce_length}"
            )

    @property
    def connection_id_length(self) -> int:
        """The length of the connection IDs of this configuration."""
        return 1 + len(self.server_id) + self.nonce_length

    @classmethod
    def parse(cls, text: str) -> QUICLBConfig:
        """Parse ``SERVER_ID_HEX[:CONFIG_ROTATION[:NONCE_LENGTH]]``, as the command line takes it.

        :raises ValueError: if *text* has another shape or a value is out of range
        """
        parts = text.split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError(
                f"a QUIC-LB configuration is SERVER_ID_HEX[:ROTATION[:NONCE_LENGTH]], not {text!r}"
            )
        try:
            server_id = bytes.fromhex(parts[0])
            numbers = [int(part) for part in parts[1:]]
        except ValueError:
            raise ValueError(
                f"a QUIC-LB configuration is SERVER_ID_HEX[:ROTATION[:NONCE_LENGTH]], not {text!r}"
            ) from None
        return cls(server_id, *numbers)


@dataclass(frozen=True)
class ConnectionIDRouting:
    """How the connection IDs a server issues name the worker (and the machine) they belong to.

    :param worker_index: this worker, 0 to *worker_count* - 1
    :param worker_count: the number of workers on the port, 1-256 (1-32 with QUIC-LB)
    :param quic_lb: a QUIC-LB plaintext configuration, or ``None``
    :raises ValueError: for an index or count out of range
    """

    worker_index: int = 0
    worker_count: int = 1
    quic_lb: QUICLBConfig | None = None

    def __post_init__(self) -> None:
        limit = _LOW_BITS if self.quic_lb is not None else MAX_WORKERS
        if not 1 <= self.worker_count <= limit:
            raise ValueError(f"worker_count must be in 1-{limit}, not {self.worker_count!r}")
        if not 0 <= self.worker_index < self.worker_count:
            raise ValueError(f"worker_index must be in 0-{self.worker_count - 1}, not {self.worker_index!r}")

    def connection_id_length(self, default: int) -> int:
        """The length of the connection IDs to issue: QUIC-LB's, or *default*."""
        return self.quic_lb.connection_id_length if self.quic_lb is not None else default

    def worker_of(self, connection_id: bytes) -> int | None:
        """The worker that a connection ID names (``None`` for an empty one).

        Any connection ID names a worker, the client's random ones too: that
        is how the first Initial of a connection finds an owner.
        """
        if not connection_id:
            return None
        return connection_id[0] % self.worker_count

    def issue(self, length: int) -> bytes:
        """A new random connection ID of *length* octets that names this worker.

        :raises ValueError: if *length* differs from the QUIC-LB configuration's
        """
        random = os.urandom(length)
        if self.quic_lb is None:
            # The first octet: a random one of those congruent to the index.
            choices = (MAX_WORKERS - 1 - self.worker_index) // self.worker_count + 1
            first = self.worker_index + (random[0] % choices) * self.worker_count
            return bytes([first]) + random[1:]
        config = self.quic_lb
        if length != config.connection_id_length:
            raise ValueError(
                f"QUIC-LB connection IDs have {config.connection_id_length} octets, not {length}"
            )
        base = config.config_rotation << 5
        low = [v for v in range(_LOW_BITS) if (base | v) % self.worker_count == self.worker_index]
        first = base | low[random[0] % len(low)]
        return bytes([first]) + config.server_id + random[1 + len(config.server_id) :]
