"""HTTP/3 on qh3: the same HTTP/3 layer over qh3's QUIC (the ``qh3`` extra).

qh3 is a maintained fork of aioquic whose TLS, crypto, buffers and parts of
packet handling are in Rust; its 1.x series keeps aioquic's Python
``QuicConnection`` and names, so :class:`~._quic.PacedCredit` works on it
(``_qh3_quic.py`` says what differs and how it is handled). The HTTP/3 layer
above (aioquic's ``H3Connection``, ours on top, QPACK on pylsqpack) is the one
the default implementation uses: only QUIC differs. qh3 2.x moved the
connection itself into Rust, leaving no place to pace credit by consumption
or to choose connection IDs, so it is not supported.

qh3 is imported when the first qh3 connection is made, not with this module:
qh3's package imports its own asyncio API (which trio_hface never uses), and
the protocol registry imports this module in every process. This module
raises :class:`ImportError` when qh3 is not installed, so that the registry
leaves the implementation out.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509

from ._factories import HTTP3ClientFactory, HTTP3ServerFactory
from ._quic import PacedQuicConnection
from ._stacks import QuicStack

if importlib.util.find_spec("qh3") is None:  # finds it without importing it
    raise ImportError("qh3 is not installed: pip install trio_hface[qh3]")

__all__ = ["Qh3ClientFactory", "Qh3ServerFactory"]


class Qh3Stack(QuicStack):
    """qh3 1.x under the HTTP/3 layer."""

    name = "qh3"

    @property
    def connection_class(self) -> Callable[..., PacedQuicConnection]:
        """``Qh3QuicConnection`` (of ``_qh3_quic.py``)."""
        from ._qh3_quic import Qh3QuicConnection

        return Qh3QuicConnection

    def configuration(self, **settings: Any) -> Any:
        """A qh3 ``QuicConfiguration``; path MTU probing stays off, as aioquic has none:
        datagrams are *max_datagram_size* at most, as configured."""
        from qh3.quic.configuration import QuicConfiguration

        return QuicConfiguration(probe_datagram_size=False, **settings)

    def credentials(self, certificates: Sequence[x509.Certificate], private_key: Any) -> tuple[Any, Any, Any]:
        """The chain and key as qh3's own (Rust) objects.

        :raises TLSConfigError: if qh3 cannot use them (an Ed448 key, for one)
        """
        from ._qh3_quic import qh3_credentials

        return qh3_credentials(certificates, private_key)


#: The qh3 stack.
QH3 = Qh3Stack()


class Qh3ClientFactory(HTTP3ClientFactory):
    """Creates HTTP/3 client connections on qh3's QUIC (``pip install trio_hface[qh3]``).

    Takes the parameters of :class:`.HTTP3ClientFactory`, and makes the same
    :class:`.HTTP3ProtocolImpl`: only the QUIC connection under it differs.
    Registered as ``qh3`` in the ``trio_hface.protocols.http3_clients``
    registry (``--http3-impl qh3`` on the command line).
    """

    _stack = QH3


class Qh3ServerFactory(HTTP3ServerFactory):
    """Creates HTTP/3 server connections on qh3's QUIC (``pip install trio_hface[qh3]``).

    Takes the parameters of :class:`.HTTP3ServerFactory`, and makes the same
    :class:`.HTTP3ProtocolImpl`: only the QUIC connection under it differs.
    Registered as ``qh3`` in the ``trio_hface.protocols.http3_servers``
    registry (``--http3-impl qh3`` on the command line).
    """

    _stack = QH3
