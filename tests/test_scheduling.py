"""Nightly use through the CLI: --fail-threshold, --quiet, run.log, history and seeded demos.

Every test gives the CLI its own history file, and XDG_DATA_HOME points into the test's
temporary folder, so the user's real data folder is never touched.
"""

from __future__ import annotations

import csv
import logging

import pytest
from sim_inventory import write_sim_inventory
from typer.testing import CliRunner

from fleet_ecs import cli, history
from fleet_ecs.inventory import load_inventory
from fleet_ecs.sim.credentials import DEMO_PASSWORD
from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts, demo_scenarios
from fleet_ecs.sim.scenarios import DEMO_ORDER
from fleet_ecs.sim.scenarios import get as scenario


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def run_cli(*args: str):
    return CliRunner().invoke(cli.app, list(args), catch_exceptions=False)


@pytest.fixture
def one_in_four_failing(tmp_path):
    """Four simulated hosts, one of them failing (25% not ok), for the test's duration."""
    names = ["healthy", "healthy", "dns-filter-nxdomain", "healthy"]
    inventory = write_sim_inventory(tmp_path / "fleet.yaml", names, width=1)
    with SimulatedFleet(build_hosts(load_inventory(inventory).hosts)).start_in_thread():
        yield inventory


def test_fail_threshold_quiet_and_run_log(one_in_four_failing, tmp_path):
    db = tmp_path / "h.sqlite"
    package = logging.getLogger("fleet_ecs")
    level_before, handlers_before = package.level, list(package.handlers)

    within = run_cli("scan", str(one_in_four_failing), "--out", str(tmp_path / "a"), "--quiet",
                     "--fail-threshold", "0.25", "--history", str(db))
    assert within.exit_code == 0, within.output  # 1 of 4 is not more than 25%
    # --quiet: nothing but the summary line (no progress, no paths).
    assert within.stdout == "4 hosts: dns_failure 1, ok 3\n"
    assert within.stderr == ""

    over = run_cli("scan", str(one_in_four_failing), "--out", str(tmp_path / "b"),
                   "--fail-threshold", "0.2", "--history", str(db))
    assert over.exit_code == 1  # 25% is more than 20%
    assert "[4/4]" in over.stderr and "report:" in over.stdout  # not quiet: progress, paths
    assert "since run " in over.stdout and "0 broke" in over.stdout

    log = (tmp_path / "a" / "run.log").read_text(encoding="utf-8")
    assert "INFO fleet_ecs.cli: run " in log and "scanning 4 host(s)" in log
    assert "fleet_ecs.controller: h3: fail dns_failure" in log
    assert "within --fail-threshold" in log and "history: recorded run" in log
    assert DEMO_PASSWORD not in log and "pypsrp" not in log
    # The run log is detached afterwards, and nothing else of logging was left changed.
    assert package.level == level_before and package.handlers == handlers_before

    with history.opened(db) as connection:
        assert [(r.hosts, r.ok, r.fail) for r in history.runs(connection)] == [(4, 3, 1)] * 2
    assert (tmp_path / "b" / "diff.txt").is_file()  # compared with run a


def test_scan_records_into_the_default_history(one_in_four_failing, tmp_path):
    result = run_cli("scan", str(one_in_four_failing), "--out", str(tmp_path / "run"), "-q")
    assert result.exit_code == 1  # threshold 0: any host not ok
    default = tmp_path / "xdg" / "fleet-ecs" / "history.sqlite"
    with history.opened(default, create=False) as connection:
        (run,) = history.runs(connection)
    assert run.run_dir == str((tmp_path / "run").resolve())
    listed = run_cli("history")
    assert run.run_id in listed.stdout


def test_an_unwritable_history_does_not_cost_the_scan(one_in_four_failing, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli("scan", str(one_in_four_failing), "--out", str(tmp_path / "run"), "-q",
                     "--history", str(blocker / "h.sqlite"))
    assert result.exit_code == 1
    assert "run not recorded in the history" in result.stderr
    assert (tmp_path / "run" / "results.xlsx").is_file()


def test_demo_seeds_are_deterministic_and_move_a_tenth():
    assert demo_scenarios(len(DEMO_ORDER) * 2) == DEMO_ORDER * 2  # seed 0: the fixed mapping
    assert demo_scenarios(100, 7) == demo_scenarios(100, 7)
    for seed in (1, 2, 3):
        moved = [i for i, (a, b) in enumerate(zip(demo_scenarios(100), demo_scenarios(100, seed)))
                 if scenario(a).expected != scenario(b).expected]
        assert len(moved) == 10, seed
    assert demo_scenarios(100, 1) != demo_scenarios(100, 2)
    assert sum(a != b for a, b in zip(demo_scenarios(3), demo_scenarios(3, 5))) == 1


def test_two_demo_runs_with_different_seeds_give_a_diff(tmp_path):
    db = str(tmp_path / "h.sqlite")
    for seed, out in (("0", "night1"), ("5", "night2")):
        result = run_cli("demo", "--hosts", "8", "--seed", seed, "--out", str(tmp_path / out),
                         "--history", db, "--quiet")
        assert result.exit_code == 0, result.output

    moved = [f"ws-{i + 1:04d}" for i, (a, b) in enumerate(zip(demo_scenarios(8),
                                                              demo_scenarios(8, 5))) if a != b]
    assert moved
    diff = run_cli("diff", "--history", db)
    changed = [line.split()[0] for line in diff.stdout.splitlines() if line.startswith("  ")]
    assert changed == moved
    with open(tmp_path / "night2" / "diff.csv", encoding="utf-8-sig", newline="") as handle:
        assert [row["host"] for row in csv.DictReader(handle)] == moved
    rank = {"ok": 0, "warn": 1, "fail": 2}
    worse = any(rank[scenario(b).expected_status.value] > rank[scenario(a).expected_status.value]
                for a, b in zip(demo_scenarios(8), demo_scenarios(8, 5)))
    assert diff.exit_code == (1 if worse else 0)
    assert ("worse: yes" if worse else "worse: no") in diff.stdout

    listed = run_cli("history", "--history", db)
    assert [line.split()[-1] for line in listed.stdout.splitlines()[1:]] == [
        str((tmp_path / "night1").resolve()), str((tmp_path / "night2").resolve())]
    first_run = listed.stdout.splitlines()[1].split()[0]
    html = (tmp_path / "night2" / "report.html").read_text(encoding="utf-8")
    assert "Changes since the previous run" in html and first_run in html
