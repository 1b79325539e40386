"""Certificates for connection tests (trustme)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme

from trio_hface import ClientTLSConfig, ServerTLSConfig


@dataclass
class Certs:
    certfile: str
    keyfile: str
    cafile: str

    @property
    def server(self) -> ServerTLSConfig:
        return ServerTLSConfig(certfile=self.certfile, keyfile=self.keyfile)

    @property
    def client(self) -> ClientTLSConfig:
        return ClientTLSConfig(cafile=self.cafile)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    folder = tmp_path_factory.mktemp("certs")
    chain, key, cafile = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    cafile.write_bytes(ca.cert_pem.bytes())
    yield Certs(str(chain), str(key), str(cafile))
