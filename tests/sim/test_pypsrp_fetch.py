"""pypsrp's own ``Client.fetch`` against a simulated host (the fetch benchmark's baseline)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypsrp.client import Client
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from fleet_ecs.probe.contract import SCHEMA, STEP_MARKER, psquote
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.fleet import (
    FleetHandle,
    SimulatedFleet,
    build_hosts,
    demo_specs,
    find_free_block,
)
from fleet_ecs.sim.pypsrp_fetch import is_pypsrp_fetch

pytestmark = pytest.mark.timeout(30)

PORT = 20000 + (os.getpid() + 7) % 20000
WORK_DIR = "C:\\Users\\fleet-ecs-demo\\AppData\\Local\\Temp\\fleet-ecs-pf1"
CAPTURE_KB = 1024


@pytest.fixture
def host() -> Iterator[tuple[FleetHandle, str]]:
    base = find_free_block(1, port=PORT, https_port=None)
    spec = dataclasses.replace(
        demo_specs(1, base)[0], port=PORT,
        vars={"scenario": "healthy", "sim_capture_kb": CAPTURE_KB},
    )
    handle = SimulatedFleet(build_hosts([spec])).start_in_thread()
    try:
        yield handle, spec.address
    finally:
        handle.stop()


def _wsman(address: str) -> WSMan:
    return WSMan(address, port=PORT, ssl=False, auth="basic", encryption="never",
                 username=DEMO_USERNAME, password=DEMO_PASSWORD, no_proxy=True)


def _start_capture(address: str) -> dict:
    """Run the probe step with a capture, as the controller would; returns its capture doc."""
    lines = [STEP_MARKER.format(step="probe", schema=SCHEMA)]
    inputs = {"Url": "https://ecs.office.com/config/v1/", "Host": "ecs.office.com",
              "WorkDir": WORK_DIR, "Capture": "1", "CaptureMaxMb": "20", "TimeoutSec": "3",
              "TraceSession": "FleetEcsTrace", "BodyLimit": "2048", "DefenderProxy": ""}
    lines += [f"$FE_{name} = {psquote(value)}" for name, value in inputs.items()]
    with RunspacePool(_wsman(address)) as pool:
        ps = PowerShell(pool)
        ps.add_script("\n".join(lines) + "\n")
        ps.invoke()
    return json.loads(ps.output[0])["capture"]


def test_recognises_only_pypsrps_fetch_script() -> None:
    from pypsrp._utils import get_pwsh_script

    assert is_pypsrp_fetch(get_pwsh_script("fetch.ps1"))
    assert not is_pypsrp_fetch(get_pwsh_script("copy.ps1"))
    assert not is_pypsrp_fetch(STEP_MARKER.format(step="fetch", schema=SCHEMA))


def test_client_fetch_gets_the_whole_capture_with_a_matching_hash(host, tmp_path: Path) -> None:
    handle, address = host
    capture = _start_capture(address)
    assert capture["size"] == CAPTURE_KB * 1024
    dest = tmp_path / "capture.etl"
    client = Client(address, port=PORT, ssl=False, auth="basic", encryption="never",
                    username=DEMO_USERNAME, password=DEMO_PASSWORD, no_proxy=True)
    try:
        client.fetch(capture["path"], str(dest))  # raises on a SHA-1 mismatch
    finally:
        client.close()
    data = dest.read_bytes()
    assert len(data) == CAPTURE_KB * 1024
    assert hashlib.sha256(data).hexdigest().upper() == capture["sha256"]
    assert handle.state("ws-0001").shells_open == 0
