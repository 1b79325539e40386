"""An ASGI application served over HTTP/1.1, HTTP/2 and HTTP/3 with ASGIServer.

Reads certs/cert.pem and certs/key.pem (create them with examples/make_certs.py)
and listens on https://localhost:6443 (TCP for HTTP/1.1 and HTTP/2, UDP for
HTTP/3). Ctrl-C shuts it down gracefully.
"""

import argparse
import signal

import trio

from trio_hface import ServerTLSConfig
from trio_hface.server import ASGIServer, Endpoint


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = f"Hello from HTTP/{scope['http_version']}!\n".encode()
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def main(port: int) -> None:
    tls_config = ServerTLSConfig(certfile="certs/cert.pem", keyfile="certs/key.pem")
    server = ASGIServer(app, tls_config=tls_config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            endpoint = Endpoint("https", "localhost", port)
            endpoints = await nursery.start(server.run, [endpoint])
            print("serving on", *endpoints, flush=True)
            async for _ in signals:
                server.shutdown()  # graceful: requests in flight finish first
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=6443)
    trio.run(main, parser.parse_args().port)
