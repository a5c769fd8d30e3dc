"""The one boundary where exceptions of pypsrp, requests, urllib3, TLS and sockets become ours.

Nothing above ``fleet_ecs.transport`` imports a third-party exception type: ``translate`` maps
whatever escaped a pypsrp call to a ``TransportError`` carrying one category and a single-line
message, chained to the original with ``from``.

Order of evidence, most reliable first: exception type, then Windows' WS-Management fault code,
then the HTTP status; message text is only ever *reported*, never matched.
"""

from __future__ import annotations

import logging
import socket
import ssl

from fleet_ecs.errors import TransportError
from fleet_ecs.models import Category

logger = logging.getLogger(__name__)

# Win32 ERROR_WSMAN_* codes as Windows puts them in WSManFault/@Code (wsmerror.h).
WSMAN_OPERATION_TIMEOUT = 2150858793
WSMAN_SHELL_NOT_FOUND = 2150858843
WSMAN_INVALID_RESOURCE_URI = 2150858811
WSMAN_ACCESS_DENIED = 5
WSMAN_QUOTA_CODES = frozenset({2150859173, 2150859174, 2150859179, *range(2150859236, 2150859242)})

_MAX_MESSAGE = 300


def one_line(text: object, limit: int = _MAX_MESSAGE) -> str:
    """Collapse any text to one bounded line, fit for a CSV cell or a log line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def translate(exc: BaseException, *, step: str | None = None) -> TransportError:
    """Map an exception raised while talking to a host to a ``TransportError``."""
    # Imported here so the rest of the package never depends on these libraries' internals.
    import requests
    from pypsrp import exceptions as psrp_exc

    category, message = _classify(exc, requests, psrp_exc)
    logger.debug("translated %s to %s: %s", type(exc).__name__, category.value, message)
    error = TransportError(category, message, step=step)
    error.__cause__ = exc
    return error


def _classify(exc: BaseException, requests, psrp_exc) -> tuple[Category, str]:  # noqa: ANN001
    if isinstance(exc, TransportError):
        return exc.category, exc.message
    if isinstance(exc, psrp_exc.AuthenticationError):
        return Category.WINRM_AUTH_FAILED, one_line(f"WinRM rejected the credentials (HTTP 401): {exc}")
    if isinstance(exc, psrp_exc.WSManFaultError):
        return _classify_fault(exc)
    if isinstance(exc, psrp_exc.WinRMTransportError):
        return Category.WINRM_ERROR, one_line(
            f"WinRM answered HTTP {exc.code}: {exc.response_text or 'empty body'}"
        )
    if isinstance(exc, psrp_exc.WinRMError):
        return Category.WINRM_ERROR, one_line(f"PSRP error: {exc}")
    # requests: ConnectTimeout is a ConnectionError *and* a Timeout; check it first, because a
    # host that never completes the TCP handshake is unreachable, not slow.
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Category.WINRM_UNREACHABLE, "timed out connecting to the WinRM port"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Category.WINRM_ERROR, "WinRM accepted the connection but did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return Category.WINRM_ERROR, one_line(f"TLS to the WinRM listener failed: {_root(exc)}")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _classify_connection_error(exc)
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, TimeoutError)):
        return Category.WINRM_UNREACHABLE, one_line(f"cannot connect: {exc}")
    if isinstance(exc, ssl.SSLError):
        return Category.WINRM_ERROR, one_line(f"TLS error: {exc}")
    return Category.WINRM_ERROR, one_line(f"{type(exc).__name__}: {exc}")


def _classify_fault(exc) -> tuple[Category, str]:  # noqa: ANN001
    code = exc.code
    reason = one_line(exc.reason or exc.message or "")
    if code == WSMAN_ACCESS_DENIED:
        return Category.INSUFFICIENT_PRIVILEGE, f"WinRM denied access (fault {code}): {reason}"
    return Category.WINRM_ERROR, f"WS-Management fault {code}: {reason}"


def _classify_connection_error(exc: BaseException) -> tuple[Category, str]:
    root = _root(exc)
    if isinstance(root, (ConnectionRefusedError, socket.gaierror, TimeoutError, OSError)) and not (
        isinstance(root, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError))
    ):
        return Category.WINRM_UNREACHABLE, one_line(f"cannot connect to WinRM: {_describe(root)}")
    return Category.WINRM_ERROR, one_line(f"connection to WinRM failed: {_describe(root)}")


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: requests wraps urllib3, which wraps the socket error."""
    seen = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = current.__cause__ or current.__context__
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        reason = getattr(current, "reason", None)
        if inner is None and isinstance(reason, BaseException):
            inner = reason
        if inner is None:
            break
        current = inner
    return current


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return f"{type(exc).__name__}: {exc}"
