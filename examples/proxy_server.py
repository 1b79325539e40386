"""A CONNECT proxy over HTTP/1.1, HTTP/2 and HTTP/3 with ProxyServer.

Reads certs/cert.pem and certs/key.pem and listens on https://localhost:8443.
Ctrl-C shuts it down gracefully.
"""

import argparse
import signal

import trio

from trio_hface import ServerTLSConfig
from trio_hface.server import Endpoint, ProxyServer


async def main(port: int) -> None:
    tls_config = ServerTLSConfig(certfile="certs/cert.pem", keyfile="certs/key.pem")
    proxy = ProxyServer(tls_config=tls_config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            endpoint = Endpoint("https", "localhost", port)
            endpoints = await nursery.start(proxy.run, [endpoint])
            print("proxying on", *endpoints, flush=True)
            async for _ in signals:
                proxy.shutdown()  # graceful: tunnels in use get graceful_timeout to end
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8443)
    trio.run(main, parser.parse_args().port)
