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

from fleet_ecs.atomic import atomic_text_writer
from fleet_ecs.models import HostResult

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "host", "address", "port", "transport", "groups", "status", "category", "hint", "ecs_url",
    "http_status", "dns_ok", "tcp_ok", "proxy", "error", "step", "started_at", "finished_at",
    "duration_s", "report_path", "capture_path", "auth", "deadline_s",
)

# A spreadsheet evaluates a cell starting with one of these as a formula; endpoint text must
# not be able to run one (CSV injection), so such text gets a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Columns whose cells are numbers or booleans; every other column holds text.
NUMBER_COLUMNS = frozenset({"port", "http_status", "duration_s", "deadline_s"})
BOOL_COLUMNS = frozenset({"dns_ok", "tcp_ok"})


def formula_like(text: str) -> bool:
    """True when a spreadsheet would read ``text`` as a formula (or start of one)."""
    return text.startswith(_FORMULA_STARTS)


def spreadsheet_text(value: Any) -> str:
    """A text cell for CSV: empty for ``None``, a leading ``'`` when it looks like a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if formula_like(text) else text


_cell_text = spreadsheet_text


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


def row_values(
    result: HostResult, *, report_path: str | None = None, capture_path: str | None = None
) -> dict[str, Any]:
    """One host's cells as typed values (``None`` where unknown), keyed by ``CSV_COLUMNS``.

    The one place that decides what each column holds; ``csv_row`` and the XLSX workbook
    only format these values.
    """
    return {
        "host": result.host,
        "address": result.address,
        "port": result.port,
        "transport": result.transport,
        "groups": ";".join(str(g) for g in result.groups),
        "status": result.status.value,
        "category": result.category.value,
        "hint": result.hint,
        "ecs_url": result.ecs_url,
        "http_status": result.http_status,
        "dns_ok": result.dns_ok,
        "tcp_ok": result.tcp_ok,
        "proxy": result.proxy,
        "error": result.error,
        "step": result.step,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": result.duration_s,
        "report_path": report_path,
        "capture_path": capture_path,
        "auth": result.auth,
        "deadline_s": result.deadline_s,
    }


def csv_row(
    result: HostResult, *, report_path: str | None = None, capture_path: str | None = None
) -> dict[str, str]:
    """One CSV row; paths are relative to the run directory with forward slashes."""
    values = row_values(result, report_path=report_path, capture_path=capture_path)
    row = {}
    for column in CSV_COLUMNS:
        if column in NUMBER_COLUMNS:
            row[column] = _cell_number(values[column])
        elif column in BOOL_COLUMNS:
            row[column] = _cell_bool(values[column])
        else:
            row[column] = _cell_text(values[column])
    return row


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
