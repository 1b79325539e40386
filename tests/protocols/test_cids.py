"""Connection IDs that name their worker, and QUIC-LB plaintext connection IDs.

The QUIC-LB checks decode with :func:`quic_lb_decode`, written here from
draft-ietf-quic-load-balancers-19 (sections 3 and 5.1), not with our encoder:
the first octet holds the config rotation codepoint in its 3 most significant
bits (0b111 means "route by 4-tuple"), the server ID is the consecutive
octets from the second one on, and the nonce follows.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.h3link import Certs, certs, make_link
from trio_hface.protocols import ConnectionIDRouting, QUICLBConfig
from trio_hface.protocols.http3 import HTTP3ServerFactory

__all__ = ["certs"]  # the fixture


def quic_lb_decode(cid: bytes, *, server_id_length: int, nonce_length: int) -> tuple[int, bytes] | None:
    """A load balancer's view of a connection ID: ``(config rotation, server ID)``, or ``None`` if unroutable."""
    if len(cid) < 1 + server_id_length + nonce_length:
        return None  # too short for the configuration
    rotation = cid[0] >> 5
    if rotation == 0b111:
        return None  # 4-tuple routing
    return rotation, cid[1 : 1 + server_id_length]


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 32])
def test_quic_lb_connection_ids_decode_to_the_server_id(workers: int) -> None:
    """Every connection ID carries the config rotation bits and the server ID where the draft puts them."""
    config = QUICLBConfig(server_id=b"\x31\x44\x1a", config_rotation=5, nonce_length=6)
    for index in range(workers):
        routing = ConnectionIDRouting(index, workers, config)
        for _ in range(50):
            cid = routing.issue(config.connection_id_length)
            assert len(cid) == 1 + 3 + 6
            assert quic_lb_decode(cid, server_id_length=3, nonce_length=6) == (5, b"\x31\x44\x1a")
            assert cid[0] % workers == index  # and the worker rides in the low bits


def test_quic_lb_nonces_look_random() -> None:
    """The nonces of 200 connection IDs are all different."""
    config = QUICLBConfig(server_id=b"\x07", nonce_length=8)
    routing = ConnectionIDRouting(0, 1, config)
    nonces = {routing.issue(10)[2:] for _ in range(200)}
    assert len(nonces) == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_id": b""},
        {"server_id": b"x" * 16},
        {"server_id": b"x", "config_rotation": 7},
        {"server_id": b"x", "nonce_length": 3},
        {"server_id": b"x" * 15, "nonce_length": 5},
    ],
)
def test_quic_lb_config_out_of_range(kwargs: dict[str, object]) -> None:
    """A server ID of 0 or more than 15 octets, rotation 7, a nonce under 4 octets, or more than 19 in all is refused."""
    with pytest.raises(ValueError):
        QUICLBConfig(**kwargs)  # type: ignore[arg-type]


def test_quic_lb_parse() -> None:
    """The command line's SERVER_ID_HEX[:ROTATION[:NONCE_LENGTH]] form."""
    assert QUICLBConfig.parse("0a0b") == QUICLBConfig(b"\x0a\x0b")
    assert QUICLBConfig.parse("ff:2:5") == QUICLBConfig(b"\xff", 2, 5)
    for bad in ("", "zz", "01:x", "01:1:2:3"):
        with pytest.raises(ValueError):
            QUICLBConfig.parse(bad)


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 256])
def test_worker_octet_names_the_worker(workers: int) -> None:
    """Without QUIC-LB, the first octet modulo the number of workers is the worker, and it varies."""
    for index in range(workers):
        routing = ConnectionIDRouting(index, workers)
        cids = [routing.issue(8) for _ in range(20)]
        assert all(routing.worker_of(cid) == index for cid in cids)
        assert all(len(cid) == 8 for cid in cids)
    if workers < 128:
        firsts = Counter(ConnectionIDRouting(0, workers).issue(8)[0] for _ in range(400))
        assert len(firsts) > 1


def test_routing_out_of_range() -> None:
    """An index outside the workers, no workers, or more than 32 with QUIC-LB is refused."""
    for index, count in ((2, 2), (-1, 2), (0, 0), (0, 257)):
        with pytest.raises(ValueError):
            ConnectionIDRouting(index, count)
    with pytest.raises(ValueError):
        ConnectionIDRouting(0, 33, QUICLBConfig(b"x"))
    with pytest.raises(ValueError):
        ConnectionIDRouting(0, 1, QUICLBConfig(b"x")).issue(8)  # not QUIC-LB's length


def test_server_factory_for_worker_issues_routed_connection_ids(certs: Certs) -> None:
    """A worker's factory gives each connection connection IDs that name the worker and carry the QUIC-LB server ID."""
    config = QUICLBConfig(server_id=b"\xab\xcd", config_rotation=1, nonce_length=5)
    factory = HTTP3ServerFactory(stateless_reset_key=b"k" * 32).for_worker(
        ConnectionIDRouting(1, 3, config), stateless_reset_key=b"s" * 32
    )
    assert factory.quic_connection_id_length == 8
    assert factory.quic_stateless_reset_key == b"s" * 32
    link = make_link(certs, server_factory=factory)
    assert link.client.is_available()
    _client_chosen, *ours = link.server.connection_ids
    assert len(ours) == 8  # the first one and those replenished after the handshake
    for cid in ours:
        assert cid[0] % 3 == 1
        assert quic_lb_decode(cid, server_id_length=2, nonce_length=5) == (1, b"\xab\xcd")
