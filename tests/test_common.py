"""Common models, events and errors: immutable, comparable, readable."""

from __future__ import annotations

import dataclasses

import pytest

import trio_hface
from trio_hface import ClientTLSConfig, HTTPErrorCodes, ServerTLSConfig
from trio_hface.errors import (
    FlowControlError,
    HFaceError,
    LocalProtocolError,
    ProtocolError,
    StreamResetError,
)
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    GoawayReceived,
    HeadersReceived,
    StreamReset,
    StreamResetReceived,
    StreamResetSent,
)


def test_public_names_import() -> None:
    """Every name that the API contract lists is importable from trio_hface."""
    for name in ("ServerTLSConfig", "ClientTLSConfig", "HTTPErrorCodes", "AddressType", "DatagramType"):
        assert hasattr(trio_hface, name)
    for name in ("HeaderType", "HeadersType", "__version__"):
        assert hasattr(trio_hface, name)
    assert set(trio_hface.__all__) <= set(dir(trio_hface))


def test_client_tls_verifies_by_default() -> None:
    """A default client TLS config verifies certificates."""
    assert ClientTLSConfig().insecure is False
    config = ClientTLSConfig(cafile="ca.pem")
    assert config.clone() == config and config.clone() is not config


def test_server_tls_from_memory_and_files(tmp_path: pytest.TempPathFactory) -> None:
    """A server TLS config gives its PEM from memory or from files."""
    assert ServerTLSConfig(certdata=b"CERT", keydata=b"KEY").load_pem() == (b"CERT", b"KEY")
    cert = tmp_path / "c.pem"  # type: ignore[operator]
    cert.write_bytes(b"CHAIN")
    assert ServerTLSConfig(certfile=str(cert)).load_pem() == (b"CHAIN", None)
    with pytest.raises(ValueError, match="certfile or certdata"):
        ServerTLSConfig().load_pem()
    with pytest.raises(ValueError, match="not both"):
        ServerTLSConfig(certfile="a", certdata=b"b")


def test_configs_are_frozen() -> None:
    """Configurations cannot be changed after creation."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClientTLSConfig().insecure = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        HTTPErrorCodes(1, 2, 3).protocol_error = 0  # type: ignore[misc]


def test_events_compare_by_value_and_are_frozen() -> None:
    """Events compare by value; the message of ConnectionTerminated does not count."""
    assert HeadersReceived(1, [(b":status", b"200")]) == HeadersReceived(1, [(b":status", b"200")], False)
    assert DataReceived(1, b"x", end_stream=True) != DataReceived(1, b"x")
    assert ConnectionTerminated(0, "a") == ConnectionTerminated(0, "b")
    sent: StreamReset = StreamResetSent(1, 8)
    assert sent != StreamResetReceived(1, 8)
    assert isinstance(StreamResetSent(1), StreamReset)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DataReceived(1, b"").data = b"x"  # type: ignore[misc]


def test_event_reprs_show_sizes_not_payloads() -> None:
    """Reprs say how much, not what."""
    assert repr(DataReceived(1, b"hello world", end_stream=True)) == (
        "DataReceived(stream_id=1, len(data)=11, end_stream=True)"
    )
    assert (
        repr(HeadersReceived(3, [(b"a", b"b")]))
        == "HeadersReceived(stream_id=3, len(headers)=1, end_stream=False)"
    )
    assert repr(StreamResetReceived(5, 8)) == "StreamResetReceived(stream_id=5, error_code=8)"
    assert repr(GoawayReceived(7)) == "GoawayReceived(last_stream_id=7, error_code=0)"
    assert repr(ConnectionTerminated(1, "bad")) == "ConnectionTerminated(error_code=1, message='bad')"


def test_error_hierarchy() -> None:
    """Errors share one root and keep their codes."""
    err = FlowControlError("too much", 3)
    assert (
        isinstance(err, LocalProtocolError) and isinstance(err, ProtocolError) and isinstance(err, HFaceError)
    )
    assert err.error_code == 3
    reset = StreamResetError(5, 0x8)
    assert reset.stream_id == 5 and "0x8" in str(reset)
