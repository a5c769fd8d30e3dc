"""Spreadsheet exports: the XLSX workbook, and the CSV's formula escaping and documentation."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import openpyxl
import pytest

from fleet_ecs.models import Category, HostResult, Status
from fleet_ecs.report import build_reports
from fleet_ecs.report.tables import CSV_COLUMNS, csv_row
from fleet_ecs.report.xlsx import MAX_CELL_CHARS, sheet_name

REPO = Path(__file__).resolve().parents[2]
FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]


def _host(name: str, status: Status, category: Category, **kw: object) -> HostResult:
    base = dict(host=name, address="192.0.2.7", port=5985, transport="http", status=status,
                category=category, hint="see the capture", groups=["site-a"],
                started_at="2026-01-02T03:04:05+00:00", finished_at="2026-01-02T03:04:09+00:00",
                duration_s=4.25, deadline_s=300.0, auth="ntlm")
    base.update(kw)
    return HostResult(**base)  # type: ignore[arg-type]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    hosts = [
        _host("alpha", Status.OK, Category.OK, ecs_url="https://mdav.example.test/ecs/",
              http_status=200, dns_ok=True, tcp_ok=True),
        _host("bravo", Status.FAIL, Category.PROXY_AUTH_REQUIRED, http_status=407, dns_ok=True,
              tcp_ok=False, proxy='=HYPERLINK("http://198.51.100.7","x")',
              error="@SUM(1+1)*cmd|' /C calc'!A0", hint="-2+3",
              ecs_url="\u05e9\u05e8\u05ea\x1b[31m" + "y" * 40_000),
        _host("charlie", Status.FAIL, Category.PROXY_AUTH_REQUIRED, error="+1"),
        _host("delta", Status.FAIL, Category.WINRM_UNREACHABLE, step="connect",
              duration_s=0.5, error="\tTAB"),
        _host("echo", Status.WARN, Category.HTTP_ERROR, http_status=503),
    ]
    folder = tmp_path / "run"
    for result in hosts:
        (folder / "hosts" / result.host).mkdir(parents=True)
        (folder / "hosts" / result.host / "result.json").write_text(
            json.dumps(result.to_dict()), encoding="utf-8")
    (folder / "run.json").write_text(json.dumps({
        "run_id": "=r1", "started_at": "2026-01-02T03:00:00+00:00", "inventory": "inv.yaml"}),
        encoding="utf-8")
    build_reports(folder)
    return folder


def test_workbook_sheets_and_summary(run_dir):
    book = openpyxl.load_workbook(run_dir / "results.xlsx")

    assert book.sheetnames == ["summary", "hosts", "winrm_unreachable", "proxy_auth_required",
                               "http_error"]
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True) if row}
    assert summary["fleet-ecs run"] == "=r1"
    assert (summary["hosts"], summary["ok"], summary["not ok"]) == (5, 1, 4)
    assert (summary["fail"], summary["warn"], summary["proxy_auth_required"]) == (3, 1, 2)
    category_rows = list(book["proxy_auth_required"].iter_rows(values_only=True))
    assert category_rows[0] == CSV_COLUMNS
    assert [row[0] for row in category_rows[1:]] == ["bravo", "charlie"]


def test_hosts_sheet_is_typed_like_the_csv_columns(run_dir):
    sheet = openpyxl.load_workbook(run_dir / "results.xlsx")["hosts"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == CSV_COLUMNS
    alpha = dict(zip(CSV_COLUMNS, rows[1]))
    assert [r[0] for r in rows[1:]] == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert alpha["port"] == 5985 and alpha["http_status"] == 200
    assert alpha["duration_s"] == 4.25 and alpha["deadline_s"] == 300
    assert alpha["dns_ok"] is True and alpha["tcp_ok"] is True
    assert alpha["started_at"] == "2026-01-02T03:04:05+00:00"  # ISO text, not a date cell
    assert alpha["proxy"] is None and alpha["auth"] == "ntlm" and alpha["groups"] == "site-a"
    delta = dict(zip(CSV_COLUMNS, rows[4]))
    assert delta["dns_ok"] is None and delta["http_status"] is None
    assert delta["report_path"] == "hosts/delta/report.txt"


def test_formula_like_cells_stay_strings(run_dir):
    book = openpyxl.load_workbook(run_dir / "results.xlsx")
    bravo = {c.column_letter: c for c in book["hosts"][3]}
    by_name = {name: bravo[cell.column_letter]
               for name, cell in zip(CSV_COLUMNS, book["hosts"][1])}

    assert by_name["proxy"].value == '=HYPERLINK("http://198.51.100.7","x")'
    assert by_name["error"].value == "@SUM(1+1)*cmd|' /C calc'!A0"
    assert by_name["hint"].value == "-2+3"
    for name in ("proxy", "error", "hint"):
        assert by_name[name].data_type == "s" and by_name[name].quotePrefix
    long_url = by_name["ecs_url"].value
    assert long_url.startswith("\u05e9\u05e8\u05ea<U+001B>[31m") and len(long_url) == MAX_CELL_CHARS
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row), sheet.title
    assert book["summary"]["B1"].data_type == "s"


def test_csv_escapes_exactly_the_formula_starts_in_text_columns():
    for text in FORMULAS:
        row = csv_row(_host("h", Status.FAIL, Category.OK, error=text, proxy=text, hint=text))
        assert row["error"] == row["proxy"] == row["hint"] == "'" + text
    for text in (" =1", "a=b", "1-2", "x@y", "", "\u05e9=1"):
        assert csv_row(_host("h", Status.OK, Category.OK, error=text))["error"] == text
    negative = csv_row(_host("h", Status.OK, Category.OK, duration_s=-1.5, port=-1,
                             deadline_s=-3.0))
    assert (negative["duration_s"], negative["port"], negative["deadline_s"]) == (
        "-1.5", "-1", "-3.0")


def test_csv_written_by_the_build_is_escaped(run_dir):
    raw = (run_dir / "results.csv").read_bytes()
    rows = {r["host"]: r for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))}
    assert rows["bravo"]["proxy"].startswith("'=HYPERLINK")
    assert rows["charlie"]["error"] == "'+1" and rows["delta"]["error"] == "'\tTAB"
    assert rows["bravo"]["http_status"] == "407"


def test_readme_documents_every_csv_column_and_the_rule():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("`results.csv` columns"):]
    section = section[: section.index("\n## ")]
    for column in CSV_COLUMNS:
        assert re.search(rf"`{column}`", section), column
    assert "`=`, `+`, `-`, `@`, a tab or a carriage return" in section


def test_sheet_names_are_valid_and_unique():
    taken: set[str] = set()
    names = [sheet_name(n, taken) for n in
             ("summary", "Summary", "a/b:c*d?e[f]g\\h" * 3, "'quoted'", "history", "x" * 40,
              "x" * 40)]
    assert names[0] == "summary" and names[1] == "Summary~2"
    assert all(len(n) <= 31 for n in names)
    assert not any(set(n) & set("[]:*?/\\") for n in names)
    assert names[3] == "quoted" and names[4] == "history~2"
    assert names[5] == "x" * 31 and names[6] == "x" * 29 + "~2"
    assert len({n.casefold() for n in names}) == len(names)


def test_rebuilding_gives_the_same_workbook_bytes(run_dir, monkeypatch):
    import time

    first = (run_dir / "results.xlsx").read_bytes()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 10 * 86400)  # ten days later
    build_reports(run_dir)
    assert (run_dir / "results.xlsx").read_bytes() == first
    props = openpyxl.load_workbook(run_dir / "results.xlsx").properties
    assert props.created.isoformat() == "2026-01-02T03:00:00" and props.creator == "fleet-ecs"
