import http.client
import socket
import ssl
from xml.etree.ElementTree import ParseError

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

from fleet_ecs.models import Category
from fleet_ecs.transport.faults import one_line, translate


def _ssl_error(code, message):
    inner = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    inner.verify_code = code
    inner.verify_message = message
    outer = requests.exceptions.SSLError("wrapped")
    outer.__context__ = inner
    return outer


def _conn_error(inner):
    outer = requests.exceptions.ConnectionError("wrapped")
    outer.__context__ = inner
    return outer


@pytest.mark.parametrize(
    "exc, category",
    [
        (AuthenticationError("Failed to authenticate the user x with basic"),
         Category.WINRM_AUTH_FAILED),
        (requests.exceptions.ConnectTimeout("connect timed out"), Category.WINRM_UNREACHABLE),
        (_conn_error(ConnectionRefusedError(111, "Connection refused")),
         Category.WINRM_UNREACHABLE),
        (_conn_error(socket.gaierror(-2, "Name or service not known")),
         Category.WINRM_UNREACHABLE),
        (_conn_error(ConnectionResetError(104, "Connection reset by peer")),
         Category.WINRM_CONNECTION_RESET),
        (_conn_error(http.client.RemoteDisconnected("Remote end closed connection")),
         Category.WINRM_CONNECTION_RESET),
        (requests.exceptions.ReadTimeout("read timed out"), Category.WINRM_TIMEOUT),
        (WinRMTransportError("http", 500, "<html>oops</html>"), Category.WINRM_PROTOCOL_ERROR),
        (WinRMTransportError("http", 404, ""), Category.WINRM_ENDPOINT_NOT_FOUND),
        (WinRMTransportError("http", 502, "<html>ERR_CONNECT_FAIL squid</html>"),
         Category.WINRM_PROXY_ERROR),
        (WinRMTransportError("http", 407, "<html>auth</html>"), Category.WINRM_PROXY_ERROR),
        (WSManFaultError(2150859173, "host", "too many shells", None, None, None),
         Category.WINRM_QUOTA),
        (WSManFaultError(2150859174, "host", "too many operations", None, None, None),
         Category.WINRM_QUOTA),
        (WSManFaultError(2150858811, "host", "resource URI not found", None, None, None),
         Category.WINRM_ENDPOINT_NOT_FOUND),
        (WSManFaultError(2150858843, "host", "shell not found", None, None, None),
         Category.WINRM_CONNECTION_RESET),
        (WSManFaultError(2150858000, "host", "odd fault", None, None, None),
         Category.WINRM_PROTOCOL_ERROR),
        (WSManFaultError(5, "host", "Access is denied.", None, None, None),
         Category.INSUFFICIENT_PRIVILEGE),
        (AuthenticationError("The server did not response with one of the following "
                             "authentication methods Negotiate - actual: 'Basic'"),
         Category.WINRM_AUTH_METHOD_UNAVAILABLE),
        (_ssl_error(10, "certificate has expired"), Category.WINRM_CERT_INVALID),
        (_ssl_error(62, "Hostname mismatch"), Category.WINRM_CERT_INVALID),
        (requests.exceptions.SSLError("wrong version number"), Category.WINRM_PROTOCOL_ERROR),
        (ImportError("No module named 'requests_credssp'"), Category.CLIENT_CONFIG_ERROR),
        (ParseError("not well-formed"), Category.WINRM_PROTOCOL_ERROR),
        (KeyError("odd"), Category.WINRM_ERROR),
    ],
)
def test_translate(exc, category):
    error = translate(exc, step="connect")
    assert error.category is category
    assert error.step == "connect"
    assert "\n" not in error.message and error.message
    assert error.__cause__ is exc


def test_one_line_bounds_and_flattens():
    assert one_line("a\r\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 300


def test_pypsrp_config_value_error_is_a_client_config_error():
    from pypsrp.wsman import WSMan

    try:
        WSMan("127.0.0.1", ssl=False, auth="basic", encryption="auto", username="u", password="p")
    except ValueError as exc:
        assert translate(exc).category is Category.CLIENT_CONFIG_ERROR
    else:  # pragma: no cover
        raise AssertionError("pypsrp accepted basic auth with message encryption over http")


def test_spnego_errors():
    from spnego.exceptions import InvalidTokenError, NoCredentialError

    assert translate(NoCredentialError(context_msg="no ticket")).category is \
        Category.CLIENT_CONFIG_ERROR
    assert translate(InvalidTokenError(context_msg="bad")).category is Category.WINRM_AUTH_FAILED
