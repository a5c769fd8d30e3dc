"""Certificates for the simulated HTTPS listeners, made at run time with ``cryptography``.

A ``TlsMaterial`` owns a private temporary directory holding a test CA (``ca.pem``, the bundle
a client passes as ``cert_validation``) and hands out ``ssl.SSLContext`` objects for server
certificates of four kinds:

``trusted``     issued by the fleet CA for the host's address (SAN IP) and name (SAN DNS)
``untrusted``   self-signed, otherwise like ``trusted``: no client trusts it
``expired``     issued by the fleet CA, valid until a month ago
``wrong-name``  issued by the fleet CA for another computer's name only

All certificates share one P-256 key, generated once: EC keys are cheap to make and to sign
with, so a fleet with many HTTPS hosts starts quickly. Nothing here is a secret worth the name:
the material lives only as long as the fleet and only ever serves loopback addresses.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import shutil
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet_ecs.errors import SimulatorError

logger = logging.getLogger(__name__)

KINDS = ("trusted", "untrusted", "expired", "wrong-name")
CA_NAME = "fleet-ecs simulator test CA"
WRONG_NAME = "other-host.contoso.com"


class TlsMaterial:
    """A fleet's test CA and server certificates, in a directory removed by ``close``."""

    def __init__(self, directory: Path | None = None) -> None:
        self._own_dir = directory is None
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="fleet-ecs-sim-tls-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._key_path = self.directory / "server-key.pem"
        _write_private(self._key_path, self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_bundle_path = self.directory / "ca.pem"
        self.ca_bundle_path.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self._contexts: dict[tuple[str, str, str], ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._count = 0

    def server_context(self, host_name: str, address: str, kind: str = "trusted") -> ssl.SSLContext:
        """A server-side TLS context presenting a ``kind`` certificate for the host."""
        if kind not in KINDS:
            raise SimulatorError(f"unknown certificate kind {kind!r}; known: {', '.join(KINDS)}")
        key = (host_name, address, kind)
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                context = self._contexts[key] = self._make_context(host_name, address, kind)
            return context

    def certificate(self, host_name: str, address: str, kind: str = "trusted") -> x509.Certificate:
        now = _now()
        names: list[x509.GeneralName]
        if kind == "wrong-name":
            subject = WRONG_NAME
            names = [x509.DNSName(WRONG_NAME)]
        else:
            subject = host_name
            names = [x509.DNSName(host_name), x509.IPAddress(ipaddress.ip_address(address))]
        if kind == "expired":
            start, end = now - datetime.timedelta(days=400), now - datetime.timedelta(days=30)
        else:
            start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        if kind == "untrusted":
            issuer, signer = name, self._key
        else:
            issuer, signer = self.ca_cert.subject, self._ca_key
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(signer, hashes.SHA256())
        )

    def _make_context(self, host_name: str, address: str, kind: str) -> ssl.SSLContext:
        cert = self.certificate(host_name, address, kind)
        chain = cert.public_bytes(serialization.Encoding.PEM)
        self._count += 1
        path = self.directory / f"server-{self._count}.pem"
        path.write_bytes(chain)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(path, self._key_path)
        return context

    def close(self) -> None:
        """Remove the directory (when this object created it)."""
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)
