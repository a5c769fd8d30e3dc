"""Scenario data, host profiles and the documents the simulated steps produce (in memory)."""

from __future__ import annotations

import hashlib
import json

import pytest

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import Category, HostSpec
from fleet_ecs.probe.contract import SCHEMA, STEP_MARKER, psquote
from fleet_ecs.sim import scenarios
from fleet_ecs.sim.capture import new_capture
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.fleet import build_hosts, demo_addresses, demo_specs, shared_ca_bundle
from fleet_ecs.sim.state import HostState
from fleet_ecs.sim.steps import HostContext, UnknownScript, start_step
from fleet_ecs.sim.windows_text import PLATFORM_ROOT, profile_for

ECS_HOST = "mdav.eu.endpoint.security.microsoft.com"
WORK_DIR = "C:\\Users\\fleet-ecs-demo\\AppData\\Local\\Temp\\fleet-ecs-r1"
ALTERNATE_URLS = (
    "https://ecs.office.com/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0",
    "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/",
)

# The documents' keys, as the contract's docstring lists them (schema 2), written once here.
FACT_KEYS = {
    "step", "schema", "ps_version", "ps_edition", "clr_version", "computer_name", "user",
    "is_admin", "os_caption", "os_version", "os_build", "os_ubr", "product_type", "temp_dir",
    "defender_install_location", "platform_root", "platform_folders", "windefend_service",
    "mdcoresvc_service", "mp_status", "mp_status_error",
    # schema 2
    "is_elevated", "defender_policy", "onboarding_state", "onboarded_info", "sense_service",
    "defender_proxy", "telemetry_proxy", "winhttp_proxy",
}
MP_STATUS_KEYS = {"AMProductVersion", "AMEngineVersion", "AMServiceVersion", "AMRunningMode",
                  "RealTimeProtectionEnabled"}
DEFENDER_POLICY_KEYS = {"DisableCoreServiceECSIntegration", "ForceDefenderPassiveMode",
                        "PassiveMode", "DisableCoreService1DSTelemetry"}
DEFENDER_PROXY_KEYS = {"ProxyServer", "ProxyPacUrl", "ProxyBypass"}
ECS_KEYS = {"step", "schema", "path", "exists", "signature", "ran", "exit_code", "output",
            "elapsed_ms"}
PROBE_KEYS = {"step", "schema", "url", "host", "capture", "dns", "tcp", "winhttp_proxy", "http",
              "tcp_all", "tls", "machine"}
CAPTURE_KEYS = {"requested", "status_before", "status_before_exit", "stale_stopped", "started",
                "start_output", "start_exit", "stop_output", "stop_exit", "path", "size",
                "sha256", "other_session"}
DNS_KEYS = {"elapsed_ms", "records", "error", "error_id", "native_code"}
TCP_KEYS = {"address", "port", "ok", "elapsed_ms", "error", "socket_error"}
TLS_KEYS = {"mechanism", "address", "ok", "protocol", "elapsed_ms", "error", "cert"}
CERT_KEYS = {"subject", "issuer", "thumbprint", "not_before", "not_after", "chain"}
MACHINE_KEYS = {"mechanism", "proxy", "proxy_source", "elapsed_ms", "status", "status_text",
                "headers", "body_excerpt", "error_code", "error_message"}
HTTP_KEYS = {"proxy", "elapsed_ms", "status", "status_description", "headers", "body_excerpt",
             "error_status", "error_message", "inner_errors", "cert",
             "tls12_available", "first_byte_ms"}
TARGET_KEYS = {"url", "host", "dns", "tcp_all", "tls", "machine", "http"}
MICROSOFT_ROOTS = {  # /tmp/issue4_semantics.md: Microsoft's public roots by SHA-1 thumbprint
    "DF3C24F9BFD666761B268073FE06D1CC8D4F82A4", "7E04DE896A3E666D00E687D33FFAD93BE83D349E",
    "A8985D3A65E5E5C4B2D7D66D40C6DD2FB19C5436", "D4DE20D05E66FC53FE1A50882C78DB2852CAE474",
    "73A5E64A3BFF8316FF0EDCCC618A906E4EAE4D74", "999A64C37FF47D9FAB95F14769891460EEC4C3C5",
    "8F43288AD272F3103B6FB1428485EA3014C0BCFE",
}


def script(step: str, **inputs: object) -> str:
    lines = [STEP_MARKER.format(step=step, schema=SCHEMA)]
    return "\n".join(lines + [f"$FE_{k} = {psquote(v)}" for k, v in inputs.items()]) + "\n"


def run_step(scenario: str, text: str, state: HostState | None = None,
             raw: dict | None = None, host: str = "ws-0042") -> list[str]:
    ctx = HostContext(profile_for(host), scenarios.get(scenario),
                      state or HostState(host), DEMO_USERNAME, raw=raw or {})
    step = start_step(ctx, text)
    step.begin()
    outputs = list(step.outputs())
    step.finish()
    return outputs


def docs(scenario: str, raw: dict | None = None, capture: str = "0",
         host: str = "ws-0042") -> dict[str, dict]:
    """Every step document of ``scenario``, inputs as the controller renders them."""
    def one(text: str) -> dict:
        return json.loads(run_step(scenario, text, raw=raw, host=host)[-1])

    facts = one(script("facts", RunId="r1"))
    # The controller runs the newest platform folder's MpCmdRun (numeric, not string, order).
    folders = facts.get("platform_folders") or ["4.18.25050.5-0"]
    newest = max(folders, key=lambda f: [int(p) for p in f.split("-")[0].split(".")])
    mpcmdrun = f"{PLATFORM_ROOT}\\{newest}\\MpCmdRun.exe"
    ecs = one(script("ecs", MpCmdRun=mpcmdrun, TrustedPublisher="Microsoft Corporation"))
    probe = one(script(
        "probe", Url=f"https://{ECS_HOST}/ecs/config/v1/x", Host=ECS_HOST, WorkDir=WORK_DIR,
        Capture=capture, CaptureMaxMb="20", TimeoutSec="7", TraceSession="FleetEcsTrace",
        BodyLimit="4096", DefenderProxy="", MachineProxy=""))
    alternates = one(script("alternates", Urls="|".join(ALTERNATE_URLS), TimeoutSec="7",
                            BodyLimit="4096", DefenderProxy=""))
    return {"facts": facts, "ecs": ecs, "probe": probe, "alternates": alternates}


def check_target_keys(target: dict, where: str) -> None:
    """A probed target (the probe's or an alternate's) has exactly the contract's keys."""
    assert set(target["dns"]) == DNS_KEYS, where
    assert all(set(t) == TCP_KEYS for t in target["tcp_all"]), where
    assert len(target["tcp_all"]) <= 4, where
    if target["tls"] is not None:
        assert set(target["tls"]) == TLS_KEYS, where
        if target["tls"]["cert"] is not None:
            assert set(target["tls"]["cert"]) == CERT_KEYS, where
            assert all(set(c) == {"subject", "thumbprint"} for c in target["tls"]["cert"]["chain"])
    assert set(target["machine"]) == MACHINE_KEYS, where
    assert set(target["http"]) == HTTP_KEYS, where
    if target["http"]["cert"] is not None:
        cert = target["http"]["cert"]
        assert set(cert) == CERT_KEYS | {"chain_thumbprints"}, where
        assert all(isinstance(c, str) for c in cert["chain"]), where
        assert len(cert["chain_thumbprints"]) == len(cert["chain"]), where


def test_demo_order_is_fixed() -> None:
    assert scenarios.DEMO_ORDER[:17] == [
        "healthy", "winrm-service-stopped", "expired-service-password", "standard-user-account",
        "legacy-powershell-4", "defender-not-installed", "tampered-mpcmdrun",
        "old-platform-without-ecs-switch", "dns-filter-nxdomain",
        "proxy-requires-authentication", "firewall-drops-443", "ecs-not-answering",
        "trusted-tls-inspection", "tls-handshake-reset", "proxy-block-page",
        "ecs-service-error", "slow-endpoint",
    ]
    assert scenarios.DEMO_ORDER[17:36] == [
        "ntlm-healthy", "https-healthy", "https-untrusted-certificate",
        "https-expired-certificate", "https-wrong-name-certificate", "shell-quota-exceeded",
        "operations-quota-exceeded", "shell-lost-once", "access-denied",
        "listener-never-answers", "connection-reset-mid-response", "syn-dropped",
        "very-slow-responses", "malformed-xml", "oversized-response", "http-500-plain",
        "session-configuration-missing", "auth-method-not-offered", "proxy-error-page",
    ]
    assert scenarios.DEMO_ORDER[36:56] == [
        "defender-service-stopped", "passive-mode-ecs-reachable", "edr-block-mode-normal",
        "core-service-stopped", "ecs-disabled-by-policy", "not-onboarded",
        "platform-before-core-service", "ecs-switch-unknown-geo-known", "dns-sinkhole",
        "firewall-answers-443", "regional-endpoint-blocked", "user-proxy-only",
        "winhttp-proxy-blocks-system", "not-elevated-for-capture",
        "someone-elses-trace-running", "german-windows-healthy", "french-windows-proxy-auth",
        "spanish-windows-dns-failure", "japanese-windows-healthy",
        "chinese-windows-direct-tcp-blocked",
    ]
    assert scenarios.DEMO_ORDER[56:] == ["client-certificate-not-configured"]
    assert set(scenarios.DEMO_ORDER) == set(scenarios.SCENARIOS)
    assert len(scenarios.DEMO_ORDER) == len(set(scenarios.DEMO_ORDER))
    # The first 17 hosts of a demo cover every probe category of the first release; the next
    # 19 are WinRM faults.
    assert {scenarios.get(n).expected for n in scenarios.DEMO_ORDER[:17]} == {
        c for c in Category if c.precedence <= Category.OK.precedence
    }
    assert {scenarios.get(n).expected for n in scenarios.DEMO_ORDER[17:36]} == {
        Category.OK, Category.WINRM_CERT_INVALID, Category.WINRM_QUOTA,
        Category.INSUFFICIENT_PRIVILEGE, Category.WINRM_TIMEOUT,
        Category.WINRM_CONNECTION_RESET, Category.WINRM_UNREACHABLE,
        Category.WINRM_PROTOCOL_ERROR, Category.WINRM_ENDPOINT_NOT_FOUND,
        Category.WINRM_AUTH_METHOD_UNAVAILABLE, Category.WINRM_PROXY_ERROR,
    }


def test_unknown_scenario_is_a_simulator_error() -> None:
    with pytest.raises(SimulatorError, match="no-such-thing"):
        scenarios.get("no-such-thing")


@pytest.mark.parametrize("name", [n for n in scenarios.DEMO_ORDER if scenarios.get(n).listening])
def test_every_scenario_yields_contract_documents(name: str) -> None:
    out = docs(name, capture="1")
    text = json.dumps(out)
    assert "${" not in text  # every placeholder filled in
    assert all(doc["schema"] == SCHEMA == 2 for doc in out.values())
    assert set(out["ecs"]) == ECS_KEYS
    probe = out["probe"]
    assert set(probe) == PROBE_KEYS and set(probe["capture"]) == CAPTURE_KEYS
    check_target_keys(probe, name)
    assert set(out["alternates"]) == {"step", "schema", "targets"}
    assert [t["url"] for t in out["alternates"]["targets"]] == list(ALTERNATE_URLS)
    for target in out["alternates"]["targets"]:
        assert set(target) == TARGET_KEYS
        check_target_keys(target, f"{name} alternate {target['host']}")
    if name == "legacy-powershell-4":
        assert out["facts"] == {"step": "facts", "schema": 2, "ps_version": "4.0"}
        return
    facts = out["facts"]
    assert set(facts) == FACT_KEYS
    assert facts["mp_status"] is None or set(facts["mp_status"]) == MP_STATUS_KEYS
    assert set(facts["defender_policy"]) == DEFENDER_POLICY_KEYS
    assert set(facts["defender_proxy"]) == DEFENDER_PROXY_KEYS
    # The first TCP entry is the schema-1 ``tcp``; the handshake needs a connection.
    if probe["tcp_all"]:
        assert probe["tcp"] == probe["tcp_all"][0]
    if not any(t["ok"] for t in probe["tcp_all"]):
        assert probe["tls"] is None


def test_healthy_host_details_are_consistent() -> None:
    out = docs("healthy")
    facts, ecs, probe = out["facts"], out["ecs"], out["probe"]
    build, ubr = facts["os_build"], facts["os_ubr"]
    assert facts["os_version"].endswith(build) and facts["ps_version"].endswith(f".{ubr}")
    assert facts["defender_install_location"].endswith("\\4.18.25050.5-0\\")
    folders = facts["platform_folders"]
    numeric = sorted(folders, key=lambda f: [int(p) for p in f[:-2].split(".")])
    assert folders == sorted(folders) != numeric and numeric[-1] == "4.18.25050.5-0"
    assert ecs["ran"] and ecs["signature"]["status"] == "Valid"
    geo = profile_for("ws-0042").geo
    assert f"ECS Url: https://mdav.{geo}.endpoint.security.microsoft.com/ecs/config/v1/" in (
        ecs["output"].split("\r\n"))
    assert probe["tcp"]["address"] == next(
        r["IPAddress"] for r in probe["dns"]["records"] if r["Type"] == "A")
    assert probe["http"]["cert"]["chain"][-1].startswith("CN=DigiCert Global Root G2")
    assert probe["capture"]["requested"] is False and probe["capture"]["path"] is None


def test_failure_scenarios_carry_windows_texts() -> None:
    nx = docs("dns-filter-nxdomain")["probe"]
    assert nx["dns"]["error"] == f"{ECS_HOST} : DNS name does not exist"
    assert nx["dns"]["native_code"] == 9003 and nx["tcp"]["address"] is None
    assert nx["http"]["error_message"] == f"The remote name could not be resolved: '{ECS_HOST}'"

    proxy = docs("proxy-requires-authentication")["probe"]
    assert "Proxy Server(s) :  proxy.contoso.com:8080" in proxy["winhttp_proxy"]["output"]
    assert proxy["http"]["status"] == 407 and proxy["tcp"]["socket_error"] == 10060

    firewall = docs("firewall-drops-443")["probe"]
    first_a = firewall["dns"]["records"][2]["IPAddress"]
    assert firewall["http"]["inner_errors"][0].endswith(f"{first_a}:443")
    assert docs("ecs-not-answering")["probe"]["http"]["elapsed_ms"] >= 7000

    tampered = docs("tampered-mpcmdrun")["ecs"]
    assert tampered["signature"]["status"] == "HashMismatch" and tampered["ran"] is False
    assert "4.18.25050.5-0\\MpCmdRun.exe might have been changed" in (
        tampered["signature"]["status_message"])
    old = docs("old-platform-without-ecs-switch")["ecs"]
    assert old["exit_code"] == 2147942487 and "ECS Url" not in old["output"]


def test_unknown_mpcmdrun_path_does_not_exist() -> None:
    doc = json.loads(run_step("healthy", script("ecs", MpCmdRun="C:\\Temp\\MpCmdRun.exe"))[0])
    assert doc["exists"] is False and doc["ran"] is False


def test_unknown_script_is_refused() -> None:
    with pytest.raises(UnknownScript):
        run_step("healthy", "Get-Process\n")
    with pytest.raises(UnknownScript):
        run_step("healthy", "# fleet-ecs step: facts v9\n")


def test_capture_is_deterministic_and_starts_like_an_etl() -> None:
    a = new_capture("ws-0001", "C:\\w\\capture.etl", 200_000, "FleetEcsTrace")
    b = new_capture("ws-0001", "C:\\w\\capture.etl", 200_000, "FleetEcsTrace")
    data = b"".join(a.chunks(70_000))
    assert len(data) == 200_000 and data == b"".join(b.blocks())
    assert a.sha256 == hashlib.sha256(data).hexdigest().upper()
    assert data[:4] == (65536).to_bytes(4, "little")  # WMI_BUFFER_HEADER.BufferSize
    assert "FleetEcsTrace".encode("utf-16-le") in data[:256]
    other = new_capture("ws-0002", "C:\\w\\capture.etl", 200_000, "FleetEcsTrace")
    assert other.sha256 != a.sha256


def test_probe_with_capture_then_cleanup_bookkeeping() -> None:
    state = HostState("ws-0042")
    probe = json.loads(run_step("healthy", script(
        "probe", Host=ECS_HOST, WorkDir=WORK_DIR, Capture="1", CaptureMaxMb="1"), state)[0])
    assert probe["capture"]["size"] == 256 * 1024 and not state.capture_running
    assert state.snapshot().files_left == (f"{WORK_DIR}\\capture.etl",)
    cleanup = json.loads(run_step("healthy", script("cleanup", WorkDir=WORK_DIR), state)[0])
    assert cleanup["removed"] == [f"{WORK_DIR}\\capture.etl"]
    assert state.snapshot().leftovers == []


def test_demo_specs_skip_network_and_broadcast_octets() -> None:
    addresses = demo_addresses(300, "127.77.0.0")
    assert addresses[0] == "127.77.0.1" and "127.77.0.255" not in addresses
    assert addresses[254] == "127.77.1.1" and len(set(addresses)) == 300
    cycle = len(scenarios.DEMO_ORDER)
    specs = demo_specs(cycle + 1)
    assert [s.name for s in specs[:2]] == ["ws-0001", "ws-0002"]
    assert specs[cycle].vars["scenario"] == scenarios.DEMO_ORDER[0]
    assert all(s.auth == "basic" and s.port == 5985 for s in specs[:17])
    assert all(s.credential == "simulator" and s.username == DEMO_USERNAME for s in specs)
    ntlm, https = specs[17], specs[18]
    assert (ntlm.auth, ntlm.message_encryption, ntlm.port) == ("ntlm", "auto", 5985)
    assert (https.transport.value, https.port, https.auth) == ("https", 5986, "basic")
    assert https.cert_validation == str(shared_ca_bundle())


def test_build_hosts_reads_vars_and_refuses_non_loopback() -> None:
    spec = HostSpec("srv-app-012", "127.9.9.9", 5985,
                    vars={"scenario": "expired-service-password", "sim_delay": "0.25",
                          "sim_capture_kb": 64})
    host = build_hosts([spec])[0]
    assert (host.delay, host.capture_kb, host.scenario) == (0.25, 64, "expired-service-password")
    assert host.users[DEMO_USERNAME] != DEMO_PASSWORD
    assert build_hosts([HostSpec("a", "127.9.9.9", 5985)])[0].users == {
        DEMO_USERNAME: DEMO_PASSWORD}
    with pytest.raises(SimulatorError, match="127"):
        build_hosts([HostSpec("a", "192.0.2.10", 5985)])
    with pytest.raises(SimulatorError, match="sim_delay"):
        build_hosts([HostSpec("a", "127.9.9.9", 5985, vars={"sim_delay": "soon"})])


def test_server_names_get_server_releases() -> None:
    assert profile_for("srv-app-012").os.product_type == 3
    assert profile_for("SRV-APP-012.contoso.com").computer_name == "SRV-APP-012"
    assert profile_for("ws-0001").os.product_type == 1


def test_next_probe_stops_a_stale_capture() -> None:
    state = HostState("ws-0042")
    ctx = HostContext(profile_for("ws-0042"), scenarios.get("healthy"), state, DEMO_USERNAME)
    interrupted = start_step(ctx, script("probe", WorkDir="C:\\old", Capture="1"))
    interrupted.begin()  # never finishes: its pipeline was stopped
    assert state.capture_running
    doc = json.loads(run_step("healthy", script("probe", WorkDir=WORK_DIR, Capture="0"), state)[0])
    capture = doc["capture"]
    assert capture["stale_stopped"] is True and capture["status_before_exit"] == 0
    assert "C:\\old\\capture.etl" in capture["status_before"] and not state.capture_running
