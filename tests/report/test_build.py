"""End-to-end tests of ``build_reports`` over a hand-made run directory."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest

from fleet_ecs.errors import OutputError
from fleet_ecs.models import Category, FetchedFile, Finding, HostResult, Status
from fleet_ecs.report import build_reports, load_results
from fleet_ecs.report.hosttext import SECTION_TITLES
from fleet_ecs.report.tables import CSV_COLUMNS

XSS = "<script>alert(1)</script>"
RTL = "\u05e9\u05e8\u05ea-\u0645\u0636\u064a\u0641"  # Hebrew and Arabic letters
LONG = "x" * 20_000


def _facts(**overrides: object) -> dict:
    facts = {
        "step": "facts", "schema": 1, "ps_version": "5.1.19041.1", "ps_edition": "Desktop",
        "computer_name": "WS01", "user": "EXAMPLE\\scan", "is_admin": True,
        "os_caption": "Microsoft Windows 11 Enterprise", "os_build": "22631", "os_ubr": 3880,
        "defender_install_location":
            "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25050.5-0\\",
        "platform_root": "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform",
        "platform_folders": ["4.18.24090.11-0", "4.18.25050.5-0"],
        "windefend_service": "Running", "mdcoresvc_service": "Running",
        "mp_status": {"AMProductVersion": "4.18.25050.5", "AMEngineVersion": "1.1.25050.6",
                      "AMServiceVersion": "4.18.25050.5", "AMRunningMode": "Normal",
                      "RealTimeProtectionEnabled": True},
        "mp_status_error": None,
    }
    facts.update(overrides)
    return facts


def _ecs() -> dict:
    return {
        "step": "ecs", "schema": 1, "path": "C:\\ProgramData\\...\\MpCmdRun.exe", "exists": True,
        "signature": {"status": "Valid", "status_message": "Signature verified.",
                      "signer_subject": "CN=Microsoft Windows, O=Microsoft Corporation",
                      "signer_thumbprint": "AB" * 20},
        "ran": True, "exit_code": 0, "elapsed_ms": 412,
        "output": "ECS Url: https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/\r\n",
    }


def _probe(*, http: dict | None = None, headers: dict | None = None) -> dict:
    return {
        "step": "probe", "schema": 1,
        "url": "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/",
        "host": "mdav.us.endpoint.security.microsoft.com",
        "capture": {"requested": True, "status_before": "There is no trace session.",
                    "status_before_exit": 1, "stale_stopped": False, "started": True,
                    "start_output": "Trace configuration:\r\nStatus: Running\r\n",
                    "start_exit": 0, "stop_output": "Merging traces ... done\r\n",
                    "stop_exit": 0, "path": "C:\\Windows\\Temp\\fleet-ecs-r1\\capture.etl",
                    "size": 4096, "sha256": "AA" * 32},
        "dns": {"elapsed_ms": 12, "error": None, "error_id": None, "native_code": None,
                "records": [{"Name": "mdav.us.endpoint.security.microsoft.com", "Type": "A",
                             "TTL": 60, "IPAddress": "192.0.2.10"}]},
        "tcp": {"address": "192.0.2.10", "port": 443, "ok": True, "elapsed_ms": 20,
                "error": None, "socket_error": None},
        "winhttp_proxy": {"output": "\r\nCurrent WinHTTP proxy settings:\r\n\r\n"
                                    "    Direct access (no proxy server).\r\n",
                          "exit_code": 0},
        "http": http or {
            "proxy": None, "elapsed_ms": 150, "status": 200, "status_description": "OK",
            "headers": headers or {"Content-Type": "application/json"},
            "body_excerpt": "{}", "error_status": None, "error_message": None,
            "inner_errors": [], "cert": None,
        },
    }


def _result(host: str, status: Status, category: Category, **kw: object) -> HostResult:
    base = dict(
        host=host, address=f"{host}.example.test", port=5985, transport="http",
        status=status, category=category, hint="all good", groups=["site-a", "servers"],
        started_at="2026-01-02T03:04:05+00:00", finished_at="2026-01-02T03:04:09+00:00",
        duration_s=4.25,
    )
    base.update(kw)
    return HostResult(**base)  # type: ignore[arg-type]


def _fleet() -> list[HostResult]:
    ok = _result("alpha", Status.OK, Category.OK, ecs_url="https://mdav.example.test/ecs/",
                 http_status=200, dns_ok=True, tcp_ok=True,
                 facts={"facts": _facts(), "ecs": _ecs(), "probe": _probe()})
    warn = _result("bravo", Status.WARN, Category.OK, hint="reachable, but see findings",
                   http_status=200, dns_ok=True, tcp_ok=True,
                   findings=[Finding("mdcoresvc_stopped", Status.WARN, "MDCoreSvc is Stopped")],
                   facts={"facts": _facts(mdcoresvc_service="Stopped"), "ecs": _ecs(),
                          "probe": _probe()})
    hostile_http = {
        "proxy": "http://proxy.example.test:8080", "elapsed_ms": 30, "status": 407,
        "status_description": XSS, "headers": {"X-Evil": XSS, "Set-Cookie": "a=b"},
        "body_excerpt": XSS + "\x1b[31mred", "error_status": "ProtocolError",
        "error_message": "The remote server returned an error: (407) Proxy Authentication "
                         "Required.", "inner_errors": [XSS], "cert": None,
    }
    fail = _result(
        "charlie", Status.FAIL, Category.PROXY_AUTH_REQUIRED, hint=XSS,
        ecs_url="javascript:alert(1)//" + XSS, http_status=407, dns_ok=True, tcp_ok=False,
        proxy="=HYPERLINK(\"http://198.51.100.7\")", error="proxy wants credentials",
        evidence=[XSS, f"DNS answer for {RTL}: 203.0.113.5", "\u202egnp.exe", LONG],
        findings=[Finding("proxy_407", Status.FAIL, XSS)],
        files=[FetchedFile("capture.etl", "hosts/charlie/capture.etl", 4, "00")],
        facts={"facts": _facts(), "ecs": _ecs(), "probe": _probe(http=hostile_http)},
    )
    unreachable = _result(
        "delta", Status.FAIL, Category.WINRM_UNREACHABLE, hint="WinRM port closed",
        error="connection refused by 192.0.2.44:5985", step="connect", duration_s=0.5,
    )
    return [fail, ok, unreachable, warn]


def _write_run(tmp_path: Path, results: list[HostResult], *, run_json: bool = True) -> Path:
    run_dir = tmp_path / "run"
    for result in results:
        host_dir = run_dir / "hosts" / result.host
        host_dir.mkdir(parents=True)
        (host_dir / "result.json").write_text(json.dumps(result.to_dict()), encoding="utf-8")
    # Only charlie has its capture on disk.
    (run_dir / "hosts" / "charlie" / "capture.etl").write_bytes(b"ETL!")
    if run_json:
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": "r1", "started_at": "2026-01-02T03:00:00+00:00",
            "finished_at": "2026-01-02T03:05:00+00:00", "inventory": "inv/hosts.yml",
            "settings": {"concurrency": 32, "capture": "on-failure"}, "version": "0.1.0",
        }), encoding="utf-8")
    return run_dir


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return _write_run(tmp_path, _fleet())


def test_summary_counts_and_paths(run_dir: Path) -> None:
    summary = build_reports(run_dir)

    assert summary.hosts == 4
    assert summary.by_status == {Status.OK: 1, Status.WARN: 1, Status.FAIL: 2}
    assert list(summary.by_category) == [
        Category.WINRM_UNREACHABLE, Category.PROXY_AUTH_REQUIRED, Category.OK]
    assert summary.by_category[Category.OK] == 2
    assert not summary.skipped and not summary.problems and not summary.all_ok
    names = {p.relative_to(run_dir).as_posix() for p in summary.paths}
    assert {"results.csv", "results.jsonl", "report.html"} <= names
    assert {f"hosts/{h}/report.txt" for h in ("alpha", "bravo", "charlie", "delta")} <= names
    assert all(p.is_file() for p in summary.paths)
    # Atomic writes leave no temp files behind.
    assert not list(run_dir.rglob("*.tmp"))


def test_csv_columns_order_bom_and_values(run_dir: Path) -> None:
    build_reports(run_dir)
    raw = (run_dir / "results.csv").read_bytes()

    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    header = raw.decode("utf-8-sig").split("\n", 1)[0]
    assert header.split(",")[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert header.split(",")[:3] == ["host", "address", "port"]
    assert [r["host"] for r in rows] == ["alpha", "bravo", "charlie", "delta"]

    alpha, charlie, delta = rows[0], rows[2], rows[3]
    assert alpha["groups"] == "site-a;servers"
    assert alpha["http_status"] == "200" and alpha["port"] == "5985"
    assert alpha["dns_ok"] == "true" and charlie["tcp_ok"] == "false" and delta["dns_ok"] == ""
    assert delta["http_status"] == "" and delta["ecs_url"] == ""
    assert alpha["started_at"] == "2026-01-02T03:04:05+00:00"
    assert alpha["duration_s"] == "4.25"
    assert alpha["report_path"] == "hosts/alpha/report.txt"
    assert alpha["capture_path"] == "" and charlie["capture_path"] == "hosts/charlie/capture.etl"
    assert charlie["hint"] == XSS
    assert charlie["error"] == "proxy wants credentials"
    # Formula-looking endpoint text is neutralised for spreadsheets.
    assert charlie["proxy"].startswith("'=HYPERLINK")


def test_jsonl_round_trips(run_dir: Path) -> None:
    build_reports(run_dir)
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").split("\n")

    assert lines[-1] == ""
    parsed = [HostResult.from_dict(json.loads(line)) for line in lines[:-1]]
    by_host = {r.host: r for r in _fleet()}
    assert [r.host for r in parsed] == ["alpha", "bravo", "charlie", "delta"]
    for result in parsed:
        assert result == by_host[result.host]


def _island(html: str) -> list[dict]:
    """The host records the page's script renders (the JSON data island)."""
    raw = html.split('<script type="application/json" id="fleet-data">', 1)[1]
    return json.loads(raw.split("</script>", 1)[0])


def test_html_escapes_endpoint_values(run_dir: Path) -> None:
    build_reports(run_dir)
    html = (run_dir / "report.html").read_text(encoding="utf-8")

    # The page's own two scripts (data island and code); no endpoint value opens a third.
    assert html.lower().count("<script") == 2
    assert "<script>alert(1)</script>" not in html
    hosts = _island(html)
    assert any("<script>alert(1)</script>" in (h["hint"] + " ".join(h["ev"])) for h in hosts)
    assert 'href="javascript' not in html
    # Self-contained: nothing is fetched from anywhere.
    assert "<link" not in html and "src=" not in html and "@import" not in html


def test_html_order_summary_and_links(run_dir: Path) -> None:
    build_reports(run_dir)
    html = (run_dir / "report.html").read_text(encoding="utf-8")

    hosts = _island(html)
    assert [h["h"] for h in hosts] == ["charlie", "delta", "bravo", "alpha"]
    cats = html.split('<table class="categories">', 1)[1].split("</table>", 1)[0]
    assert "proxy_auth_required" in cats and "winrm_unreachable" in cats
    assert "dns_failure" not in cats
    assert "inv/hosts.yml" in html and "r1" in html
    assert {h["h"]: h["rep"] for h in hosts} == {
        name: f"hosts/{name}/report.txt" for name in ("alpha", "bravo", "charlie", "delta")}
    assert [h["cap"] for h in hosts if h["cap"]] == ["hosts/charlie/capture.etl"]


def test_links_are_url_quoted(tmp_path: Path) -> None:
    odd = _result("web 01#a?b", Status.OK, Category.OK)
    run_dir = _write_run(tmp_path, [odd] + [r for r in _fleet() if r.host == "charlie"])
    build_reports(run_dir)
    hosts = _island((run_dir / "report.html").read_text(encoding="utf-8"))

    assert "hosts/web%2001%23a%3Fb/report.txt" in [h["rep"] for h in hosts]


def test_host_report_has_every_section(run_dir: Path) -> None:
    build_reports(run_dir)
    text = (run_dir / "hosts" / "charlie" / "report.txt").read_text(encoding="utf-8")

    for title in SECTION_TITLES:
        assert title in text, title
    assert "Host              : charlie" in text
    assert "Tool version      : fleet-ecs 0.1.0" in text
    assert "Category          : proxy_auth_required" in text
    assert "[FAIL] proxy_407" in text
    assert "Web Request Failed:" in text
    assert "Fetched copy      : hosts/charlie/capture.etl" in text
    assert "\r" not in text and "\x1b" not in text and "<U+001B>[31mred" in text
    assert "\u202e" not in text and "<U+202E>gnp.exe" in text
    assert RTL in text


def test_host_report_without_facts_says_why(run_dir: Path) -> None:
    build_reports(run_dir)
    text = (run_dir / "hosts" / "delta" / "report.txt").read_text(encoding="utf-8")

    for title in SECTION_TITLES:
        assert title in text, title
    why = "(not collected: scan stopped at step 'connect': connection refused by 192.0.2.44:5985)"
    assert text.count(why) >= 6
    assert "WinRM port closed" in text


def test_corrupt_results_are_skipped_and_reported(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = run_dir / "hosts" / "echo"
    bad.mkdir()
    (bad / "result.json").write_text('{"host": "echo", "status":', encoding="utf-8")
    wrong = run_dir / "hosts" / "foxtrot"
    wrong.mkdir()
    (wrong / "result.json").write_text('{"host": "foxtrot", "status": "maybe"}', encoding="utf-8")
    (run_dir / "hosts" / "golf").mkdir()  # a host still being scanned: no result yet
    (run_dir / "hosts" / "hotel").mkdir()
    (run_dir / "hosts" / "hotel" / "result.json").write_bytes(b"\xff\xfe\x00garbage")

    with caplog.at_level(logging.WARNING, logger="fleet_ecs.report"):
        summary = build_reports(run_dir)

    assert summary.hosts == 4
    assert [s.path for s in summary.skipped] == [
        "hosts/echo/result.json", "hosts/foxtrot/result.json", "hosts/hotel/result.json"]
    assert "hosts/echo/result.json" in caplog.text
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Unreadable results" in html and "hosts/foxtrot/result.json" in html
    assert not (bad / "report.txt").exists()
    assert [r.host for r in load_results(run_dir)] == ["alpha", "bravo", "charlie", "delta"]


def test_missing_run_json_and_empty_run(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path, _fleet(), run_json=False)
    summary = build_reports(run_dir)
    assert summary.hosts == 4 and not summary.run.present
    assert "No usable run.json" in (run_dir / "report.html").read_text(encoding="utf-8")
    assert "(run.json missing)" in (run_dir / "hosts/alpha/report.txt").read_text("utf-8")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OutputError, match="not a run directory"):
        build_reports(empty)  # nothing of a run in it: refuse rather than write into it
    assert list(empty.iterdir()) == []
    (empty / "hosts").mkdir()
    summary = build_reports(empty)
    assert summary.hosts == 0 and not summary.all_ok
    assert (empty / "results.csv").read_text(encoding="utf-8-sig").strip() == ",".join(
        CSV_COLUMNS)
    assert (empty / "results.jsonl").read_text(encoding="utf-8") == ""


def test_rebuild_is_identical(run_dir: Path) -> None:
    build_reports(run_dir)
    first = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    build_reports(run_dir)
    second = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert first == second


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        build_reports(tmp_path / "nope")
