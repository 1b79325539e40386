"""The pure parts of the client: the pool's decision, the route policy, the Alt-Svc cache (no network)."""

from __future__ import annotations

import trio
import trio.testing

from trio_hface.client import ClientProtocol, Origin
from trio_hface.client._altsvc import AltService, AltSvcCache, parse_alt_svc
from trio_hface.client._connection import PooledConnection
from trio_hface.client._pool import ConnectionPool, Open, Use, Wait
from trio_hface.client._routes import Route, RoutePolicy, Transport
from trio_hface.connections import HTTPOverTCPConnection
from trio_hface.protocols.http1 import HTTP1ClientFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory

ORIGIN = Origin("https", "example.com", 443)
GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/")]


def pooled(pool: ConnectionPool, http2: bool = False) -> PooledConnection:
    """A pooled connection over a memory stream (never entered: the decision needs no I/O)."""
    factory = HTTP2ClientFactory() if http2 else HTTP1ClientFactory()
    stream, _ = trio.testing.memory_stream_pair()
    connection = HTTPOverTCPConnection(factory(), stream, {"local_address": None, "remote_address": None})
    return PooledConnection(pool, ORIGIN, connection)


async def test_pool_opens_uses_and_waits() -> None:
    pool = ConnectionPool(max_connections_per_origin=2)
    assert pool.decide(ORIGIN, quic=False) == Open(ORIGIN)
    pool.opening_started(ORIGIN)
    # The connection on its way may turn out HTTP/2 and serve this request too.
    assert pool.decide(ORIGIN, quic=False) == Wait()
    first = pooled(pool)
    pool.opening_ended(ORIGIN, first)
    assert pool.decide(ORIGIN, quic=False) == Use(first)
    # Busy (HTTP/1.1: one request at a time): open a second, up to the limit.
    first.connection.protocol.submit_headers(1, GET, end_stream=True)
    assert pool.decide(ORIGIN, quic=False) == Open(ORIGIN)
    pool.opening_started(ORIGIN)
    # Known not multiplexed: a third request does not wait for the one opening, but the limit is reached.
    assert pool.decide(ORIGIN, quic=False) == Wait()
    pool.opening_ended(ORIGIN, None)  # the opening failed
    assert pool.decide(ORIGIN, quic=False) == Open(ORIGIN)
    # An HTTP/3 request takes no TCP connection.
    assert pool.decide(ORIGIN, quic=True) == Open(ORIGIN)
    pool.remove(first)
    assert pool.connections() == {}


async def test_pool_statistics() -> None:
    pool = ConnectionPool(max_connections_per_origin=4)
    one, two = pooled(pool), pooled(pool, http2=True)
    for connection in (one, two):
        pool.opening_started(ORIGIN)
        pool.opening_ended(ORIGIN, connection)
    pool.opening_started(ORIGIN)
    async with one.connection:
        one.start_exchange()
        stats = pool.statistics()
    assert stats.connections == {"1.1": 1, "2": 1}
    assert (stats.opening, stats.idle, stats.exchanges, stats.waiting) == (1, 1, 1, 0)


async def test_pool_counts_waiting_requests() -> None:
    pool = ConnectionPool(max_connections_per_origin=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.wait_for_change)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.statistics().waiting == 1
        pool.changed()
    assert pool.statistics().waiting == 0


def test_routes_follow_protocol_proxy_and_alt_svc() -> None:
    cache = AltSvcCache(broken_time=300)
    policy = RoutePolicy(ClientProtocol.ALL, None, cache)
    assert policy.route(ORIGIN, 0) == Route(Transport.TCP, "example.com", 443)
    cache.learn(ORIGIN, [(b"alt-svc", b'h3="alt.example.com:8443"; ma=60')], now=0)
    route = policy.route(ORIGIN, 10)
    assert route == Route(Transport.QUIC, "alt.example.com", 8443, alternative=True) and route.quic
    assert not policy.route(ORIGIN, 61).quic  # expired
    cache.learn(ORIGIN, [(b"alt-svc", b'h3=":8443"')], now=100)
    cache.mark_broken(ORIGIN, now=100)
    assert not policy.route(ORIGIN, 101).quic
    cache.learn(ORIGIN, [(b"alt-svc", b'h3=":8443"')], now=200)  # ignored while broken
    assert not policy.route(ORIGIN, 201).quic
    cache.learn(ORIGIN, [(b"alt-svc", b'h3=":8443"')], now=401)
    assert policy.route(ORIGIN, 402) == Route(Transport.QUIC, "example.com", 8443, alternative=True)
    plain = Origin("http", "example.com", 80)
    assert not policy.learns_alt_svc(plain, "1.1") and not policy.route(plain, 402).quic
    assert not policy.learns_alt_svc(ORIGIN, "3") and policy.learns_alt_svc(ORIGIN, "2")

    explicit = RoutePolicy(ClientProtocol.HTTP3, None, AltSvcCache())
    assert explicit.route(ORIGIN, 0) == Route(Transport.QUIC, "example.com", 443)
    proxy = Origin("https", "proxy.example", 8443)
    tunnelled = RoutePolicy(ClientProtocol.ALL, proxy, cache)
    assert tunnelled.route(ORIGIN, 402) == Route(Transport.TCP, "example.com", 443, proxy=proxy)
    assert not RoutePolicy(ClientProtocol.HTTP2, None, cache).route(ORIGIN, 402).quic


def test_parse_alt_svc() -> None:
    assert parse_alt_svc(b"clear", ORIGIN, 0) is False
    assert parse_alt_svc(b'h2=":443"', ORIGIN, 0) is None
    assert parse_alt_svc(b'h3=":99999"', ORIGIN, 0) is None
    assert parse_alt_svc(b'h2=":1", h3="[::1]:8443"; ma=5', ORIGIN, 10) == AltService("::1", 8443, 15.0)
    assert parse_alt_svc(b'h3=":443"', ORIGIN, 0) == AltService("example.com", 443, 86400.0)
    cache = AltSvcCache()
    cache.learn(ORIGIN, [(b"alt-svc", b'h3=":443"')], 0)
    cache.learn(ORIGIN, [(b"alt-svc", b"clear")], 1)
    assert cache.get(ORIGIN, 2) is None


class TaskWakeups(trio.abc.Instrument):
    """Counts how many times tasks are scheduled to run (each wakeup of a waiting task counts)."""

    def __init__(self) -> None:
        self.count = 0

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def wakeups_of_one_change(waiting: int) -> int:
    """Tasks woken when the pool changes once while *waiting* requests wait for it."""
    pool = ConnectionPool(max_connections_per_origin=1)
    woken: list[int] = []

    async def request(n: int) -> None:
        await pool.wait_for_change(ORIGIN)
        woken.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(waiting):
            nursery.start_soon(request, n)
            await trio.testing.wait_all_tasks_blocked()  # in line in this order
        counter = TaskWakeups()
        trio.lowlevel.add_instrument(counter)
        try:
            pool.changed(ORIGIN)
            await trio.testing.wait_all_tasks_blocked()
        finally:
            trio.lowlevel.remove_instrument(counter)
        assert woken == [0]  # the first in line, only
        assert pool.statistics().waiting == waiting - 1
        pool.pass_turn(ORIGIN)  # it found what it needed: the next one looks
        await trio.testing.wait_all_tasks_blocked()
        assert woken == [0, 1]
        nursery.cancel_scope.cancel()
    return counter.count


async def test_a_change_wakes_one_waiting_request_however_many_wait() -> None:
    """A change of the pool wakes the first waiting request of its origin, not every waiting one."""
    assert await wakeups_of_one_change(100) == await wakeups_of_one_change(10) <= 3


async def test_a_request_that_stops_waiting_leaves_the_queue() -> None:
    """A waiting request cancelled (its pool timeout) leaves the queue: the next change goes to the next one."""
    pool = ConnectionPool(max_connections_per_origin=1)
    woken: list[str] = []
    scopes: dict[str, trio.CancelScope] = {}

    async def request(name: str) -> None:
        with trio.CancelScope() as scopes[name]:
            await pool.wait_for_change(ORIGIN)
            woken.append(name)

    async with trio.open_nursery() as nursery:
        for name in ("first", "second"):
            nursery.start_soon(request, name)
            await trio.testing.wait_all_tasks_blocked()
        scopes["first"].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert pool.statistics().waiting == 1
        pool.changed(ORIGIN)
    assert woken == ["second"]


async def test_pool_global_limit_evicts_the_least_recently_used_idle_connection() -> None:
    """At max_connections, Open comes with the idle connection used least lately; none idle: Wait anywhere."""
    other = Origin("https", "other.example", 443)
    pool = ConnectionPool(max_connections_per_origin=4, max_connections=2)
    older, newer = pooled(pool), pooled(pool)
    older.last_used, newer.last_used = 1.0, 2.0
    for connection in (older, newer):
        pool.opening_started(ORIGIN)
        pool.opening_ended(ORIGIN, connection)
    assert pool.decide(other, quic=False) == Open(other, evict=older)
    older.retire()  # out of the pool at once, so the opening fits the limit
    assert pool.connections() == {ORIGIN: [newer]} and older.dead
    third = Origin("https", "third.example", 443)
    replacement = pooled(pool)
    pool.opening_started(other)
    pool.opening_ended(other, replacement)
    async with newer.connection, replacement.connection:
        newer.start_exchange()  # both busy: nothing to evict
        replacement.start_exchange()
        assert pool.decide(third, quic=False) == Wait(anywhere=True)
    assert ConnectionPool(1, None).max_connections is None
