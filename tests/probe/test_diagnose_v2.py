"""Schema-2 facts: Defender's state, the two network paths, and the traps of a naive check."""

import copy
import json

import pytest

from fleet_ecs.models import Category, Status
from fleet_ecs.probe.diagnose import PRECEDENCE, device_geo, diagnose, ecs_target

G2 = "DF3C24F9BFD666761B268073FE06D1CC8D4F82A4"
MS_CHAIN = [
    {"subject": "CN=mdav.us.endpoint.security.microsoft.com", "thumbprint": "AA" * 20},
    {"subject": "CN=Microsoft Azure RSA TLS Issuing CA 04, O=Microsoft Corporation",
     "thumbprint": "BB" * 20},
    {"subject": "CN=DigiCert Global Root G2, OU=www.digicert.com, O=DigiCert Inc, C=US",
     "thumbprint": G2},
]
DIRECT = "\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).\r\n"
URL = "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/"


def cert(chain=MS_CHAIN):
    return {"subject": chain[0]["subject"], "issuer": chain[1]["subject"],
            "thumbprint": chain[0]["thumbprint"], "chain": copy.deepcopy(chain)}


def target(url=URL + "MicrosoftWindowsDefenderClient/1.0.0.0", ok=True):
    host = url.split("/")[2]
    return {
        "url": url, "host": host,
        "dns": {"records": [{"Type": "A", "IPAddress": "198.51.100.20"}], "error": None},
        "tcp": {"address": "198.51.100.20", "port": 443, "ok": ok},
        "tcp_all": [{"address": "198.51.100.20", "port": 443, "ok": ok, "socket_error":
                     None if ok else 10060}],
        "tls": {"mechanism": "sslstream", "ok": ok, "protocol": "Tls12", "cert": cert()}
        if ok else None,
        "machine": {"mechanism": "winhttp-com", "proxy": None, "proxy_source": "winhttp-default",
                    "status": 200 if ok else None, "error_code": None if ok else 12002},
        "http": {"status": 200 if ok else None, "error_status": None if ok else "Timeout",
                 "tls12_available": True, "proxy": None, "cert": cert() if ok else None},
    }


def healthy():
    probe = target()
    probe.update(step="probe", capture={"requested": True, "started": True},
                 winhttp_proxy={"output": DIRECT})
    return {
        "facts": {
            "step": "facts", "ps_version": "5.1.17763.6189", "is_admin": True,
            "is_elevated": True, "product_type": 1,
            "defender_install_location":
                "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25050.5-0\\",
            "platform_folders": ["4.18.25050.5-0"], "windefend_service": "Running",
            "mdcoresvc_service": "Running", "sense_service": "Running",
            "mp_status": {"AMRunningMode": "Normal", "AMProductVersion": "4.18.25050.5"},
            "defender_policy": {"DisableCoreServiceECSIntegration": None,
                                "ForceDefenderPassiveMode": None, "PassiveMode": None},
            "onboarding_state": 1,
            "onboarded_info": json.dumps({"body": json.dumps({"vortexGeoLocation": "US"})}),
        },
        "ecs": {"step": "ecs", "path": "C:\\x\\MpCmdRun.exe", "exists": True, "exit_code": 0,
                "signature": {"status": "Valid", "signer_subject":
                              "CN=Microsoft Windows Publisher, O=Microsoft Corporation"},
                "output": f"ECS Url: {URL}"},
        "probe": probe,
    }


def verdict(docs):
    return diagnose(docs).diagnosis


def test_healthy_v2_is_ok():
    d = verdict(healthy())
    assert (d.category, d.status) == (Category.OK, Status.OK)


@pytest.mark.parametrize("change, category", [
    (lambda d: d["facts"].update(windefend_service="Stopped"), Category.DEFENDER_NOT_ACTIVE),
    (lambda d: d["facts"]["mp_status"].update(AMRunningMode="Not running"),
     Category.DEFENDER_NOT_ACTIVE),
    (lambda d: d["facts"].update(mdcoresvc_service="Stopped"), Category.CORE_SERVICE_STOPPED),
    (lambda d: d["facts"]["defender_policy"].update(DisableCoreServiceECSIntegration=1),
     Category.ECS_DISABLED_BY_POLICY),
    (lambda d: d["facts"].update(onboarding_state=0), Category.NOT_ONBOARDED),
    (lambda d: d["facts"].update(product_type=3, mdcoresvc_service=None,
                                 mp_status={"AMRunningMode": "Normal",
                                            "AMProductVersion": "4.18.24090.11"}),
     Category.PLATFORM_TOO_OLD),
    (lambda d: d["facts"].update(is_elevated=False), Category.PROBE_INCOMPLETE),
    (lambda d: d["probe"]["dns"].update(records=[{"Type": "A", "IPAddress": "0.0.0.0"}]),
     Category.DNS_SINKHOLED),
])
def test_state_and_trap_categories(change, category):
    docs = healthy()
    change(docs)
    d = verdict(docs)
    assert d.category is category and d.status is Status.FAIL and d.evidence


def test_passive_mode_with_ecs_reachable_is_a_warning():
    docs = healthy()
    docs["facts"]["mp_status"]["AMRunningMode"] = "Passive Mode"
    d = verdict(docs)
    assert (d.category, d.status) == (Category.OK, Status.WARN)
    assert "passive_mode" in [f.code for f in d.findings]


@pytest.mark.parametrize("forced, status", [(None, Status.OK), (1, Status.WARN)])
def test_edr_block_mode_alone_is_not_inactive(forced, status):
    docs = healthy()
    docs["facts"]["mp_status"]["AMRunningMode"] = "EDR Block Mode"
    docs["facts"]["defender_policy"]["ForceDefenderPassiveMode"] = forced
    d = verdict(docs)
    assert (d.category, d.status) == (Category.OK, status)


def test_tcp_success_alone_proves_nothing():
    docs = healthy()  # a firewall answers on 443 itself: TCP ok, TLS and HTTP fail
    docs["probe"]["tls"] = {"mechanism": "sslstream", "ok": False, "error": "reset", "cert": None}
    docs["probe"]["machine"] = {"status": None, "error_code": 12175, "proxy_source": "winhttp-default"}
    docs["probe"]["http"] = {"status": None, "error_status": "SecureChannelFailure", "cert": None,
                             "tls12_available": True}
    assert verdict(docs).category is Category.TLS_FAILURE


def test_copied_root_subject_is_still_interception():
    docs = healthy()
    fake = copy.deepcopy(MS_CHAIN)
    fake[-1]["thumbprint"] = "CC" * 20  # DigiCert's name, someone else's key
    docs["probe"]["http"]["cert"] = cert(fake)
    assert verdict(docs).category is Category.TLS_INTERCEPTED


@pytest.mark.parametrize("machine_ok, status", [(False, Status.FAIL), (True, Status.WARN)])
def test_paths_that_disagree(machine_ok, status):
    docs = healthy()
    if machine_ok:
        docs["probe"]["http"].update(status=None, error_status="ConnectFailure",
                                     proxy="http://userproxy.contoso.com:3128/")
    else:
        docs["probe"]["machine"].update(status=None, error_code=12029)
    d = verdict(docs)
    assert (d.category, d.status) == (Category.PROXY_PATH_MISMATCH, status)


def test_blocked_only_for_the_configured_endpoint():
    docs = healthy()
    docs["probe"].update({k: v for k, v in target(ok=False).items() if k not in ("url", "host")})
    assert verdict(docs).category is Category.TCP_BLOCKED
    docs["alternates"] = {"step": "alternates", "targets": [
        target("https://ecs.office.com/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0")]}
    d = verdict(docs)
    assert d.category is Category.ECS_PARTIALLY_BLOCKED and d.status is Status.FAIL
    assert any("ecs.office.com: reachable" in line for line in d.evidence)
    assert any("tcp_blocked" in line for line in d.evidence)


def test_geo_fallback_when_the_switch_is_unknown():
    docs = healthy()
    docs["ecs"].update(output="CmdTool: Failed with hr = 0x80070057", exit_code=2147942487)
    assert ecs_target(docs["facts"], docs["ecs"]) == (URL, "geo")
    d = verdict(docs)
    assert (d.category, d.status) == (Category.OK, Status.WARN)
    docs["facts"]["onboarded_info"] = None
    assert verdict(docs).category is Category.ECS_URL_UNKNOWN


def test_someone_elses_trace_is_a_finding():
    docs = healthy()
    docs["probe"]["capture"] = {"requested": True, "started": False, "other_session": True}
    d = verdict(docs)
    assert d.category is Category.OK
    assert "other_trace_session" in [f.code for f in d.findings]


def test_device_geo_variants():
    assert device_geo({"onboarded_info": '{"vortexGeoLocation": "EU"}'}) == "eu"
    assert device_geo({"onboarded_info": "not json"}) is None
    assert device_geo({}) is None


def test_precedence_lists_every_probe_category_once():
    assert len(PRECEDENCE) == len(set(PRECEDENCE))
    assert PRECEDENCE[-1] is Category.OK


def test_admin_path_thumbprints_catch_a_copied_root_name():
    docs = healthy()
    docs["probe"]["tls"] = None  # behind a proxy: no direct handshake, only the admin path
    http_cert = cert()
    http_cert["chain"] = [c["subject"] for c in MS_CHAIN]
    http_cert["chain_thumbprints"] = [c["thumbprint"] for c in MS_CHAIN]
    docs["probe"]["http"]["cert"] = http_cert
    assert verdict(docs).category is Category.OK
    http_cert["chain_thumbprints"][-1] = "CC" * 20
    assert verdict(docs).category is Category.TLS_INTERCEPTED
