"""A minimal HTTP server on the connection layer: "It works!" for every request.

Reads certs/cert.pem and certs/key.pem (create them with examples/make_certs.py).
By default it serves HTTP/1.1 over TLS on port 6443; --http2 serves HTTP/2 instead.
"""

import argparse

import trio

from trio_hface import ServerTLSConfig
from trio_hface.connections import HTTPConnection, HTTPOverTCPListener
from trio_hface.events import ConnectionTerminated, HeadersReceived
from trio_hface.protocols.http1 import HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ServerFactory


async def handler(connection: HTTPConnection) -> None:
    while True:
        event = await connection.receive_event()
        if isinstance(event, HeadersReceived) and any(name == b":method" for name, _ in event.headers):
            await connection.send_headers(event.stream_id, [(b":status", b"200")])
            await connection.send_data(event.stream_id, b"It works!\n", end_stream=True)
        elif isinstance(event, ConnectionTerminated):
            break


async def main(port: int, http2: bool) -> None:
    tls_config = ServerTLSConfig(certfile="certs/cert.pem", keyfile="certs/key.pem")
    factory = HTTP2ServerFactory() if http2 else HTTP1ServerFactory()
    listener = await HTTPOverTCPListener.create(
        factory, local_address=("localhost", port), tls_config=tls_config
    )
    async with listener, trio.open_nursery() as nursery:
        addresses = await nursery.start(listener.serve, handler)
        print("listening on", " ".join(f"{host}:{port}" for host, port in addresses), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--http2", action="store_true", help="serve HTTP/2 instead of HTTP/1.1")
    args = parser.parse_args()
    trio.run(main, args.port, args.http2)
