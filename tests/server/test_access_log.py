"""The library side of the access log, root_path and the shutdown lines: ASGIServer's options."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import trio

from tests.conftest import Certs
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.server import (
    ACCESS_LOG_FIELDS,
    DEFAULT_ACCESS_LOG_FORMAT,
    ASGIServer,
    check_access_log_format,
)
from trio_hface.server._access_log import AccessLog

from . import apps


def test_format_check() -> None:
    """Known fields (with format specs) pass; an unknown field, a positional {} or a bad spec is a ValueError."""
    check_access_log_format(DEFAULT_ACCESS_LOG_FORMAT)
    check_access_log_format(" ".join(f"{{{name}}}" for name in ACCESS_LOG_FIELDS))
    check_access_log_format("{status:>4} {duration_ms:.1f}")
    for bad, message in (
        ("{client} {nope}", "unknown access log field {nope}"),
        ("{}", "unknown access log field {}"),
        ("{status:.x}", "invalid access log format"),
        ("{client", "invalid access log format"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            check_access_log_format(bad)
    with pytest.raises(ValueError, match="unknown access log field"):
        ASGIServer(apps.app, access_log_format="{when}")


def test_root_path_must_start_with_a_slash() -> None:
    """ASGIServer(root_path="api") is a ValueError; a trailing / is dropped."""
    with pytest.raises(ValueError, match="root_path must start with /"):
        ASGIServer(apps.app, root_path="api")
    assert ASGIServer(apps.app, root_path="/api/").root_path == "/api"


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_access_log_file_and_logger(
    certs: Certs, tmp_path: Path, protocol: ClientProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    """access_log=FILE gets [time] and the default line with the query; without it the line goes to
    the logger trio_hface.server.access with the fields as the record's ``access``; shutdown is told
    on trio_hface.server.lifecycle."""
    log_file = tmp_path / "access.log"
    to_file = ASGIServer(apps.app, tls_config=certs.server, access_log=str(log_file))
    to_logger = ASGIServer(apps.app, tls_config=certs.server)
    caplog.set_level(logging.INFO, logger="trio_hface.server")
    client = Client(tls_config=certs.client, protocol=protocol)
    async with trio.open_nursery() as nursery:
        ports = []
        for server in (to_file, to_logger):
            (bound, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
            ports.append(bound.port)
        async with client.session() as session:
            for port in ports:
                response = await session.dispatch(Request("GET", f"https://localhost:{port}/?a=b"))
                assert response.status == 200
        to_file.shutdown()
        to_logger.shutdown()
    version = {"http1": "1.1", "http2": "2", "http3": "3"}[protocol.value]
    line = log_file.read_text()
    assert re.fullmatch(
        rf'\[\d\d/\w+/\d{{4}}:\d\d:\d\d:\d\d [+-]\d{{4}}\] 127\.0\.0\.1:\d+ - "GET /\?a=b HTTP/{version}" 200 \d+ [\d.]+ms\n',
        line,
    ), line
    records = [r for r in caplog.records if r.name == "trio_hface.server.access"]
    assert len(records) == 1, records
    fields = records[0].access  # type: ignore[attr-defined]
    assert (fields["method"], fields["path"], fields["status"], fields["version"]) == (
        "GET",
        "/?a=b",
        200,
        version,
    )
    assert records[0].getMessage().startswith("127.0.0.1:")
    lifecycle = [r.getMessage() for r in caplog.records if r.name == "trio_hface.server.lifecycle"]
    assert lifecycle.count("shutting down: waiting up to 10 s for 0 requests in flight") == 2, lifecycle
    assert lifecycle.count("shut down") == 2, lifecycle


def test_access_log_is_picklable_without_its_file(tmp_path: Path) -> None:
    """A server with an open access log file pickles (for worker processes) without the file."""
    import pickle

    log = AccessLog(str(tmp_path / "a.log"))
    log.open()
    try:
        copy = pickle.loads(pickle.dumps(log))
        assert copy._file is None and copy.destination == log.destination
    finally:
        log.close()
    assert log._file is None
