"""``results.csv`` (one row per host, for spreadsheets) and ``results.jsonl`` (full results).

The CSV column order is an interface: people build spreadsheets on it. Later work only
appends columns to ``CSV_COLUMNS``. Cells are pre-formatted strings so that pandas never
guesses a dtype (an optional integer would otherwise print as ``200.0``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleet_ecs.models import HostResult
from fleet_ecs.report.atomic import atomic_text_writer

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "host", "address", "port", "transport", "groups", "status", "category", "hint", "ecs_url",
    "http_status", "dns_ok", "tcp_ok", "proxy", "error", "step", "started_at", "finished_at",
    "duration_s", "report_path", "capture_path", "auth", "deadline_s",
)

# A spreadsheet evaluates a cell starting with one of these as a formula; endpoint text must
# not be able to run one (CSV injection), so such text gets a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _cell_bool(value: Any) -> str:
    if value is None:
        return ""
    return "true" if value else "false"


def _cell_number(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        return repr(value)
    return _cell_text(value)


def csv_row(
    result: HostResult, *, report_path: str | None = None, capture_path: str | None = None
) -> dict[str, str]:
    """One CSV row; paths are relative to the run directory with forward slashes."""
    return {
        "host": _cell_text(result.host),
        "address": _cell_text(result.address),
        "port": _cell_number(result.port),
        "transport": _cell_text(result.transport),
        "groups": _cell_text(";".join(str(g) for g in result.groups)),
        "status": result.status.value,
        "category": result.category.value,
        "hint": _cell_text(result.hint),
        "ecs_url": _cell_text(result.ecs_url),
        "http_status": _cell_number(result.http_status),
        "dns_ok": _cell_bool(result.dns_ok),
        "tcp_ok": _cell_bool(result.tcp_ok),
        "proxy": _cell_text(result.proxy),
        "error": _cell_text(result.error),
        "step": _cell_text(result.step),
        "started_at": _cell_text(result.started_at),
        "finished_at": _cell_text(result.finished_at),
        "duration_s": _cell_number(result.duration_s),
        "report_path": _cell_text(report_path),
        "capture_path": _cell_text(capture_path),
        "auth": _cell_text(result.auth),
        "deadline_s": _cell_number(result.deadline_s),
    }


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Write ``results.csv`` atomically: UTF-8 with BOM (Excel), LF line ends, sorted by host."""
    import pandas as pd  # lazy: keeps CLI start-up light

    ordered = sorted(rows, key=lambda row: row["host"])
    frame = pd.DataFrame(ordered, columns=list(CSV_COLUMNS), dtype=object).fillna("")
    with atomic_text_writer(path, encoding="utf-8-sig", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


def jsonl_line(document: dict[str, Any]) -> str:
    """One JSON Lines record (without the newline).

    Non-ASCII stays readable; U+2028/U+2029 are escaped because some line splitters
    (``str.splitlines`` among them) would cut the record there.
    """
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_jsonl(path: Path, documents: Iterable[dict[str, Any]]) -> int:
    """Write ``results.jsonl`` atomically, one document per line; returns the line count."""
    count = 0
    with atomic_text_writer(path, encoding="utf-8", newline="\n") as handle:
        for document in documents:
            handle.write(jsonl_line(document))
            handle.write("\n")
            count += 1
    return count
