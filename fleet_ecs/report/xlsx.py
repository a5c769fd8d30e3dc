"""``results.xlsx``: the run as an Excel workbook, for the manager who lives in spreadsheets.

Sheets, in order: ``summary`` (headline counts, hosts by status, hosts by category), ``hosts``
(the columns of ``results.csv`` in the same order, typed), then one sheet per failing
category holding that category's hosts with the same columns.

Unlike the CSV, cells here carry a type, so nothing needs an apostrophe: numbers are numbers,
``dns_ok``/``tcp_ok`` are booleans, dates stay ISO 8601 text and every other value is a string
cell. openpyxl would store a string starting with ``=`` as a formula; such strings (and the
other formula starts of ``tables.formula_like``) are forced to string cells and given Excel's
"quote prefix" style, so that even editing the cell later does not turn it into a formula.

The workbook is written in openpyxl's write-only mode, which streams rows to disk and keeps
5,000-host fleets cheap, then moved into place atomically. Rebuilding a run gives the same
bytes: the document's dates are the run's, and the zip entries carry a fixed date.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fleet_ecs.atomic import atomic_path
from fleet_ecs.models import Category, Status
from fleet_ecs.report.html import category_rank
from fleet_ecs.report.rundir import HostEntry, RunInfo
from fleet_ecs.report.tables import (
    BOOL_COLUMNS,
    CSV_COLUMNS,
    NUMBER_COLUMNS,
    formula_like,
    row_values,
)

logger = logging.getLogger(__name__)

XLSX_FILE = "results.xlsx"
SUMMARY_SHEET = "summary"
HOSTS_SHEET = "hosts"
MAX_SHEET_NAME = 31
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
# Characters XML 1.0 cannot carry (openpyxl refuses them rather than write a broken file).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_TRUNCATED = " [truncated]"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


class _SteadyZip(zipfile.ZipFile):
    """A zip whose entries all carry ``_ZIP_EPOCH``, so equal content gives equal bytes."""

    def writestr(self, zinfo_or_arcname: Any, data: Any, compress_type: int | None = None,
                 compresslevel: int | None = None) -> None:
        name = (zinfo_or_arcname.filename if isinstance(zinfo_or_arcname, zipfile.ZipInfo)
                else zinfo_or_arcname)
        info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
        info.compress_type = self.compression if compress_type is None else compress_type
        info.external_attr = 0o644 << 16
        super().writestr(info, data, compresslevel=compresslevel)

    def write(self, filename: Any, arcname: Any = None, compress_type: int | None = None,
              compresslevel: int | None = None) -> None:
        # openpyxl adds each streamed worksheet from its temporary file this way.
        self.writestr(arcname or str(filename), Path(filename).read_bytes(), compress_type,
                      compresslevel)


def _document_time(run: RunInfo) -> datetime:
    """The run's end (else start) as naive UTC, for the workbook's created/modified dates."""
    for value in (run.finished_at, run.started_at):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (ValueError, AttributeError):
            continue
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        return when
    return datetime(*_ZIP_EPOCH)


def sheet_name(wanted: str, taken: set[str]) -> str:
    """A valid, unused sheet name for ``wanted``; records it in ``taken`` (casefolded).

    Excel forbids ``[ ] : * ? / \\``, a leading or trailing apostrophe, more than 31
    characters, and two names that differ only by case; ``History`` is reserved.
    """
    base = _SHEET_FORBIDDEN.sub("_", wanted).strip("'") or "sheet"
    base = base[:MAX_SHEET_NAME]
    name, n = base, 1
    while name.casefold() in taken or name.casefold() == "history":
        n += 1
        suffix = f"~{n}"
        name = base[: MAX_SHEET_NAME - len(suffix)] + suffix
    taken.add(name.casefold())
    return name


def _clean(text: str) -> str:
    text = _XML_ILLEGAL.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(_TRUNCATED)] + _TRUNCATED
    return text


class _CellMaker:
    """Turns plain values into what a write-only worksheet row should hold."""

    def __init__(self) -> None:
        self._sheet = None

    def bind(self, sheet: Any) -> None:
        self._sheet = sheet

    def text(self, value: str) -> Any:
        from openpyxl.cell import WriteOnlyCell

        if not value:
            return None  # an empty cell, not an empty string
        value = _clean(value)
        if not formula_like(value):
            return value
        cell = WriteOnlyCell(self._sheet, value=value)
        cell.data_type = "s"  # openpyxl guessed "f" (formula) for a leading "="
        cell.quotePrefix = True  # Excel keeps it text even when the cell is edited
        return cell

    def value(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in NUMBER_COLUMNS:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            return self.text(str(value))
        if column in BOOL_COLUMNS:
            return bool(value)
        return self.text(str(value))


def _host_row(entry: HostEntry, cells: _CellMaker) -> list[Any]:
    values = row_values(entry.result, report_path=entry.report_path,
                        capture_path=entry.capture_path)
    return [cells.value(column, values[column]) for column in CSV_COLUMNS]


def _write_hosts(sheet: Any, entries: Sequence[HostEntry], cells: _CellMaker) -> None:
    from openpyxl.utils import get_column_letter

    cells.bind(sheet)
    sheet.freeze_panes = "A2"
    last = get_column_letter(len(CSV_COLUMNS))
    sheet.auto_filter.ref = f"A1:{last}{len(entries) + 1}"
    for index, column in enumerate(CSV_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, len(column) + 2)
    sheet.append(list(CSV_COLUMNS))
    for entry in entries:
        sheet.append(_host_row(entry, cells))


def _write_summary(sheet: Any, run: RunInfo, hosts: int, by_status: Mapping[Status, int],
                   by_category: Mapping[Category, int], cells: _CellMaker) -> None:
    cells.bind(sheet)
    sheet.column_dimensions["A"].width = 32
    sheet.column_dimensions["B"].width = 40
    ok = by_status.get(Status.OK, 0)
    rows: list[list[Any]] = [
        ["fleet-ecs run", cells.text(run.run_id)],
        ["started_at", cells.text(run.started_at)],
        ["finished_at", cells.text(run.finished_at)],
        ["inventory", cells.text(run.inventory)],
        ["stopped before every host ran", run.stopped],
        [],
        ["hosts", hosts],
        ["ok", ok],
        ["not ok", hosts - ok],
        [],
        ["status", "hosts"],
    ]
    rows += [[status.value, by_status.get(status, 0)] for status in Status]
    rows += [[], ["category", "hosts"]]
    rows += [[category.value, count] for category, count in by_category.items()]
    for row in rows:
        sheet.append(row)


def write_xlsx(
    path: Path,
    entries: Iterable[HostEntry],
    *,
    run: RunInfo,
    by_status: Mapping[Status, int],
    by_category: Mapping[Category, int],
) -> None:
    """Write ``results.xlsx`` atomically; hosts sorted by name, as in ``results.csv``."""
    from openpyxl import Workbook  # lazy: keeps CLI start-up light

    ordered = sorted(entries, key=lambda e: (e.result.host, e.host_dir))
    failing: dict[Category, list[HostEntry]] = {}
    for entry in ordered:
        if entry.result.category is not Category.OK:
            failing.setdefault(entry.result.category, []).append(entry)

    workbook = Workbook(write_only=True)
    cells = _CellMaker()
    taken: set[str] = set()
    _write_summary(workbook.create_sheet(sheet_name(SUMMARY_SHEET, taken)), run, len(ordered),
                   by_status, by_category, cells)
    _write_hosts(workbook.create_sheet(sheet_name(HOSTS_SHEET, taken)), ordered, cells)
    for category in sorted(failing, key=category_rank):
        sheet = workbook.create_sheet(sheet_name(category.value, taken))
        _write_hosts(sheet, failing[category], cells)

    from openpyxl.writer.excel import ExcelWriter

    # Not workbook.save(): it stamps the current time into the document.
    workbook.properties.creator = "fleet-ecs"
    workbook.properties.created = workbook.properties.modified = _document_time(run)
    with atomic_path(path) as tmp:
        archive = _SteadyZip(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        ExcelWriter(workbook, archive).save()  # closes the archive
    logger.debug("wrote %s (%d hosts, %d category sheets)", path, len(ordered), len(failing))
