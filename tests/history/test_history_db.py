"""The history database: recording, reading, pruning, migrations, and all-or-nothing writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from history_helpers import write_run

from fleet_ecs import history
from fleet_ecs.history import HistoryError, HostRow, RunRecord


@pytest.fixture
def db(tmp_path):
    with history.opened(tmp_path / "data" / "history.sqlite") as connection:
        yield connection


def record(db, tmp_path: Path, run_id: str, hosts: dict[str, str], **kw) -> RunRecord:
    return history.record_run_dir(db, write_run(tmp_path / run_id, run_id, hosts, **kw))


def test_round_trip_from_a_run_directory(db, tmp_path):
    run = record(db, tmp_path, "run-1", {"a": "ok", "b": "warn ok", "c": "fail dns_failure"},
                 stopped=True)

    assert (run.run_id, run.hosts, run.ok, run.warn, run.fail) == ("run-1", 3, 1, 1, 1)
    assert run.started_at == "2026-01-01T02:00:00+00:00" and run.inventory == "inv.yaml"
    assert run.run_dir == str((tmp_path / "run-1").resolve()) and run.stopped
    assert run.tool_version == "0.1.0"
    assert history.runs(db) == [run]
    states = history.host_states(db, "run-1")
    assert {h: (s.status, s.category) for h, s in states.items()} == {
        "a": ("ok", "ok"), "b": ("warn", "ok"), "c": ("fail", "dns_failure")}
    row = db.execute("SELECT * FROM host_results WHERE host = 'c'").fetchone()
    assert (row["ecs_url"], row["http_status"], row["duration_s"]) == (None, None, 1.5)
    assert history.schema_version(db) == history.SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_default_path_follows_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert history.default_path() == tmp_path / "xdg" / "fleet-ecs" / "history.sqlite"


def test_recording_a_run_again_replaces_it_in_place(db, tmp_path):
    record(db, tmp_path, "run-1", {"a": "ok"})
    record(db, tmp_path, "run-2", {"a": "ok"})
    folder = tmp_path / "again"
    write_run(folder, "run-1", {"a": "fail tcp_blocked", "b": "ok"})
    history.record_run_dir(db, folder)

    assert [r.run_id for r in history.runs(db)] == ["run-1", "run-2"]  # order kept
    assert history.get_run(db, "run-1").hosts == 2
    assert history.host_states(db, "run-1")["a"].category == "tcp_blocked"


def test_exception_mid_record_leaves_the_database_as_it_was(db, tmp_path):
    before = record(db, tmp_path, "run-1", {"a": "ok", "b": "ok"})

    def rows_then_crash():
        yield HostRow("a", "fail", "dns_failure")
        yield HostRow("b", "fail", "dns_failure")
        raise RuntimeError("the scanner died half-way")

    with pytest.raises(RuntimeError):
        history.record_run(db, RunRecord("run-1"), rows_then_crash())  # a re-record
    with pytest.raises(RuntimeError):
        history.record_run(db, RunRecord("run-2"), rows_then_crash())  # a new run

    assert history.runs(db) == [before]
    assert {s.status for s in history.host_states(db, "run-1").values()} == {"ok"}
    assert db.execute("SELECT COUNT(*) FROM host_results").fetchone()[0] == 2
    assert not db.in_transaction
    record(db, tmp_path, "run-3", {"a": "ok"})  # still writable afterwards
    assert len(history.runs(db)) == 2


def test_a_second_connection_never_sees_half_a_run(tmp_path):
    path = tmp_path / "h.sqlite"
    with history.opened(path) as writer, history.opened(path) as reader:
        def rows():
            yield HostRow("a", "ok", "ok")
            # Mid-transaction: the reader still sees the database without this run.
            assert history.runs(reader) == []
            yield HostRow("b", "ok", "ok")

        history.record_run(writer, RunRecord("run-1"), rows())
        assert [r.hosts for r in history.runs(reader)] == [2]


def test_prune_keeps_the_newest_runs(db, tmp_path):
    for n in range(1, 5):
        record(db, tmp_path, f"run-{n}", {"a": "ok", "b": "fail tcp_blocked"})

    assert history.prune(db, 2) == 2
    assert [r.run_id for r in history.runs(db)] == ["run-3", "run-4"]
    assert {r[0] for r in db.execute("SELECT run_id FROM host_results")} == {"run-3", "run-4"}
    assert history.prune(db, 5) == 0
    assert history.prune(db, 0) == 2 and history.runs(db) == []


def test_find_run_by_id_or_unique_prefix(db, tmp_path):
    record(db, tmp_path, "20260101T020000Z-aaa111", {"a": "ok"})
    record(db, tmp_path, "20260102T020000Z-bbb222", {"a": "ok"})

    assert history.find_run(db, "20260102").run_id == "20260102T020000Z-bbb222"
    assert history.find_run(db, "20260101T020000Z-aaa111").run_id.endswith("aaa111")
    with pytest.raises(HistoryError, match="names 2 runs"):
        history.find_run(db, "2026010")
    with pytest.raises(HistoryError, match="no run"):
        history.find_run(db, "1999")
    with pytest.raises(HistoryError, match="no run"):
        history.find_run(db, "2026010_")  # LIKE wildcards are taken literally


def test_previous_run_last_seen_ok_and_trend(db, tmp_path):
    record(db, tmp_path, "run-1", {"a": "ok", "b": "ok"})
    record(db, tmp_path, "run-2", {"a": "ok", "b": "fail dns_failure", "c": "fail tcp_blocked"})
    record(db, tmp_path, "run-3", {"a": "fail tcp_blocked", "b": "fail dns_failure"})

    assert history.previous_run(db, "run-3").run_id == "run-2"
    assert history.previous_run(db, "run-1") is None
    assert history.previous_run(db, "nope") is None
    assert history.last_seen_ok(db, "a") == "2026-01-02T02:00:00+00:00"
    assert history.last_seen_ok(db, "b") == "2026-01-01T02:00:00+00:00"
    assert history.last_seen_ok(db, "c") is None
    assert history.last_seen_ok(db, "a", up_to="run-1") == "2026-01-01T02:00:00+00:00"
    assert history.last_seen_ok_map(db) == {"a": "2026-01-02T02:00:00+00:00",
                                             "b": "2026-01-01T02:00:00+00:00"}

    points = history.trend(db)
    assert [(p.run_id, p.hosts, p.ok, p.warn, p.fail) for p in points] == [
        ("run-1", 2, 2, 0, 0), ("run-2", 3, 1, 0, 2), ("run-3", 2, 0, 0, 2)]
    assert points[1].by_category == {"dns_failure": 1, "ok": 1, "tcp_blocked": 1}
    assert points[0].label == "2026-01-01 02:00"
    assert [p.run_id for p in history.trend(db, 2)] == ["run-2", "run-3"]
    assert [p.run_id for p in history.trend(db, 10, up_to="run-2")] == ["run-1", "run-2"]


def test_changes_since_previous(db, tmp_path):
    record(db, tmp_path, "run-1", {"a": "ok", "b": "fail dns_failure"})
    assert history.changes_since_previous(db, "run-1") is None
    record(db, tmp_path, "run-2", {"a": "fail tcp_blocked", "b": "ok"})

    changes = history.changes_since_previous(db, "run-2")
    assert [(c.host, c.kind, c.worse) for c in changes.changes] == [
        ("a", "broke", True), ("b", "recovered", False)]
    assert changes.broke[0].last_seen_ok == "2026-01-01T02:00:00+00:00"
    assert changes.last_seen_ok == {"a": "2026-01-01T02:00:00+00:00"}
    assert changes.before.run_dir == str((tmp_path / "run-1").resolve())


def test_missing_database_is_not_created_for_reading(tmp_path):
    with pytest.raises(HistoryError, match="no history database"):
        history.connect(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    newer = tmp_path / "newer.sqlite"
    with history.opened(newer) as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(HistoryError, match="newer fleet-ecs"):
        history.connect(newer)

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError, match="not a usable history"):
        history.connect(junk)


def test_an_older_schema_is_migrated(tmp_path):
    path = tmp_path / "h.sqlite"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    plain.commit()
    plain.close()  # version 0: the tables do not exist yet

    with history.opened(path) as db:
        assert history.schema_version(db) == history.SCHEMA_VERSION
        assert history.runs(db) == []
