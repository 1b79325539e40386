"""A TLS connection tunnelled through a proxy with ProxyClient; HTTP/1.1 by hand.

Trusts certs/cacert.pem; uses the proxy at https://localhost:8443 (run
examples/proxy_server.py) to reach localhost:6443 (run examples/server.py).
With --http3, the tunnel is a stream of an HTTP/3 connection to the proxy.
"""

import argparse

import trio

from trio_hface import ClientTLSConfig
from trio_hface.client import ClientProtocol, ProxyClient


async def main(proxy_url: str, port: int, http3: bool) -> None:
    protocol = ClientProtocol.HTTP3 if http3 else ClientProtocol.TCP
    proxy = ProxyClient(
        proxy_url,
        tls_config=ClientTLSConfig(cafile="certs/cacert.pem"),
        protocol=protocol,
    )
    async with proxy.session() as session:
        stream = await session.connect_tcp_tls(
            ("localhost", port), alpn_protocols=["http/1.1"]
        )
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        response = b""
        while data := await stream.receive_some():
            response += data
        await stream.aclose()
    print(response.decode().split("\r\n")[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--proxy", default="https://localhost:8443")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument(
        "--http3", action="store_true", help="reach the proxy over HTTP/3"
    )
    args = parser.parse_args()
    trio.run(main, args.proxy, args.port, args.http3)
