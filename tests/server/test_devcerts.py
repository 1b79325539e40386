"""DevelopmentCA: one CA per directory, reused across runs, private files, never overwritten by a racing process."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import trio

from tests.server import apps
from tests.tls_files import expired_ca_file
from trio_hface import ClientTLSConfig
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.server import ASGIServer, DevelopmentCA, default_dev_ca_directory, development_tls_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_without_save_writes_nothing_until_save(tmp_path: Path) -> None:
    """open(save=False) makes the CA in memory; save() writes it, private, and the next open reuses it."""
    folder = tmp_path / "data" / "dev-ca"
    ca = DevelopmentCA.open(folder, save=False)
    assert not (tmp_path / "data").exists() and ca.replaced is None
    assert ca.save() and ca.saved
    assert mode(folder) == 0o700 and mode(folder / "ca-key.pem") == 0o600
    assert ca.cafile == folder / "ca.pem" and ca.cafile.read_bytes() == ca.cert_pem
    again = DevelopmentCA.open(folder)
    assert again.cert_pem == ca.cert_pem and again.saved and again.replaced is None


def test_a_lost_race_keeps_the_first_ca(tmp_path: Path) -> None:
    """Two processes making a CA at once: the second save() returns False and the first CA stays."""
    first, second = DevelopmentCA.open(tmp_path, save=False), DevelopmentCA.open(tmp_path, save=False)
    assert first.cert_pem != second.cert_pem
    assert first.save() and not second.save()
    assert (tmp_path / "ca.pem").read_bytes() == first.cert_pem
    assert DevelopmentCA.open(tmp_path).cert_pem == first.cert_pem


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"garbage\n", "is not a PEM file"), (b"", "is empty"), (expired_ca_file(), "expired or expires soon")],
)
def test_an_unusable_ca_is_replaced_and_says_why(tmp_path: Path, content: bytes, reason: str) -> None:
    """A corrupt or expired ca-key.pem gives a new CA, with the reason in .replaced, saved over the old one."""
    (tmp_path / "ca-key.pem").write_bytes(content)
    ca = DevelopmentCA.open(tmp_path)
    assert ca.replaced is not None and reason in ca.replaced and str(tmp_path / "ca-key.pem") in ca.replaced
    assert DevelopmentCA.open(tmp_path).cert_pem == ca.cert_pem == (tmp_path / "ca.pem").read_bytes()


def test_a_missing_or_stale_ca_pem_is_rewritten(tmp_path: Path) -> None:
    """ca.pem is derived from ca-key.pem: a deleted or edited one is written again, the CA unchanged."""
    ca = DevelopmentCA.open(tmp_path)
    (tmp_path / "ca.pem").unlink()
    reopened = DevelopmentCA.open(tmp_path, save=False)
    assert not reopened.saved and reopened.cert_pem == ca.cert_pem
    assert reopened.save() and (tmp_path / "ca.pem").read_bytes() == ca.cert_pem


def test_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$XDG_DATA_HOME/trio-hface/dev-ca, or ~/.local/share/... when it is unset or relative."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_dev_ca_directory() == tmp_path / "trio-hface" / "dev-ca"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in ("", "relative/path"):
        monkeypatch.setenv("XDG_DATA_HOME", value)
        assert default_dev_ca_directory() == tmp_path / "home" / ".local" / "share" / "trio-hface" / "dev-ca"


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_development_certificates_serve_and_are_trusted(
    tmp_path: Path, protocol: ClientProtocol
) -> None:
    """development_tls_config() gives a server certificate that clients trust by the CA's config or its ca.pem."""
    server_tls, client_tls = development_tls_config(tmp_path)
    server = ASGIServer(apps.app, tls_config=server_tls)
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        for tls in (client_tls, ClientTLSConfig(cafile=str(tmp_path / "ca.pem"))):
            async with Client(tls_config=tls, protocol=protocol).session() as session:
                with trio.fail_after(20):
                    response = await session.dispatch(Request("GET", f"https://localhost:{bound.port}/"))
            assert response.status == 200
        server.shutdown()
