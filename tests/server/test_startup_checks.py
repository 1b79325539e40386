"""Servers refuse an unusable certificate before anything starts, and name the endpoint they cannot bind."""

from __future__ import annotations

import errno
import os
import pickle
import socket
from pathlib import Path

import pytest
import trio

from tests.conftest import Certs
from tests.peers import taken_port
from tests.server import apps
from tests.tls_files import BAD_PAIRS, write_tls_files
from trio_hface import ListenError, ServerTLSConfig, TLSConfigError
from trio_hface.networking._tls import server_ssl_context
from trio_hface.protocols.http3 import HTTP3ServerFactory
from trio_hface.server import ASGIServer, ServerProtocol


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    write_tls_files(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("cert", "key", "words", "named"), BAD_PAIRS)
def test_check_names_the_file_and_the_problem(
    tls_files: Path, cert: str, key: str, words: str, named: str
) -> None:
    """ServerTLSConfig.check(), the TCP context and the HTTP/3 factory raise one TLSConfigError naming the file."""
    config = ServerTLSConfig(certfile=str(tls_files / cert), keyfile=str(tls_files / key))
    messages = []
    for load in (
        config.check,
        lambda: server_ssl_context(config, ["h2"]),
        lambda: HTTP3ServerFactory()(tls_config=config),
    ):
        with pytest.raises(TLSConfigError) as caught:
            load()
        messages.append(str(caught.value))
        assert caught.value.path == str(tls_files / named)
    assert len(set(messages)) == 1, messages  # one loader for every transport
    assert words in messages[0] and str(tls_files / named) in messages[0] and "\n" not in messages[0]


def test_good_files_and_memory_pass(tls_files: Path) -> None:
    """A matching pair passes, from files and from memory, and the key may follow the chain in one file."""
    cert, key = (tls_files / "cert.pem").read_bytes(), (tls_files / "key.pem").read_bytes()
    (tls_files / "both.pem").write_bytes(cert + key)
    ServerTLSConfig(certfile=str(tls_files / "cert.pem"), keyfile=str(tls_files / "key.pem")).check()
    ServerTLSConfig(certfile=str(tls_files / "both.pem")).check()
    ServerTLSConfig(certdata=cert, keydata=key).check()
    with pytest.raises(
        TLSConfigError, match="keydata: the private key does not match the certificate in certdata"
    ):
        ServerTLSConfig(certdata=cert, keydata=(tls_files / "other-key.pem").read_bytes()).check()
    with pytest.raises(TLSConfigError, match="has no private key, and no key file was given"):
        ServerTLSConfig(certfile=str(tls_files / "cert.pem")).check()


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    """A certificate "file" without end (/dev/zero) is refused after a bounded read."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(TLSConfigError, match="/dev/zero is larger than 1024 KiB"):
        ServerTLSConfig(certfile="/dev/zero", keyfile="/dev/zero").check()


def test_errors_pickle() -> None:
    """TLSConfigError and ListenError survive pickling (worker processes), message and fields intact."""
    tls = pickle.loads(pickle.dumps(TLSConfigError("cert.pem is empty", "cert.pem")))
    assert (str(tls), tls.path) == ("cert.pem is empty", "cert.pem")
    listen = pickle.loads(
        pickle.dumps(ListenError(errno.EADDRINUSE, "cannot listen on x: address already in use"))
    )
    assert (str(listen), listen.errno) == ("cannot listen on x: address already in use", errno.EADDRINUSE)


@pytest.mark.parametrize("protocol", [ServerProtocol.ALL, ServerProtocol.HTTP2, ServerProtocol.HTTP3])
@pytest.mark.parametrize("workers", [1, 2])
async def test_server_refuses_a_bad_key_before_starting(
    tls_files: Path, protocol: ServerProtocol, workers: int
) -> None:
    """run() and run_workers() raise TLSConfigError before the lifespan startup and before binding."""
    config = ServerTLSConfig(certfile=str(tls_files / "cert.pem"), keyfile=str(tls_files / "other-key.pem"))
    apps.lifespan_events.clear()
    server = ASGIServer(apps.app, tls_config=config, protocol=protocol)
    with trio.fail_after(10), pytest.raises(TLSConfigError, match="does not match"):
        if workers == 1:
            await server.run(["https://127.0.0.1:0"])
        else:
            await server.run_workers(["https://127.0.0.1:0"], workers=workers)
    assert apps.lifespan_events == []


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
@pytest.mark.parametrize("workers", [1, 2])
async def test_bind_failure_names_the_endpoint(certs: Certs, kind: int, workers: int) -> None:
    """A taken TCP or UDP port is a ListenError (an OSError with errno) whose message names the endpoint."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    with taken_port(kind) as port:
        with trio.fail_after(20), pytest.raises(ListenError) as caught:
            if workers == 1:
                await server.run([f"https://127.0.0.1:{port}"])
            else:
                await server.run_workers([f"https://127.0.0.1:{port}"], workers=workers)
    where = f"https://127.0.0.1:{port}" + (" (UDP)" if kind == socket.SOCK_DGRAM else "")
    assert str(caught.value) == f"cannot listen on {where}: address already in use"
    assert caught.value.errno == errno.EADDRINUSE and isinstance(caught.value, OSError)
