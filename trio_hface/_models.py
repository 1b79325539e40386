"""Common models: TLS configuration and per-version error codes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ._certificates import ServerCredentials, load_server_credentials


@dataclass(frozen=True)
class ClientTLSConfig:
    """TLS configuration of a client.

    Certificate verification is on by default: the server's certificate must
    chain to a trusted CA (the system store, or *cafile*, *capath* and
    *cadata* when given) and match the server name.
    """

    #: Skip verification of the server's certificate (for testing only).
    insecure: bool = False

    #: Path of a PEM file with CA certificates to trust.
    cafile: str | None = None

    #: Path of a directory with CA certificates to trust (OpenSSL's hashed layout).
    capath: str | None = None

    #: PEM (``str``) or DER (``bytes``) CA certificates to trust, in memory.
    cadata: str | bytes | None = None

    def clone(self) -> ClientTLSConfig:
        """Return a copy of this configuration."""
        return dataclasses.replace(self)


@dataclass(frozen=True)
class ServerTLSConfig:
    """TLS configuration of a server.

    The certificate chain and its private key come either from files
    (*certfile*, *keyfile*) or from memory (*certdata*, *keydata*, both PEM).
    A *certfile* or *certdata* may hold the key too, after the certificates.
    """

    #: Path of a PEM file with the server's certificate chain (leaf first).
    certfile: str | None = None

    #: Path of a PEM file with the private key of the certificate.
    keyfile: str | None = None

    #: The certificate chain as PEM, in memory (alternative to *certfile*).
    certdata: bytes | None = None

    #: The private key as PEM, in memory (alternative to *keyfile*).
    keydata: bytes | None = None

    def __post_init__(self) -> None:
        if self.certfile is not None and self.certdata is not None:
            raise ValueError("give certfile or certdata, not both")
        if self.keyfile is not None and self.keydata is not None:
            raise ValueError("give keyfile or keydata, not both")

    def clone(self) -> ServerTLSConfig:
        """Return a copy of this configuration."""
        return dataclasses.replace(self)

    def load_pem(self) -> tuple[bytes, bytes | None]:
        """Return the certificate chain and the key as PEM bytes.

        Reads the files when the configuration names files.

        :returns: ``(chain, key)``; *key* is ``None`` when the chain holds it
        :raises ValueError: if neither *certfile* nor *certdata* is set
        :raises OSError: if a file cannot be read
        """
        if self.certdata is not None:
            chain = self.certdata
        elif self.certfile is not None:
            with open(self.certfile, "rb") as f:
                chain = f.read()
        else:
            raise ValueError("a server TLS config needs certfile or certdata")
        key: bytes | None = self.keydata
        if key is None and self.keyfile is not None:
            with open(self.keyfile, "rb") as f:
                key = f.read()
        return chain, key

    def check(self) -> None:
        """Read and check the certificate chain and the key, as the servers do before they listen.

        The files must be PEM; the chain must start with the certificate of
        the key; the key must be unencrypted (or in the chain's file when
        *keyfile* is not given). The servers run the same check for every
        HTTP version, TCP and QUIC alike, so calling it yourself only moves
        the error earlier.

        :raises TLSConfigError: naming the file and the problem, in one line
        """
        self._credentials()

    def _credentials(self) -> ServerCredentials:
        """The checked chain and key, parsed (for the TCP and the QUIC side alike)."""
        return load_server_credentials(self.certfile, self.keyfile, self.certdata, self.keydata)


@dataclass(frozen=True)
class HTTPErrorCodes:
    """Error codes for common situations, in the numbering of one HTTP version.

    Each HTTP version numbers its errors differently (HTTP/1 uses status
    codes, HTTP/2 and HTTP/3 their own registries); these let code that
    handles any version reset a stream or close a connection with the right
    number. Obtain them from :attr:`.HTTPProtocol.error_codes`.
    """

    #: The peer broke the protocol.
    protocol_error: int

    #: Something went wrong on our side.
    internal_error: int

    #: The tunnel of a CONNECT request was reset or abnormally closed.
    connect_error: int

    #: A stream is no longer wanted (HTTP/2 CANCEL, HTTP/3 H3_REQUEST_CANCELLED).
    cancel: int = 0

    #: A stream was refused before any processing (retry is safe).
    refused_stream: int = 0

    #: The connection is closed without error (graceful close).
    no_error: int = 0
