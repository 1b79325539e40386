"""Development certificates for the command line's embedded default (trustme)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

from .._models import ServerTLSConfig

__all__ = ["DevelopmentCertificates", "create_development_certificates"]


@dataclass(frozen=True)
class DevelopmentCertificates:
    """A throw-away CA and a certificate it signed for localhost, 127.0.0.1 and ::1."""

    #: The server's configuration (certificate chain and key, in memory).
    tls_config: ServerTLSConfig
    #: Path of the CA certificate that clients must trust.
    cafile: Path


def create_development_certificates(directory: Path | None = None) -> DevelopmentCertificates:
    """Create a CA and a localhost certificate; write the CA certificate to *directory*.

    :param directory: where to write ``ca.pem`` (default: a new private temporary directory)
    """
    folder = directory or Path(tempfile.mkdtemp(prefix="trio-hface-"))
    ca = trustme.CA(organization_name="trio_hface development CA")
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    cafile = folder / "ca.pem"
    ca.cert_pem.write_to_path(cafile)
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    return DevelopmentCertificates(
        ServerTLSConfig(certdata=chain, keydata=cert.private_key_pem.bytes()),
        cafile,
    )
