"""A minimal HTTP client on the connection layer: one GET, the body printed.

Trusts certs/cacert.pem (create it with examples/make_certs.py). By default it
speaks HTTP/1.1 over TLS to localhost:6443; --http2 speaks HTTP/2, --http3
HTTP/3 (QUIC), and --alpn lets the server choose HTTP/2 or HTTP/1.1.
"""

import argparse

import trio

from trio_hface import ClientTLSConfig
from trio_hface.connections import (
    HTTPConnection,
    HTTPOpener,
    HTTPOverQUICOpener,
    HTTPOverTCPOpener,
)
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    HeadersReceived,
    StreamReset,
)
from trio_hface.protocols import ALPNHTTPFactory
from trio_hface.protocols.http1 import HTTP1ClientFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory


async def make_request(
    connection: HTTPConnection, authority: bytes, path: bytes
) -> bytes:
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
        if (
            isinstance(event, (HeadersReceived, DataReceived))
            and event.stream_id == stream_id
        ):
            if isinstance(event, DataReceived):
                body += event.data
            if event.end_stream:
                return bytes(body)
        elif isinstance(event, (StreamReset, ConnectionTerminated)):
            raise RuntimeError(f"request failed: {event!r}")


def create_opener(version: str, tls_config: ClientTLSConfig) -> HTTPOpener:
    if version == "http3":
        return HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=tls_config)
    if version == "http2":
        return HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=tls_config)
    if version == "alpn":
        factory = ALPNHTTPFactory([HTTP2ClientFactory(), HTTP1ClientFactory()])
        return HTTPOverTCPOpener(factory, tls_config=tls_config)
    return HTTPOverTCPOpener(HTTP1ClientFactory(), tls_config=tls_config)


async def main(version: str, port: int) -> None:
    tls_config = ClientTLSConfig(cafile="certs/cacert.pem")
    opener = create_opener(version, tls_config)
    async with await opener(("localhost", port), tls=True) as connection:
        body = await make_request(connection, b"localhost:%d" % port, b"/")
        print(f"HTTP/{connection.http_version}:", body.decode(), end="")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=6443)
    group = parser.add_mutually_exclusive_group()
    for name in ("http1", "http2", "http3", "alpn"):
        group.add_argument(
            f"--{name}", dest="version", action="store_const", const=name
        )
    args = parser.parse_args()
    trio.run(main, args.version or "http1", args.port)
