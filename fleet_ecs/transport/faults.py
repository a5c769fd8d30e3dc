"""The one boundary where exceptions of pypsrp, requests, urllib3, TLS, spnego and sockets
become ours.

Nothing above ``fleet_ecs.transport`` imports a third-party exception type: ``translate`` maps
whatever escaped a pypsrp call to a ``TransportError`` carrying one category and a single-line
message, chained to the original with ``from``.

Order of evidence, most reliable first: exception type, then Windows' WS-Management fault code,
then the HTTP status, and only then message text (used for one pypsrp case that has no other
marker). Messages are reported, never parsed for a verdict otherwise.

    ConnectTimeout, refused, no route, name not resolved   -> winrm_unreachable
    ReadTimeout (connected, no answer)                      -> winrm_timeout
    certificate verification failed                         -> winrm_cert_invalid
    other TLS failure, malformed XML/PSRP, HTTP 500 non-SOAP -> winrm_protocol_error
    connection reset / closed mid-exchange                  -> winrm_connection_reset
    WSMan quota faults                                      -> winrm_quota
    WSMan 2150858811, HTTP 404                              -> winrm_endpoint_not_found
    WSMan 5 (access denied)                                 -> insufficient_privilege
    HTTP 401                                                -> winrm_auth_failed (or
                                                               winrm_auth_method_unavailable)
    HTTP 407, 502/503/504 with a non-SOAP body              -> winrm_proxy_error
    missing library, no Kerberos credential, bad settings   -> client_config_error
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from xml.etree.ElementTree import ParseError

from fleet_ecs.errors import TransportError
from fleet_ecs.models import Category

logger = logging.getLogger(__name__)

# Win32 ERROR_WSMAN_* codes as Windows puts them in WSManFault/@Code (wsmerror.h).
WSMAN_SHELL_NOT_FOUND = 2150858843
WSMAN_INVALID_RESOURCE_URI = 2150858811
WSMAN_ACCESS_DENIED = 5
WSMAN_QUOTA_CODES = frozenset({2150859173, 2150859174, 2150859179, *range(2150859236, 2150859242)})

# Faults that a new shell, a little later, may not meet again.
TRANSIENT = frozenset({Category.WINRM_QUOTA, Category.WINRM_CONNECTION_RESET})

# OpenSSL X509_V_ERR_* codes, for a message that says what is wrong with the certificate.
_VERIFY_REASONS = {
    10: "the certificate has expired",
    9: "the certificate is not yet valid",
    18: "the certificate is self-signed",
    19: "the chain ends in an untrusted root",
    20: "the issuer is not trusted",
    21: "the issuer is not trusted",
    62: "the certificate was issued for another name",
}
_PROXY_STATUSES = frozenset({407, 502, 503, 504})
_MAX_MESSAGE = 300


def one_line(text: object, limit: int = _MAX_MESSAGE) -> str:
    """Collapse any text to one bounded line, fit for a CSV cell or a log line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def translate(exc: BaseException, *, step: str | None = None) -> TransportError:
    """Map an exception raised while talking to a host to a ``TransportError``."""
    category, message = classify(exc)
    logger.debug("translated %s to %s: %s", type(exc).__name__, category.value, message)
    error = TransportError(category, message, step=step)
    error.__cause__ = exc
    return error


def classify(exc: BaseException) -> tuple[Category, str]:
    # Imported here so the rest of the package never depends on these libraries' internals.
    import requests
    from pypsrp import exceptions as psrp_exc

    if isinstance(exc, TransportError):
        return exc.category, exc.message
    if isinstance(exc, psrp_exc.AuthenticationError):
        return _classify_auth(exc)
    if isinstance(exc, psrp_exc.WSManFaultError):
        return _classify_fault(exc)
    if isinstance(exc, psrp_exc.WinRMTransportError):
        return _classify_http(exc.code, exc.response_text or "")
    if isinstance(exc, psrp_exc.WinRMError):
        return Category.WINRM_PROTOCOL_ERROR, one_line(f"PSRP error: {exc}")
    spnego_verdict = _classify_spnego(exc)
    if spnego_verdict is not None:
        return spnego_verdict
    if type(exc).__module__.split(".")[0] == "krb5":
        # The KDC refused to issue a ticket for the given user and password (preauthentication
        # failed, unknown client): the credentials are wrong, as with an HTTP 401.
        return Category.WINRM_AUTH_FAILED, one_line(f"the KDC refused the credentials: {exc}")
    # requests: ConnectTimeout is a ConnectionError *and* a Timeout; check it first, because a
    # host that never completes the TCP handshake is unreachable, not slow.
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Category.WINRM_UNREACHABLE, "timed out connecting to the WinRM port"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Category.WINRM_TIMEOUT, "WinRM accepted the connection but did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return _classify_tls(_root(exc))
    if isinstance(exc, requests.exceptions.ProxyError):
        return Category.WINRM_PROXY_ERROR, one_line(
            f"the HTTP proxy failed: {_describe(_root(exc))}")
    if isinstance(exc, (requests.exceptions.ConnectionError, OSError)):
        return _classify_connection(_root(exc))
    if isinstance(exc, (ParseError, UnicodeDecodeError)):
        return Category.WINRM_PROTOCOL_ERROR, one_line(f"WinRM sent an unreadable reply: {exc}")
    if isinstance(exc, ImportError):
        return Category.CLIENT_CONFIG_ERROR, one_line(
            f"a library this auth method needs is not installed: {exc}")
    if isinstance(exc, ValueError) and _raised_in(exc, ("pypsrp", "requests_credssp", "spnego")):
        return Category.CLIENT_CONFIG_ERROR, one_line(f"connection settings rejected: {exc}")
    if _raised_in(exc, ("pypsrp",)):
        # pypsrp trips over replies it cannot make sense of (missing elements, bad base64).
        return Category.WINRM_PROTOCOL_ERROR, one_line(
            f"unexpected reply from WinRM ({type(exc).__name__}: {exc})")
    return Category.WINRM_ERROR, one_line(f"{type(exc).__name__}: {exc}")


def _classify_auth(exc: BaseException) -> tuple[Category, str]:
    text = str(exc)
    # pypsrp raises the same type when the host does not offer the method at all; this phrase
    # is pypsrp's own (negotiate.py), not Windows', so it does not vary with the host's locale.
    if "did not response with one of the following authentication methods" in text:
        return Category.WINRM_AUTH_METHOD_UNAVAILABLE, one_line(
            f"the host does not offer this auth method: {text}")
    return Category.WINRM_AUTH_FAILED, one_line(
        f"WinRM rejected the credentials (HTTP 401): {text}")


def _classify_fault(exc) -> tuple[Category, str]:  # noqa: ANN001
    code = exc.code
    reason = one_line(exc.reason or exc.message or "")
    message = f"WS-Management fault {code}: {reason}"
    if code == WSMAN_ACCESS_DENIED:
        return Category.INSUFFICIENT_PRIVILEGE, message
    if code in WSMAN_QUOTA_CODES:
        return Category.WINRM_QUOTA, message
    if code == WSMAN_INVALID_RESOURCE_URI:
        return Category.WINRM_ENDPOINT_NOT_FOUND, message
    if code == WSMAN_SHELL_NOT_FOUND:
        return Category.WINRM_CONNECTION_RESET, "the remote shell vanished: " + message
    return Category.WINRM_PROTOCOL_ERROR, message


def _classify_http(status: int, body: str) -> tuple[Category, str]:
    soap = "Envelope" in body[:2000]
    excerpt = one_line(body, 160) or "empty body"
    if status == 404:
        return Category.WINRM_ENDPOINT_NOT_FOUND, (
            f"no WinRM endpoint at this URL (HTTP 404): {excerpt}")
    if status in _PROXY_STATUSES and not soap:
        return Category.WINRM_PROXY_ERROR, (
            f"an HTTP proxy answered instead of WinRM (HTTP {status}): {excerpt}")
    return Category.WINRM_PROTOCOL_ERROR, f"WinRM answered HTTP {status}: {excerpt}"


def _classify_tls(root: BaseException) -> tuple[Category, str]:
    if isinstance(root, ssl.SSLCertVerificationError):
        reason = _VERIFY_REASONS.get(root.verify_code, root.verify_message or "verification failed")
        return Category.WINRM_CERT_INVALID, one_line(
            f"the WinRM listener's certificate is not valid: {reason} ({root.verify_message})")
    return Category.WINRM_PROTOCOL_ERROR, one_line(
        f"TLS with the WinRM listener failed: {_describe(root)}")


def _classify_connection(root: BaseException) -> tuple[Category, str]:
    if isinstance(root, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                         http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return Category.WINRM_CONNECTION_RESET, one_line(
            f"the host dropped the WinRM connection: {_describe(root)}")
    if isinstance(root, (socket.timeout, TimeoutError)):
        return Category.WINRM_UNREACHABLE, "timed out connecting to the WinRM port"
    if isinstance(root, OSError):
        return Category.WINRM_UNREACHABLE, one_line(f"cannot connect to WinRM: {_describe(root)}")
    return Category.WINRM_CONNECTION_RESET, one_line(
        f"connection to WinRM failed: {_describe(root)}")


def _classify_spnego(exc: BaseException) -> tuple[Category, str] | None:
    try:
        from spnego import exceptions as sp_exc
    except ImportError:  # pragma: no cover - pyspnego is a dependency of pypsrp
        return None
    if isinstance(exc, sp_exc.FeatureMissingError):
        return Category.CLIENT_CONFIG_ERROR, one_line(f"Kerberos/NTLM support is missing: {exc}")
    if isinstance(exc, sp_exc.NoCredentialError):
        return Category.CLIENT_CONFIG_ERROR, one_line(
            f"no usable credential on the scanning machine (kinit or a keytab?): {exc}")
    if isinstance(exc, sp_exc.SpnegoError):
        return Category.WINRM_AUTH_FAILED, one_line(f"authentication failed: {exc}")
    return None


def _raised_in(exc: BaseException, packages: tuple[str, ...]) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.split(".")[0] in packages:
            return True
        tb = tb.tb_next
    return False


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: requests wraps urllib3, which wraps the socket or TLS error."""
    seen = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = current.__cause__ or current.__context__
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
        if inner is None:
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        current = inner
    return current


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return f"{type(exc).__name__}: {exc}"
