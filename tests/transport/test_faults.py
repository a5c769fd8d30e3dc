import socket

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

from fleet_ecs.models import Category
from fleet_ecs.transport.faults import one_line, translate


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
        (_conn_error(ConnectionResetError(104, "Connection reset by peer")), Category.WINRM_ERROR),
        (requests.exceptions.ReadTimeout("read timed out"), Category.WINRM_ERROR),
        (WinRMTransportError("http", 500, "<html>oops</html>"), Category.WINRM_ERROR),
        (WSManFaultError(2150859173, "host", "too many shells", None, None, None),
         Category.WINRM_ERROR),
        (WSManFaultError(5, "host", "Access is denied.", None, None, None),
         Category.INSUFFICIENT_PRIVILEGE),
        (ValueError("odd"), Category.WINRM_ERROR),
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
