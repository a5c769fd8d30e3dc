"""What changed between two runs, host by host, and the per-run counts of a trend.

The question every morning is "what broke since last night". ``compare`` answers it from two
mappings host -> ``HostState`` (the history database supplies them, see
``fleet_ecs.history``); hosts are matched by name. Each host that differs gets one
``HostChange`` of one kind:

    broke        ok before, not ok now (warn or fail)                      worse
    recovered    not ok before, ok now
    changed      not ok both times, with another category or status       worse if the
                                                                           status is worse
    appeared     only in the newer run                                     worse if not ok
    disappeared  only in the older run

A host that is ok in both runs, or not ok with the same category and status, is unchanged
and not listed. "Worse" is what ``fleet-ecs diff`` turns into exit code 1.

This module does no I/O except ``write_diff``; the dataclasses are also what
``render_html`` receives as ``changes`` and ``trend``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet_ecs.atomic import atomic_text_writer, write_text_atomic
from fleet_ecs.report.tables import spreadsheet_text
from fleet_ecs.report.textclean import clean_text

logger = logging.getLogger(__name__)

DIFF_TXT = "diff.txt"
DIFF_CSV = "diff.csv"
BROKE = "broke"
RECOVERED = "recovered"
CHANGED = "changed"
APPEARED = "appeared"
DISAPPEARED = "disappeared"
KINDS = (BROKE, RECOVERED, CHANGED, APPEARED, DISAPPEARED)
KIND_TITLES = {
    BROKE: "broke (ok before, not ok now)",
    RECOVERED: "recovered (not ok before, ok now)",
    CHANGED: "changed category or status (not ok both times)",
    APPEARED: "appeared (not in the older run)",
    DISAPPEARED: "disappeared (not in the newer run)",
}
DIFF_CSV_COLUMNS = (
    "host", "change", "worse", "before_status", "before_category", "after_status",
    "after_category", "last_seen_ok", "before_run", "after_run",
)
_STATUS_RANK = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class HostState:
    """A host's verdict in one run (statuses and categories as their string values)."""

    status: str
    category: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RunRef:
    """Which run a side of a comparison is."""

    run_id: str
    started_at: str = ""
    finished_at: str = ""
    run_dir: str = ""


@dataclass(frozen=True)
class HostChange:
    """One host that differs between the older run (``before``) and the newer (``after``).

    ``before_*`` are None for an appeared host, ``after_*`` for a disappeared one.
    ``last_seen_ok`` is the start time of the newest run, up to the newer one, in which the
    host was ok; None when it never was (or it is ok now).
    """

    host: str
    kind: str  # one of KINDS
    worse: bool
    before_status: str | None = None
    before_category: str | None = None
    after_status: str | None = None
    after_category: str | None = None
    last_seen_ok: str | None = None

    @property
    def before(self) -> HostState | None:
        if self.before_status is None:
            return None
        return HostState(self.before_status, self.before_category or "")

    @property
    def after(self) -> HostState | None:
        if self.after_status is None:
            return None
        return HostState(self.after_status, self.after_category or "")


@dataclass(frozen=True)
class RunChanges:
    """The comparison of two runs: every changed host, sorted by kind then host name.

    ``last_seen_ok`` covers every host that is not ok in the newer run, changed or not.
    """

    before: RunRef
    after: RunRef
    changes: tuple[HostChange, ...] = ()
    last_seen_ok: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def worse(self) -> bool:
        """True when some host got worse (``fleet-ecs diff`` then exits 1)."""
        return any(change.worse for change in self.changes)

    @property
    def counts(self) -> dict[str, int]:
        """Hosts per kind, every kind present (zeros included), in ``KINDS`` order."""
        return {kind: sum(1 for c in self.changes if c.kind == kind) for kind in KINDS}

    def of_kind(self, kind: str) -> list[HostChange]:
        return [change for change in self.changes if change.kind == kind]

    # One list per kind, and the older run's id, for templates.
    @property
    def broke(self) -> list[HostChange]:
        return self.of_kind(BROKE)

    @property
    def recovered(self) -> list[HostChange]:
        return self.of_kind(RECOVERED)

    @property
    def changed(self) -> list[HostChange]:
        return self.of_kind(CHANGED)

    @property
    def appeared(self) -> list[HostChange]:
        return self.of_kind(APPEARED)

    @property
    def disappeared(self) -> list[HostChange]:
        return self.of_kind(DISAPPEARED)

    @property
    def previous_run_id(self) -> str:
        return self.before.run_id


@dataclass(frozen=True)
class TrendPoint:
    """One run's totals; a trend is a list of these, oldest first."""

    run_id: str
    started_at: str
    hosts: int
    ok: int
    warn: int
    fail: int
    by_category: Mapping[str, int] = field(default_factory=dict)
    stopped: bool = False

    @property
    def label(self) -> str:
        """A short label: the start time to the minute (``2026-01-02 03:04``), else the id."""
        return self.started_at[:16].replace("T", " ") if self.started_at else self.run_id


def _classify(before: HostState | None, after: HostState | None) -> tuple[str, bool] | None:
    if before is None and after is None:
        return None
    if before is None:
        assert after is not None
        return APPEARED, not after.ok
    if after is None:
        return DISAPPEARED, False
    if before.ok and after.ok:
        return None
    if before.ok:
        return BROKE, True
    if after.ok:
        return RECOVERED, False
    if before == after:
        return None
    rank = _STATUS_RANK.get
    return CHANGED, rank(after.status, 2) > rank(before.status, 2)


def compare(
    before_run: RunRef,
    before: Mapping[str, HostState],
    after_run: RunRef,
    after: Mapping[str, HostState],
    last_seen_ok: Mapping[str, str] | None = None,
) -> RunChanges:
    """Every host that differs between ``before`` and ``after`` (host name -> state).

    ``last_seen_ok`` (host -> time) comes from the history; hosts not in it were never seen
    ok.
    """
    seen = last_seen_ok or {}
    changes = []
    for host in sorted(set(before) | set(after)):
        verdict = _classify(before.get(host), after.get(host))
        if verdict is None:
            continue
        kind, worse = verdict
        old, new = before.get(host), after.get(host)
        failing_now = new is not None and not new.ok
        changes.append(HostChange(
            host=host, kind=kind, worse=worse,
            before_status=old.status if old else None,
            before_category=old.category if old else None,
            after_status=new.status if new else None,
            after_category=new.category if new else None,
            last_seen_ok=seen.get(host) if failing_now else None,
        ))
    changes.sort(key=lambda c: (KINDS.index(c.kind), c.host))
    failing = {host: seen.get(host) for host, state in sorted(after.items()) if not state.ok}
    return RunChanges(before_run, after_run, tuple(changes), failing)


def _verdict(status: str | None, category: str | None) -> str:
    if status is None:
        return "-"
    return status if category in (None, "ok") else f"{status} {category}"


def summary_line(changes: RunChanges) -> str:
    """``2 broke, 1 recovered, 0 changed, 0 appeared, 0 disappeared; worse: yes``."""
    counts = ", ".join(f"{n} {kind}" for kind, n in changes.counts.items())
    return f"{counts}; worse: {'yes' if changes.worse else 'no'}"


def render_text(changes: RunChanges) -> str:
    """The diff as ``fleet-ecs diff`` prints it and ``diff.txt`` holds it."""

    def side(ref: RunRef) -> str:
        when = f" (started {ref.started_at})" if ref.started_at else ""
        return f"{clean_text(ref.run_id)}{when}"

    lines = [f"fleet-ecs diff: {side(changes.before)} -> {side(changes.after)}"]
    for kind in KINDS:
        group = changes.of_kind(kind)
        if not group:
            continue
        lines += ["", f"{KIND_TITLES[kind]}: {len(group)}"]
        width = min(40, max(len(c.host) for c in group))
        for change in group:
            before = _verdict(change.before_status, change.before_category)
            after = _verdict(change.after_status, change.after_category)
            line = f"  {clean_text(change.host):<{width}}  {before} -> {after}"
            if change.after_status not in (None, "ok"):
                seen = change.last_seen_ok
                line += f"  (last seen ok: {clean_text(seen) if seen else 'never'})"
            lines.append(line)
    lines += ["", summary_line(changes)]
    return "\n".join(lines) + "\n"


def csv_rows(changes: RunChanges) -> list[dict[str, str]]:
    """``diff.csv`` rows: text cells escaped against formula injection like ``results.csv``."""
    rows = []
    for change in changes.changes:
        rows.append({
            "host": spreadsheet_text(change.host),
            "change": change.kind,
            "worse": "true" if change.worse else "false",
            "before_status": spreadsheet_text(change.before_status),
            "before_category": spreadsheet_text(change.before_category),
            "after_status": spreadsheet_text(change.after_status),
            "after_category": spreadsheet_text(change.after_category),
            "last_seen_ok": spreadsheet_text(change.last_seen_ok),
            "before_run": spreadsheet_text(changes.before.run_id),
            "after_run": spreadsheet_text(changes.after.run_id),
        })
    return rows


def write_diff(run_dir: Path, changes: RunChanges) -> list[Path]:
    """Write ``diff.txt`` and ``diff.csv`` (UTF-8 with BOM) into ``run_dir``, atomically."""
    txt, table = run_dir / DIFF_TXT, run_dir / DIFF_CSV
    write_text_atomic(txt, render_text(changes))
    with atomic_text_writer(table, encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=DIFF_CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_rows(changes))
    logger.info("diff against run %s written to %s", changes.before.run_id, run_dir)
    return [txt, table]
