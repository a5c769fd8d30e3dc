"""The whole path with real pypsrp against the simulated fleet: inventory in, results out.

These tests go through the CLI (typer's runner, in process) so that exit codes, messages and
the run directory are exactly what a user gets.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_inventory import write_sim_inventory
from typer.testing import CliRunner

from fleet_ecs import cli
from fleet_ecs.models import CaptureMode, Category, ScanSettings
from fleet_ecs.sim.credentials import DEMO_PASSWORD
from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts, demo_specs, find_free_block
from fleet_ecs.sim.scenarios import DEMO_ORDER
from fleet_ecs.sim.scenarios import get as scenario

REPO = Path(__file__).resolve().parents[1]
PROBE_CATEGORIES = [c for c in Category if c.precedence <= Category.OK.precedence]


def run_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.app, list(args), env=env, catch_exceptions=False)


def read_csv(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def write_inventory(path: Path, base: str, scenarios: list[str], credential="simulator") -> None:
    write_sim_inventory(path, scenarios, credential=credential, base=base)


@pytest.fixture
def fleet_inventory(tmp_path):
    """An inventory file plus its simulated fleet, running for the test."""
    handles = []

    def make(scenarios: list[str], credential: str = "simulator") -> Path:
        base = find_free_block(len(scenarios))
        inventory = tmp_path / "fleet.yaml"
        write_inventory(inventory, base, scenarios, credential)
        from fleet_ecs.inventory import load_inventory

        handles.append(SimulatedFleet(build_hosts(load_inventory(inventory).hosts))
                       .start_in_thread())
        return inventory

    yield make
    for handle in handles:
        handle.stop()


def test_thin_slice_one_healthy_host_to_a_csv_row(fleet_inventory, tmp_path):
    inventory = fleet_inventory(["healthy"])
    result = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    (row,) = read_csv(tmp_path / "run")
    assert (row["host"], row["status"], row["category"]) == ("h01", "ok", "ok")
    assert row["ecs_url"].startswith("https://mdav.")
    assert (row["http_status"], row["dns_ok"], row["tcp_ok"]) == ("200", "true", "true")
    # on-failure capture policy: a healthy host's capture is not fetched
    assert row["capture_path"] == ""
    assert (tmp_path / "run" / "report.html").is_file()
    assert (tmp_path / "run" / "hosts" / "h01" / "report.txt").is_file()


def test_some_host_not_ok_exits_1(fleet_inventory, tmp_path):
    inventory = fleet_inventory(["healthy", "dns-filter-nxdomain"])
    result = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    rows = {r["host"]: r for r in read_csv(tmp_path / "run")}
    assert rows["h02"]["category"] == "dns_failure"
    assert rows["h02"]["capture_path"] == "hosts/h02/capture.etl"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo host per scenario: every category the simulator can provoke, in one scan."""
    out = tmp_path_factory.mktemp("demo") / "run"
    result = run_cli("demo", "--hosts", str(len(DEMO_ORDER)), "--out", str(out))
    return result, out


def test_demo_covers_every_category(demo_run):
    result, out = demo_run
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    categories = {row["category"] for row in read_csv(out)}
    assert {c.value for c in PROBE_CATEGORIES} <= categories
    first_20 = {scenario(DEMO_ORDER[i % len(DEMO_ORDER)]).expected.value for i in range(20)}
    assert {c.value for c in PROBE_CATEGORIES} <= first_20  # the README's 20-host demo
    # One host per scenario (fewer than 80) shows every category the issues name; only the
    # run-level ones (a stopped scan, a host past its deadline, an unknown error) need no host.
    run_level = {"winrm_error", "probe_error", "deadline_exceeded", "cancelled"}
    assert categories == {c.value for c in Category} - run_level


def test_demo_hosts_stay_within_their_deadline_with_one_line_errors(demo_run):
    from fleet_ecs.transport.session import CLEANUP_GRACE

    _, out = demo_run
    for row in read_csv(out):
        assert float(row["duration_s"]) <= float(row["deadline_s"]) + CLEANUP_GRACE, row["host"]
        assert "\n" not in row["error"]
        if row["status"] != "ok" and row["category"].startswith("winrm_"):
            assert row["error"], row["host"]


def test_demo_verdicts_match_the_scenarios(demo_run):
    _, out = demo_run
    for i, row in enumerate(read_csv(out)):
        expected = scenario(DEMO_ORDER[i % len(DEMO_ORDER)])
        wanted = (expected.expected, expected.expected_status)
        assert (row["category"], row["status"]) == wanted, row


def test_demo_failing_hosts_have_evidence_and_captures(demo_run):
    _, out = demo_run
    for result_file in sorted((out / "hosts").glob("*/result.json")):
        data = json.loads(result_file.read_text())
        if data["status"] == "ok":
            continue
        assert data["evidence"], data["host"]
        assert data["hint"]
        capture_ran = (data["facts"].get("probe") or {}).get("capture", {}).get("started")
        if capture_ran:  # the ECS check itself ran, under a capture, and failed: fetched
            (capture,) = [f for f in data["files"] if f["name"] == "capture"]
            blob = (out / capture["path"]).read_bytes()
            assert len(blob) == capture["size"] > 0
            assert hashlib.sha256(blob).hexdigest().upper() == capture["sha256"].upper()
            assert capture["sha256"].upper() == data["facts"]["probe"]["capture"]["sha256"]


def test_report_rebuilds_the_same_outputs(demo_run):
    _, out = demo_run
    before = {name: (out / name).read_bytes() for name in ("results.csv", "report.html")}
    (out / "results.csv").unlink()
    result = run_cli("report", str(out))
    assert result.exit_code == 1  # the demo fleet has failing hosts
    assert {name: (out / name).read_bytes() for name in before} == before


def test_scan_leaves_nothing_on_the_endpoints(tmp_path):
    specs = demo_specs(17, find_free_block(17))
    settings = ScanSettings(concurrency=17, rate=100, capture=CaptureMode.ALWAYS, run_id="t1",
                            **cli.DEMO_SETTINGS)
    with SimulatedFleet(build_hosts(specs)).start_in_thread() as handle:
        cli._scan(specs, lambda _s: DEMO_PASSWORD, tmp_path / "run", settings, "test")
        assert handle.leftovers() == {}
    rows = read_csv(tmp_path / "run")
    # capture=always fetches for healthy hosts too
    assert rows[0]["category"] == "ok" and rows[0]["capture_path"]


# -- exit code 3: the scan cannot run -----------------------------------------------------


def test_bad_inventory_is_one_clear_line(tmp_path):
    inventory = tmp_path / "bad.yaml"
    inventory.write_text("hosts:\n  - name: web01\n    auth: kerbros\n")
    result = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"))
    assert result.exit_code == 3
    assert "bad.yaml" in result.output and "kerbros" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_missing_env_credential_exits_3(tmp_path):
    inventory = tmp_path / "inv.yaml"
    write_inventory(inventory, "127.0.0.0", ["healthy"], credential="env:FLEET_ECS_TEST_NOPE")
    result = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"),
                     env={"FLEET_ECS_TEST_NOPE": ""})
    assert result.exit_code == 3
    assert "FLEET_ECS_TEST_NOPE" in result.output


def test_prompt_without_a_terminal_fails_at_once(tmp_path):
    inventory = tmp_path / "inv.yaml"
    write_inventory(inventory, "127.0.0.0", ["healthy"], credential="prompt")
    result = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"),
                     env={"FLEET_ECS_CREDENTIAL": None})
    assert result.exit_code == 3
    assert "env:" in result.output


def test_unwritable_output_exits_3(tmp_path):
    inventory = tmp_path / "inv.yaml"
    write_inventory(inventory, "127.0.0.0", ["healthy"])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("scan", str(inventory), "--out", str(blocker / "run"))
    assert result.exit_code == 3
    assert "cannot write" in result.output


def test_usage_error_is_2():
    assert run_cli("scan").exit_code == 2


# -- simulate + scan from two processes ---------------------------------------------------


def _start_simulator(inventory: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "fleet_ecs", "simulate", str(inventory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def test_simulate_serves_an_inventory_until_stopped(tmp_path):
    inventory = tmp_path / "sim.yaml"
    write_inventory(inventory, find_free_block(2), ["healthy", "tls-handshake-reset"])
    proc = _start_simulator(inventory)
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("ready:"), ready + proc.stderr.read()
        result = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"))
        assert result.exit_code == 1
        assert [r["category"] for r in read_csv(tmp_path / "run")] == ["ok", "tls_failure"]

        clash = _start_simulator(inventory)  # the same addresses are taken now
        _, err = clash.communicate(timeout=30)
        assert clash.returncode == 3
        assert "address already in use" in err.lower() and "127." in err
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_deadline_stops_the_capture_and_closes_the_shell(tmp_path):
    """A host cut off mid-probe by its deadline is cleaned up before its shell is deleted."""
    specs = demo_specs(1, find_free_block(1))
    slow = dataclasses.replace(specs[0], vars={"scenario": "healthy", "sim_delay": 1.5})
    settings = ScanSettings(concurrency=1, rate=100, deadline=4.0, capture=CaptureMode.ALWAYS,
                            run_id="t2", probe_timeout=3.0, read_timeout=10.0,
                            connect_timeout=3.0)
    with SimulatedFleet(build_hosts([slow])).start_in_thread() as handle:
        t0 = time.monotonic()
        cli._scan([slow], lambda _s: DEMO_PASSWORD, tmp_path / "run", settings, "test")
        elapsed = time.monotonic() - t0
        state = handle.state(slow.name)
        assert handle.leftovers() == {}
    (row,) = read_csv(tmp_path / "run")
    assert (row["category"], row["step"]) == ("deadline_exceeded", "probe")
    assert state.requests.get("Signal", 0) >= 1  # the probe pipeline was stopped
    assert elapsed < settings.deadline + 10


def test_a_run_directory_holds_one_run(fleet_inventory, tmp_path):
    inventory = fleet_inventory(["healthy"])
    assert run_cli("scan", str(inventory), "--out", str(tmp_path / "run")).exit_code == 0
    again = run_cli("scan", str(inventory), "--out", str(tmp_path / "run"))
    assert again.exit_code == 3
    assert "already holds a run" in again.output
    data = json.loads((tmp_path / "run" / "hosts" / "h01" / "result.json").read_text())
    assert data["run_id"] == json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 3 and "not a run directory" in result.output
    assert list(tmp_path.iterdir()) == []


def test_stopped_scan_gives_every_host_a_row(tmp_path):
    from fleet_ecs.controller import Controller

    specs = demo_specs(4, find_free_block(4))
    settings = ScanSettings(concurrency=1, rate=100, run_id="t3", **cli.DEMO_SETTINGS)
    seen = []

    def stop_after_first(result, counters):
        seen.append(result.host)
        controller.request_stop()

    with SimulatedFleet(build_hosts(specs)).start_in_thread() as handle:
        controller = Controller(settings, tmp_path, lambda _s: DEMO_PASSWORD,
                                on_result=stop_after_first)
        outcome = cli._run_controller(controller, specs)
        assert handle.leftovers() == {}
    assert outcome.stopped
    data = {p.parent.name: json.loads(p.read_text())
            for p in (tmp_path / "hosts").glob("*/result.json")}
    assert len(data) == 4
    assert [data[h]["category"] for h in sorted(data)][1:] == ["cancelled"] * 3
