"""Requests with Client: the version is chosen by ALPN, then HTTP/3 after Alt-Svc.

Trusts certs/cacert.pem (create it with examples/make_certs.py) and asks
https://localhost:6443/ (run examples/server.py first) twice: the first answer
advertises HTTP/3, so the second request uses it.
"""

import argparse

import trio

from trio_hface import ClientTLSConfig
from trio_hface.client import Client


async def main(url: str) -> None:
    client = Client(tls_config=ClientTLSConfig(cafile="certs/cacert.pem"))
    async with client.session() as session:
        for _ in range(2):
            response = await session.get(url)
            version, status = response.http_version, response.status
            print(f"HTTP/{version} {status}:", response.text, end="")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", nargs="?", default="https://localhost:6443/")
    trio.run(main, parser.parse_args().url)
