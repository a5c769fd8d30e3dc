"""HTTP authentication for the simulated WinRM listeners, one class per method.

An ``AuthMethod`` knows one ``Authorization`` scheme and hands out a fresh
``ConnectionAuth`` per TCP connection, because the connection-oriented methods (NTLM,
Kerberos via Negotiate) keep a security context per connection and then seal every message
with it. The HTTP layer only ever calls ``ConnectionAuth.authenticate`` on each request, and
``unwrap``/``wrap`` on bodies.

Multi-leg methods answer a handshake leg with ``AuthOutcome(None, headers=...)``: the listener
then sends 401 with exactly those headers (``WWW-Authenticate: Negotiate <token>``) instead of
the host's plain challenges, and does not count the leg as a refused login. A final token on
success travels in ``AuthOutcome(login, headers=...)`` on the 200 reply.

Several methods may share a scheme (NTLM and Kerberos both arrive as ``Negotiate``): the first
token of a connection goes to the first method, in the host's order, whose ``accepts`` says
yes; later legs stay with the method that took the first one.

A host names the methods it offers (``SimHost.auth_methods``: ``basic``, ``negotiate``,
``kerberos``); ``build_host_auth`` turns the names into acceptors through factories that
modules register with ``register_method`` (``fleet_ecs.sim.ntlm`` registers ``negotiate``; a
Kerberos acceptor registers ``negotiate`` and/or ``kerberos`` the same way). The 401
challenges follow the offered names whatever acceptors exist, as Windows advertises what its
configuration enables.

Basic checks a per-host user list; credentials are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# What a Windows WinRM listener with Basic enabled offers in its 401 (one header each).
WINDOWS_CHALLENGES = ("Negotiate", 'Basic realm="WSMAN"')
# The header Windows sends for each enabled method, in the order it sends them.
CHALLENGE_FOR = {"negotiate": "Negotiate", "kerberos": "Kerberos", "basic": 'Basic realm="WSMAN"'}
METHOD_NAMES = tuple(CHALLENGE_FOR)


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

    @property
    def session_login(self) -> str | None:
        """The login a connection-oriented method authenticated this connection as, if any.

        Requests after an NTLM or Kerberos handshake carry no ``Authorization`` header: the
        connection itself is authenticated. Basic answers None and is checked per request.
        """
        return None

    @property
    def encrypts(self) -> bool:
        """True once this connection can seal messages (MS-WSMV 2.2.9.1)."""
        return False

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

    def accepts(self, credentials: str) -> bool:
        """Whether this method takes a connection whose first token is ``credentials``."""
        return True


@dataclass(frozen=True)
class AuthSetup:
    """What a method factory may need to know about the host it serves."""

    host_name: str
    address: str
    users: Mapping[str, str]  # username -> password
    workdir: Path  # a private directory of the fleet, removed when the fleet stops


MethodFactory = Callable[[AuthSetup], AuthMethod]
_FACTORIES: dict[str, list[MethodFactory]] = {}


def register_method(name: str, factory: MethodFactory) -> None:
    """Let hosts that offer ``name`` accept logins through ``factory``'s method."""
    if name not in CHALLENGE_FOR:
        raise ValueError(f"unknown auth method name {name!r}; known: {', '.join(METHOD_NAMES)}")
    factories = _FACTORIES.setdefault(name, [])
    if factory not in factories:
        factories.append(factory)


def build_host_auth(names: Sequence[str], setup: AuthSetup) -> HostAuth:
    """The acceptors and 401 challenges of a host offering the methods ``names``."""
    _load_builtin_methods()
    methods: list[AuthMethod] = []
    for name in names:
        if name not in CHALLENGE_FOR:
            raise ValueError(f"unknown auth method name {name!r}")
        methods.extend(factory(setup) for factory in _FACTORIES.get(name, ()))
    challenges = tuple(CHALLENGE_FOR[n] for n in CHALLENGE_FOR if n in names)
    return HostAuth(methods, challenges)


def _load_builtin_methods() -> None:
    register_method("basic", lambda setup: BasicAuth(setup.users))
    # Importing registers the NTLM acceptor; a late import keeps pyspnego off the Basic path.
    from fleet_ecs.sim import ntlm  # noqa: F401

    try:  # another module of the simulator may add a Kerberos acceptor the same way
        from fleet_ecs.sim import kerberos  # noqa: F401
    except ImportError:
        pass


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
    """The authentication methods one simulated listener accepts, and what its 401 offers."""

    def __init__(
        self, methods: Sequence[AuthMethod], challenges: Sequence[str] = WINDOWS_CHALLENGES
    ) -> None:
        self._methods: dict[str, list[AuthMethod]] = {}
        for method in methods:
            self._methods.setdefault(method.scheme, []).append(method)
        self.challenges = tuple(challenges)

    def connection(self) -> ConnectionAuthenticator:
        return ConnectionAuthenticator(self._methods)


class ConnectionAuthenticator:
    """Per-connection dispatcher: picks the method named by each ``Authorization`` header."""

    def __init__(self, methods: Mapping[str, Sequence[AuthMethod]]) -> None:
        self._methods = methods
        self._states: dict[str, ConnectionAuth] = {}
        self.current: ConnectionAuth | None = None

    def authenticate(self, authorization: str | None) -> AuthOutcome:
        if not authorization:
            login = self.current.session_login if self.current is not None else None
            return AuthOutcome(login)
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        state = self._states.get(scheme)
        if state is None:
            method = next(
                (m for m in self._methods.get(scheme, ()) if m.accepts(credentials)), None
            )
            if method is None:
                return AuthOutcome(None)
            state = self._states[scheme] = method.connection()
        outcome = state.authenticate(credentials)
        if outcome.login is not None:
            self.current = state
        elif not outcome.headers:
            # Refused: the next attempt on this connection starts a fresh context, as a
            # client retrying with other credentials expects.
            self._states.pop(scheme, None)
            if self.current is state:
                self.current = None
        return outcome
