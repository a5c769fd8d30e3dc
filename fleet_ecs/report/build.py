"""Regenerate every derived output of a run directory from its ``result.json`` files.

Called by the scan when it ends and by ``fleet-ecs report DIR``. With a history database
(``fleet_ecs.history``) in which the run is recorded, the HTML report also gets the changes
since the previous run and the trend of the last runs, and ``diff.txt``/``diff.csv`` are
written; a history that cannot be read costs only those, never the other outputs.

One pass streams the host results: each host's ``report.txt`` is written and its JSON line
appended, then only a slim copy (without the bulky raw facts) is kept for ``results.csv``,
``results.xlsx`` and ``report.html``. Every output is replaced atomically. An unreadable
``result.json`` is logged, listed in the summary and left out; it never stops the build.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fleet_ecs.atomic import atomic_text_writer, write_text_atomic
from fleet_ecs.errors import OutputError
from fleet_ecs.models import Category, Status
from fleet_ecs.report.diff import RunChanges, TrendPoint, write_diff
from fleet_ecs.report.hosttext import render_host_text, tool_version
from fleet_ecs.report.html import category_rank, render_html, slim_facts
from fleet_ecs.report.rundir import (
    CSV_FILE,
    HOSTS_DIR,
    HTML_FILE,
    JSONL_FILE,
    REPORT_FILE,
    RUN_FILE,
    HostEntry,
    LoadedResult,
    RunInfo,
    SkippedResult,
    capture_rel_path,
    iter_results,
    read_run_info,
)
from fleet_ecs.report.tables import csv_row, jsonl_line, write_csv
from fleet_ecs.report.xlsx import XLSX_FILE, write_xlsx

logger = logging.getLogger(__name__)


@dataclass
class ReportSummary:
    """What ``build_reports`` found and wrote."""

    run_dir: Path
    hosts: int = 0
    by_status: dict[Status, int] = field(default_factory=dict)
    by_category: dict[Category, int] = field(default_factory=dict)  # the report's order
    paths: list[Path] = field(default_factory=list)  # every file written, absolute
    skipped: list[SkippedResult] = field(default_factory=list)  # unreadable result.json
    problems: list[str] = field(default_factory=list)  # per-host reports that failed to render
    run: RunInfo = field(default_factory=RunInfo)
    changes: RunChanges | None = None  # against the previous run, when a history had both
    trend: list[TrendPoint] | None = None  # the last runs up to this one, oldest first

    @property
    def all_ok(self) -> bool:
        """True when at least one host was read, every host is ok and nothing was skipped."""
        return (self.hosts > 0 and self.by_status.get(Status.OK, 0) == self.hosts
                and not self.skipped)


def _write_host_report(run_dir: Path, loaded: LoadedResult, run: RunInfo,
                       capture: str | None, summary: ReportSummary) -> str | None:
    rel = f"{loaded.rel_dir}/{REPORT_FILE}"
    try:
        text = render_host_text(loaded.result, run, capture_rel=capture)
    except Exception as exc:  # noqa: BLE001 - one odd result must not cost the fleet report
        logger.exception("cannot render %s", rel)
        summary.problems.append(f"{rel}: {type(exc).__name__}: {exc}")
        return None
    path = run_dir / rel
    write_text_atomic(path, text)
    summary.paths.append(path)
    return rel


def _count(summary: ReportSummary, entries: list[HostEntry]) -> None:
    statuses = Counter(e.result.status for e in entries)
    categories = Counter(e.result.category for e in entries)
    summary.hosts = len(entries)
    summary.by_status = {s: statuses.get(s, 0) for s in Status}
    summary.by_category = {
        c: categories[c] for c in sorted(Category, key=category_rank) if categories[c]
    }


def _from_history(
    history: Path | str | None, run: RunInfo
) -> tuple[RunChanges | None, list[TrendPoint] | None]:
    """Changes since the previous run and the trend, if ``history`` has this run recorded."""
    if history is None or not run.run_id or not Path(history).is_file():
        return None, None
    from fleet_ecs import history as hist

    try:
        with hist.opened(history, create=False) as db:
            if not hist.is_recorded(db, run.run_id):
                return None, None  # a run scanned with another history, or none
            return (hist.changes_since_previous(db, run.run_id),
                    hist.trend(db, hist.TREND_RUNS, up_to=run.run_id))
    except (hist.HistoryError, sqlite3.Error) as exc:
        logger.warning("history %s not used for the report: %s", history, exc)
        return None, None


def build_reports(run_dir: Path, history: Path | str | None = None) -> ReportSummary:
    """Rebuild ``results.csv``, ``results.xlsx``, ``results.jsonl``, ``report.html`` and each
    ``report.txt``; with ``history`` (a database path), also ``diff.txt`` and ``diff.csv``.

    Raises ``OutputError`` when ``run_dir`` is not a directory or an output cannot be written.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (
        (run_dir / HOSTS_DIR).is_dir() or (run_dir / RUN_FILE).is_file()
    ):
        raise OutputError(f"{run_dir}: not a run directory (no run.json, no hosts/ folder)")
    run = read_run_info(run_dir)
    summary = ReportSummary(run_dir=run_dir, run=run)
    entries: list[HostEntry] = []

    try:
        with atomic_text_writer(run_dir / JSONL_FILE, newline="\n") as jsonl:
            for loaded in iter_results(run_dir, summary.skipped):
                capture = capture_rel_path(run_dir, loaded)
                report = _write_host_report(run_dir, loaded, run, capture, summary)
                jsonl.write(jsonl_line(loaded.raw) + "\n")
                # The page keeps only timings and both network paths of the raw facts.
                slim = dataclasses.replace(loaded.result, facts=slim_facts(loaded.result.facts))
                entries.append(HostEntry(slim, loaded.host_dir, report, capture))
        summary.paths.append(run_dir / JSONL_FILE)

        write_csv(run_dir / CSV_FILE, (
            csv_row(e.result, report_path=e.report_path, capture_path=e.capture_path)
            for e in entries
        ))
        summary.paths.append(run_dir / CSV_FILE)

        _count(summary, entries)
        write_xlsx(run_dir / XLSX_FILE, entries, run=run, by_status=summary.by_status,
                   by_category=summary.by_category)
        summary.paths.append(run_dir / XLSX_FILE)

        summary.changes, summary.trend = _from_history(history, run)
        html = render_html(entries, run=run, by_status=summary.by_status,
                           by_category=summary.by_category, skipped=summary.skipped,
                           builder_version=tool_version(), changes=summary.changes,
                           trend=summary.trend)
        write_text_atomic(run_dir / HTML_FILE, html)
        summary.paths.append(run_dir / HTML_FILE)
        if summary.changes is not None:
            summary.paths += write_diff(run_dir, summary.changes)
    except OSError as exc:
        raise OutputError(f"{run_dir}: cannot write reports: {exc}") from exc

    logger.info("reports for %d hosts written to %s (%d skipped)", summary.hosts, run_dir,
                len(summary.skipped))
    return summary
