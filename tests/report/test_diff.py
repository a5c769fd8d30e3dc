"""Classifying what changed between two runs, and the diff files."""

from __future__ import annotations

import csv
import io

import pytest

from fleet_ecs.report.diff import HostState, RunRef, compare, render_text, write_diff

OK = HostState("ok", "ok")
WARN_OK = HostState("warn", "ok")
DNS = HostState("fail", "dns_failure")
TCP = HostState("fail", "tcp_blocked")
HTTP_WARN = HostState("warn", "http_error")
HTTP_FAIL = HostState("fail", "http_error")
A, B = RunRef("run-a", "2026-01-01T02:00:00+00:00"), RunRef("run-b", "2026-01-02T02:00:00+00:00")


@pytest.mark.parametrize("before, after, kind, worse", [
    (OK, DNS, "broke", True),
    (OK, WARN_OK, "broke", True),  # warn is not ok
    (DNS, OK, "recovered", False),
    (WARN_OK, OK, "recovered", False),
    (DNS, TCP, "changed", False),
    (HTTP_WARN, HTTP_FAIL, "changed", True),  # same category, worse status
    (HTTP_FAIL, HTTP_WARN, "changed", False),
    (None, DNS, "appeared", True),
    (None, OK, "appeared", False),
    (DNS, None, "disappeared", False),
])
def test_each_kind_of_change(before, after, kind, worse):
    old = {"h": before} if before else {}
    new = {"h": after} if after else {}
    (change,) = compare(A, old, B, new).changes
    assert (change.host, change.kind, change.worse) == ("h", kind, worse)
    assert change.before == before and change.after == after
    assert compare(A, old, B, new).worse is worse


@pytest.mark.parametrize("state", [OK, DNS, HTTP_WARN])
def test_unchanged_hosts_are_not_listed(state):
    changes = compare(A, {"h": state}, B, {"h": state})
    assert changes.changes == () and not changes.worse
    assert changes.counts == dict.fromkeys(
        ("broke", "recovered", "changed", "appeared", "disappeared"), 0)


def test_order_counts_and_last_seen_ok():
    before = {"z": OK, "y": OK, "x": DNS, "w": DNS}
    after = {"z": DNS, "y": TCP, "x": OK, "w": DNS, "v": TCP}
    changes = compare(A, before, B, after, {"z": "t1", "y": "t2", "x": "t0", "w": "t3"})

    assert [(c.kind, c.host) for c in changes.changes] == [
        ("broke", "y"), ("broke", "z"), ("recovered", "x"), ("appeared", "v")]
    assert changes.counts["broke"] == 2 and changes.counts["appeared"] == 1
    assert [c.last_seen_ok for c in changes.changes] == ["t2", "t1", None, None]
    # Every host failing now, changed or not, with when it was last ok.
    assert changes.last_seen_ok == {"v": None, "w": "t3", "y": "t2", "z": "t1"}
    assert [c.host for c in changes.broke] == ["y", "z"] and changes.previous_run_id == "run-a"


def test_diff_files_are_escaped_and_clean(tmp_path):
    changes = compare(A, {"=cmd|' /C calc'!A0": OK, "evil\x1b[2J\u202e": OK},
                      B, {"=cmd|' /C calc'!A0": DNS, "evil\x1b[2J\u202e": DNS})
    paths = write_diff(tmp_path, changes)

    assert [p.name for p in paths] == ["diff.txt", "diff.csv"]
    text = (tmp_path / "diff.txt").read_text(encoding="utf-8")
    assert text == render_text(changes)
    assert "\x1b" not in text and "\u202e" not in text and "evil<U+001B>[2J<U+202E>" in text
    assert text.splitlines()[0] == (
        "fleet-ecs diff: run-a (started 2026-01-01T02:00:00+00:00) -> "
        "run-b (started 2026-01-02T02:00:00+00:00)")
    raw = (tmp_path / "diff.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0]["host"] == "'=cmd|' /C calc'!A0"
    assert (rows[0]["change"], rows[0]["after_category"], rows[0]["after_run"]) == (
        "broke", "dns_failure", "run-b")
