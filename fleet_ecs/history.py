"""The run history: every run and its host verdicts in an embedded SQLite database.

``scan`` and ``demo`` record each run when it ends, from the run directory's ``result.json``
files (``record_run_dir``); ``fleet-ecs history`` lists and prunes runs, ``fleet-ecs diff``
and the HTML report compare a run with the one before it.

Consistency: everything about one run is written in one ``BEGIN IMMEDIATE`` transaction, so
a process that dies or raises half-way leaves the database as it was before (SQLite rolls an
unfinished transaction back). The journal is in WAL mode, so a reader (the ``history``
command, a report being built) never waits for a writer and a nightly scan never waits for
a reader. Recording the same run id again (a resumed run) replaces that run's rows but keeps
its place in the order.

Order: runs are ordered by when they were first recorded (``runs.id``), that is by when they
finished; "the previous run" and "the last two runs" mean that order.

Schema (``SCHEMA_VERSION``; ``schema_version`` holds the version, and ``_MIGRATIONS[v]``
brings a database from version v-1 to v)::

    runs(id, run_id UNIQUE, started_at, finished_at, inventory, hosts, ok, warn, fail,
         run_dir, tool_version, stopped, recorded_at)
    host_results(run_id -> runs.run_id, host, status, category, ecs_url, http_status,
                 error, duration_s; PRIMARY KEY (run_id, host))

Times are the ISO 8601 strings of ``run.json``. Nothing secret is stored: results hold no
credentials.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fleet_ecs.errors import ConfigError
from fleet_ecs.report.diff import HostState, RunChanges, RunRef, TrendPoint, compare

logger = logging.getLogger(__name__)

APP_NAME = "fleet-ecs"
HISTORY_FILE = "history.sqlite"
SCHEMA_VERSION = 1
TREND_RUNS = 10

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL UNIQUE,
            started_at TEXT NOT NULL DEFAULT '',
            finished_at TEXT NOT NULL DEFAULT '',
            inventory TEXT NOT NULL DEFAULT '',
            hosts INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            warn INTEGER NOT NULL,
            fail INTEGER NOT NULL,
            run_dir TEXT NOT NULL,
            tool_version TEXT NOT NULL DEFAULT '',
            stopped INTEGER NOT NULL DEFAULT 0,
            recorded_at TEXT NOT NULL
        )""",
        """CREATE TABLE host_results (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            host TEXT NOT NULL,
            status TEXT NOT NULL,
            category TEXT NOT NULL,
            ecs_url TEXT,
            http_status INTEGER,
            error TEXT,
            duration_s REAL,
            PRIMARY KEY (run_id, host)
        ) WITHOUT ROWID""",
        "CREATE INDEX host_results_by_host ON host_results (host, status)",
    ),
}


class HistoryError(ConfigError):
    """The history database cannot be used, or a run named on the command line is not in it."""


@dataclass(frozen=True)
class HostRow:
    """One host's line in ``host_results``."""

    host: str
    status: str
    category: str
    ecs_url: str | None = None
    http_status: int | None = None
    error: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """One line of ``runs``."""

    run_id: str
    started_at: str = ""
    finished_at: str = ""
    inventory: str = ""
    hosts: int = 0
    ok: int = 0
    warn: int = 0
    fail: int = 0
    run_dir: str = ""
    tool_version: str = ""
    stopped: bool = False

    @property
    def ref(self) -> RunRef:
        return RunRef(self.run_id, self.started_at, self.finished_at, self.run_dir)


def default_path() -> Path:
    """``platformdirs``' user data folder: ``$XDG_DATA_HOME/fleet-ecs/history.sqlite`` on Linux."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / HISTORY_FILE


def connect(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    """Open (and, with ``create``, create and migrate) the database at ``path``.

    Raises ``HistoryError`` when the file cannot be opened, is not a fleet-ecs history, or
    was written by a newer fleet-ecs; without ``create``, also when it does not exist.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise HistoryError(f"no history database at {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are opened explicitly (``transaction``).
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise HistoryError(f"cannot open history database {path}: {exc}") from exc
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise HistoryError(f"{path} is not a usable history database: {exc}") from exc
    except HistoryError:
        db.close()
        raise
    return db


@contextlib.contextmanager
def opened(path: Path | str, *, create: bool = True) -> Iterator[sqlite3.Connection]:
    """``connect`` as a context manager that closes the connection."""
    db = connect(path, create=create)
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: commit when the block ends, roll back when it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    with transaction(db):
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] or 0
        if version > SCHEMA_VERSION:
            raise HistoryError(f"{path} was written by a newer fleet-ecs (schema {version}; "
                               f"this one knows {SCHEMA_VERSION})")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
            logger.info("history %s: schema version %d", path, target)


def schema_version(db: sqlite3.Connection) -> int:
    return db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0


# -- recording ----------------------------------------------------------------------------


def record_run(db: sqlite3.Connection, run: RunRecord, rows: Iterable[HostRow]) -> RunRecord:
    """Record ``run`` with its host rows in one transaction; returns it with its counts.

    The counts (hosts, ok, warn, fail) are computed from ``rows``, whatever ``run`` says.
    If anything raises before the end (``rows`` included), nothing of this run is written
    and an earlier recording of the same run id stays as it was.
    """
    if not run.run_id:
        raise HistoryError("a run without a run id cannot be recorded")
    counts = {"ok": 0, "warn": 0, "fail": 0}
    hosts = 0
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with transaction(db):
        db.execute(
            """INSERT INTO runs (run_id, started_at, finished_at, inventory, hosts, ok, warn,
                                 fail, run_dir, tool_version, stopped, recorded_at)
               VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?, ?, ?, ?)
               ON CONFLICT (run_id) DO UPDATE SET
                 started_at = excluded.started_at, finished_at = excluded.finished_at,
                 inventory = excluded.inventory, run_dir = excluded.run_dir,
                 tool_version = excluded.tool_version, stopped = excluded.stopped,
                 recorded_at = excluded.recorded_at""",
            (run.run_id, run.started_at, run.finished_at, run.inventory, run.run_dir,
             run.tool_version, int(run.stopped), now),
        )
        db.execute("DELETE FROM host_results WHERE run_id = ?", (run.run_id,))
        for row in rows:
            db.execute(
                """INSERT OR REPLACE INTO host_results (run_id, host, status, category, ecs_url,
                                                         http_status, error, duration_s)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (run.run_id, row.host, row.status, row.category, row.ecs_url, row.http_status,
                 row.error, row.duration_s),
            )
        # Counted from the table: a duplicate host name replaced its earlier row above.
        for status, count in db.execute(
                "SELECT status, COUNT(*) FROM host_results WHERE run_id = ? GROUP BY status",
                (run.run_id,)):
            hosts += count
            if status in counts:
                counts[status] = count
        db.execute("UPDATE runs SET hosts = ?, ok = ?, warn = ?, fail = ? WHERE run_id = ?",
                   (hosts, counts["ok"], counts["warn"], counts["fail"], run.run_id))
    logger.info("history: recorded run %s (%d hosts: %d ok, %d warn, %d fail)", run.run_id,
                hosts, counts["ok"], counts["warn"], counts["fail"])
    return get_run(db, run.run_id)


def record_run_dir(db: sqlite3.Connection, run_dir: Path) -> RunRecord:
    """Record the run in ``run_dir`` from its ``run.json`` and ``hosts/*/result.json``."""
    from fleet_ecs.report.rundir import iter_results, read_run_info

    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if not info.run_id:
        raise HistoryError(f"{run_dir}: run.json names no run id; not recorded")
    run = RunRecord(
        run_id=info.run_id, started_at=info.started_at, finished_at=info.finished_at,
        inventory=info.inventory, run_dir=str(run_dir.resolve()), tool_version=info.version,
        stopped=info.stopped,
    )
    rows = (
        HostRow(host=r.host, status=r.status.value, category=r.category.value,
                ecs_url=r.ecs_url, http_status=r.http_status, error=r.error,
                duration_s=r.duration_s)
        for r in (loaded.result for loaded in iter_results(run_dir))
    )
    return record_run(db, run, rows)


def prune(db: sqlite3.Connection, keep: int) -> int:
    """Forget all but the newest ``keep`` runs (run folders on disk are left alone).

    Returns how many runs were removed.
    """
    if keep < 0:
        raise ValueError("keep must not be negative")
    with transaction(db):
        old = [row[0] for row in db.execute(
            "SELECT run_id FROM runs ORDER BY id DESC LIMIT -1 OFFSET ?", (keep,))]
        for run_id in old:
            db.execute("DELETE FROM host_results WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    if old:
        logger.info("history: pruned %d run(s), kept the newest %d", len(old), keep)
    return len(old)


# -- reading ------------------------------------------------------------------------------


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], started_at=row["started_at"], finished_at=row["finished_at"],
        inventory=row["inventory"], hosts=row["hosts"], ok=row["ok"], warn=row["warn"],
        fail=row["fail"], run_dir=row["run_dir"], tool_version=row["tool_version"],
        stopped=bool(row["stopped"]),
    )


def runs(db: sqlite3.Connection) -> list[RunRecord]:
    """Every recorded run, oldest first."""
    return [_record(row) for row in db.execute("SELECT * FROM runs ORDER BY id")]


def is_recorded(db: sqlite3.Connection, run_id: str) -> bool:
    return _position(db, run_id) is not None


def get_run(db: sqlite3.Connection, run_id: str) -> RunRecord:
    row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise HistoryError(f"no run {run_id!r} in the history")
    return _record(row)


def find_run(db: sqlite3.Connection, name: str) -> RunRecord:
    """The run whose id is ``name`` or starts with it; ``HistoryError`` if none or several."""
    row = db.execute("SELECT * FROM runs WHERE run_id = ?", (name,)).fetchone()
    if row is not None:
        return _record(row)
    pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    found = db.execute("SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY id",
                       (pattern,)).fetchall()
    # LIKE ignores ASCII case; run ids are compared exactly.
    found = [row for row in found if row["run_id"].startswith(name)]
    if not found:
        raise HistoryError(f"no run {name!r} in the history (see `fleet-ecs history`)")
    if len(found) > 1:
        names = ", ".join(row["run_id"] for row in found[:5])
        raise HistoryError(f"{name!r} names {len(found)} runs ({names}...); give more of the id")
    return _record(found[0])


def _position(db: sqlite3.Connection, run_id: str) -> int | None:
    row = db.execute("SELECT id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


def previous_run(db: sqlite3.Connection, run_id: str) -> RunRecord | None:
    """The run recorded just before ``run_id``; None if it is the first or not recorded."""
    position = _position(db, run_id)
    if position is None:
        return None
    row = db.execute("SELECT * FROM runs WHERE id < ? ORDER BY id DESC LIMIT 1",
                     (position,)).fetchone()
    return None if row is None else _record(row)


def host_states(db: sqlite3.Connection, run_id: str) -> dict[str, HostState]:
    """Host name -> status and category in one run."""
    rows = db.execute("SELECT host, status, category FROM host_results WHERE run_id = ?",
                      (run_id,))
    return {row["host"]: HostState(row["status"], row["category"]) for row in rows}


def _up_to(db: sqlite3.Connection, up_to: str | None) -> int:
    if up_to is None:
        return 2**62
    position = _position(db, up_to)
    if position is None:
        raise HistoryError(f"no run {up_to!r} in the history")
    return position


def last_seen_ok(db: sqlite3.Connection, host: str, *, up_to: str | None = None) -> str | None:
    """When ``host`` was last ok: the start time of the newest such run (up to run ``up_to``).

    None when no recorded run (up to ``up_to``) saw it ok. A run without a start time gives
    its finish time.
    """
    row = db.execute(
        """SELECT CASE WHEN r.started_at != '' THEN r.started_at ELSE r.finished_at END
           FROM host_results h JOIN runs r ON r.run_id = h.run_id
           WHERE h.host = ? AND h.status = 'ok' AND r.id <= ?
           ORDER BY r.id DESC LIMIT 1""",
        (host, _up_to(db, up_to))).fetchone()
    return None if row is None else row[0]


def last_seen_ok_map(db: sqlite3.Connection, *, up_to: str | None = None) -> dict[str, str]:
    """``last_seen_ok`` for every host ever seen ok, in one query: host -> time."""
    rows = db.execute(
        """SELECT h.host, CASE WHEN r.started_at != '' THEN r.started_at ELSE r.finished_at END
           FROM host_results h JOIN runs r ON r.run_id = h.run_id
           WHERE h.status = 'ok' AND r.id <= ?
           ORDER BY r.id""",
        (_up_to(db, up_to),))
    return {host: when for host, when in rows}  # later runs overwrite earlier ones


def trend(db: sqlite3.Connection, n: int = TREND_RUNS, *,
          up_to: str | None = None) -> list[TrendPoint]:
    """The counts of the last ``n`` runs (ending with run ``up_to``), oldest first."""
    rows = db.execute("SELECT * FROM runs WHERE id <= ? ORDER BY id DESC LIMIT ?",
                      (_up_to(db, up_to), max(n, 0))).fetchall()
    rows.reverse()
    by_category: dict[str, dict[str, int]] = {row["run_id"]: {} for row in rows}
    if rows:
        marks = ", ".join("?" for _ in rows)
        for run_id, category, count in db.execute(
            f"""SELECT run_id, category, COUNT(*) FROM host_results WHERE run_id IN ({marks})
                GROUP BY run_id, category ORDER BY run_id, category""",
            [row["run_id"] for row in rows],
        ):
            by_category[run_id][category] = count
    return [
        TrendPoint(run_id=row["run_id"], started_at=row["started_at"], hosts=row["hosts"],
                   ok=row["ok"], warn=row["warn"], fail=row["fail"],
                   by_category=by_category[row["run_id"]], stopped=bool(row["stopped"]))
        for row in rows
    ]


def changes_between(db: sqlite3.Connection, before: str, after: str) -> RunChanges:
    """The host-by-host comparison of run ``before`` with run ``after`` (ids as recorded).

    Last-seen-ok times are taken up to ``after``.
    """
    old, new = get_run(db, before), get_run(db, after)
    return compare(old.ref, host_states(db, old.run_id), new.ref, host_states(db, new.run_id),
                   last_seen_ok_map(db, up_to=new.run_id))


def changes_since_previous(db: sqlite3.Connection, run_id: str) -> RunChanges | None:
    """``run_id`` compared with the run recorded before it; None without such a run."""
    previous = previous_run(db, run_id)
    if previous is None:
        return None
    return changes_between(db, previous.run_id, run_id)

