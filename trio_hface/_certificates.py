"""Loading and checking a server's certificate chain and private key.

One loader for every transport: :meth:`.ServerTLSConfig.check` runs it, the
TCP side (``networking``) hands OpenSSL the PEM it returns, and the QUIC side
(the HTTP/3 factory) hands aioquic the parsed objects. So a certificate that
is missing, unreadable, not PEM, encrypted or not the key's is refused with the
same one-line :class:`.TLSConfigError` whichever version serves it, and before
anything listens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import TLSConfigError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    PrivateKey = (
        ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    )

__all__ = ["MAX_PEM_FILE_SIZE", "ServerCredentials", "load_server_credentials"]

#: The largest certificate or key file read, in bytes. A chain of ten
#: RSA-4096 certificates is under 25 KiB; anything near this limit is not a
#: certificate file (and ``/dev/zero`` must not be read forever).
MAX_PEM_FILE_SIZE = 1024 * 1024

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_CERTIFICATE_LABELS = (b"CERTIFICATE", b"TRUSTED CERTIFICATE")


@dataclass(frozen=True)
class ServerCredentials:
    """A checked certificate chain and its private key (not public API)."""

    #: The certificates, leaf first.
    certificates: list[x509.Certificate]
    #: The private key of the leaf certificate.
    private_key: PrivateKey
    #: The certificates as PEM, leaf first.
    chain_pem: bytes
    #: The private key as unencrypted PKCS #8 PEM.
    key_pem: bytes


def load_server_credentials(
    certfile: str | None,
    keyfile: str | None,
    certdata: bytes | None,
    keydata: bytes | None,
    *,
    data_name: str = "certdata",
) -> ServerCredentials:
    """Read, parse and check a certificate chain and its key (the fields of a ServerTLSConfig).

    :param data_name: what messages call *certdata* (such as the file it came from)
    :raises TLSConfigError: naming the file (or ``certdata``/``keydata``) and the problem
    """
    from cryptography.hazmat.primitives import serialization

    if certdata is None and certfile is None:
        raise TLSConfigError("a server TLS config needs certfile or certdata")
    cert_name: str = data_name if certfile is None or certdata is not None else certfile
    chain = certdata if certdata is not None else _read(cert_name)
    key_name, key_source = cert_name, chain
    if keydata is not None:
        key_name, key_source = "keydata", keydata
    elif keyfile is not None:
        key_name, key_source = keyfile, _read(keyfile)
    certificates = _parse_certificates(chain, cert_name)
    key = _parse_key(key_source, key_name, in_chain=key_source is chain)

    def spki(public_key: object) -> bytes:
        der: bytes = public_key.public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return der

    ours = spki(key.public_key())
    if spki(certificates[0].public_key()) != ours:
        for index, certificate in enumerate(certificates[1:], start=2):
            if spki(certificate.public_key()) == ours:
                raise TLSConfigError(
                    f"{cert_name}: the certificate of the private key must come first, not as number {index}",
                    cert_name,
                )
        where = "" if key_name == cert_name else f" in {cert_name}"
        raise TLSConfigError(f"{key_name}: the private key does not match the certificate{where}", key_name)
    return ServerCredentials(
        certificates=certificates,
        private_key=key,
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _parse_certificates(chain: bytes, name: str) -> list[x509.Certificate]:
    from cryptography import x509

    blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(chain)]
    if not blocks:
        raise TLSConfigError(_not_pem(name, chain, "certificate"), name)
    cert_blocks = [block for label, block in blocks if label in _CERTIFICATE_LABELS]
    if not cert_blocks:
        if any(label.endswith(b"PRIVATE KEY") for label, _ in blocks):
            problem = "holds a private key, not a certificate (were the certificate and key files swapped?)"
        else:
            problem = f"has no certificate (only {_labels(blocks)})"
        raise TLSConfigError(f"{name} {problem}", name)
    certificates = []
    for index, cert_block in enumerate(cert_blocks, start=1):
        try:
            certificates.append(x509.load_pem_x509_certificate(cert_block))
        except ValueError:
            number = f" number {index}" if len(cert_blocks) > 1 else ""
            raise TLSConfigError(
                f"{name}: certificate{number} is not a valid X.509 certificate", name
            ) from None
    return certificates


def _parse_key(source: bytes, name: str, *, in_chain: bool) -> PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    blocks = [
        (m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(source) if m.group(1).endswith(b"PRIVATE KEY")
    ]
    if not blocks:
        if in_chain:
            problem = "has no private key, and no key file was given"
        elif b"-----BEGIN CERTIFICATE-----" in source:
            problem = "holds a certificate, not a private key (were the certificate and key files swapped?)"
        elif b"-----BEGIN " not in source:
            raise TLSConfigError(_not_pem(name, source, "private key"), name)
        else:
            problem = "has no private key"
        raise TLSConfigError(f"{name} {problem}", name)
    if len(blocks) > 1:
        raise TLSConfigError(f"{name} holds {len(blocks)} private keys, not one", name)
    label, block = blocks[0]
    encrypted = TLSConfigError(f"{name}: the private key is encrypted; give it unencrypted", name)
    if label == b"ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in block.split(b"\n\n", 1)[0]:
        raise encrypted
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise encrypted from None
    except ValueError:
        raise TLSConfigError(f"{name}: the private key is not valid (or of an unknown kind)", name) from None
    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        kind = type(key).__name__.removeprefix("_")
        raise TLSConfigError(f"{name} has a private key of a type TLS servers cannot use ({kind})", name)
    return key


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PEM_FILE_SIZE + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TLSConfigError(f"cannot read {path}: {reason[:1].lower()}{reason[1:]}", path) from None
    if len(data) > MAX_PEM_FILE_SIZE:
        raise TLSConfigError(f"{path} is larger than {MAX_PEM_FILE_SIZE // 1024} KiB: not a PEM file", path)
    return data


def _not_pem(name: str, data: bytes, what: str) -> str:
    if not data.strip():
        return f"{name} is empty, not a PEM {what}"
    if data[:1] == b"\x30":
        return f"{name} is DER, not PEM: convert it (openssl x509 or openssl pkey with -outform pem)"
    return f"{name} is not a PEM file (no -----BEGIN line)"


def _labels(blocks: list[tuple[bytes, bytes]]) -> str:
    return ", ".join(sorted({label.decode("ascii") for label, _ in blocks}))
