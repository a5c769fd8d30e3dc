"""The part NTLM and Kerberos connections share: a completed security context seals replies.

MS-WSMV 2.2.9.1: once a connection-oriented login completed, requests and replies may be sealed
with the context's session key (``multipart/encrypted``); a reply is sealed exactly when its
request was, under the protocol name the request used.
"""

from __future__ import annotations

import base64
import binascii
import logging

import spnego

from fleet_ecs.sim import encryption
from fleet_ecs.sim.auth import AuthOutcome, ConnectionAuth

logger = logging.getLogger(__name__)


class SealingConnection(ConnectionAuth):
    """What NTLM and Kerberos connections share: a security context that, once complete,
    authenticates the connection and seals replies the way the client sealed its request.

    Subclasses run their handshake in ``authenticate`` and set ``_context`` and ``_login``.
    """

    method_name = "GSS"

    def __init__(self, protocol: str = encryption.SPNEGO) -> None:
        self._context: spnego.ContextProxy | None = None
        self._login: str | None = None
        self._protocol = protocol
        self._sealed = False  # whether the request being answered came sealed

    @property
    def session_login(self) -> str | None:
        return self._login

    @property
    def encrypts(self) -> bool:
        return self._login is not None

    def _token(self, credentials: str) -> bytes | None:
        """The binary token of an ``Authorization`` value, or None when it is not base64."""
        try:
            return base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None

    def _refuse(self, why: str) -> AuthOutcome:
        logger.debug("%s login refused: %s", self.method_name, why)
        self._context = None
        self._login = None
        return AuthOutcome(None)

    def unwrap(self, content_type: str, body: bytes) -> bytes:
        self._sealed = encryption.is_encrypted(content_type)
        if not self._sealed:
            return body
        context = self._context
        if context is None or not context.complete:
            raise encryption.FramingError("no security context to decrypt with")
        self._protocol = encryption.protocol_of(content_type) or self._protocol
        return encryption.unwrap(body, context.unwrap_winrm)

    def wrap(self, body: bytes) -> tuple[str, bytes]:
        context = self._context
        if not self._sealed or context is None or not context.complete:
            return super().wrap(body)  # a client that did not seal cannot unseal either

        def seal(message: bytes) -> tuple[bytes, bytes]:
            result = context.wrap_winrm(message)
            return result.header, result.data

        return encryption.content_type(self._protocol), encryption.wrap(body, seal, self._protocol)
