"""The QUIC stacks side by side, without sockets: aioquic (ours) and qh3 (a fork with Rust parts).

    .venv/bin/python bench/quic_stacks.py [--mib 16] [--exchanges 3000]

A client and a server connection of one library in this process, joined in memory on a manual
clock (no loss, no sockets, no HTTP/3): one stream carrying ``--mib`` MiB from the server, then
``--exchanges`` small exchanges (40 bytes up, 60 down, one stream each, ten at a time). Prints
the CPU time of both ends together for each library, and the ratio. qh3 keeps aioquic's API
(``qh3.quic.connection.QuicConnection`` and its events), so the same driver runs both; it is
not a dependency of the project: ``.venv/bin/pip install qh3`` to measure it. Bounded in count.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trustme

MIB = 1 << 20
BLOCK = b"x" * (256 * 1024)
#: How far the server's writes may run ahead of what the client took.
AHEAD = 2 * MIB
CLIENT_ADDRESS, SERVER_ADDRESS = ("127.0.0.1", 1234), ("127.0.0.1", 4433)


class Pair:
    """A client and a server connection of one QUIC library, joined in memory."""

    def __init__(self, library: str, folder: Path) -> None:
        configuration = importlib.import_module(f"{library}.quic.configuration")
        self._connection = importlib.import_module(f"{library}.quic.connection")
        self.events = importlib.import_module(f"{library}.quic.events")
        server_config = configuration.QuicConfiguration(is_client=False, alpn_protocols=["bench"])
        server_config.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
        client_config = configuration.QuicConfiguration(
            is_client=True, alpn_protocols=["bench"], server_name="localhost"
        )
        client_config.load_verify_locations(str(folder / "ca.pem"))
        for config in (server_config, client_config):
            config.max_data = config.max_stream_data = 64 * MIB
        self._server_config = server_config
        self.now = 0.0
        self.client: Any = self._connection.QuicConnection(configuration=client_config)
        self.client.connect(SERVER_ADDRESS, now=self.now)
        self.server: Any = None
        for _ in range(50):  # the handshake
            self.pump()
            self.client_events()
            self.server_events()
            self.now += 0.001
        if self.server is None:
            raise AssertionError(f"{library}: no handshake")

    def pump(self) -> int:
        """Move every datagram each side has to send; return how many."""
        moved = 0
        for datagram, _ in self.client.datagrams_to_send(now=self.now):
            if self.server is None:
                self.server = self._connection.QuicConnection(
                    configuration=self._server_config,
                    original_destination_connection_id=self.client.original_destination_connection_id,
                )
            self.server.receive_datagram(datagram, CLIENT_ADDRESS, now=self.now)
            moved += 1
        if self.server is not None:
            for datagram, _ in self.server.datagrams_to_send(now=self.now):
                self.client.receive_datagram(datagram, SERVER_ADDRESS, now=self.now)
                moved += 1
        return moved

    def timers(self) -> None:
        for connection in (self.client, self.server):
            timer = connection.get_timer()
            if timer is not None and timer <= self.now:
                connection.handle_timer(self.now)

    def client_events(self) -> tuple[int, int]:
        """Take the client's events: bytes of stream data, and streams that ended."""
        data = ended = 0
        while (event := self.client.next_event()) is not None:
            if isinstance(event, self.events.StreamDataReceived):
                data += len(event.data)
                ended += event.end_stream
        return data, ended

    def server_events(self) -> list[int]:
        """Take the server's events: the streams whose request ended."""
        ended = []
        if self.server is not None:
            while (event := self.server.next_event()) is not None:
                if isinstance(event, self.events.StreamDataReceived) and event.end_stream:
                    ended.append(event.stream_id)
        return ended


def bulk(pair: Pair, size: int) -> float:
    """CPU seconds to move *size* bytes from the server to the client on one stream."""
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(stream_id, b"GET", end_stream=False)
    pair.pump()
    pair.server_events()
    received = sent = 0
    start = time.process_time()
    while received < size:
        while sent < size and sent - received < AHEAD:
            pair.server.send_stream_data(stream_id, BLOCK[: size - sent])
            sent += min(len(BLOCK), size - sent)
        if not pair.pump():
            pair.now += 0.005
        received += pair.client_events()[0]
        pair.now += 0.0005
        pair.timers()
    return time.process_time() - start


def exchanges(pair: Pair, count: int) -> float:
    """CPU seconds for *count* small exchanges, ten streams at a time."""
    done = 0
    start = time.process_time()
    for _ in range(count // 10):
        for _ in range(10):
            stream_id = pair.client.get_next_available_stream_id()
            pair.client.send_stream_data(stream_id, b"G" * 40, end_stream=True)
        pair.pump()
        for stream_id in pair.server_events():
            pair.server.send_stream_data(stream_id, b"h" * 60, end_stream=True)
        pair.pump()
        pair.pump()
        done += pair.client_events()[1]
        pair.now += 0.002
        pair.timers()
    used = time.process_time() - start
    if done != count // 10 * 10:
        raise AssertionError(f"{done} of {count} exchanges ended")
    return used


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=16, help="MiB on the bulk stream (default 16)")
    parser.add_argument("--exchanges", type=int, default=3000, help="small exchanges (default 3000)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="trio-hface-quic-"))
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    issued.private_key_pem.write_to_path(folder / "key.pem")
    issued.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    results: dict[str, tuple[float, float]] = {}
    for library in ("aioquic", "qh3"):
        try:
            importlib.import_module(library)
        except ImportError:
            print(f"{library}: not installed (.venv/bin/pip install {library})")
            continue
        seconds = bulk(Pair(library, folder), args.mib * MIB)
        small = exchanges(Pair(library, folder), args.exchanges)
        results[library] = (args.mib / seconds, small / args.exchanges * 1e6)
    print(
        f"QUIC without sockets, client and server in one process ({args.mib} MiB, {args.exchanges} exchanges)"
    )
    print(f"{'library':10} {'bulk MiB/s of CPU':>18} {'us CPU per exchange':>20}")
    for library, (rate, cost) in results.items():
        print(f"{library:10} {rate:18.1f} {cost:20.0f}")
    if len(results) == 2:
        (rate_a, cost_a), (rate_q, cost_q) = results["aioquic"], results["qh3"]
        print(f"qh3 against aioquic: bulk {rate_q / rate_a:.2f}x, small exchanges {cost_a / cost_q:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
