"""Real, unmodified pypsrp against the simulated fleet over loopback sockets."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import os
import resource
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan, SelectorSet

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import HostSpec
from fleet_ecs.probe.contract import SCHEMA, STEP_MARKER, psquote
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.fleet import FleetHandle, SimulatedFleet, build_hosts, demo_specs
from fleet_ecs.sim.fleet import demo_addresses, find_free_block

pytestmark = pytest.mark.timeout(30)

PS_URI = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
WORK_DIR = "C:\\Users\\fleet-ecs-demo\\AppData\\Local\\Temp\\fleet-ecs-t1"
FACT_KEYS = {
    "step", "schema", "ps_version", "ps_edition", "clr_version", "computer_name", "user",
    "is_admin", "os_caption", "os_version", "os_build", "os_ubr", "product_type", "temp_dir",
    "defender_install_location", "platform_root", "platform_folders", "windefend_service",
    "mdcoresvc_service", "mp_status", "mp_status_error", "is_elevated", "defender_policy",
    "onboarding_state", "onboarded_info", "sense_service", "defender_proxy", "telemetry_proxy",
    "winhttp_proxy",
}


def script(step: str, **inputs: object) -> str:
    """A minimal rendered step script: marker plus input lines (the body is irrelevant here)."""
    lines = [STEP_MARKER.format(step=step, schema=SCHEMA)]
    lines += [f"$FE_{name} = {psquote(value)}" for name, value in inputs.items()]
    lines.append("Write-Output 'the simulator never runs this'")
    return "\n".join(lines) + "\n"


# A per-process port keeps parallel test runs and a running demo (port 5985) apart.
PORT = 20000 + os.getpid() % 20000


def specs(n: int, scenario: str = "healthy", **extra: object) -> list[HostSpec]:
    base = find_free_block(n, port=PORT, https_port=None)
    return [
        dataclasses.replace(spec, port=PORT, vars={"scenario": scenario, **extra})
        for spec in demo_specs(n, base)
    ]


@pytest.fixture
def fleet_of() -> Iterator:
    handles: list[FleetHandle] = []

    def start(host_specs: list[HostSpec]) -> FleetHandle:
        handle = SimulatedFleet(build_hosts(host_specs)).start_in_thread()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def wsman_for(spec: HostSpec, password: str = DEMO_PASSWORD, **kwargs: object) -> WSMan:
    return WSMan(spec.address, port=spec.port, ssl=False, auth="basic", encryption="never",
                 username=DEMO_USERNAME, password=password, no_proxy=True, **kwargs)


def run(pool: RunspacePool, text: str) -> list:
    ps = PowerShell(pool)
    ps.add_script(text)
    return ps.invoke()


def test_facts_step_over_real_pypsrp(fleet_of) -> None:
    spec = specs(1)[0]
    fleet = fleet_of([spec])
    with RunspacePool(wsman_for(spec)) as pool:
        output = run(pool, script("facts", RunId="t1"))
        assert fleet.state(spec.name).shells_open == 1
        with PowerShell(pool) as ps:  # close() on exit sends the Terminate signal
            ps.add_script(script("facts", RunId="t1"))
            assert json.loads(ps.invoke()[0]) == json.loads(output[0])
    doc = json.loads(output[0])
    assert len(output) == 1 and set(doc) == FACT_KEYS
    assert doc["computer_name"] == spec.name.upper()
    assert doc["user"] == f"{spec.name.upper()}\\{DEMO_USERNAME}"
    assert doc["ps_version"].startswith("5.1.") and doc["is_admin"] is True
    state = fleet.state(spec.name)
    assert state.shells_open == 0 and not state.leftovers
    assert state.requests["Create"] == 1 and state.requests["Delete"] == 1
    assert state.requests["Command"] == 2 and state.requests["Signal"] == 1


def test_probe_capture_fetch_and_cleanup(fleet_of) -> None:
    spec = specs(1, sim_capture_kb=700)[0]
    fleet = fleet_of([spec])
    with RunspacePool(wsman_for(spec)) as pool:
        probe = json.loads(run(pool, script(
            "probe", Url="https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/x",
            Host="mdav.us.endpoint.security.microsoft.com", WorkDir=WORK_DIR, Capture="1",
            CaptureMaxMb="20", TimeoutSec="5", TraceSession="FleetEcsTrace", BodyLimit="100",
        ))[0])
        capture = probe["capture"]
        assert capture["started"] and capture["size"] == 700 * 1024
        assert "Status:             Running" in capture["start_output"]
        assert len(probe["http"]["body_excerpt"]) == 100 and probe["http"]["status"] == 200
        assert fleet.state(spec.name).files_left == (capture["path"],)

        # Fetch the way the controller streams it: begin_invoke, poll, pop outputs as they come.
        ps = PowerShell(pool)
        ps.add_script(script("fetch", Path=capture["path"], ChunkSize=128 * 1024))
        ps.begin_invoke()
        digest, received, polls = hashlib.sha256(), [], 0
        while ps.state == PSInvocationState.RUNNING:
            ps.poll_invoke()
            polls += 1
            received.extend(ps.output)
            ps.output.clear()
        received.extend(ps.output)
        summary = json.loads(received.pop())
        for chunk in received:
            digest.update(base64.b64decode(chunk))
        assert len(received) == 6 and polls > 1  # 700 KiB in 128 KiB chunks, several Receives
        assert digest.hexdigest().upper() == summary["sha256"] == capture["sha256"]
        assert summary["size"] == capture["size"]

        cleanup = json.loads(run(pool, script("cleanup", WorkDir=WORK_DIR,
                                              TraceSession="FleetEcsTrace"))[0])
        assert cleanup["removed"] == [capture["path"]] and cleanup["trace_stopped"] is False
        missing = json.loads(run(pool, script("fetch", Path=capture["path"], ChunkSize=1024))[0])
        assert "error" in missing and "does not exist" in missing["error"]
    assert fleet.leftovers() == {}


def test_stopped_probe_leaves_capture_running_until_cleanup(fleet_of) -> None:
    spec = specs(1, sim_delay=0.6)[0]
    fleet = fleet_of([spec])
    with RunspacePool(wsman_for(spec)) as pool:
        ps = PowerShell(pool)
        ps.add_script(script("probe", Host="h", WorkDir=WORK_DIR, Capture="1"))
        ps.begin_invoke()
        ps.stop()  # Signal powershell/signal/ctrl_c before the step answers
        state = fleet.state(spec.name)
        assert state.capture_running and len(state.files_left) == 1
        cleanup = json.loads(run(pool, script("cleanup", WorkDir=WORK_DIR))[0])
        assert cleanup["trace_stopped"] is True
    assert fleet.leftovers() == {}
    assert fleet.state(spec.name).requests["Signal"] == 1


def test_slow_receive_times_out_with_windows_fault_then_completes(fleet_of) -> None:
    spec = specs(1, sim_delay=1.2)[0]
    fleet = fleet_of([spec])
    with RunspacePool(wsman_for(spec, operation_timeout=1, read_timeout=5)) as pool:
        started = time.monotonic()
        with pytest.raises(WSManFaultError) as info:
            pool.shell.receive("stdout", timeout=1)  # the pool has nothing more to say
        assert info.value.code == 2150858793
        assert 0.9 < time.monotonic() - started < 3
        doc = json.loads(run(pool, script("facts"))[0])  # poll_invoke retries the fault
    assert doc["step"] == "facts"
    assert fleet.state(spec.name).requests["Receive"] >= 4


def test_wrong_password_is_refused_like_windows(fleet_of) -> None:
    spec = specs(1)[0]
    fleet = fleet_of([spec])
    with pytest.raises(AuthenticationError):
        RunspacePool(wsman_for(spec, password="not-the-password")).open()
    conn = http.client.HTTPConnection(spec.address, spec.port, timeout=5)
    conn.request("POST", "/wsman", body=b"<x/>", headers={"Content-Type": "application/soap+xml"})
    reply = conn.getresponse()
    assert reply.status == 401 and reply.read() == b""
    assert reply.msg.get_all("WWW-Authenticate") == ["Negotiate", 'Basic realm="WSMAN"']
    assert reply.getheader("Server") == "Microsoft-HTTPAPI/2.0"
    conn.close()
    # Only the login that carried credentials counts; an anonymous first request (the start
    # of every NTLM handshake) is not a refused login.
    assert fleet.state(spec.name).auth_failures == 1


def test_expired_password_scenario_refuses_the_demo_login(fleet_of) -> None:
    spec = specs(1, scenario="expired-service-password")[0]
    fleet_of([spec])
    with pytest.raises(AuthenticationError):
        RunspacePool(wsman_for(spec)).open()


def test_other_paths_and_methods_answer_like_httpsys(fleet_of) -> None:
    spec = specs(1)[0]
    fleet_of([spec])
    conn = http.client.HTTPConnection(spec.address, spec.port, timeout=5)
    conn.request("GET", "/")
    reply = conn.getresponse()
    assert reply.status == 404 and b"HTTP Error 404" in reply.read()
    conn.request("GET", "/wsman")  # same keep-alive connection
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 405 and reply.getheader("Server") == "Microsoft-HTTPAPI/2.0"
    conn.close()


def test_unknown_shell_id_is_a_wsman_fault(fleet_of) -> None:
    spec = specs(1)[0]
    fleet_of([spec])
    selectors = SelectorSet()
    selectors.add_option("ShellId", str(uuid.uuid4()).upper())
    with pytest.raises(WSManFaultError) as info, wsman_for(spec) as client:
        client.delete(PS_URI, selector_set=selectors)
    assert info.value.code == 2150858843
    assert "shell was not found" in info.value.reason


def test_unrecognised_script_gets_an_error_record(fleet_of) -> None:
    spec = specs(1)[0]
    fleet_of([spec])
    with RunspacePool(wsman_for(spec)) as pool:
        ps = PowerShell(pool)
        ps.add_script("Get-Process")
        assert ps.invoke() == []
        assert ps.streams.error and "only runs fleet-ecs step scripts" in str(ps.streams.error[0])


def test_address_in_use_raises_simulator_error() -> None:
    spec = specs(1)[0]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
        squatter.bind((spec.address, spec.port))
        squatter.listen()
        with pytest.raises(SimulatorError, match=f"{spec.address}:{spec.port}"):
            SimulatedFleet(build_hosts([spec])).start_in_thread()


def test_failed_start_releases_every_address() -> None:
    two = specs(2)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((two[1].address, two[1].port))
        squatter.listen()
        with pytest.raises(SimulatorError):
            SimulatedFleet(build_hosts(two)).start_in_thread()
    with socket.socket() as probe:  # the first host's listener must be gone again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((two[0].address, two[0].port))


def test_stopped_winrm_service_does_not_listen(fleet_of) -> None:
    spec = specs(1, scenario="winrm-service-stopped")[0]
    fleet_of([spec])
    with socket.socket() as client:
        client.settimeout(2)
        assert client.connect_ex((spec.address, spec.port)) != 0


def test_twenty_hosts_in_one_fleet(fleet_of) -> None:
    hosts = specs(20)
    assert len({h.address for h in hosts}) == 20
    fleet = fleet_of(hosts)

    def facts(spec: HostSpec) -> str:
        with RunspacePool(wsman_for(spec)) as pool:
            return json.loads(run(pool, script("facts"))[0])["computer_name"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        names = list(pool.map(facts, hosts))
    assert names == [h.name.upper() for h in hosts]
    assert fleet.leftovers() == {}
    assert all(fleet.state(h.name).requests["Create"] == 1 for h in hosts)


def test_thousand_hosts_in_one_process() -> None:
    """1,000 listeners at their own addresses on one port; real pypsrp reaches a sample."""
    hosts = specs(1000)
    addresses = {h.address for h in hosts}
    assert len(addresses) == 1000 and len({a.rsplit(".", 1)[0] for a in addresses}) == 4
    assert not any(a.endswith((".0", ".255")) for a in addresses)
    started = time.monotonic()
    with SimulatedFleet(build_hosts(hosts)).start_in_thread(timeout=20) as fleet:
        assert time.monotonic() - started < 10
        sample = hosts[::111] + [hosts[-1]]

        def facts(spec: HostSpec) -> str:
            with RunspacePool(wsman_for(spec)) as pool:
                return json.loads(run(pool, script("facts"))[0])["computer_name"]

        with ThreadPoolExecutor(max_workers=5) as pool:
            assert list(pool.map(facts, sample)) == [h.name.upper() for h in sample]
        assert fleet.leftovers() == {}
    with socket.socket() as probe:  # every address is released on stop
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((hosts[-1].address, hosts[-1].port))


def test_find_free_block_skips_a_block_with_one_address_taken() -> None:
    first = find_free_block(600, port=PORT, https_port=None)
    taken = demo_addresses(600, first)[300]  # in the block's second /24
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((taken, PORT))
        squatter.listen()
        other = find_free_block(600, port=PORT, https_port=None)
        assert other != first and taken not in demo_addresses(600, other)
        clash = dataclasses.replace(specs(1)[0], address=taken, port=PORT)
        with pytest.raises(SimulatorError, match=f"cannot listen on {taken}:{PORT}"):
            SimulatedFleet(build_hosts([clash])).start_in_thread()


def test_fleet_start_raises_a_low_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 512:
        pytest.skip(f"hard open-file limit {hard} leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        with SimulatedFleet(build_hosts(specs(200))).start_in_thread():
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
