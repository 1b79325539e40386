"""Certificate and key files, good and bad, for the tests of the startup checks."""

from __future__ import annotations

import datetime
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: (certificate file, key file, words the one-line message must contain, the file it must name).
BAD_PAIRS: list[tuple[str, str, str, str]] = [
    ("missing.pem", "key.pem", "no such file or directory", "missing.pem"),
    ("cert.pem", "missing.pem", "no such file or directory", "missing.pem"),
    ("cert.pem", "other-key.pem", "the private key does not match the certificate in", "other-key.pem"),
    ("key.pem", "cert.pem", "holds a private key, not a certificate", "key.pem"),
    ("cert.pem", "cert.pem", "holds a certificate, not a private key", "cert.pem"),
    ("cert.pem", "encrypted-key.pem", "the private key is encrypted", "encrypted-key.pem"),
    ("cert.pem", "encrypted-legacy-key.pem", "the private key is encrypted", "encrypted-legacy-key.pem"),
    ("cert.der", "key.pem", "is DER, not PEM", "cert.der"),
    ("empty.pem", "key.pem", "is empty", "empty.pem"),
    ("not-pem.txt", "key.pem", "is not a PEM file", "not-pem.txt"),
    ("broken-cert.pem", "key.pem", "is not a valid X.509 certificate", "broken-cert.pem"),
    ("cert.pem", "broken-key.pem", "the private key is not valid", "broken-key.pem"),
    ("reversed-chain.pem", "leaf2-key.pem", "must come first, not as number 2", "reversed-chain.pem"),
]


def write_tls_files(folder: Path) -> trustme.CA:
    """Write the files that :data:`BAD_PAIRS` names (and a good cert.pem and key.pem) into *folder*."""
    ca = trustme.CA()
    leaf, other = ca.issue_cert("localhost", "127.0.0.1"), ca.issue_cert("localhost")
    cert_pem = leaf.cert_chain_pems[0].bytes()
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(leaf.private_key_pem.bytes())
    (folder / "other-key.pem").write_bytes(other.private_key_pem.bytes())
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    for name, form in (
        ("encrypted-key.pem", serialization.PrivateFormat.PKCS8),
        ("encrypted-legacy-key.pem", serialization.PrivateFormat.TraditionalOpenSSL),
    ):
        encrypted = key.private_bytes(
            serialization.Encoding.PEM, form, serialization.BestAvailableEncryption(b"secret")
        )
        (folder / name).write_bytes(encrypted)
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    (folder / "cert.der").write_bytes(der)
    (folder / "empty.pem").write_bytes(b"")
    (folder / "not-pem.txt").write_text("hello\n")
    (folder / "broken-cert.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    (folder / "broken-key.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    intermediate = ca.create_child_ca()
    leaf2 = intermediate.issue_cert("localhost")
    (folder / "reversed-chain.pem").write_bytes(
        leaf2.cert_chain_pems[1].bytes() + leaf2.cert_chain_pems[0].bytes()
    )
    (folder / "leaf2-key.pem").write_bytes(leaf2.private_key_pem.bytes())
    return ca


def expired_ca_file() -> bytes:
    """A ``ca-key.pem`` (key and certificate) of a CA that expired yesterday."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "expired test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)
