"""Kerberos logins for the simulated listeners, with WinRM message encryption.

pyspnego (backed by MIT GSSAPI) is the acceptor. The client's token arrives in
``Authorization: Negotiate <b64>`` (a SPNEGO token from pypsrp ``auth="negotiate"``, or a raw
Kerberos AP-REQ from ``auth="kerberos"`` when the host also offers Negotiate, as Windows does)
or in ``Authorization: Kerberos <b64>`` (``auth="kerberos"`` against a host offering only
Kerberos). The AP-REP goes back on the 200 in ``WWW-Authenticate`` under the same scheme, for
mutual authentication. From then on the connection is authenticated and every sealed body is
unsealed and sealed with the Kerberos context (``fleet_ecs.sim.encryption``), using the MIME
protocol the client chose: ``application/HTTP-SPNEGO-session-encrypted`` after a Negotiate
exchange, ``application/HTTP-Kerberos-session-encrypted`` after a Kerberos one.

Each simulated host owns only its own keys, the way a Windows computer holds its machine
account's keys: ``KerberosAuth.for_host`` copies the entries ``<service>/<host name>@REALM``
out of the process's default keytab (``KRB5_KTNAME`` or the krb5.conf ``default_keytab_name``)
into a private keytab in the fleet's directory. A ticket for another name then finds no key
and is refused with a plain 401, as Windows refuses it. pyspnego has no way to hand its
acceptor a keytab, and MIT GSSAPI then reads the default one named by ``KRB5_KTNAME``, so that
variable names the host's keytab while its acceptor is created and stepped, under a
process-wide lock, and gets its previous value back afterwards.

The login handed to the WinRM service is the user part of the client principal
(``alice@FLEET.TEST`` logs in as ``alice``). Importing this module registers the acceptor for
hosts offering ``negotiate`` and ``kerberos``; it raises ImportError when pyspnego's Kerberos
support (the ``gssapi`` and ``krb5`` packages) is missing, and the hosts then refuse Kerberos.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import gssapi  # noqa: F401  (pyspnego's Kerberos backend: without it, fail the import here)
import krb5
import spnego
from spnego.exceptions import SpnegoError

from fleet_ecs.sim import encryption
from fleet_ecs.sim.auth import AuthMethod, AuthOutcome, AuthSetup, ConnectionAuth, register_method
from fleet_ecs.sim.sealing import SealingConnection

logger = logging.getLogger(__name__)

KEYTAB_VARIABLE = "KRB5_KTNAME"
DEFAULT_SERVICES = ("host", "HTTP")  # pypsrp 0.9 asks for host/<name>; browsers and curl HTTP/
_HEADER_NAME = {"negotiate": "Negotiate", "kerberos": "Kerberos"}
_PROTOCOL_FOR = {"negotiate": encryption.SPNEGO, "kerberos": encryption.KERBEROS}
_GSS_TOKEN = b"\x60"  # an RFC 2743 InitialContextToken: SPNEGO or Kerberos, never raw NTLM
_NTLMSSP = b"NTLMSSP\x00"
_env_lock = threading.Lock()
_keytab_lock = threading.Lock()


@contextmanager
def _keytab_in_env(keytab: Path | None) -> Iterator[None]:
    """Point MIT's default acceptor keytab at ``keytab`` for the duration of the block."""
    if keytab is None:
        yield
        return
    with _env_lock:
        previous = os.environ.get(KEYTAB_VARIABLE)
        os.environ[KEYTAB_VARIABLE] = f"FILE:{keytab}"
        try:
            yield
        finally:
            if previous is None:
                del os.environ[KEYTAB_VARIABLE]
            else:
                os.environ[KEYTAB_VARIABLE] = previous


def host_keytab(host_name: str, workdir: Path, services: Collection[str] = DEFAULT_SERVICES,
                source: str | None = None) -> tuple[Path, int]:
    """Copy ``<service>/<host_name>@*`` keys from ``source`` into a keytab of ``workdir``.

    ``source`` is a keytab name (``FILE:/path``); None means the process default. Returns the
    new keytab's path and how many entries it holds (0: the host has no keys at all).
    """
    wanted = {s.lower() for s in services}
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", host_name)
    target = workdir / f"krb5-{safe}.keytab"
    count = 0
    with _keytab_lock:
        context, by_host = _keys_by_host(source)
        workdir.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a fresh copy: the KDC may have issued new keys since
        copy = krb5.kt_resolve(context, f"FILE:{target}".encode())
        for service, entry in by_host.get(host_name.lower(), ()):
            if service in wanted:
                krb5.kt_add_entry(context, copy, entry.principal, entry.kvno, entry.timestamp,
                                  entry.key)
                count += 1
    logger.debug("%s: %d key(s) in its keytab", host_name, count)
    return target, count


# Source keytab -> its two-part entries by host: read once per version of the file, because a
# fleet copies keys for each of its hosts and re-reading per host would be quadratic.
_KeyIndex = dict[str, list[tuple[str, "krb5.KeyTabEntry"]]]
_index: dict[tuple[bytes, int, int], tuple[krb5.Context, _KeyIndex]] = {}


def _keys_by_host(source: str | None) -> tuple[krb5.Context, _KeyIndex]:
    context = krb5.init_context()
    keytab = krb5.kt_resolve(context, source.encode()) if source else krb5.kt_default(context)
    name = krb5.kt_get_full_name(context, keytab)
    path = name.split(b":", 1)[1] if name.startswith(b"FILE:") else b""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    key = (name, stat.st_mtime_ns, stat.st_size) if stat else None
    if key is not None and key in _index:
        return _index[key]
    by_host: _KeyIndex = {}
    try:
        entries = list(keytab)
    except krb5.Krb5Error as exc:  # no keytab at all: every host is without keys
        logger.debug("no keytab to copy host keys from: %s", exc)
        entries = []
    for entry in entries:
        parts = [p.decode("utf-8", "replace") for p in entry.principal.components]
        if len(parts) == 2:
            by_host.setdefault(parts[1].lower(), []).append((parts[0].lower(), entry))
    if key is not None:
        _index.clear()  # only the current version of one keytab is worth keeping
        _index[key] = (context, by_host)
    return context, by_host


def looks_like_kerberos(credentials: str) -> bool:
    """True for a GSS token (raw Kerberos or SPNEGO) that carries no NTLM message."""
    try:
        token = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return token.startswith(_GSS_TOKEN) and _NTLMSSP not in token


class KerberosAuth(AuthMethod):
    """Accepts Kerberos tickets for one host under the ``negotiate`` or ``kerberos`` scheme.

    ``keytab``: the host's own keys (None: whatever the process default keytab holds).
    ``allowed_users``: user names (without realm, any case) that may log in; None admits
    every principal the KDC vouches for, like a host whose Administrators hold Domain Users.
    """

    def __init__(
        self,
        host_name: str,
        keytab: Path | None = None,
        *,
        scheme: str = "negotiate",
        allowed_users: Collection[str] | None = None,
    ) -> None:
        if scheme not in _HEADER_NAME:
            raise ValueError(f"Kerberos arrives under negotiate or kerberos, not {scheme!r}")
        self.scheme = scheme
        self.host_name = host_name
        self.keytab = keytab
        self._allowed = None if allowed_users is None else {u.lower() for u in allowed_users}

    @classmethod
    def for_host(cls, setup: AuthSetup, scheme: str = "negotiate") -> KerberosAuth:
        """The acceptor of a fleet host: its own keys, copied from the default keytab."""
        keytab, _ = host_keytab(setup.host_name, setup.workdir)
        return cls(setup.host_name, keytab, scheme=scheme)

    def accepts(self, credentials: str) -> bool:
        return self.scheme == "kerberos" or looks_like_kerberos(credentials)

    def connection(self) -> ConnectionAuth:
        return KerberosConnection(self.scheme, self.keytab, self._allowed)


class KerberosConnection(SealingConnection):
    """One connection's Kerberos context; it seals replies once the client seals requests."""

    method_name = "Kerberos"

    def __init__(self, scheme: str, keytab: Path | None, allowed: set[str] | None) -> None:
        super().__init__(_PROTOCOL_FOR[scheme])
        self._scheme = scheme
        self._keytab = keytab
        self._allowed = allowed

    def authenticate(self, credentials: str) -> AuthOutcome:
        token = self._token(credentials)
        if token is None:
            return self._refuse("token is not base64")
        if not token:
            return self._refuse("empty token")
        self._login = None  # a new handshake replaces the connection's identity
        try:
            with _keytab_in_env(self._keytab):
                # "negotiate" takes SPNEGO and raw Kerberos alike; the pure Kerberos scheme
                # only ever carries raw Kerberos.
                self._context = spnego.server(
                    protocol=self._scheme, options=spnego.NegotiateOptions.wrapping_winrm
                )
                out = self._context.step(token)
        except SpnegoError as exc:
            return self._refuse(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever a client sends must not kill us
            # pyspnego lets ValueError out of its ASN.1 parser for a garbled token, and
            # AttributeError for a ticket sealed with a key this host lacks (MIT returns a
            # KRB-ERROR token without failing, and the context is left unfinished).
            return self._refuse(f"{type(exc).__name__}: {exc}")
        if not self._context.complete:
            # Kerberos completes in one leg; a SPNEGO exchange that wants more (e.g. a
            # mechanism the client guessed wrong) is refused rather than half-supported.
            return self._refuse("the security context did not complete in one leg")
        principal = self._context.client_principal or ""
        user = principal.rsplit("@", 1)[0]
        if not user or (self._allowed is not None and user.lower() not in self._allowed):
            return self._refuse(f"{principal or 'an unnamed principal'} may not log in")
        self._login = user
        headers: tuple[tuple[str, str], ...] = ()
        if out:
            value = f"{_HEADER_NAME[self._scheme]} {base64.b64encode(out).decode('ascii')}"
            headers = (("WWW-Authenticate", value),)
        logger.debug("Kerberos login of %s", principal)
        return AuthOutcome(user, headers)


def _kerberos_scheme_for_host(setup: AuthSetup) -> KerberosAuth:
    return KerberosAuth.for_host(setup, scheme="kerberos")


register_method("negotiate", KerberosAuth.for_host)
register_method("kerberos", _kerberos_scheme_for_host)
