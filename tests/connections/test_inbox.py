"""StreamInbox: joined data, credit when data is taken or dropped, the ends of both sides."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_hface.connections import StreamInbox
from trio_hface.events import DataReceived, HeadersReceived, StreamResetReceived


class FakeAcks:
    """Stands in for the connection: records acknowledgements (the inbox needs nothing else)."""

    def __init__(self, manual: bool) -> None:
        self.manual_acknowledgement = manual
        self.acked = 0

    def acknowledge_data(self, stream_id: int, length: int) -> None:
        assert stream_id == 1
        self.acked += length


def inbox_for(connection: FakeAcks, **options: int) -> StreamInbox:
    return StreamInbox(connection, 1, **options)  # type: ignore[arg-type]


async def test_data_is_joined_and_credited_when_taken() -> None:
    connection = FakeAcks(manual=True)
    inbox = inbox_for(connection)
    await inbox.put(HeadersReceived(1, [(b":status", b"200")]))
    for _ in range(1000):  # many small frames take the room of one
        await inbox.put(DataReceived(1, b"x"))
    await inbox.put(DataReceived(1, b"y", end_stream=True))
    assert inbox.buffered == 1001 and connection.acked == 0
    assert isinstance(await inbox.receive(), HeadersReceived)
    data = await inbox.receive()
    assert data == DataReceived(1, b"x" * 1000 + b"y", end_stream=True)
    assert connection.acked == 1001 and inbox.buffered == 0
    inbox.end()
    with pytest.raises(trio.EndOfChannel):
        await inbox.receive()


async def test_closing_drops_and_credits_what_waits_and_what_comes() -> None:
    connection = FakeAcks(manual=True)
    inbox = inbox_for(connection)
    await inbox.put(DataReceived(1, b"abc"))
    inbox.close()
    assert connection.acked == 3
    await inbox.put(DataReceived(1, b"defg"))
    await inbox.put(StreamResetReceived(1, 8))
    assert connection.acked == 7
    with pytest.raises(trio.ClosedResourceError):
        await inbox.receive()


async def test_events_after_the_end_are_refused() -> None:
    inbox = inbox_for(FakeAcks(manual=True))
    inbox.end()
    with pytest.raises(trio.ClosedResourceError):
        await inbox.put(DataReceived(1, b"late"))


async def test_without_manual_acknowledgement_put_waits_for_room() -> None:
    """HTTP/1.1: the reader waits while the inbox is full, which pushes back through TCP."""
    connection = FakeAcks(manual=False)
    inbox = inbox_for(connection, max_buffered=10)
    await inbox.put(DataReceived(1, b"0123456789"))
    put_done = trio.Event()

    async def put_more() -> None:
        await inbox.put(DataReceived(1, b"more"))
        put_done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(put_more)
        await trio.testing.wait_all_tasks_blocked()
        assert not put_done.is_set()
        assert (await inbox.receive()).data == b"0123456789"  # type: ignore[attr-defined]
        await put_done.wait()
    assert (await inbox.receive()).data == b"more"  # type: ignore[attr-defined]
    assert connection.acked == 0  # no manual acknowledgement: the protocol credited already


async def test_other_events_are_bounded_too(autojump_clock: trio.testing.MockClock) -> None:
    inbox = inbox_for(FakeAcks(manual=True), max_events=2)
    await inbox.put(HeadersReceived(1, [(b":status", b"100")]))
    await inbox.put(HeadersReceived(1, [(b":status", b"103")]))
    with trio.move_on_after(0.1) as waited:
        await inbox.put(HeadersReceived(1, [(b":status", b"200")]))
    assert waited.cancelled_caught


async def test_put_nowait_adds_at_once_or_says_the_inbox_is_full() -> None:
    """put_nowait() adds as put() does, without a checkpoint; a full inbox raises WouldBlock,
    a closed one drops (and credits) the event, an ended one refuses it."""
    connection = FakeAcks(manual=False)
    inbox = inbox_for(connection, max_buffered=4, max_events=1)
    inbox.put_nowait(DataReceived(1, b"ab"))
    inbox.put_nowait(DataReceived(1, b"cd"))  # joined: 4 bytes wait now
    with pytest.raises(trio.WouldBlock):
        inbox.put_nowait(DataReceived(1, b"e"))
    inbox.put_nowait(HeadersReceived(1, [(b"x-trailer", b"1")], end_stream=True))
    with pytest.raises(trio.WouldBlock):
        inbox.put_nowait(StreamResetReceived(1, 8))
    assert await inbox.receive() == DataReceived(1, b"abcd")
    inbox.put_nowait(DataReceived(1, b"e"))  # room again
    credited = FakeAcks(manual=True)
    closed = inbox_for(credited)
    closed.close()
    closed.put_nowait(DataReceived(1, b"fgh"))
    assert credited.acked == 3
    inbox.end()
    with pytest.raises(trio.ClosedResourceError):
        inbox.put_nowait(DataReceived(1, b"i"))


async def test_data_that_did_not_wait_is_handed_out_uncopied() -> None:
    """A lone piece of data comes out as the very bytes object that went in; waiting pieces are joined once."""
    inbox = inbox_for(FakeAcks(manual=True))
    record = bytes(16384)
    inbox.put_nowait(DataReceived(1, record))
    event = await inbox.receive()
    assert isinstance(event, DataReceived) and event.data is record
    pieces = [bytes([n]) * 16384 for n in range(3)]
    for piece in pieces:
        inbox.put_nowait(DataReceived(1, piece))
    event = await inbox.receive()
    assert isinstance(event, DataReceived) and event.data == b"".join(pieces)


async def test_tiny_pieces_are_packed_as_they_come() -> None:
    """Thousands of 1-byte frames between large ones wait as a few objects, not one per frame."""
    inbox = inbox_for(FakeAcks(manual=True))
    large = b"L" * 16384
    for _ in range(4):
        inbox.put_nowait(DataReceived(1, large))
        for _ in range(1000):
            inbox.put_nowait(DataReceived(1, b"x"))
    (entry,) = inbox._entries
    assert len(entry.pieces) == 8  # type: ignore[union-attr]
    event = await inbox.receive()
    assert isinstance(event, DataReceived) and event.data == (large + b"x" * 1000) * 4
