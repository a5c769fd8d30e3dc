"""NTLM under HTTP ``Negotiate``, with WinRM message encryption: pyspnego as the acceptor.

The handshake is RFC 4559 style: the client's token arrives in ``Authorization: Negotiate
<b64>`` (a raw NTLMSSP message when pypsrp runs with ``auth="ntlm"``, a SPNEGO token with
``auth="negotiate"``), the server's answer leaves in ``WWW-Authenticate: Negotiate <b64>`` on a
401 until the context completes. From then on the TCP connection is authenticated and, when
the client asks for it, every body is sealed (``fleet_ecs.sim.encryption``).

pyspnego's NTLM acceptor reads its users from the file named by the ``NTLM_USER_FILE``
environment variable (lines ``DOMAIN:USER:PASSWORD``), and it reads it at the moment it checks
an Authenticate message. Hosts of one process have different users (a host whose password was
changed refuses the demo password), so each distinct user list gets its own file in the
fleet's private directory, and the variable points at the right file only for the duration
of one synchronous ``step`` call, under a process-wide lock, then gets its previous value
back. Nothing else in the process reads that variable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import spnego
from spnego.exceptions import SpnegoError

from fleet_ecs.errors import SimulatorError
from fleet_ecs.sim import encryption
from fleet_ecs.sim.auth import AuthMethod, AuthOutcome, AuthSetup, ConnectionAuth, register_method
from fleet_ecs.sim.sealing import SealingConnection

logger = logging.getLogger(__name__)

USER_FILE_VARIABLE = "NTLM_USER_FILE"
_NTLMSSP = b"NTLMSSP\x00"
_env_lock = threading.Lock()
_files_lock = threading.Lock()


@contextmanager
def _pointed_at(path: Path) -> Iterator[None]:
    with _env_lock:
        previous = os.environ.get(USER_FILE_VARIABLE)
        os.environ[USER_FILE_VARIABLE] = str(path)
        try:
            yield
        finally:
            if previous is None:
                del os.environ[USER_FILE_VARIABLE]
            else:
                os.environ[USER_FILE_VARIABLE] = previous


def user_file(workdir: Path, users: Mapping[str, str], computer_name: str) -> Path:
    """The credential file for ``users`` in ``workdir`` (written once per distinct list)."""
    lines = []
    for name, secret in sorted(users.items()):
        if ":" in name or ":" in secret or "\n" in name + secret:
            raise SimulatorError(f"simulated NTLM user {name!r}: names and passwords "
                                 "cannot hold ':' or line breaks")
        # The client may name no domain or the computer's own, as Windows accepts for a
        # local account.
        lines += [f":{name}:{secret}", f"{computer_name}:{name}:{secret}"]
    text = "\n".join(lines) + "\n"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    path = workdir / f"ntlm-users-{digest}.txt"
    with _files_lock:
        if not path.exists():
            workdir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
    return path


def looks_like_ntlm(credentials: str) -> bool:
    """True for a raw NTLMSSP token or a SPNEGO token that carries one."""
    try:
        token = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return token.startswith(_NTLMSSP) or (_NTLMSSP in token and token[:1] in (b"\x60", b"\xa1"))


class NtlmAuth(AuthMethod):
    """Accepts NTLM (raw or inside SPNEGO) for a user list and seals messages with it."""

    scheme = "negotiate"

    def __init__(self, users: Mapping[str, str], users_file: Path) -> None:
        self._names = {name.lower(): name for name in users}
        self._file = users_file

    @classmethod
    def for_host(cls, setup: AuthSetup) -> NtlmAuth:
        computer = setup.host_name.split(".", 1)[0].upper()
        return cls(setup.users, user_file(setup.workdir, setup.users, computer))

    def accepts(self, credentials: str) -> bool:
        return looks_like_ntlm(credentials)

    def connection(self) -> ConnectionAuth:
        return NtlmConnection(self._names, self._file)


class NtlmConnection(SealingConnection):
    method_name = "NTLM"

    def __init__(self, names: Mapping[str, str], users_file: Path) -> None:
        super().__init__(encryption.SPNEGO)
        self._names = names
        self._file = users_file

    def authenticate(self, credentials: str) -> AuthOutcome:
        token = self._token(credentials)
        if token is None:
            return self._refuse("token is not base64")
        if self._context is None or self._context.complete:
            self._login = None  # a new handshake replaces the connection's identity
            self._context = spnego.server(
                protocol="negotiate", options=spnego.NegotiateOptions.wrapping_winrm
            )
        try:
            with _pointed_at(self._file):
                out = self._context.step(token)
        except SpnegoError as exc:
            return self._refuse(str(exc))
        headers: tuple[tuple[str, str], ...] = ()
        if out:
            headers = (("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode()),)
        if not self._context.complete:
            return AuthOutcome(None, headers) if headers else self._refuse("no answer token")
        principal = self._context.client_principal or ""
        account = principal.rsplit("\\", 1)[-1].split("@", 1)[0]
        self._login = self._names.get(account.lower(), account)
        return AuthOutcome(self._login, headers)


register_method("negotiate", NtlmAuth.for_host)
