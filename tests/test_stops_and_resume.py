"""A real scan process stopped by SIGTERM, and one killed with SIGKILL then resumed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sim_inventory import write_sim_inventory
from typer.testing import CliRunner

from fleet_ecs import cli
from fleet_ecs.inventory import load_inventory
from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ["healthy", "dns-filter-nxdomain", "tls-handshake-reset", "healthy",
             "proxy-block-page", "firewall-drops-443", "healthy", "ecs-service-error"]


def inventory(tmp_path: Path, delay: float) -> Path:
    return write_sim_inventory(tmp_path / "fleet.yaml", SCENARIOS, sim_delay=delay)


def start_scan(inv: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "fleet_ecs", "scan", str(inv), "--out", str(out),
         "--concurrency", "2", "--rate", "50", "--deadline", "60", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_results(out: Path, count: int, proc: subprocess.Popen, limit: float = 30) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if len(list((out / "hosts").glob("*/result.json"))) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {count} results within {limit} s")


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", encoding="utf-8-sig", newline="") as handle:
        return {row["host"]: row for row in csv.DictReader(handle)}


def test_sigterm_stops_cleanly_and_leaves_nothing_running(tmp_path):
    inv = inventory(tmp_path, delay=0.4)
    with SimulatedFleet(build_hosts(load_inventory(inv).hosts)).start_in_thread() as handle:
        proc = start_scan(inv, tmp_path / "run", "--capture", "always")
        wait_for_results(tmp_path / "run", 2, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=40)
        assert proc.returncode == 1, err
        assert "stopped" in err
        assert handle.leftovers() == {}  # no capture running, no shell open, no file left
    table = rows(tmp_path / "run")
    assert len(table) == len(SCENARIOS)  # every host has a row, scanned or not
    assert "cancelled" in {row["category"] for row in table.values()}


def test_kill_9_then_resume_scans_only_the_rest(tmp_path):
    inv = inventory(tmp_path, delay=0.3)
    with SimulatedFleet(build_hosts(load_inventory(inv).hosts)).start_in_thread():
        proc = start_scan(inv, tmp_path / "run")
        wait_for_results(tmp_path / "run", 3, proc)
        proc.kill()
        proc.wait(timeout=10)
        kept = {p.parent.name: p.read_bytes()
                for p in (tmp_path / "run" / "hosts").glob("*/result.json")}
        assert 3 <= len(kept) < len(SCENARIOS)

        resumed = CliRunner().invoke(cli.app, ["scan", str(inv), "--out", str(tmp_path / "run"),
                                               "--resume", "--rate", "50"])
        reference = CliRunner().invoke(cli.app, ["scan", str(inv), "--out",
                                                 str(tmp_path / "reference"), "--rate", "50"])
    assert resumed.exit_code == reference.exit_code == 1, resumed.output
    assert f"skipped {len(kept)}" in resumed.output
    assert f"scanning {len(SCENARIOS) - len(kept)}" in resumed.output
    for name, before in kept.items():  # results already written were not touched
        assert (tmp_path / "run" / "hosts" / name / "result.json").read_bytes() == before
    got, want = rows(tmp_path / "run"), rows(tmp_path / "reference")
    assert {h: r["category"] for h, r in got.items()} == \
        {h: r["category"] for h, r in want.items()}


def test_resume_refuses_another_inventory(tmp_path):
    inv = inventory(tmp_path, delay=0.0)
    other = tmp_path / "other.yaml"
    other.write_text(inv.read_text())
    with SimulatedFleet(build_hosts(load_inventory(inv).hosts)).start_in_thread():
        first = CliRunner().invoke(cli.app, ["scan", str(inv), "--out", str(tmp_path / "run"),
                                             "--rate", "50", "--capture", "off"])
        assert first.exit_code == 1, first.output
    resumed = CliRunner().invoke(cli.app, ["scan", str(other), "--out", str(tmp_path / "run"),
                                           "--resume"])
    assert resumed.exit_code == 3
    assert "holds a run of" in resumed.output
