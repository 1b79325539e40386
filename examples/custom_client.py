"""A minimal HTTP client on the connection layer: one GET, the body printed.

Trusts certs/cacert.pem (create it with examples/make_certs.py). By default it
speaks HTTP/1.1 over TLS to localhost:6443; --http2 speaks HTTP/2 instead.
"""

import argparse

import trio

from trio_hface import ClientTLSConfig
from trio_hface.connections import HTTPConnection, HTTPOverTCPOpener
from trio_hface.events import ConnectionTerminated, DataReceived, HeadersReceived, StreamReset
from trio_hface.protocols.http1 import HTTP1ClientFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory


async def make_request(connection: HTTPConnection, authority: bytes, path: bytes) -> bytes:
    stream_id = connection.get_available_stream_id()
    headers = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", authority),
        (b":path", path),
    ]
    await connection.send_headers(stream_id, headers, end_stream=True)
    body = bytearray()
    while True:
        event = await connection.receive_event()
        if isinstance(event, (HeadersReceived, DataReceived)) and event.stream_id == stream_id:
            if isinstance(event, DataReceived):
                body += event.data
            if event.end_stream:
                return bytes(body)
        elif isinstance(event, (StreamReset, ConnectionTerminated)):
            raise RuntimeError(f"request failed: {event!r}")


async def main(port: int, http2: bool) -> None:
    tls_config = ClientTLSConfig(cafile="certs/cacert.pem")
    factory = HTTP2ClientFactory() if http2 else HTTP1ClientFactory()
    opener = HTTPOverTCPOpener(factory, tls_config=tls_config)
    async with await opener(("localhost", port), tls=True) as connection:
        body = await make_request(connection, b"localhost:%d" % port, b"/")
    print(body.decode(), end="")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--http2", action="store_true", help="speak HTTP/2 instead of HTTP/1.1")
    args = parser.parse_args()
    trio.run(main, args.port, args.http2)
