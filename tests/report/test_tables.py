"""Unit tests of CSV cell formatting and JSON Lines records."""

from __future__ import annotations

import json

from fleet_ecs.models import Category, HostResult, Status
from fleet_ecs.report.tables import CSV_COLUMNS, csv_row, jsonl_line


def test_csv_row_formats_cells() -> None:
    result = HostResult(host="h", address="192.0.2.3", port=5986, transport="https",
                        status=Status.WARN, category=Category.OK, hint="-1 looks like a number",
                        http_status=None, dns_ok=False, tcp_ok=None, duration_s=0.125,
                        error="@SUM(A1)", groups=["a", "b"])
    row = csv_row(result, report_path="hosts/h/report.txt")

    assert tuple(row) == CSV_COLUMNS
    assert row["port"] == "5986" and row["http_status"] == "" and row["duration_s"] == "0.125"
    assert row["dns_ok"] == "false" and row["tcp_ok"] == ""
    assert row["hint"] == "'-1 looks like a number" and row["error"] == "'@SUM(A1)"
    assert row["groups"] == "a;b" and row["capture_path"] == ""
    assert row["status"] == "warn" and row["category"] == "ok"


def test_jsonl_line_is_one_line_and_round_trips() -> None:
    doc = {"host": "h\u2028x\u2029y\nz", "evidence": ["\u05e9\u05dc\u05d5\u05dd"]}
    line = jsonl_line(doc)

    assert len(line.splitlines()) == 1
    assert "\u05e9" in line
    assert json.loads(line) == doc
