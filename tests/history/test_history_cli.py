"""``fleet-ecs history``, ``fleet-ecs diff`` and ``build_reports`` with a history, over
hand-made runs (no fleet)."""

from __future__ import annotations

import csv
import io
import logging

import pytest
from history_helpers import write_run
from typer.testing import CliRunner

from fleet_ecs import cli, history
from fleet_ecs.report import build_reports


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def run_cli(*args: str):
    return CliRunner().invoke(cli.app, list(args), catch_exceptions=False)


@pytest.fixture
def three_runs(tmp_path):
    """run-1 all ok; run-2: a broke, b changed category, c disappeared, d appeared failing."""
    path = tmp_path / "h.sqlite"
    runs = [
        ("20260101T020000Z-aaaaaa", {"a": "ok", "b": "fail dns_failure", "c": "ok",
                                      "e": "fail tcp_blocked"}),
        ("20260102T020000Z-bbbbbb", {"a": "ok", "b": "fail dns_failure", "c": "ok",
                                      "e": "ok"}),
        ("20260103T020000Z-cccccc", {"a": "fail tcp_blocked", "b": "fail tls_failure",
                                      "d": "fail winrm_unreachable", "e": "ok"}),
    ]
    with history.opened(path) as db:
        for n, (run_id, hosts) in enumerate(runs, start=1):
            folder = write_run(tmp_path / f"run{n}", run_id, hosts,
                               started=f"2026-01-0{n}T02:00:00+00:00")
            history.record_run_dir(db, folder)
    return path


def test_history_lists_runs_oldest_first_and_prunes(three_runs, tmp_path):
    listed = run_cli("history", "--history", str(three_runs))
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "id", "started"]
    assert [line.split()[0] for line in lines[1:]] == [
        "20260101T020000Z-aaaaaa", "20260102T020000Z-bbbbbb", "20260103T020000Z-cccccc"]
    assert lines[3].split()[1:7] == ["2026-01-03", "02:00:00", "4", "1", "0", "3"]
    assert lines[3].endswith(str((tmp_path / "run3").resolve()))

    pruned = run_cli("history", "--history", str(three_runs), "--keep", "1")
    assert pruned.exit_code == 0 and "pruned 2 run(s)" in pruned.stdout
    assert [line.split()[0] for line in pruned.stdout.splitlines()[2:]] == [
        "20260103T020000Z-cccccc"]
    assert (tmp_path / "run1" / "run.json").is_file()  # folders are left alone


def test_history_without_a_database(tmp_path):
    result = run_cli("history", "--history", str(tmp_path / "none.sqlite"))
    assert result.exit_code == 0 and "no runs recorded yet" in result.stdout
    assert not (tmp_path / "none.sqlite").exists()


def test_diff_of_the_last_two_runs(three_runs, tmp_path):
    result = run_cli("diff", "--history", str(three_runs))

    assert result.exit_code == 1  # a broke, d appeared failing
    out = result.stdout
    assert "20260102T020000Z-bbbbbb" in out.splitlines()[0]
    assert "broke (ok before, not ok now): 1" in out
    assert "  a  ok -> fail tcp_blocked  (last seen ok: 2026-01-02T02:00:00+00:00)" in out
    assert "b  fail dns_failure -> fail tls_failure  (last seen ok: never)" in out
    assert "c  ok -> -" in out and "d  - -> fail winrm_unreachable" in out
    assert "1 broke, 0 recovered, 1 changed, 1 appeared, 1 disappeared; worse: yes" in out

    folder = tmp_path / "run3"
    assert (folder / "diff.txt").read_text(encoding="utf-8") == out
    raw = (folder / "diff.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [(r["host"], r["change"], r["worse"]) for r in rows] == [
        ("a", "broke", "true"), ("b", "changed", "false"), ("d", "appeared", "true"),
        ("c", "disappeared", "false")]
    assert rows[0]["last_seen_ok"] == "2026-01-02T02:00:00+00:00"


def test_diff_names_runs_by_prefix_in_either_order(three_runs, tmp_path):
    result = run_cli("diff", "20260102", "20260101", "--history", str(three_runs))

    assert result.exit_code == 0  # only e recovered
    assert "recovered (not ok before, ok now): 1" in result.stdout
    assert "e  fail tcp_blocked -> ok" in result.stdout
    assert (tmp_path / "run2" / "diff.txt").is_file()  # the newer run's folder
    assert not (tmp_path / "run1" / "diff.txt").exists()


def test_diff_with_one_run_named_compares_it_with_the_newest(three_runs):
    result = run_cli("diff", "20260101", "--history", str(three_runs))
    assert result.exit_code == 1
    assert "-> 20260103T020000Z-cccccc" in result.stdout.splitlines()[0]


@pytest.mark.parametrize("args, message", [
    (["2026010"], "names 3 runs"),
    (["nope"], "no run 'nope'"),
    (["20260103"], "with itself"),
])
def test_diff_refuses_unclear_names(three_runs, args, message):
    result = run_cli("diff", *args, "--history", str(three_runs))
    assert result.exit_code == 3 and message in result.stderr


def test_diff_needs_a_history_with_two_runs(tmp_path):
    missing = run_cli("diff", "--history", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 3 and "no history database" in missing.stderr
    with history.opened(tmp_path / "one.sqlite") as db:
        history.record_run_dir(db, write_run(tmp_path / "r", "run-1", {"a": "ok"}))
    single = run_cli("diff", "--history", str(tmp_path / "one.sqlite"))
    assert single.exit_code == 3 and "a diff needs two" in single.stderr


def test_build_reports_passes_changes_and_trend(three_runs, tmp_path, monkeypatch):
    from fleet_ecs.report import build

    seen = {}
    real = build.render_html

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "render_html", spy)
    summary = build_reports(tmp_path / "run3", history=three_runs)

    changes, trend = seen["changes"], seen["trend"]
    assert changes is summary.changes and trend is summary.trend
    assert changes.previous_run_id == "20260102T020000Z-bbbbbb"
    assert [c.host for c in changes.broke] == ["a"] and changes.broke[0].before.status == "ok"
    assert changes.last_seen_ok == {"a": "2026-01-02T02:00:00+00:00", "b": None, "d": None}
    assert [(p.ok, p.fail) for p in trend] == [(2, 2), (3, 1), (1, 3)]
    names = {p.name for p in summary.paths}
    assert {"diff.txt", "diff.csv", "results.xlsx", "report.html"} <= names
    assert changes.previous_run_id in (tmp_path / "run3" / "report.html").read_text("utf-8")

    # The oldest run has a trend but nothing to compare with; no history: neither.
    first = build_reports(tmp_path / "run1", history=three_runs)
    assert first.changes is None and [p.hosts for p in first.trend] == [4]
    assert not (tmp_path / "run1" / "diff.txt").exists()
    assert build_reports(tmp_path / "run2").changes is None
    assert seen["changes"] is None and seen["trend"] is None


def test_a_broken_history_costs_only_the_changes(tmp_path, caplog):
    folder = write_run(tmp_path / "run", "run-1", {"a": "ok"})
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"garbage" * 200)

    with caplog.at_level(logging.WARNING, logger="fleet_ecs.report.build"):
        summary = build_reports(folder, history=broken)
    assert summary.hosts == 1 and summary.changes is None and summary.trend is None
    assert (folder / "report.html").is_file() and (folder / "results.xlsx").is_file()
    assert "not used for the report" in caplog.text
