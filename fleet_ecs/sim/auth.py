"""HTTP authentication for the simulated WinRM listeners, one class per method.

An ``AuthMethod`` knows one ``Authorization`` scheme and hands out a fresh
``ConnectionAuth`` per TCP connection, because the connection-oriented methods (NTLM,
Kerberos via Negotiate) keep a security context per connection and then seal every message
with it. The HTTP layer only ever calls ``ConnectionAuth.authenticate`` on each request, and
``unwrap``/``wrap`` on bodies, so NTLM with message encryption (a pyspnego acceptor and the
``multipart/encrypted`` framing of MS-WSMV 2.2.9.1) or Kerberos can be added later as further
``AuthMethod`` classes without touching the rest.

Implemented now: HTTP Basic against a per-host user list. The client must use
``auth="basic", encryption="never"`` over http. Credentials are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# What a Windows WinRM listener with Basic enabled offers in its 401 (one header each).
WINDOWS_CHALLENGES = ("Negotiate", 'Basic realm="WSMAN"')


@dataclass(frozen=True)
class AuthOutcome:
    """Result of checking one request's ``Authorization`` header."""

    login: str | None  # the account name once authenticated, else None
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # e.g. a final token


class ConnectionAuth(ABC):
    """Authentication state of one client connection for one method."""

    @abstractmethod
    def authenticate(self, credentials: str) -> AuthOutcome:
        """Check the ``Authorization`` header value after the scheme name."""

    def unwrap(self, content_type: str, body: bytes) -> bytes:
        """The plain SOAP body of a request (message-encrypting methods decrypt here)."""
        return body

    def wrap(self, body: bytes) -> tuple[str, bytes]:
        """Content type and payload for a reply body (message-encrypting methods seal here)."""
        return "application/soap+xml;charset=UTF-8", body


class AuthMethod(ABC):
    scheme: str  # the Authorization scheme, lower case: "basic", "negotiate", "kerberos"

    @abstractmethod
    def connection(self) -> ConnectionAuth:
        """Fresh per-connection state."""


class BasicAuth(AuthMethod):
    """RFC 7617 Basic against a user list (username -> password); usernames ignore case."""

    scheme = "basic"

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {name.lower(): (name, secret) for name, secret in users.items()}

    def connection(self) -> ConnectionAuth:
        return _BasicConnection(self._users)


class _BasicConnection(ConnectionAuth):
    def __init__(self, users: Mapping[str, tuple[str, str]]) -> None:
        self._users = users

    def authenticate(self, credentials: str) -> AuthOutcome:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return AuthOutcome(None)
        username, sep, password = decoded.partition(":")
        entry = self._users.get(username.lower())
        if not sep or entry is None:
            return AuthOutcome(None)
        # Compare in constant time even though only a simulator's dummy secrets are at stake.
        if not hmac.compare_digest(entry[1].encode("utf-8"), password.encode("utf-8")):
            return AuthOutcome(None)
        return AuthOutcome(entry[0])


class HostAuth:
    """The authentication methods one simulated listener accepts."""

    def __init__(self, methods: Sequence[AuthMethod]) -> None:
        self._methods = {m.scheme: m for m in methods}
        self.challenges = WINDOWS_CHALLENGES

    def connection(self) -> ConnectionAuthenticator:
        return ConnectionAuthenticator(self._methods)


class ConnectionAuthenticator:
    """Per-connection dispatcher: picks the method named by each ``Authorization`` header."""

    def __init__(self, methods: Mapping[str, AuthMethod]) -> None:
        self._methods = methods
        self._states: dict[str, ConnectionAuth] = {}
        self.current: ConnectionAuth | None = None

    def authenticate(self, authorization: str | None) -> AuthOutcome:
        if not authorization:
            return AuthOutcome(None)
        scheme, _, credentials = authorization.strip().partition(" ")
        method = self._methods.get(scheme.lower())
        if method is None:
            return AuthOutcome(None)
        state = self._states.get(method.scheme)
        if state is None:
            state = self._states[method.scheme] = method.connection()
        outcome = state.authenticate(credentials)
        if outcome.login is not None:
            self.current = state
        return outcome
