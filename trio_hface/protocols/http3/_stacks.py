"""QUIC stacks: what differs between the QUIC implementations HTTP/3 runs on.

The HTTP/3 layer (aioquic's ``H3Connection`` with ours on top, QPACK on
pylsqpack) is the same on every stack; below it, a stack supplies the QUIC
connection class (a :class:`~._quic.PacedCredit` over the stack's
``QuicConnection``) and the configuration object that class takes. aioquic is
the default; ``_qh3.py`` adds qh3 (an aioquic fork with its TLS, crypto and
buffers in Rust), as an option.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509

from ._quic import FlowControlledQuicConnection, PacedQuicConnection

__all__ = ["AIOQUIC", "QuicStack"]


class QuicStack:
    """A QUIC implementation under HTTP/3: aioquic itself, or a fork with the same interface."""

    #: The name, as in the protocol registry.
    name = "aioquic"

    @property
    def connection_class(self) -> Callable[..., PacedQuicConnection]:
        """The QUIC connection class (see :class:`~._driver.QuicDriver`)."""
        return FlowControlledQuicConnection

    def configuration(self, **settings: Any) -> Any:
        """A fresh QUIC configuration with *settings* (``QuicConfiguration``'s fields)."""
        return QuicConfiguration(**settings)

    def credentials(self, certificates: Sequence[x509.Certificate], private_key: Any) -> tuple[Any, Any, Any]:
        """The certificate, its chain and its key, as this stack's configuration takes them.

        :param certificates: the chain, the server's certificate first
        :param private_key: the key, as :mod:`cryptography` loaded it
        """
        return certificates[0], list(certificates[1:]), private_key

    def verify(
        self, configuration: Any, *, cafile: str | None, capath: str | None, cadata: bytes | None
    ) -> None:
        """Make a client configuration verify the server against these CAs (none: the system's)."""
        configuration.verify_mode = ssl.CERT_REQUIRED
        if cafile is not None or capath is not None or cadata is not None:
            configuration.load_verify_locations(cafile=cafile, capath=capath, cadata=cadata)


#: The default stack.
AIOQUIC = QuicStack()
