"""Listening sockets for worker processes: one per worker on the same port, and QUIC steering.

Theory of operation
-------------------

A supervisor process binds, for each endpoint, one socket per worker on the
same address with ``SO_REUSEPORT`` (:func:`bind_reuse_port`), before any
worker starts, and keeps them for the life of the server; each worker serves
on its own socket (:class:`PreboundNetworking`), and a worker that is
restarted gets the same socket again. Binding them all in the supervisor
gives port 0 one real port for everyone, and fixes the order of the sockets
in the kernel's reuse-port group: socket *i* is worker *i*'s.

* **TCP**: the kernel spreads new connections over the listening sockets of
  the group by a hash of the 4-tuple. Connections that arrive while a worker
  restarts wait in its socket's backlog.
* **UDP (QUIC)**: a hash of the 4-tuple would send the packets of a
  connection to another worker once the client's address changes. So the
  supervisor attaches a classic BPF program to the group
  (``SO_ATTACH_REUSEPORT_CBPF``, Linux 4.5+, :func:`attach_connection_id_steering`)
  that picks the socket from the first octet of the packet's destination
  connection ID, modulo the number of workers: the octet after the flags
  byte in a short header, the octet after the DCID length (offset 6) in a
  long header. Each worker issues connection IDs whose first octet names it
  (see :class:`.ConnectionIDRouting`), and a client's first Initial, with its
  random connection ID, lands on whichever worker its octet names, which
  then owns the connection. Datagrams too short to hold that octet get an
  index out of range, which makes the kernel fall back to its hash.
* Where the option is unavailable (or not wanted), the group keeps the kernel's hash, and
  each worker forwards the datagrams whose connection ID names another worker
  to that worker over a local datagram socket (see ``_forward.py``).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket as stdlib_socket
import struct
from collections.abc import Mapping, Sequence

import trio

from .._typing import AddressType
from ._abc import QUICStreamListener
from ._forward import DatagramForwarder
from ._system import SystemNetworking

__all__ = [
    "FORWARD_BUFFER_SIZE",
    "PreboundNetworking",
    "attach_connection_id_steering",
    "bind_reuse_port",
    "connection_id_steering_program",
    "forwarding_pairs",
]

log = logging.getLogger(__name__)

#: ``SO_ATTACH_REUSEPORT_CBPF`` (asm-generic/socket.h); Python's socket module lacks it.
SO_ATTACH_REUSEPORT_CBPF = 51

#: The backlog of each worker's TCP socket (trio.open_tcp_listeners' default
#: is the kernel's maximum; one worker's share is enough here).
TCP_BACKLOG = 1024

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
_BPF_LD_B_ABS = 0x00 | 0x10 | 0x20  # BPF_LD | BPF_B | BPF_ABS: A = packet[k]
_BPF_LD_W_LEN = 0x00 | 0x00 | 0x80  # BPF_LD | BPF_W | BPF_LEN: A = packet length
_BPF_JMP_JSET_K = 0x05 | 0x40  # BPF_JMP | BPF_JSET | BPF_K: if A & k
_BPF_JMP_JGE_K = 0x05 | 0x30  # BPF_JMP | BPF_JGE | BPF_K: if A >= k
_BPF_ALU_MOD_K = 0x04 | 0x90  # BPF_ALU | BPF_MOD | BPF_K: A %= k
_BPF_RET_A = 0x06 | 0x10  # BPF_RET | BPF_A
_BPF_RET_K = 0x06  # BPF_RET | BPF_K

#: RFC 8999: the long-header bit, and where the destination connection ID starts.
_LONG_HEADER = 0x80
_SHORT_DCID_OFFSET = 1
_LONG_DCID_OFFSET = 6

#: Returned for datagrams too short: any index past the group makes the kernel use its hash.
_ANY_SOCKET = 0xFFFFFFFF


def connection_id_steering_program(worker_count: int) -> bytes:
    """The classic BPF program that picks a socket by the first octet of the destination connection ID.

    The program runs on the UDP payload and returns the socket's index in the
    reuse-port group: that octet modulo *worker_count*.

    :raises ValueError: if *worker_count* is not in 1-256
    """
    if not 1 <= worker_count <= 256:
        raise ValueError(f"worker_count must be in 1-256, not {worker_count!r}")
    instructions = [
        # 0: a datagram too short for a long header's DCID octet: the kernel's hash
        (_BPF_LD_W_LEN, 0, 0, 0),
        (_BPF_JMP_JGE_K, 1, 0, _LONG_DCID_OFFSET + 1),
        (_BPF_RET_K, 0, 0, _ANY_SOCKET),
        # 3: the flags byte says long or short header
        (_BPF_LD_B_ABS, 0, 0, 0),
        (_BPF_JMP_JSET_K, 2, 0, _LONG_HEADER),
        # 5: short header: the octet after the flags
        (_BPF_LD_B_ABS, 0, 0, _SHORT_DCID_OFFSET),
        (_BPF_JMP_JGE_K, 1, 1, 0),  # always true: skip the long-header load
        # 7: long header: the octet after the DCID length
        (_BPF_LD_B_ABS, 0, 0, _LONG_DCID_OFFSET),
        # 8: modulo the number of workers
        (_BPF_ALU_MOD_K, 0, 0, worker_count),
        (_BPF_RET_A, 0, 0, 0),
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in instructions)


def attach_connection_id_steering(sock: stdlib_socket.socket, worker_count: int) -> bool:
    """Attach :func:`connection_id_steering_program` to the reuse-port group of *sock*.

    :returns: ``True`` if the kernel took it; ``False`` where it has no such
        option (not Linux, or before 4.5), and the group spreads by its hash
    """
    program = connection_id_steering_program(worker_count)
    count = len(program) // 8
    buffer = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("@HP", count, ctypes.addressof(buffer))
    try:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        if exc.errno in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
            log.debug("no SO_ATTACH_REUSEPORT_CBPF: %s", exc)
            return False
        raise
    return True


#: Send buffer of each forwarding socket, in bytes: a burst of a few hundred datagrams.
FORWARD_BUFFER_SIZE = 1024 * 1024


def forwarding_pairs(count: int) -> list[tuple[stdlib_socket.socket, stdlib_socket.socket]]:
    """One ``AF_UNIX`` datagram socket pair per worker: ``(send end, receive end)`` (see ``_forward.py``)."""
    pairs = []
    try:
        for _ in range(count):
            send, receive = stdlib_socket.socketpair(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_DGRAM)
            pairs.append((send, receive))
            for sock, option in ((send, stdlib_socket.SO_SNDBUF), (receive, stdlib_socket.SO_RCVBUF)):
                try:
                    sock.setsockopt(stdlib_socket.SOL_SOCKET, option, FORWARD_BUFFER_SIZE)
                except OSError:
                    pass  # the default buffer works, with more drops in bursts
    except BaseException:
        for pair in pairs:
            for sock in pair:
                sock.close()
        raise
    return pairs


def _reuse_port_available() -> bool:
    return hasattr(stdlib_socket, "SO_REUSEPORT")


async def bind_reuse_port(
    local_address: AddressType, *, count: int, udp: bool
) -> list[list[stdlib_socket.socket]]:
    """Bind *count* sockets on each address *local_address* resolves to, all on one port.

    :param local_address: ``(host, port)``; port 0 picks a free port, the same for all
    :param count: sockets per address (one per worker)
    :param udp: UDP sockets (for QUIC) instead of listening TCP sockets
    :returns: the sockets of each worker: ``result[worker]`` has one per address
    :raises OSError: if an address cannot be bound, or the system has no ``SO_REUSEPORT``
    """
    if not _reuse_port_available():
        raise OSError(errno.ENOPROTOOPT, "this system has no SO_REUSEPORT: run one worker")
    host, port = local_address
    kind = stdlib_socket.SOCK_DGRAM if udp else stdlib_socket.SOCK_STREAM
    infos = await trio.socket.getaddrinfo(host or None, port, type=kind, flags=stdlib_socket.AI_PASSIVE)
    result: list[list[stdlib_socket.socket]] = [[] for _ in range(count)]
    bound_port = port
    try:
        for family, socktype, proto, _, sockaddr in infos:
            for worker in range(count):
                sock = stdlib_socket.socket(family, socktype, proto)
                result[worker].append(sock)
                sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
                if not udp:
                    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
                if family == stdlib_socket.AF_INET6:
                    sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
                address = list(sockaddr)
                address[1] = bound_port
                sock.bind(tuple(address))
                bound_port = sock.getsockname()[1]
                if not udp:
                    sock.listen(TCP_BACKLOG)
                sock.setblocking(False)
    except BaseException:
        for socks in result:
            for sock in socks:
                sock.close()
        raise
    return result


class PreboundNetworking(SystemNetworking):
    """:class:`.SystemNetworking` whose servers listen on sockets bound beforehand.

    A worker process gets its sockets from the supervisor (see
    :func:`bind_reuse_port`); ``listen_tcp`` and ``listen_quic`` return
    listeners on those bound at that address, and bind nothing themselves.

    :param tcp: the worker's listening TCP sockets by the ``(host, port)`` they were bound for
    :param udp: the worker's UDP sockets, likewise
    :param forwarders: for each UDP socket, the forwarder of misrouted
        datagrams (where the kernel does not steer them), likewise
    :raises OSError: from ``listen_*`` for an address without sockets here
    """

    def __init__(
        self,
        tcp: Mapping[AddressType, Sequence[stdlib_socket.socket]],
        udp: Mapping[AddressType, Sequence[stdlib_socket.socket]],
        forwarders: Mapping[AddressType, Sequence[DatagramForwarder]] | None = None,
    ) -> None:
        self._tcp = tcp
        self._udp = udp
        self._forwarders = forwarders or {}

    def _sockets(
        self, table: Mapping[AddressType, Sequence[stdlib_socket.socket]], address: AddressType
    ) -> Sequence[stdlib_socket.socket]:
        try:
            return table[address]
        except KeyError:
            raise OSError(errno.EADDRNOTAVAIL, f"no socket was bound for {address[0]}:{address[1]}") from None

    async def listen_tcp(self, local_address: AddressType) -> Sequence[trio.SocketListener]:
        await trio.lowlevel.checkpoint()
        return [
            trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            for sock in self._sockets(self._tcp, local_address)
        ]

    async def listen_quic(
        self,
        local_address: AddressType,
        *,
        quic_connection_id_length: int,
        quic_supported_versions: Sequence[int],
        quic_stateless_reset_key: bytes | None = None,
        quic_retry: bool = False,
        quic_retry_key: bytes | None = None,
    ) -> Sequence[QUICStreamListener]:
        from ._quic import QUICListener

        await trio.lowlevel.checkpoint()
        forwarders = self._forwarders.get(local_address, ())
        listeners = []
        for index, sock in enumerate(self._sockets(self._udp, local_address)):
            listener = QUICListener(
                trio.socket.from_stdlib_socket(sock),
                connection_id_length=quic_connection_id_length,
                supported_versions=quic_supported_versions,
                stateless_reset_key=quic_stateless_reset_key,
                retry=quic_retry,
                retry_key=quic_retry_key,
            )
            if index < len(forwarders):
                listener.set_forwarder(forwarders[index])
            listeners.append(listener)
        return listeners
