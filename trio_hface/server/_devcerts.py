"""DevelopmentCA: a certificate authority for development, kept in a per-user directory.

Theory of operation
-------------------

The CA lives in one directory (by default ``$XDG_DATA_HOME/trio-hface/dev-ca``,
or ``~/.local/share/trio-hface/dev-ca``) as two files:

* ``ca-key.pem``: the CA's private key and its certificate (mode 0600). It is
  the CA: written once, atomically, and reused by every later run, so a client
  that saved the path of ``ca.pem`` keeps trusting the servers.
* ``ca.pem``: the CA certificate alone, for clients (``curl --cacert``),
  rewritten from ``ca-key.pem`` when missing or different.

The directory is made private (0700). The certificate of the server
(``localhost``, ``127.0.0.1``, ``::1`` by default) is issued afresh by every
:meth:`DevelopmentCA.server_tls_config` and stays in memory. A ``ca-key.pem``
that cannot be used (corrupt, not a CA, expired or about to) is replaced by a
new CA, and :attr:`DevelopmentCA.replaced` says why.

:meth:`DevelopmentCA.open` with ``save=False`` touches nothing on disk until
:meth:`DevelopmentCA.save`: the command line binds its sockets first, so a
server that cannot listen leaves no CA behind. Two processes that make a CA at
the same moment both write a private temporary file and link it into place;
the second link fails, and that process learns it lost (``save()`` returns
``False``) instead of overwriting the CA that the first one already printed.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
from pathlib import Path
from typing import final

import trustme

from .._certificates import load_server_credentials
from .._models import ClientTLSConfig, ServerTLSConfig
from ..errors import TLSConfigError

__all__ = ["DevelopmentCA", "default_dev_ca_directory", "development_tls_config"]

#: The file with the CA certificate, for clients.
CA_FILE = "ca.pem"
#: The file with the CA's private key and certificate.
CA_KEY_FILE = "ca-key.pem"
#: A CA that expires within this time is replaced (a server may run for weeks).
RENEW_BEFORE = datetime.timedelta(days=30)
#: The names the server certificate is for, by default.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
#: How many times :meth:`DevelopmentCA.open` reloads after losing a race to save.
_OPEN_ATTEMPTS = 3


def default_dev_ca_directory() -> Path:
    """``$XDG_DATA_HOME/trio-hface/dev-ca``, or ``~/.local/share/trio-hface/dev-ca``.

    A relative ``XDG_DATA_HOME`` is ignored, as the XDG base directory
    specification asks.
    """
    base = os.environ.get("XDG_DATA_HOME", "")
    data = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return data / "trio-hface" / "dev-ca"


@final
class DevelopmentCA:
    """A certificate authority for development, reused across runs.

    Obtain one with :meth:`open`. It issues server certificates
    (:meth:`server_tls_config`) that clients trust through :attr:`cafile` or
    :meth:`client_tls_config`. This is the CA that ``trio-hface server``,
    ``trio-hface proxy`` and ``trio-hface ca`` use; ``--dev-ca-dir`` is the
    *directory* of :meth:`open`.

    .. warning::
       Anyone who can read ``ca-key.pem`` can make certificates that the
       clients trusting this CA accept, for any name. Trust it only in
       development clients, never in a system-wide store you browse with.
    """

    def __init__(self, ca: trustme.CA, directory: Path, *, saved: bool, replaced: str | None) -> None:
        self._ca = ca
        #: The directory of the CA's files.
        self.directory = directory
        #: Whether the files in :attr:`directory` hold this CA (see :meth:`save`).
        self.saved = saved
        #: Why the CA that was in :attr:`directory` was replaced by a new one, or
        #: ``None`` (it was reused, or there was none).
        self.replaced = replaced
        # Whether ca-key.pem holds this CA (the CA itself is saved; ca.pem may not be).
        self._key_saved = saved

    @classmethod
    def open(cls, directory: str | os.PathLike[str] | None = None, *, save: bool = True) -> DevelopmentCA:
        """Load the CA in *directory*, or make a new one if there is none or it cannot be used.

        :param directory: where the CA's files are (default: :func:`default_dev_ca_directory`)
        :param save: write a new CA to *directory* now; with ``False``, nothing is
            written until :meth:`save`
        :raises OSError: if the directory or its files cannot be read, or (with
            *save*) written
        """
        folder = Path(directory) if directory is not None else default_dev_ca_directory()
        for _ in range(_OPEN_ATTEMPTS):
            ca = cls._load(folder)
            if not save or ca.save():
                return ca
        raise OSError(f"cannot save a development CA in {folder}: other processes keep replacing it")

    @classmethod
    def _load(cls, folder: Path) -> DevelopmentCA:
        path = folder / CA_KEY_FILE
        try:
            data = _read_private(path)
        except FileNotFoundError:
            return cls(_new_ca(), folder, saved=False, replaced=None)
        try:
            credentials = load_server_credentials(None, None, data, None, data_name=str(path))
        except TLSConfigError as exc:
            return cls(_new_ca(), folder, saved=False, replaced=str(exc))
        problem = _unusable(credentials.certificates[0])
        if problem is not None:
            return cls(_new_ca(), folder, saved=False, replaced=f"{path}: the CA {problem}")
        ca = trustme.CA.from_pem(credentials.chain_pem, credentials.key_pem)
        try:
            saved = (folder / CA_FILE).read_bytes() == credentials.chain_pem
        except FileNotFoundError:
            saved = False
        loaded = cls(ca, folder, saved=saved, replaced=None)
        loaded._key_saved = True
        return loaded

    @property
    def cafile(self) -> Path:
        """The path of the CA certificate, for clients (it exists once :attr:`saved`)."""
        return self.directory / CA_FILE

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self._ca.cert_pem.bytes()

    def save(self) -> bool:
        """Write the CA's files into :attr:`directory`, unless they hold it already.

        Creates the directory (mode 0700) and ``ca-key.pem`` (0600) without
        ever overwriting a usable CA that another process saved meanwhile.

        :returns: ``True`` if the directory holds this CA now; ``False`` if
            another process saved a different one first (this CA stays usable,
            and :attr:`cafile` names the other one)
        :raises OSError: if the directory or a file cannot be written
        """
        if self.saved:
            return True
        folder = self.directory
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
        key_path = folder / CA_KEY_FILE
        if not self._key_saved:
            key_and_cert = self._ca.private_key_pem.bytes() + self.cert_pem
            if not self._install_key(key_path, key_and_cert, replace=self.replaced is not None):
                return False
            self._key_saved = True
        elif key_path.stat().st_mode & 0o077:
            key_path.chmod(0o600)
        _write_atomically(folder / CA_FILE, self.cert_pem, mode=0o644)
        self.saved = True
        return True

    def _install_key(self, path: Path, data: bytes, *, replace: bool) -> bool:
        temporary = _write_temporary(path.parent, data, mode=0o600)
        try:
            if replace:
                os.replace(temporary, path)
                return True
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False  # another process saved its CA first: keep it
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def server_tls_config(self, *hosts: str) -> ServerTLSConfig:
        """Issue a new server certificate, in memory, for *hosts*.

        :param hosts: DNS names and IP addresses (default: ``localhost``,
            ``127.0.0.1`` and ``::1``)
        :returns: the certificate and its key, as ``certdata`` and ``keydata``
        """
        leaf = self._ca.issue_cert(*(hosts or DEFAULT_HOSTS))
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return ServerTLSConfig(certdata=chain, keydata=leaf.private_key_pem.bytes())

    def client_tls_config(self) -> ClientTLSConfig:
        """A client configuration that trusts this CA (and nothing else)."""
        return ClientTLSConfig(cadata=self.cert_pem.decode("ascii"))


def development_tls_config(
    directory: str | os.PathLike[str] | None = None,
) -> tuple[ServerTLSConfig, ClientTLSConfig]:
    """The server and client sides of the development CA in *directory*, in one call.

    ``DevelopmentCA.open(directory)`` (saved, so that other processes trust it
    through its ``ca.pem``), a server certificate for ``localhost``,
    ``127.0.0.1`` and ``::1``, and a client configuration that trusts the CA.

    :raises OSError: if the directory cannot be read or written
    """
    ca = DevelopmentCA.open(directory)
    return ca.server_tls_config(), ca.client_tls_config()


def _new_ca() -> trustme.CA:
    return trustme.CA(organization_name="trio_hface development CA")


def _unusable(certificate: object) -> str | None:
    """Why a loaded CA certificate cannot serve as the CA, or ``None``."""
    from cryptography import x509

    assert isinstance(certificate, x509.Certificate)
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "certificate is not a CA's (no basic constraints)"
    if not constraints.ca:
        return "certificate is not a CA's"
    expiry = certificate.not_valid_after_utc
    if expiry - RENEW_BEFORE <= datetime.datetime.now(datetime.timezone.utc):
        return f"expired or expires soon ({expiry:%Y-%m-%d})"
    return None


def _read_private(path: Path) -> bytes:
    # Bounded as every certificate file is; FileNotFoundError (also for a
    # missing directory) means "no CA yet".
    with open(path, "rb") as f:
        data = f.read(1024 * 1024 + 1)
    if len(data) > 1024 * 1024:
        raise TLSConfigError(f"{path} is larger than 1024 KiB", str(path))
    return data


def _write_temporary(folder: Path, data: bytes, *, mode: int) -> str:
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return name


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    temporary = _write_temporary(path.parent, data, mode=mode)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
