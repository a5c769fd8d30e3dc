"""WinRM message encryption framing (MS-WSMV 2.2.9.1), the server's side.

Over HTTP, a client authenticated with NTLM or Kerberos seals each SOAP message with its
security context and sends it as ``multipart/encrypted``::

    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/HTTP-SPNEGO-session-encrypted\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plain length>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <signature length, 4 bytes little endian><signature><sealed message>
    --Encrypted Boundary--\\r\\n

The HTTP ``Content-Type`` is
``multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted
Boundary"``. Replies use the same framing. The sealing itself is a callable given by the auth
method (pyspnego's ``wrap_winrm``/``unwrap_winrm``), so Kerberos can reuse this module.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable

logger = logging.getLogger(__name__)

SPNEGO = "application/HTTP-SPNEGO-session-encrypted"
KERBEROS = "application/HTTP-Kerberos-session-encrypted"
BOUNDARY = "Encrypted Boundary"
_LENGTH_RE = re.compile(rb"Length=(\d+)")
_PROTOCOL_RE = re.compile(r'protocol="?([^";]+)"?', re.I)

Unwrapper = Callable[[bytes, bytes], bytes]  # (signature, sealed) -> plain
Wrapper = Callable[[bytes], tuple[bytes, bytes]]  # plain -> (signature, sealed)


class FramingError(ValueError):
    """A body that claims to be encrypted but is not framed as MS-WSMV says."""


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith(("multipart/encrypted", "multipart/x-multi-encrypted"))


def protocol_of(content_type: str) -> str | None:
    match = _PROTOCOL_RE.search(content_type)
    return match.group(1) if match else None


def content_type(protocol: str = SPNEGO) -> str:
    return f'multipart/encrypted;protocol="{protocol}";boundary="{BOUNDARY}"'


def unwrap(body: bytes, unseal: Unwrapper) -> bytes:
    """The plain message of a ``multipart/encrypted`` body."""
    marker = f"--{BOUNDARY}\r\n".encode("ascii")
    parts = [p for p in body.split(marker) if p]
    if len(parts) < 2 or len(parts) % 2:
        raise FramingError("expected header and payload parts")
    plain = b""
    for header, payload in zip(parts[0::2], parts[1::2]):
        length = _LENGTH_RE.search(header)
        if length is None:
            raise FramingError("no OriginalContent Length")
        trailer = f"--{BOUNDARY}--\r\n".encode("ascii")
        if payload.endswith(trailer):
            payload = payload[: -len(trailer)]
        prefix = b"\tContent-Type: application/octet-stream\r\n"
        if not payload.startswith(prefix):
            raise FramingError("payload part is not application/octet-stream")
        data = payload[len(prefix):]
        if len(data) < 4:
            raise FramingError("payload too short")
        (sig_length,) = struct.unpack("<i", data[:4])
        if sig_length < 0 or 4 + sig_length > len(data):
            raise FramingError("bad signature length")
        message = unseal(data[4:4 + sig_length], data[4 + sig_length:])
        # Kerberos clients may count their padding in Length; never accept less than it says.
        if len(message) < int(length.group(1)):
            raise FramingError("decrypted message is shorter than OriginalContent says")
        plain += message
    return plain


def wrap(message: bytes, seal: Wrapper, protocol: str = SPNEGO) -> bytes:
    """A ``multipart/encrypted`` body carrying ``message`` sealed by ``seal``."""
    signature, sealed = seal(message)
    head = (
        f"--{BOUNDARY}\r\n\tContent-Type: {protocol}\r\n"
        f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message)}\r\n"
        f"--{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
    ).encode("ascii")
    return head + struct.pack("<i", len(signature)) + signature + sealed + (
        f"--{BOUNDARY}--\r\n".encode("ascii")
    )

