"""Schema-2 documents of the simulated fleet: the issue-4 situations, localized hosts, sim_raw.

Mostly the document builders in memory (fast); a few checks drive real pypsrp against a fleet
over loopback, the way the controller will.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Callable, Iterator

import pytest
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from test_scenarios import (
    ALTERNATE_URLS,
    ECS_HOST,
    MICROSOFT_ROOTS,
    WORK_DIR,
    docs,
    run_step,
    script,
)

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import HostSpec
from fleet_ecs.sim import scenarios
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.fleet import FleetHandle, SimulatedFleet, build_hosts, demo_specs
from fleet_ecs.sim.fleet import find_free_block
from fleet_ecs.sim.raw import apply_raw, check_raw
from fleet_ecs.sim.windows_text import profile_for

pytestmark = pytest.mark.timeout(30)

SINKHOLES = ("0.0.0.0/32", "::/128", "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10")


def root_thumbprint(cert: dict | None) -> str | None:
    return cert["chain"][-1]["thumbprint"] if cert and cert.get("chain") else None


def microsoft_answer(target: dict) -> bool:
    """A path got an HTTP response and the direct handshake chains to a Microsoft root."""
    answered = target["machine"]["status"] is not None or target["http"]["status"] is not None
    tls = target["tls"]
    return answered and bool(tls and tls["ok"]) and root_thumbprint(tls["cert"]) in MICROSOFT_ROOTS


# --- existing scenarios keep their situation under schema 2 ----------------------------------

def test_healthy_schema2_facts_and_paths() -> None:
    out = docs("healthy")
    facts, probe = out["facts"], out["probe"]
    assert facts["is_elevated"] is True and facts["onboarding_state"] == 1
    assert facts["sense_service"] == "Running" and facts["telemetry_proxy"] is None
    assert all(v is None for v in facts["defender_policy"].values())
    assert all(v is None for v in facts["defender_proxy"].values())
    info = json.loads(facts["onboarded_info"])
    geo = profile_for("ws-0042").geo.upper()
    assert json.loads(info["body"])["vortexGeoLocation"] == geo
    assert f'\\"vortexGeoLocation\\":\\"{geo}\\"' in facts["onboarded_info"]
    assert len(facts["onboarded_info"]) <= 4096
    tls = probe["tls"]
    assert tls["ok"] and tls["protocol"] == "Tls12" and tls["mechanism"] == "sslstream"
    assert root_thumbprint(tls["cert"]) == "DF3C24F9BFD666761B268073FE06D1CC8D4F82A4"
    assert probe["http"]["cert"]["chain"][-1].startswith("CN=DigiCert Global Root G2")
    assert tls["address"] == probe["tcp_all"][0]["address"]
    machine = probe["machine"]
    assert (machine["mechanism"], machine["proxy"], machine["proxy_source"]) == (
        "winhttp-com", None, "winhttp-default")
    assert machine["status"] == 200 and machine["error_code"] is None
    http = probe["http"]
    assert http["tls12_available"] is True and 0 < http["first_byte_ms"] < http["elapsed_ms"]
    assert len(probe["tcp_all"]) == 2 and all(t["ok"] for t in probe["tcp_all"])
    assert probe["capture"]["other_session"] is False


def test_firewall_drops_443_fails_every_address_and_mechanism() -> None:
    probe = docs("firewall-drops-443")["probe"]
    assert probe["tcp_all"] and all(
        not t["ok"] and t["socket_error"] == 10060 for t in probe["tcp_all"])
    assert probe["tls"] is None
    assert probe["machine"]["proxy_source"] == "winhttp-default"
    assert probe["machine"]["error_code"] in (12002, 12029) and probe["machine"]["status"] is None
    assert probe["machine"]["headers"] == {} and probe["http"]["headers"] == {}


@pytest.mark.parametrize("name", ["proxy-requires-authentication", "trusted-tls-inspection",
                                  "proxy-block-page"])
def test_proxy_scenarios_send_the_machine_path_through_the_winhttp_proxy(name: str) -> None:
    probe = docs(name)["probe"]
    # As the template reports it: WinHTTP's own proxy, named only in the raw netsh text.
    assert probe["machine"]["proxy_source"] == "winhttp-default"
    assert probe["machine"]["proxy"] is None
    assert f"Proxy Server(s) :  {scenarios.PROXY}" in probe["winhttp_proxy"]["output"]


def test_tls_inspection_roots_both_chains_in_the_contoso_ca() -> None:
    probe = docs("trusted-tls-inspection")["probe"]
    assert probe["tls"]["cert"]["chain"][-1]["subject"].startswith("CN=Contoso Root CA")
    assert root_thumbprint(probe["tls"]["cert"]) not in MICROSOFT_ROOTS
    assert probe["http"]["cert"]["chain"][-1].startswith("CN=Contoso Root CA")
    assert probe["machine"]["status"] == 200  # WinHTTP trusts the machine store: it "works"


def test_old_platform_has_no_geo_and_its_twin_has_eu() -> None:
    old = docs("old-platform-without-ecs-switch")
    body = json.loads(json.loads(old["facts"]["onboarded_info"])["body"])
    assert "vortexGeoLocation" not in body and "partnerGeoLocation" not in body
    assert "ECS Url" not in old["ecs"]["output"]
    twin = docs("ecs-switch-unknown-geo-known")
    body = json.loads(json.loads(twin["facts"]["onboarded_info"])["body"])
    assert body["vortexGeoLocation"] == "EU" and twin["ecs"]["output"] == old["ecs"]["output"]
    assert twin["probe"]["machine"]["status"] == 200


# --- the new situations: each shows its trigger (/tmp/issue4_semantics.md) --------------------

def _defender_stopped(d: dict) -> None:
    assert d["facts"]["windefend_service"] == "Stopped"
    assert d["facts"]["mp_status"]["AMRunningMode"] == "Not running"


def _passive(d: dict) -> None:
    assert d["facts"]["mp_status"]["AMRunningMode"] == "Passive Mode"
    assert d["facts"]["defender_policy"]["ForceDefenderPassiveMode"] == 1
    assert microsoft_answer(d["probe"])


def _edr_block(d: dict) -> None:
    assert d["facts"]["mp_status"]["AMRunningMode"] == "EDR Block Mode"
    policy = d["facts"]["defender_policy"]
    assert policy["ForceDefenderPassiveMode"] is None and policy["PassiveMode"] is None
    assert microsoft_answer(d["probe"])


def _core_stopped(d: dict) -> None:
    assert d["facts"]["mdcoresvc_service"] == "Stopped"
    assert d["facts"]["windefend_service"] == "Running"


def _ecs_disabled(d: dict) -> None:
    assert d["facts"]["defender_policy"]["DisableCoreServiceECSIntegration"] == 1


def _not_onboarded(d: dict) -> None:
    facts = d["facts"]
    assert (facts["onboarding_state"], facts["sense_service"], facts["onboarded_info"]) == (
        0, "Stopped", None)


def _platform_old(d: dict) -> None:
    facts = d["facts"]
    assert facts["product_type"] == 3 and "Server" in facts["os_caption"]
    assert facts["mp_status"]["AMProductVersion"] == "4.18.24090.11"
    assert facts["defender_install_location"].endswith("\\4.18.24090.11-0\\")
    assert "4.18.25050.5-0" not in facts["platform_folders"]
    assert facts["mdcoresvc_service"] is None
    assert d["ecs"]["exists"] and d["ecs"]["path"].endswith("\\4.18.24090.11-0\\MpCmdRun.exe")


def _sinkhole(d: dict) -> None:
    for target in [d["probe"], *d["alternates"]["targets"]]:
        answers = [r["IPAddress"] for r in target["dns"]["records"] if "IPAddress" in r]
        assert answers == ["0.0.0.0"] and target["dns"]["error"] is None
        assert all(any(ipaddress.ip_address(a) in ipaddress.ip_network(n) for n in SINKHOLES)
                   for a in answers)
        assert [t["address"] for t in target["tcp_all"]] == answers
        assert not any(t["ok"] for t in target["tcp_all"]) and target["tls"] is None


def _answers_443(d: dict) -> None:
    probe = d["probe"]
    assert probe["tcp_all"] and all(t["ok"] for t in probe["tcp_all"])
    assert probe["tls"]["ok"] is False and probe["tls"]["cert"] is None
    assert probe["machine"]["status"] is None and probe["http"]["status"] is None


def _regional(d: dict) -> None:
    probe = d["probe"]
    assert not any(t["ok"] for t in probe["tcp_all"]) and probe["tls"] is None
    assert probe["machine"]["status"] is None and probe["http"]["status"] is None
    targets = d["alternates"]["targets"]
    assert targets and all(microsoft_answer(t) for t in targets)
    assert all(t["machine"]["status"] == 200 == t["http"]["status"] for t in targets)


def _user_proxy(d: dict) -> None:
    probe = d["probe"]
    assert probe["machine"]["proxy_source"] == "winhttp-default" and probe["machine"]["status"] == 200
    assert probe["http"]["proxy"] and probe["http"]["status"] is None
    assert probe["http"]["error_status"] == "ConnectFailure"
    assert "Direct access" in probe["winhttp_proxy"]["output"]
    assert microsoft_answer(probe)


def _winhttp_proxy_blocks(d: dict) -> None:
    probe = d["probe"]
    machine, http = probe["machine"], probe["http"]
    assert machine["proxy_source"] == "winhttp-default" and machine["proxy"] is None
    assert "Proxy Server(s)" in probe["winhttp_proxy"]["output"]
    assert machine["status"] is None and machine["error_code"] == 12029
    assert http["status"] == 200 and http["proxy"]
    assert http["cert"]["chain"][-1].startswith("CN=DigiCert Global Root G2")


def _not_elevated(d: dict) -> None:
    capture = d["probe"]["capture"]
    assert d["facts"]["is_elevated"] is False and d["facts"]["is_admin"] is True
    assert capture["requested"] and not capture["started"] and capture["path"] is None
    assert capture["start_exit"] == 1 and "requires elevation" in capture["start_output"]


def _other_trace(d: dict) -> None:
    capture = d["probe"]["capture"]
    assert capture["other_session"] is True and capture["started"] is False
    assert capture["status_before_exit"] == 0 and capture["stale_stopped"] is False
    assert "NetTrace.etl" in capture["status_before"] and WORK_DIR not in capture["status_before"]
    assert capture["path"] is None and capture["stop_output"] is None
    assert microsoft_answer(d["probe"])


TRIGGERS: dict[str, Callable[[dict], None]] = {
    "defender-service-stopped": _defender_stopped,
    "passive-mode-ecs-reachable": _passive,
    "edr-block-mode-normal": _edr_block,
    "core-service-stopped": _core_stopped,
    "ecs-disabled-by-policy": _ecs_disabled,
    "not-onboarded": _not_onboarded,
    "platform-before-core-service": _platform_old,
    "dns-sinkhole": _sinkhole,
    "firewall-answers-443": _answers_443,
    "regional-endpoint-blocked": _regional,
    "user-proxy-only": _user_proxy,
    "winhttp-proxy-blocks-system": _winhttp_proxy_blocks,
    "not-elevated-for-capture": _not_elevated,
    "someone-elses-trace-running": _other_trace,
}


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_new_scenario_shows_its_trigger(name: str) -> None:
    TRIGGERS[name](docs(name, capture="1"))


def test_healthy_does_not_show_the_triggers() -> None:
    # The checks above can fail: the baseline trips (nearly) all of them.
    healthy = docs("healthy", capture="1")
    for name, check in TRIGGERS.items():
        if name in ("passive-mode-ecs-reachable", "edr-block-mode-normal"):
            continue  # these two assert a healthy network too
        with pytest.raises(AssertionError):
            check(healthy)


def test_capture_refusal_leaves_no_capture_on_the_host() -> None:
    from fleet_ecs.sim.state import HostState

    for name in ("not-elevated-for-capture", "someone-elses-trace-running"):
        state = HostState("ws-0042")
        run_step(name, script("probe", Host=ECS_HOST, WorkDir=WORK_DIR, Capture="1"), state)
        assert not state.capture_running and state.snapshot().files_left == ()


def test_alternates_follow_the_host_situation_by_default() -> None:
    nx = docs("dns-filter-nxdomain")["alternates"]["targets"]
    assert [t["host"] for t in nx] == ["ecs.office.com", "mdav.us.endpoint.security.microsoft.com"]
    for target in nx:
        assert target["dns"]["native_code"] == 9003 and target["dns"]["records"] == []
        assert target["host"] in target["dns"]["error"] and target["tcp_all"] == []
        assert target["machine"]["error_code"] == 12007
    blocked = docs("firewall-drops-443")["alternates"]["targets"]
    assert all(t["tcp_all"] and not any(x["ok"] for x in t["tcp_all"]) for t in blocked)
    # Each name has its own addresses, and the errors name them.
    first = [t["tcp_all"][0] for t in blocked]
    assert first[0]["address"] != first[1]["address"]
    assert all(t["error"].endswith(f"{t['address']}:443") for t in first)
    assert docs("healthy")["alternates"]["targets"][0]["machine"]["status"] == 200


def test_alternates_step_without_urls_has_no_targets() -> None:
    doc = json.loads(run_step("healthy", script("alternates", Urls="", TimeoutSec="5"))[0])
    assert doc == {"step": "alternates", "schema": 2, "targets": []}


def test_defender_proxy_input_routes_the_machine_path() -> None:
    doc = json.loads(run_step("healthy", script(
        "probe", Host=ECS_HOST, WorkDir=WORK_DIR, Capture="0",
        DefenderProxy="defproxy.contoso.com:3128", MachineProxy="defproxy.contoso.com:3128"))[0])
    assert (doc["machine"]["proxy"], doc["machine"]["proxy_source"]) == (
        "defproxy.contoso.com:3128", "defender")


def test_documents_reach_the_expected_verdicts() -> None:
    """The lead's diagnosis agrees with every probe-level scenario's expected verdict."""
    from fleet_ecs.probe.diagnose import diagnose

    wrong = []
    for name in scenarios.DEMO_ORDER:
        s = scenarios.get(name)
        if s.expected.value.startswith(("winrm_", "client_")) or s.name in (
                "expired-service-password", "access-denied"):
            continue  # decided by the transport or the scanning machine, not the documents
        verdict = diagnose(docs(name, capture="1")).diagnosis
        if (verdict.category, verdict.status) != (s.expected, s.expected_status):
            wrong.append(f"{name}: {verdict.category.value}/{verdict.status.value}")
    assert wrong == []


# --- localized hosts ---------------------------------------------------------------------------

LOCALIZED = {
    "german-windows-healthy": "healthy",
    "french-windows-proxy-auth": "proxy-requires-authentication",
    "spanish-windows-dns-failure": "dns-filter-nxdomain",
    "japanese-windows-healthy": "healthy",
    "chinese-windows-direct-tcp-blocked": "firewall-drops-443",
}
ENGLISH_MARKERS = (
    "Current WinHTTP proxy settings", "Direct access", "Proxy Server(s)", "Bypass List",
    "There is no trace session", "Trace configuration", "Merging traces",
    "successfully stopped", "DNS name does not exist", "could not be resolved",
    "Unable to connect", "connection attempt failed", "Proxy Authentication Required.",
    "The operation timed out", "ECS connection information", "ECS connection status",
)


def _codes(d: dict) -> dict:
    """What Windows does not localize: statuses, error numbers, names of enum values."""
    p = d["probe"]
    return {
        "dns": (p["dns"]["native_code"], p["dns"]["error_id"], len(p["dns"]["records"])),
        "tcp": [(t["ok"], t["socket_error"]) for t in p["tcp_all"]],
        "tls": None if p["tls"] is None else p["tls"]["ok"],
        "machine": (p["machine"]["status"], p["machine"]["error_code"],
                    p["machine"]["proxy_source"]),
        "http": (p["http"]["status"], p["http"]["status_description"],
                 p["http"]["error_status"]),
        "capture": (p["capture"]["start_exit"], p["capture"]["stop_exit"]),
        "ecs": (d["ecs"]["exit_code"], "ECS Url: https://" in (d["ecs"]["output"] or "")),
    }


def _texts(d: dict) -> str:
    p = d["probe"]
    texts = [d["ecs"]["output"], p["winhttp_proxy"]["output"], p["dns"]["error"],
             p["http"]["error_message"], p["machine"]["error_message"], *p["http"]["inner_errors"],
             *[t["error"] for t in p["tcp_all"]]]
    texts += [p["capture"][k] for k in ("status_before", "start_output", "stop_output")]
    return "\n".join(t for t in texts if t)


@pytest.mark.parametrize("name", sorted(LOCALIZED))
def test_localized_host_keeps_codes_and_translates_words(name: str) -> None:
    local, english = docs(name, capture="1"), docs(LOCALIZED[name], capture="1")
    assert _codes(local) == _codes(english)
    words = _texts(local)
    assert [m for m in ENGLISH_MARKERS if m in words] == []
    assert [m for m in ENGLISH_MARKERS if m in _texts(english)] != []


def test_localized_netsh_texts_seen_in_the_field() -> None:
    ja = docs("japanese-windows-healthy")["probe"]["winhttp_proxy"]["output"]
    assert "現在の WinHTTP プロキシ設定:" in ja and "直接アクセス (プロキシ サーバーなし)。" in ja
    zh = docs("chinese-windows-direct-tcp-blocked")["probe"]
    assert "直接访问(没有代理服务器)。" in zh["winhttp_proxy"]["output"]
    assert zh["tcp_all"][0]["error"].startswith("由于连接方在一段时间后没有正确答复")
    fr = docs("french-windows-proxy-auth")["probe"]
    # Collapsed padding: one label, two spaces, the value (no column alignment).
    assert "    Serveur(s) proxy :  proxy.contoso.com:8080\r\n" in fr["winhttp_proxy"]["output"]
    assert "(407) Authentification proxy requise" in fr["http"]["error_message"]
    es = docs("spanish-windows-dns-failure")["probe"]
    assert es["http"]["error_message"] == f"No se puede resolver el nombre remoto: '{ECS_HOST}'"
    de = docs("german-windows-healthy")["probe"]
    assert "Direkter Zugriff (kein Proxyserver)." in de["winhttp_proxy"]["output"]


# --- sim_raw -----------------------------------------------------------------------------------

RAW = {
    "facts.mp_status.AMRunningMode": "Passive Mode",
    "ecs.output": "ECS Url: https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/\r\n",
    "probe.winhttp_proxy.output": "\r\nsome new netsh shape\r\n",
    "probe.tcp_all.1.socket_error": 10065,
    "probe.http.brand_new_key": {"x": 1},
    "alternates.targets.0.http.status": 451,
    "alternates.targets.9.http.status": 200,  # no such target: skipped, not an error
}


def test_sim_raw_replaces_values_verbatim() -> None:
    out = docs("healthy", raw=check_raw("ws-0042", RAW))
    assert out["facts"]["mp_status"]["AMRunningMode"] == "Passive Mode"
    assert out["facts"]["mp_status"]["AMProductVersion"] == "4.18.25050.5"  # the rest stays
    assert out["ecs"]["output"] == RAW["ecs.output"]
    probe = out["probe"]
    assert probe["winhttp_proxy"] == {"output": "\r\nsome new netsh shape\r\n", "exit_code": 0}
    assert [t["socket_error"] for t in probe["tcp_all"]] == [None, 10065]
    assert probe["http"]["brand_new_key"] == {"x": 1}
    targets = out["alternates"]["targets"]
    assert [t["http"]["status"] for t in targets] == [451, 200]


def test_sim_raw_values_are_not_templated_and_apply_to_legacy_facts() -> None:
    raw = check_raw("h", {"facts.ps_version": "${host}", "facts.extra": [1, "${ip}"]})
    facts = docs("legacy-powershell-4", raw=raw)["facts"]
    assert facts == {"step": "facts", "schema": 2, "ps_version": "${host}",
                     "extra": [1, "${ip}"]}


def test_apply_raw_leaves_the_document_alone() -> None:
    doc = {"step": "probe", "schema": 2, "tls": None, "http": {"status": 200}}
    out = apply_raw(doc, "probe", {"probe.tls.ok": False, "probe.http.status": 503})
    assert out["tls"] == {"ok": False} and out["http"]["status"] == 503
    assert doc == {"step": "probe", "schema": 2, "tls": None, "http": {"status": 200}}
    assert apply_raw(doc, "facts", {"probe.http.status": 1}) is doc


@pytest.mark.parametrize("raw, message", [
    ({"prob.http.status": 1}, r"host srv-1: sim_raw path 'prob.http.status' names unknown step"),
    ({"probe": 1}, r"host srv-1: sim_raw path 'probe' must name a key"),
    ({"probe..status": 1}, r"host srv-1: sim_raw path 'probe..status'"),
    ({"facts.schema": 3}, r"host srv-1: sim_raw path 'facts.schema' may not replace"),
    ("not json", r"host srv-1: sim_raw must be a mapping or a JSON object"),
    (["facts.x"], r"host srv-1: sim_raw must be a mapping"),
])
def test_bad_sim_raw_is_refused_naming_host_and_path(raw: object, message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        check_raw("srv-1", raw)
    spec = HostSpec("srv-1", "127.9.9.9", 5985, vars={"sim_raw": raw})
    with pytest.raises(SimulatorError, match=message):
        build_hosts([spec])


def test_sim_raw_from_an_ini_inventory_is_json_text() -> None:
    spec = HostSpec("a", "127.9.9.9", 5985,
                    vars={"sim_raw": '{"ecs.exit_code": 5, "probe.tls": null}'})
    assert build_hosts([spec])[0].raw == {"ecs.exit_code": 5, "probe.tls": None}
    assert build_hosts([HostSpec("a", "127.9.9.9", 5985)])[0].raw == {}


# --- over real pypsrp ----------------------------------------------------------------------------

PORT = 20000 + (os.getpid() + 7919) % 20000


@pytest.fixture
def fleet_of() -> Iterator[Callable[[list[HostSpec]], FleetHandle]]:
    handles: list[FleetHandle] = []

    def start(host_specs: list[HostSpec]) -> FleetHandle:
        handle = SimulatedFleet(build_hosts(host_specs)).start_in_thread()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def _specs(scenario_names: list[str], **extra: object) -> list[HostSpec]:
    base = find_free_block(len(scenario_names), port=PORT, https_port=None)
    specs = demo_specs(len(scenario_names), base)
    return [dataclasses.replace(spec, port=PORT, vars={"scenario": name, **extra})
            for spec, name in zip(specs, scenario_names)]


def _run(spec: HostSpec, text: str) -> dict:
    wsman = WSMan(spec.address, port=spec.port, ssl=False, auth="basic", encryption="never",
                  username=DEMO_USERNAME, password=DEMO_PASSWORD, no_proxy=True)
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_script(text)
        output = ps.invoke()
    assert len(output) == 1 and not ps.had_errors
    return json.loads(output[0])


def test_regional_block_and_sim_raw_over_pypsrp(fleet_of) -> None:
    raw = {"facts.mp_status.AMRunningMode": "SxS Passive Mode",
           "probe.capture.status_before": "Ein neuer Text.\r\n"}
    regional, sinkhole = _specs(["regional-endpoint-blocked", "dns-sinkhole"], sim_raw=raw)
    fleet_of([regional, sinkhole])
    facts = _run(regional, script("facts", RunId="t4"))
    assert facts["mp_status"]["AMRunningMode"] == "SxS Passive Mode"
    assert facts["schema"] == 2 and facts["is_elevated"] is True
    probe = _run(regional, script(
        "probe", Url=f"https://{ECS_HOST}/ecs/config/v1/", Host=ECS_HOST, WorkDir=WORK_DIR,
        Capture="0", CaptureMaxMb="20", TimeoutSec="5", TraceSession="FleetEcsTrace",
        BodyLimit="512", DefenderProxy="", MachineProxy=""))
    assert probe["capture"]["status_before"] == "Ein neuer Text.\r\n"
    assert probe["tls"] is None and probe["machine"]["error_code"] == 12002
    alternates = _run(regional, script("alternates", Urls="|".join(ALTERNATE_URLS),
                                       TimeoutSec="5", BodyLimit="512", DefenderProxy=""))
    assert [microsoft_answer(t) for t in alternates["targets"]] == [True, True]
    assert all(len(t["http"]["body_excerpt"]) <= 512 for t in alternates["targets"])
    sunk = _run(sinkhole, script("alternates", Urls=ALTERNATE_URLS[0], TimeoutSec="5"))
    assert sunk["targets"][0]["dns"]["records"][0]["IPAddress"] == "0.0.0.0"


def test_localized_text_survives_the_wire(fleet_of) -> None:
    (spec,) = _specs(["japanese-windows-healthy"])
    fleet_of([spec])
    probe = _run(spec, script("probe", Host=ECS_HOST, WorkDir=WORK_DIR, Capture="0"))
    assert "直接アクセス (プロキシ サーバーなし)。" in probe["winhttp_proxy"]["output"]
    assert probe["capture"]["status_before"] == "現在進行中のトレース セッションはありません。\r\n"
