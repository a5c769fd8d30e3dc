"""Reading a run directory: ``run.json`` and every ``hosts/<host>/result.json``.

Layout (``DIR`` is the run directory)::

    DIR/run.json                    run metadata; missing while a run is half finished
    DIR/hosts/<host>/result.json    HostResult.to_dict(), the one source of truth per host
    DIR/hosts/<host>/capture.etl    optional network capture fetched from the endpoint
    DIR/hosts/<host>/report.txt     derived (``fleet_ecs.report.hosttext``)
    DIR/results.csv, results.jsonl, report.html   derived (``fleet_ecs.report.build``)

``<host>`` is whatever folder name the controller chose; links are built from the folder name
on disk, never from the host name inside the result, so the two may differ.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from fleet_ecs.models import HostResult

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
HOSTS_DIR = "hosts"
RESULT_FILE = "result.json"
REPORT_FILE = "report.txt"
CAPTURE_FILE = "capture.etl"
CSV_FILE = "results.csv"
JSONL_FILE = "results.jsonl"
HTML_FILE = "report.html"


@dataclass(frozen=True)
class RunInfo:
    """What ``run.json`` says about the run; every field may be empty for a half-finished run."""

    run_id: str = ""
    started_at: str = ""
    finished_at: str = ""
    inventory: str = ""
    version: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    present: bool = False
    error: str | None = None  # why run.json could not be used, when it exists but is bad
    stopped: bool = False  # the scan was stopped (Ctrl-C, SIGTERM) before every host ran
    hosts: int | None = None  # hosts in the inventory, when the controller recorded it


@dataclass(frozen=True)
class SkippedResult:
    """A result.json that could not be read; reported, never fatal."""

    path: str  # relative to the run directory, forward slashes
    reason: str


@dataclass(frozen=True)
class LoadedResult:
    """One host's result together with where it lives in the run directory."""

    result: HostResult
    raw: dict[str, Any]  # the document as stored, including keys a newer schema added
    host_dir: str  # folder name under hosts/

    @property
    def rel_dir(self) -> str:
        return f"{HOSTS_DIR}/{self.host_dir}"


@dataclass(frozen=True)
class HostEntry:
    """What the fleet-wide outputs need of one host: the result and its files in the run dir.

    ``result`` usually has its bulky ``facts`` dropped; ``report.txt`` is rendered before that.
    """

    result: HostResult
    host_dir: str
    report_path: str | None  # relative to the run directory, forward slashes
    capture_path: str | None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def read_run_info(run_dir: Path) -> RunInfo:
    """Read ``run.json``; a missing or unreadable file gives an empty ``RunInfo``, not an error."""
    path = run_dir / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RunInfo()
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return RunInfo(error=f"{type(exc).__name__}: {exc}")
    if not isinstance(data, dict):
        logger.warning("%s does not hold a JSON object", path)
        return RunInfo(error="run.json does not hold a JSON object")

    settings = data.get("settings")
    return RunInfo(
        run_id=_text(data.get("run_id")),
        started_at=_text(data.get("started_at")),
        finished_at=_text(data.get("finished_at")),
        # The controller's key names are not frozen yet; accept the obvious spellings.
        inventory=_text(data.get("inventory", data.get("inventory_path"))),
        version=_text(data.get("version", data.get("tool_version"))),
        settings=settings if isinstance(settings, dict) else {},
        present=True,
        stopped=data.get("stopped") is True,
        hosts=data.get("hosts") if isinstance(data.get("hosts"), int) else None,
    )


def result_paths(run_dir: Path) -> list[Path]:
    """Every ``hosts/*/result.json``, sorted by host folder name."""
    hosts = run_dir / HOSTS_DIR
    if not hosts.is_dir():
        return []
    paths = [p / RESULT_FILE for p in hosts.iterdir() if p.is_dir()]
    return sorted((p for p in paths if p.is_file()), key=lambda p: p.parent.name)


def read_result(path: Path) -> tuple[HostResult, dict[str, Any]]:
    """Parse one result.json; raises ``ValueError`` (with the cause chained) if it is unusable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError("result.json does not hold a JSON object")
    try:
        result = HostResult.from_dict(raw)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a host result ({type(exc).__name__}: {exc})") from exc
    if not isinstance(result.host, str) or not result.host:
        raise ValueError("not a host result (no host name)")
    return result, raw


def iter_results(
    run_dir: Path, skipped: list[SkippedResult] | None = None
) -> Iterator[LoadedResult]:
    """Stream the results one file at a time, sorted by host folder.

    Unreadable files are logged, appended to ``skipped`` when given, and left out.
    """
    for path in result_paths(run_dir):
        rel = path.relative_to(run_dir).as_posix()
        try:
            result, raw = read_result(path)
        except ValueError as exc:
            logger.warning("skipping %s: %s", rel, exc)
            if skipped is not None:
                skipped.append(SkippedResult(rel, str(exc)))
            continue
        yield LoadedResult(result, raw, path.parent.name)


def load_results(run_dir: Path) -> list[HostResult]:
    """All readable results of a run, sorted by host name; unreadable ones are logged, skipped."""
    results = [loaded.result for loaded in iter_results(run_dir)]
    return sorted(results, key=lambda r: r.host)


def _safe_rel(path: str) -> str | None:
    """``path`` if it is a plain relative path that stays inside the run directory."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if not path or pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
        return None
    return pure.as_posix()


def capture_rel_path(run_dir: Path, loaded: LoadedResult) -> str | None:
    """The fetched capture of a host, relative to the run directory, if it exists on disk."""
    candidates = [
        f.path for f in loaded.result.files if isinstance(f.path, str) and f.path.endswith(".etl")
    ]
    candidates.append(f"{loaded.rel_dir}/{CAPTURE_FILE}")
    for candidate in candidates:
        rel = _safe_rel(candidate)
        if rel is not None and (run_dir / rel).is_file():
            return rel
    return None
