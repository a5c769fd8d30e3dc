"""Turning credential references from the inventory into passwords, at run time only.

An inventory never holds a password, only a reference:

``env:NAME``
    the value of environment variable ``NAME`` (missing or empty is an error).
``prompt``
    asked once per user name with ``getpass``, and only when stdin is a terminal. When the
    environment variable ``FLEET_ECS_CREDENTIAL`` is set it answers every ``prompt`` instead,
    which is how unattended runs use the default without editing the inventory.
``simulator``
    the documented dummy password of the loopback simulator (``fleet_ecs.sim.credentials``).

A host without a ``credential`` uses ``prompt`` when it names a user. A host with neither user
nor reference needs no password (Kerberos ticket cache), and certificate authentication never
uses one. Secrets live only inside ``CredentialStore``; its repr names references, never values,
and nothing here logs a secret.
"""

from __future__ import annotations

import getpass as _getpass
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fleet_ecs.errors import CredentialError
from fleet_ecs.models import HostSpec

logger = logging.getLogger(__name__)

CREDENTIAL_ENV = "FLEET_ECS_CREDENTIAL"
PROMPT = "prompt"
SIMULATOR = "simulator"
DEFAULT_REFERENCE = PROMPT
REFERENCE_FORMS = "env:NAME, prompt or simulator"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# (reference, username) identifies one secret; the same pair is asked for at most once.
CredentialKey = tuple[str, str | None]


def reference_problem(reference: object) -> str | None:
    """Why ``reference`` is not a valid credential reference, or None when it is.

    The message never repeats the rejected text: a user may have typed the password itself.
    """
    if not isinstance(reference, str):
        return f"credential must be a reference ({REFERENCE_FORMS}), not a {_kind(reference)}"
    if reference in (PROMPT, SIMULATOR):
        return None
    if reference.startswith("env:"):
        if _ENV_NAME.match(reference[4:]):
            return None
        return "credential 'env:' must be followed by an environment variable name (A-Z, 0-9, _)"
    return (
        f"credential must be a reference ({REFERENCE_FORMS}); the value given is not one "
        "and is not shown in case it is a password"
    )


def reference_for(host: HostSpec) -> str | None:
    """The reference that supplies ``host``'s password, or None when it needs no password."""
    if host.auth == "certificate":
        return None
    if host.credential is not None:
        return host.credential
    if host.username is None:
        return None
    return DEFAULT_REFERENCE


class CredentialStore:
    """Passwords resolved for a set of hosts, keyed by (reference, username)."""

    def __init__(self) -> None:
        self._secrets: dict[CredentialKey, str] = {}

    def password_for(self, host: HostSpec) -> str | None:
        """The password to use for ``host``, or None when it needs none."""
        key = _key(host)
        if key is None:
            return None
        try:
            return self._secrets[key]
        except KeyError:
            raise CredentialError(
                f"no credential was resolved for host {host.name} ({key[0]})"
            ) from None

    def references(self) -> list[CredentialKey]:
        """The (reference, username) pairs held, without their secrets."""
        return list(self._secrets)

    def __contains__(self, key: object) -> bool:
        return key in self._secrets

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        held = ", ".join(_describe(key) for key in self._secrets)
        return f"CredentialStore([{held}], secrets redacted)"

    __str__ = __repr__

    def _put(self, key: CredentialKey, secret: str) -> None:
        self._secrets[key] = secret


@dataclass(frozen=True)
class _Prompter:
    stdin_is_tty: bool
    getpass: Callable[[str], str]
    environ: Mapping[str, str]


def resolve_credentials(
    hosts: Iterable[HostSpec],
    *,
    stdin_is_tty: bool | None = None,
    getpass: Callable[[str], str] = _getpass.getpass,
    environ: Mapping[str, str] | None = None,
) -> CredentialStore:
    """Resolve every credential the hosts need, asking at most once per (reference, username).

    Arguments:
        hosts: the hosts to be scanned.
        stdin_is_tty: whether prompting is allowed; None asks ``sys.stdin``.
        getpass: the prompt function (tests pass a fake).
        environ: where ``env:`` references and ``FLEET_ECS_CREDENTIAL`` are read; None means
            ``os.environ``.

    Raises:
        CredentialError: a variable is missing or empty, a prompt is needed without a
            terminal, the prompt was cancelled, or the simulator credential is unavailable.
    """
    if stdin_is_tty is None:
        stdin_is_tty = _stdin_is_tty()
    prompter = _Prompter(stdin_is_tty, getpass, os.environ if environ is None else environ)
    wanted: dict[CredentialKey, list[str]] = {}
    for host in hosts:
        key = _key(host)
        if key is not None:
            wanted.setdefault(key, []).append(host.name)

    store = CredentialStore()
    for key, names in wanted.items():
        store._put(key, _resolve_one(key, names, prompter))
        logger.debug("credential %s resolved for %d host(s)", _describe(key), len(names))
    return store


def _resolve_one(key: CredentialKey, names: list[str], prompter: _Prompter) -> str:
    reference, username = key
    if reference.startswith("env:"):
        return _from_env(reference[4:], prompter.environ)
    if reference == SIMULATOR:
        return _simulator_password()
    if reference == PROMPT:
        if prompter.environ.get(CREDENTIAL_ENV):
            return prompter.environ[CREDENTIAL_ENV]
        return _ask(username, names, prompter)
    # The inventory loader validates references; this guards hand-built HostSpecs.
    raise CredentialError(f"host {names[0]}: {reference_problem(reference)}")


def _from_env(name: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if value is None:
        raise CredentialError(f"environment variable {name} (credential env:{name}) is not set")
    if value == "":
        raise CredentialError(f"environment variable {name} (credential env:{name}) is empty")
    return value


def _simulator_password() -> str:
    try:
        from fleet_ecs.sim.credentials import DEMO_PASSWORD
    except ImportError as exc:
        raise CredentialError(
            "credential 'simulator' needs fleet_ecs.sim.credentials, which is not available"
        ) from exc
    return DEMO_PASSWORD


def _ask(username: str | None, names: list[str], prompter: _Prompter) -> str:
    who = username or "(no user name)"
    if not prompter.stdin_is_tty:
        raise CredentialError(
            f"a password is needed for {who} (hosts: {_few(names)}) but stdin is not a "
            f"terminal, so fleet-ecs cannot prompt; set credential: env:NAME in the inventory "
            f"or put the password in the {CREDENTIAL_ENV} environment variable"
        )
    try:
        secret = prompter.getpass(f"Password for {who} (hosts: {_few(names)}): ")
    except (EOFError, KeyboardInterrupt) as exc:
        raise CredentialError(f"password prompt for {who} was cancelled") from exc
    if not secret:
        raise CredentialError(f"no password was entered for {who}")
    return secret


def _key(host: HostSpec) -> CredentialKey | None:
    reference = reference_for(host)
    if reference is None:
        return None
    return (reference, host.username)


def _describe(key: CredentialKey) -> str:
    reference, username = key
    return f"{reference} for {username}" if username else reference


def _few(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        # A closed or detached stdin cannot prompt either.
        return False


def _kind(value: object) -> str:
    return "list" if isinstance(value, list) else type(value).__name__
