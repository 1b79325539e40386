"""Certificates for connection tests (trustme), and a private data directory for the whole run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme

from trio_hface import ClientTLSConfig, ServerTLSConfig

_DATA_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Point XDG_DATA_HOME at a temporary directory for the run, before test modules copy the environment.

    The development CA of ``trio-hface server`` lives there by default: no test
    (nor a server or a client that a test starts) writes into the real home.
    """
    global _DATA_HOME
    _DATA_HOME = tempfile.mkdtemp(prefix="trio-hface-tests-data-")
    os.environ["XDG_DATA_HOME"] = _DATA_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    if _DATA_HOME is not None:
        shutil.rmtree(_DATA_HOME, ignore_errors=True)


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
