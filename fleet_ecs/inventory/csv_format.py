"""A CSV inventory: a header row, then one host per row.

The ``name`` column (or ``host`` when there is no ``name``; ``host`` then stands for the address)
names the host. Other columns are setting keys, ``groups`` (separated by ``;``) or ``vars.KEY``
for free data. Empty cells are unset. Unknown columns are errors so a misspelt header is noticed.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from fleet_ecs.inventory.model import Located, Source
from fleet_ecs.inventory.settings import (
    SETTING_KEYS,
    UniqueNames,
    build_host,
    is_refused_key,
    refused_key_problem,
)
from fleet_ecs.models import HostSpec

if TYPE_CHECKING:
    from _csv import Reader

_VARS_PREFIX = "vars."


def parse_csv(src: Source, text: str) -> list[HostSpec]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header, header_line = _header(src, reader)
    columns = _columns(src, header, header_line)
    hosts: list[HostSpec] = []
    seen = UniqueNames(src)
    start = reader.line_num
    for row in reader:
        number, start = start + 1, reader.line_num
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) > len(columns):
            raise src.error(
                f"row has {len(row)} cells but the header has {len(columns)}", line=number
            )
        # A short row leaves its last columns unset.
        pairs = zip(columns, row, strict=False)
        cells = {column: cell.strip() for column, cell in pairs if cell.strip()}
        name = cells.pop("name", "")
        if not name:
            raise src.error("row has no host name", line=number)
        seen.add(name, number)
        groups = [g.strip() for g in cells.pop("groups", "").split(";") if g.strip()]
        host_vars = {
            column[len(_VARS_PREFIX) :]: cells.pop(column)
            for column in list(cells)
            if column.startswith(_VARS_PREFIX)
        }
        layer = {key: Located(value, number) for key, value in cells.items()}
        hosts.append(
            build_host(src, name, line=number, layers=[layer], groups=groups, host_vars=host_vars)
        )
    if not hosts:
        raise src.error("no hosts defined (the CSV has a header but no rows)")
    return hosts


def _header(src: Source, reader: Reader) -> tuple[list[str], int]:
    for row in reader:
        if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#"):
            return [cell.strip().lower() for cell in row], reader.line_num
    raise src.error("no hosts defined (empty CSV)")


def _columns(src: Source, header: list[str], line: int) -> list[str]:
    if "name" not in header and "host" not in header:
        raise src.error("the header row needs a 'name' or 'host' column", line=line)
    columns = []
    for column in header:
        if column == "host":
            column = "address" if "name" in header else "name"
        if is_refused_key(column.removeprefix(_VARS_PREFIX)):
            raise src.error(f"column {refused_key_problem(column, ansible=False)}", line=line)
        if column in columns:
            raise src.error(f"column {column!r} appears twice", line=line)
        if column not in (*SETTING_KEYS, "name", "groups") and not (
            column.startswith(_VARS_PREFIX) and len(column) > len(_VARS_PREFIX)
        ):
            raise src.error(
                f"unknown column {column!r} (expected name, groups, {', '.join(SETTING_KEYS)}, "
                "or vars.NAME for free data)",
                line=line,
            )
        columns.append(column)
    return columns
