"""Every probe-derived category, its precedence, and the findings that must not become verdicts."""

import copy

import pytest

from fleet_ecs.models import Category, Status
from fleet_ecs.probe.diagnose import HINTS, diagnose

MS_CHAIN = [
    "CN=mdav.us.endpoint.security.microsoft.com",
    "CN=Microsoft Azure RSA TLS Issuing CA 04, O=Microsoft Corporation, C=US",
    "CN=DigiCert Global Root G2, OU=www.digicert.com, O=DigiCert Inc, C=US",
]
DIRECT = "\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).\r\n"
PROXY = ("\r\nCurrent WinHTTP proxy settings:\r\n\r\n"
         "    Proxy Server(s) :  proxy.contoso.com:8080\r\n    Bypass List     :  <local>\r\n")


def healthy():
    return {
        "facts": {
            "step": "facts", "ps_version": "5.1.17763.6189", "is_admin": True,
            "user": "CONTOSO\\svc", "defender_install_location":
                "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25050.5-0\\",
            "platform_root": "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform",
            "platform_folders": ["4.18.25050.5-0"], "windefend_service": "Running",
            "mdcoresvc_service": "Running",
            "mp_status": {"AMRunningMode": "Normal"},
        },
        "ecs": {
            "step": "ecs", "path": "C:\\...\\MpCmdRun.exe", "exists": True, "ran": True,
            "signature": {"status": "Valid", "signer_subject":
                          "CN=Microsoft Windows Publisher, O=Microsoft Corporation, C=US"},
            "exit_code": 0,
            "output": "ECS Url: https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/",
        },
        "probe": {
            "step": "probe", "host": "mdav.us.endpoint.security.microsoft.com",
            "url": "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/x",
            "capture": {"requested": True, "started": True},
            "dns": {"records": [{"Type": "A", "IPAddress": "198.51.100.20"}], "error": None},
            "tcp": {"address": "198.51.100.20", "port": 443, "ok": True},
            "winhttp_proxy": {"output": DIRECT},
            "http": {"status": 200, "error_status": None, "proxy": None,
                     "cert": {"issuer": "CN=Microsoft Azure RSA TLS Issuing CA 04",
                              "chain": list(MS_CHAIN)}},
        },
    }


def verdict_of(docs):
    return diagnose(docs).diagnosis


def mutate(**paths):
    docs = healthy()
    for path, value in paths.items():
        node = docs
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return docs


def test_healthy_is_ok():
    verdict = diagnose(healthy())
    assert verdict.diagnosis.status is Status.OK
    assert verdict.diagnosis.category is Category.OK
    assert verdict.ecs_url == "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/"
    assert (verdict.dns_ok, verdict.tcp_ok, verdict.http_status) == (True, True, 200)


CASES = {
    Category.INSUFFICIENT_PRIVILEGE: dict(facts__is_admin=False),
    Category.POWERSHELL_UNSUPPORTED: None,  # built below: the facts doc is cut short
    Category.DEFENDER_MISSING: dict(facts__defender_install_location=None,
                                    facts__platform_folders=[], facts__windefend_service=None),
    Category.DEFENDER_BINARY_UNTRUSTED: dict(ecs__signature={"status": "HashMismatch",
                                                             "signer_subject": ""}),
    Category.ECS_URL_UNKNOWN: dict(ecs__output="CmdTool: Failed with hr = 0x80070057",
                                   ecs__exit_code=2147942487),
    Category.DNS_FAILURE: dict(probe__dns={"records": [], "error": "x : DNS name does not exist",
                                           "native_code": 9003},
                               probe__tcp={"address": None}),
    Category.PROXY_AUTH_REQUIRED: dict(probe__winhttp_proxy={"output": PROXY},
                                       probe__http={"status": 407, "error_status": "ProtocolError",
                                                    "proxy": "http://proxy.contoso.com:8080/"}),
    Category.TCP_BLOCKED: dict(probe__tcp={"address": "198.51.100.20", "ok": False,
                                           "socket_error": 10060},
                               probe__http={"error_status": "ConnectFailure"}),
    Category.ECS_TIMEOUT: dict(probe__http={"error_status": "Timeout", "elapsed_ms": 3000}),
    Category.TLS_INTERCEPTED: dict(probe__http={"status": 200, "cert": {
        "issuer": "CN=Contoso Inspection CA", "chain": ["CN=mdav", "CN=Contoso Inspection CA"]}}),
    Category.TLS_FAILURE: dict(probe__http={"error_status": "SecureChannelFailure", "cert": None}),
    Category.HTTP_ERROR: dict(probe__http={"status": 403, "error_status": "ProtocolError",
                                           "cert": None, "body_excerpt": "<html>Blocked</html>"}),
}


@pytest.mark.parametrize("category", list(CASES), ids=lambda c: c.value)
def test_each_category(category):
    if category is Category.POWERSHELL_UNSUPPORTED:
        docs = {"facts": {"step": "facts", "ps_version": "4.0"}}
    else:
        docs = mutate(**CASES[category])
    diagnosis = verdict_of(docs)
    assert diagnosis.category is category
    assert diagnosis.status is Status.FAIL
    assert diagnosis.evidence and all(isinstance(e, str) and e for e in diagnosis.evidence)
    assert diagnosis.hint == HINTS[category]


def test_http_error_over_microsoft_chain_is_only_a_warning():
    docs = mutate(probe__http={"status": 503, "error_status": "ProtocolError",
                               "cert": {"chain": list(MS_CHAIN)}})
    diagnosis = verdict_of(docs)
    assert (diagnosis.category, diagnosis.status) == (Category.HTTP_ERROR, Status.WARN)


def test_precedence_first_applicable_wins():
    # Not admin *and* no Defender *and* DNS broken: the earliest category is reported.
    docs = mutate(facts__is_admin=False, facts__platform_folders=[],
                  facts__defender_install_location=None, probe__dns={"records": []})
    assert verdict_of(docs).category is Category.INSUFFICIENT_PRIVILEGE
    docs = mutate(probe__dns={"records": [], "error": "nx"}, probe__http={"status": 407})
    assert verdict_of(docs).category is Category.DNS_FAILURE
    docs = mutate(probe__http={"error_status": "Timeout",
                               "cert": {"chain": ["CN=x", "CN=Evil Root"]}})
    assert verdict_of(docs).category is Category.ECS_TIMEOUT


def test_direct_tcp_failure_behind_proxy_is_a_finding_not_a_verdict():
    docs = mutate(probe__winhttp_proxy={"output": PROXY},
                  probe__tcp={"address": "198.51.100.20", "ok": False, "socket_error": 10060},
                  probe__http={"status": 200, "proxy": "http://proxy.contoso.com:8080/",
                               "cert": {"chain": list(MS_CHAIN)}})
    diagnosis = verdict_of(docs)
    assert diagnosis.category is Category.OK
    assert [f.code for f in diagnosis.findings] == ["direct_tcp_failed"]
    assert diagnose(docs).proxy == "http://proxy.contoso.com:8080/"


def test_string_sort_trap_is_a_finding():
    docs = mutate(facts__defender_install_location=None,
                  facts__platform_folders=["4.18.23110.3-0", "4.18.23110.2009-0"])
    codes = [f.code for f in verdict_of(docs).findings]
    assert "platform_string_sort" in codes


def test_inputs_are_not_mutated():
    docs = healthy()
    before = copy.deepcopy(docs)
    diagnose(docs)
    assert docs == before
