"""``report.html`` in a real browser: headless Chromium opens it from disk (``file://``).

Playwright drives the system's Chromium (Debian's ``chromium`` package, which ``.ci/run``
installs when missing) through ``executable_path``; it downloads nothing. The page must load
nothing but itself, log no console error, run no script an endpoint smuggled in, and sort,
filter, search, page and drill down. A screenshot of the drill-down is saved for review.
The tests skip, with the reason, only when no Chromium or no Playwright can be had.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_ecs.models import Category, Finding, HostResult, Status
from fleet_ecs.report.html import render_html, slim_facts
from fleet_ecs.report.rundir import HostEntry, RunInfo, SkippedResult

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install '.[test]')")

XSS = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
RTL = "\u05e9\u05e8\u05ea-\u0645\u0636\u064a\u0641"  # Hebrew and Arabic letters
EVIL_HOST = f"{XSS}{RTL}"
FORMULA = "=HYPERLINK(\"http://198.51.100.7\",\"x\")"
LONG = "z" * 20_000
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FILLER = 240  # enough healthy and failing hosts for three pages of 100 rows


def _chromium() -> str | None:
    candidates = [os.environ.get("FLEET_ECS_CHROMIUM"), "/usr/bin/chromium",
                  shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _probe() -> dict[str, Any]:
    return {
        "url": "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/",
        "dns": {"elapsed_ms": 12, "records": [{"Type": "A", "IPAddress": "192.0.2.10"}]},
        "tcp_all": [{"address": "192.0.2.10", "port": 443, "ok": True, "elapsed_ms": 21}],
        "tls": {"ok": False, "elapsed_ms": 30, "error": XSS, "cert": None},
        "http": {"proxy": "http://proxy.example.test:8080", "elapsed_ms": 48,
                 "first_byte_ms": 44, "status": 407, "error_status": "ProtocolError"},
        "machine": {"proxy": None, "proxy_source": "winhttp-default", "elapsed_ms": 61,
                    "status": None, "error_code": 12029},
    }


def _result(host: str, status: Status, category: Category, **kw: Any) -> HostResult:
    base: dict[str, Any] = dict(
        host=host, address=f"{host}.example.test", port=5985, transport="http",
        status=status, category=category, hint="all good", groups=["site-a"],
        duration_s=1.25, ecs_url="https://mdav.eu.endpoint.security.microsoft.com/ecs/")
    base.update(kw)
    return HostResult(**base)


def _entries(run_dir: Path) -> list[HostEntry]:
    evil = _result(
        EVIL_HOST, Status.FAIL, Category.PROXY_AUTH_REQUIRED, hint=IMG,
        ecs_url=f"javascript:window.__pwned=1//{XSS}", groups=[XSS, FORMULA], proxy=FORMULA,
        evidence=[XSS, f"DNS answer for {RTL}: 203.0.113.5", "\u202egnp.exe", LONG, FORMULA],
        findings=[Finding("proxy_407", Status.FAIL, IMG)], error="-1+1 " + XSS,
        facts=slim_facts({"probe": _probe(), "ecs": {"elapsed_ms": 410}}))
    rtl = _result(f"{RTL}-01", Status.WARN, Category.OK, groups=["site-b"],
                  evidence=[f"\u05e9\u05dc\u05d5\u05dd {RTL}"])
    results = [evil, rtl]
    for i in range(FILLER):
        failing = i % 4 == 0
        results.append(_result(
            f"ws-{i:04d}", Status.FAIL if failing else Status.OK,
            Category.DNS_FAILURE if failing else Category.OK,
            groups=[f"site-{'abc'[i % 3]}"], duration_s=(i % 17) / 3,
            hint="DNS fails" if failing else "all good"))
    entries = []
    for n, result in enumerate(results):
        folder = "evil host" if result is evil else f"h{n:04d}"
        (run_dir / "hosts" / folder).mkdir(parents=True)
        (run_dir / "hosts" / folder / "report.txt").write_text("report\n", encoding="utf-8")
        capture = None
        if result is evil:
            (run_dir / "hosts" / folder / "capture.etl").write_bytes(b"ETL!")
            capture = f"hosts/{folder}/capture.etl"
        entries.append(HostEntry(result, folder, f"hosts/{folder}/report.txt", capture))
    return entries


def _write_report(run_dir: Path, entries: list[HostEntry], **kw: Any) -> Path:
    results = [e.result for e in entries]
    html = render_html(entries, run=kw.pop("run", RunInfo(run_id="r-browser", present=True)),
                       by_status=Counter(r.status for r in results),
                       by_category=Counter(r.category for r in results),
                       builder_version="test", **kw)
    path = run_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


class _Page:
    """A page plus everything it asked the network for and everything it logged as an error."""

    def __init__(self, context: Any, url: str) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.page.goto(url)
        self.page.wait_for_selector("html[data-ready='1']", timeout=10_000)

    def column(self, n: int) -> list[str]:
        return self.page.eval_on_selector_all(
            f"#rows tr td:nth-child({n})", "tds => tds.map(td => td.textContent)")


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium package)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 900}, offline=True)
        # Anything but the report file itself is refused (and recorded by the page).
        context.route("**/*", lambda route: route.continue_()
                      if route.request.url.startswith("file://") else route.abort())
        try:
            yield context
        finally:
            context.close()


def test_report_in_chromium(browser_context: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    entries = _entries(run_dir)
    changes = {"broke": [{"host": EVIL_HOST, "before": {"status": "ok", "category": "ok"},
                          "after": {"status": "fail", "category": "proxy_auth_required"},
                          "last_seen_ok": "2026-01-01T02:00:00+00:00"}],
               "recovered": [], "changed": [], "previous_run_id": "r-before"}
    trend = [{"run_id": f"r{i}", "started_at": f"2026-01-0{i}T02:00:00+00:00", "ok": 150 + i,
              "warn": 1, "fail": 70 - i} for i in range(1, 6)]
    report = _write_report(
        run_dir, entries, changes=changes, trend=trend,
        run=RunInfo(run_id="r-browser", present=True, stopped=True),
        skipped=[SkippedResult("hosts/bad/result.json", f"JSONDecodeError {XSS}")])
    url = report.as_uri()
    view = _Page(browser_context, url)
    page = view.page

    # Hostile values are text: no smuggled element exists and no smuggled script ran.
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.images.length") == 0
    assert page.locator("#stopped").is_visible()
    assert XSS in page.inner_text("body")  # shown, literally
    first = page.locator("#rows tr").first
    assert first.locator("td bdi").text_content() == EVIL_HOST
    assert page.locator("#rows tr").count() == 100
    assert "242 hosts" in page.inner_text("#count")
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    assert hrefs == ["#host-0"], hrefs  # only the changes section links, and only in-page

    # Sort by host name, both ways.
    page.click("#hosts-table th[data-key=host]")
    names = view.column(1)
    assert names == sorted(names, key=str.lower) and names[0] == EVIL_HOST
    page.click("#hosts-table th[data-key=host]")
    names = view.column(1)
    assert names == sorted(names, key=str.lower, reverse=True) and names[0] == f"{RTL}-01"

    # Pages.
    page.click("#next")
    assert "Rows 101\u2013200 of 242" in page.inner_text("#page")

    # Filters: status, category, group; then search.
    page.select_option("#f-status", "ok")
    assert set(view.column(2)) == {"ok"} and "180 of 242 hosts match" in page.inner_text("#count")
    page.select_option("#f-status", "")
    page.select_option("#f-cat", "dns_failure")
    assert set(view.column(3)) == {"dns_failure"} and len(view.column(3)) == 60
    page.select_option("#f-cat", "")
    page.select_option("#f-group", XSS)
    assert view.column(1) == [EVIL_HOST]
    page.click("#reset")
    page.fill("#q", "WS-0007")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert view.column(1) == ["ws-0007"]
    page.fill("#q", "answer for " + RTL)
    page.wait_for_function(
        "() => document.querySelector('#rows tr td bdi').textContent.startsWith('<script>')")
    assert view.column(1) == [EVIL_HOST]

    # Drill-down: everything about the host, as text, with links into the run directory.
    page.click("#rows tr >> nth=0")
    detail = page.locator("#detail")
    assert detail.is_visible()
    assert detail.locator("h2 bdi").text_content() == EVIL_HOST
    assert detail.locator(".hint").text_content() == IMG
    evidence = detail.locator("ul.evidence li").all_text_contents()
    assert evidence[0] == XSS and evidence[2] == "<U+202E>gnp.exe" and evidence[4] == FORMULA
    assert evidence[3].startswith("z" * 1000) and "more characters in report.txt" in evidence[3]
    text = detail.inner_text()
    for needed in ("MpCmdRun -GetEcsUrl", "DNS lookup", "TCP connect", "TLS handshake",
                   "First byte (admin path)", "Machine path", "Admin path", "HTTP 407",
                   "error 12029", f"javascript:window.__pwned=1//{XSS}"):
        assert needed in text, needed
    links = detail.locator("a").evaluate_all("as => as.map(a => [a.textContent, a.href])")
    assert [name for name, _ in links] == ["report.txt", "capture.etl"]
    for _, href in links:
        assert href.startswith(run_dir.as_uri() + "/hosts/evil%20host/")
        assert Path(href.removeprefix("file://").replace("%20", " ")).is_file()
    shot = tmp_path / "report-drilldown.png"
    page.screenshot(path=str(shot))
    print(f"\nscreenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # Escape closes it; the changes section's link opens the same host again.
    page.keyboard.press("Escape")
    assert not detail.is_visible()
    page.click("#changes ~ table a[href='#host-0']")
    page.wait_for_selector("#detail:not([hidden])")
    assert detail.locator("h2 bdi").text_content() == EVIL_HOST

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert view.errors == []
    assert view.requests == [url]  # the file itself, nothing else
    page.close()


def test_five_thousand_hosts_stay_responsive(browser_context: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "big"
    categories = [c for c in Category if c is not Category.OK]
    entries = []
    for i in range(5_000):
        failing = i % 3 == 0
        result = _result(f"host-{i:05d}", Status.FAIL if failing else Status.OK,
                         categories[i % len(categories)] if failing else Category.OK,
                         groups=[f"site-{i % 25}"], evidence=[f"line {i}"] * 3,
                         duration_s=(i % 101) / 10)
        entries.append(HostEntry(result, f"host-{i:05d}", f"hosts/host-{i:05d}/report.txt",
                                 None))
    run_dir.mkdir()
    view = _Page(browser_context, _write_report(run_dir, entries).as_uri())
    page = view.page

    timed = page.evaluate("""() => {
        const t0 = performance.now();
        document.querySelector("#hosts-table th[data-key=duration]").click();
        const t1 = performance.now();
        const q = document.getElementById("q");
        q.value = "host-0499"; q.dispatchEvent(new Event("input"));
        return [t1 - t0, document.querySelectorAll("#rows tr").length];
    }""")
    assert timed[0] < 1_000, f"sorting 5,000 rows took {timed[0]:.0f} ms"
    assert timed[1] == 100
    started = time.perf_counter()
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 10")
    assert time.perf_counter() - started < 2.0
    assert sorted(view.column(1)) == [f"host-0499{d}" for d in range(10)]
    assert view.errors == [] and len(view.requests) == 1
    page.close()
