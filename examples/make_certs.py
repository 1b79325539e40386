"""Create development certificates for the examples in ./certs (trustme).

Writes certs/cacert.pem (the CA to trust), certs/cert.pem and certs/key.pem
(a certificate for localhost, 127.0.0.1 and ::1, signed by that CA).
Run it from the directory where you run the examples.
"""

from pathlib import Path

import trustme


def main() -> None:
    folder = Path("certs")
    folder.mkdir(exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    ca.cert_pem.write_to_path(folder / "cacert.pem")
    cert.private_key_pem.write_to_path(folder / "key.pem")
    (folder / "cert.pem").write_bytes(
        b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    )
    print(f"wrote {folder}/cacert.pem, {folder}/cert.pem and {folder}/key.pem")


if __name__ == "__main__":
    main()
