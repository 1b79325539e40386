"""A minimal HTTP server on the connection layer: "It works!" for every request.

Reads certs/cert.pem and certs/key.pem (create them with examples/make_certs.py).
By default it serves HTTP/1.1 over TLS on port 6443; --http2 serves HTTP/2,
--http3 HTTP/3 (QUIC), and --all serves HTTP/1.1 and HTTP/2 (chosen by ALPN)
on TCP and HTTP/3 on UDP, on the same port number.
"""

import argparse

import trio

from trio_hface import ServerTLSConfig
from trio_hface.connections import (
    HTTPConnection,
    HTTPListener,
    HTTPMultiListener,
    HTTPOverQUICListener,
    HTTPOverTCPListener,
)
from trio_hface.events import ConnectionTerminated, HeadersReceived
from trio_hface.protocols import ALPNHTTPFactory
from trio_hface.protocols.http1 import HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ServerFactory


async def handler(connection: HTTPConnection) -> None:
    while True:
        event = await connection.receive_event()
        if isinstance(event, HeadersReceived) and any(
            name == b":method" for name, _ in event.headers
        ):
            await connection.send_headers(event.stream_id, [(b":status", b"200")])
            await connection.send_data(event.stream_id, b"It works!\n", end_stream=True)
        elif isinstance(event, ConnectionTerminated):
            break


async def create_listener(
    version: str, port: int, tls_config: ServerTLSConfig
) -> HTTPListener:
    address = ("localhost", port)
    if version == "http1":
        return await HTTPOverTCPListener.create(
            HTTP1ServerFactory(), local_address=address, tls_config=tls_config
        )
    if version == "http2":
        return await HTTPOverTCPListener.create(
            HTTP2ServerFactory(), local_address=address, tls_config=tls_config
        )
    if version == "http3":
        return await HTTPOverQUICListener.create(
            HTTP3ServerFactory(), local_address=address, tls_config=tls_config
        )
    # All versions: HTTP/1.1 or HTTP/2 by ALPN on TCP, HTTP/3 on UDP, one port number.
    tcp = await HTTPOverTCPListener.create(
        ALPNHTTPFactory([HTTP2ServerFactory(), HTTP1ServerFactory()]),
        local_address=address,
        tls_config=tls_config,
    )
    quic_port = tcp.addresses[0][1]
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        local_address=("localhost", quic_port),
        tls_config=tls_config,
    )
    return HTTPMultiListener([tcp, quic])


async def main(version: str, port: int) -> None:
    tls_config = ServerTLSConfig(certfile="certs/cert.pem", keyfile="certs/key.pem")
    listener = await create_listener(version, port, tls_config)
    async with listener, trio.open_nursery() as nursery:
        addresses = await nursery.start(listener.serve, handler)
        bound = " ".join(f"{host}:{port}" for host, port in addresses)
        print("listening on", bound, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=6443)
    group = parser.add_mutually_exclusive_group()
    for name in ("http1", "http2", "http3", "all"):
        group.add_argument(
            f"--{name}", dest="version", action="store_const", const=name
        )
    args = parser.parse_args()
    trio.run(main, args.version or "http1", args.port)
