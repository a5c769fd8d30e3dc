"""Tests of ``report.html``: self-contained, escaped, and quick at 5,000 hosts."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from fleet_ecs.models import Category, Finding, HostResult, Status
from fleet_ecs.probe.diagnose import PRECEDENCE
from fleet_ecs.report import charts
from fleet_ecs.report.html import (
    CATEGORY_ORDER,
    MAX_TEXT,
    ecs_region,
    json_island,
    render_html,
    slim_facts,
)
from fleet_ecs.report.rundir import HostEntry, RunInfo, SkippedResult

XSS = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
RTL = "\u05e9\u05e8\u05ea-\u0645\u0636\u064a\u0641"  # Hebrew and Arabic letters
LONG = "y" * 20_000
ISLAND_RE = re.compile(
    r'<script type="application/json" id="fleet-data">(.*?)</script>', re.S)


def _probe(elapsed: int = 150) -> dict:
    return {
        "url": "https://mdav.eu.endpoint.security.microsoft.com/ecs/config/v1/",
        "host": "mdav.eu.endpoint.security.microsoft.com",
        "dns": {"elapsed_ms": 12, "error": None,
                "records": [{"Name": "mdav", "Type": "A", "IPAddress": "192.0.2.10"}]},
        "tcp_all": [{"address": "192.0.2.10", "port": 443, "ok": True, "elapsed_ms": 21}],
        "tls": {"ok": True, "elapsed_ms": 33, "cert": None},
        "http": {"proxy": None, "elapsed_ms": elapsed, "first_byte_ms": 99, "status": 200,
                 "headers": {"X-Big": "h" * 5_000}, "body_excerpt": "b" * 5_000,
                 "error_status": None},
        "machine": {"proxy": None, "proxy_source": "winhttp-default", "elapsed_ms": 140,
                    "status": 200, "headers": {"A": "b"}, "body_excerpt": "{}"},
    }


def _result(host: str, status: Status = Status.OK, category: Category = Category.OK,
            **kw: object) -> HostResult:
    base = dict(host=host, address="192.0.2.1", port=5985, transport="http", status=status,
                category=category, hint="fine", groups=["site-a"], duration_s=1.5,
                ecs_url="https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/")
    base.update(kw)
    return HostResult(**base)  # type: ignore[arg-type]


def _entry(result: HostResult, capture: bool = False) -> HostEntry:
    folder = result.host.replace("/", "_")  # a folder name never holds a slash
    return HostEntry(result, folder, f"hosts/{folder}/report.txt",
                     f"hosts/{folder}/capture.etl" if capture else None)


def _hostile() -> list[HostEntry]:
    evil = _result(
        f"{XSS}{RTL}", Status.FAIL, Category.PROXY_AUTH_REQUIRED, hint=IMG,
        ecs_url="javascript:alert(1)//</script>", groups=[XSS, "=cmd|' /C calc'!A0"],
        evidence=[XSS, f"answer for {RTL}", "\u202egnp.exe", LONG, "line\u2028two"],
        findings=[Finding("x<b>", Status.FAIL, "</script><!--")], proxy="@SUM(1)",
        error="-2+3", facts=slim_facts({"probe": _probe()}),
    )
    return [_entry(evil, capture=True), _entry(_result("ok-01")),
            _entry(_result("wr-01", Status.FAIL, Category.WINRM_UNREACHABLE, ecs_url=None))]


def _render(entries: list[HostEntry], **kw: object) -> str:
    results = [e.result for e in entries]
    return render_html(entries, run=kw.pop("run", RunInfo(run_id="r1", present=True)),
                       by_status=Counter(r.status for r in results),
                       by_category=Counter(r.category for r in results), **kw)  # type: ignore


def _island(html: str) -> list[dict]:
    match = ISLAND_RE.search(html)
    assert match, "no data island"
    return json.loads(match.group(1))


def test_hostile_values_never_become_markup() -> None:
    html = _render(_hostile())

    # Exactly the data island and the page's own script; nothing an endpoint sent.
    assert html.lower().count("<script") == 2
    assert XSS not in html and IMG not in html and "<b>" not in html
    assert "javascript:" not in html.split('id="fleet-data">', 1)[0]
    assert 'href="javascript' not in html and "<!--" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # group filter option
    island = ISLAND_RE.search(html).group(1)  # type: ignore[union-attr]
    assert "<" not in island and ">" not in island and "&" not in island
    assert "\u2028" not in island


def test_island_round_trips_hostile_text() -> None:
    hosts = _island(_render(_hostile()))
    evil = hosts[0]

    assert evil["h"] == f"{XSS}{RTL}" and evil["hint"] == IMG
    assert evil["url"] == "javascript:alert(1)//</script>"
    assert evil["ev"][0] == XSS and RTL in evil["ev"][1]
    assert evil["ev"][2] == "<U+202E>gnp.exe"  # bidi override shown, not obeyed
    assert evil["ev"][4] == "line<U+2028>two"
    assert evil["ev"][3].startswith("y" * MAX_TEXT) and len(evil["ev"][3]) < MAX_TEXT + 100
    assert evil["fi"] == [["fail", "x<b>", "</script><!--"]]
    assert evil["rep"] == "hosts/%3Cscript%3Ewindow.__pwned%3D1%3C_script%3E" \
        + "%D7%A9%D7%A8%D7%AA-%D9%85%D8%B6%D9%8A%D9%81/report.txt"
    assert evil["cap"].endswith("/capture.etl") and hosts[1]["cap"] is None


def test_json_island_escapes_script_breakers() -> None:
    text = json_island({"a": "</script><!--&\u2028\u2029"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"a": "</script><!--&\u2028\u2029"}


def test_csp_is_strict_and_hashes_match_inline_code() -> None:
    html = _render(_hostile())
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    for directive in ("default-src 'none'", "connect-src 'none'", "img-src data:",
                      "base-uri 'none'", "form-action 'none'"):
        assert directive in csp
    assert "unsafe" not in csp and "http" not in csp
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    script = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(script) == 1

    def sha(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src 'sha256-{sha(script[0])}'" in csp
    assert f"style-src 'sha256-{sha(style)}'" in csp
    # Nothing to fetch: no external references of any kind (the island holds only text).
    page = ISLAND_RE.sub("", html)
    for needle in ("<link", " src=", "@import", "url(", "<iframe", "<object", " style="):
        assert needle not in page
    assert "innerHTML" not in script[0] and "eval(" not in script[0]


def test_headline_figures_and_category_order() -> None:
    entries = [_entry(_result(f"ok{i}")) for i in range(3)] + [
        _entry(_result("w1", Status.WARN, Category.OK)),
        _entry(_result("d1", Status.FAIL, Category.DNS_FAILURE)),
        _entry(_result("p1", Status.FAIL, Category.INSUFFICIENT_PRIVILEGE)),
        _entry(_result("u1", Status.FAIL, Category.WINRM_UNREACHABLE)),
        _entry(_result("c1", Status.FAIL, Category.CLIENT_CONFIG_ERROR)),
    ]
    html = _render(entries, run=RunInfo(run_id="r2", present=True, hosts=10))

    assert re.search(r'id="n-scanned">8<', html) and "of 10 in the inventory" in html
    assert re.search(r'id="n-reachable">6<', html)
    assert re.search(r'id="n-ecs-ok">4<', html) and re.search(r'id="n-failing">4<', html)
    assert "50.0 %" in html and "66.7 % of the reachable hosts" in html
    cats = html.split('<table class="categories">', 1)[1].split("</table>", 1)[0]
    order = [cats.index(f"<code>{c}</code>") for c in (
        "winrm_unreachable", "client_config_error", "insufficient_privilege", "dns_failure",
        "ok")]
    assert order == sorted(order)
    assert list(CATEGORY_ORDER[-len(PRECEDENCE):]) == list(PRECEDENCE)
    assert set(CATEGORY_ORDER) == set(Category)
    # The island keeps the server's order: failures first, then warnings, by name.
    assert [h["h"] for h in _island(html)][:4] == ["c1", "d1", "p1", "u1"]


def test_timings_and_paths_from_slim_facts() -> None:
    full = {"probe": _probe(), "ecs": {"elapsed_ms": 400, "output": "o" * 9_000},
            "facts": {"ps_version": "5.1"}}
    slim = slim_facts(full)
    assert "headers" not in slim["probe"]["http"] and "body_excerpt" not in slim["probe"]["machine"]
    assert len(json.dumps(slim)) < 1_500
    assert slim_facts({}) == {} and slim_facts({"facts": {"x": 1}}) == {}

    for facts in (full, slim):
        host = _island(_render([_entry(_result("a", facts=facts))]))[0]
        assert dict(host["tm"]) == {
            "MpCmdRun -GetEcsUrl": 400, "DNS lookup": 12, "TCP connect": 21,
            "TLS handshake (direct)": 33, "First byte (admin path)": 99,
            "HTTP request, admin path": 150, "HTTP request, machine path": 140}
        assert host["ms"] == 140
        assert [p["status"] for p in host["np"]] == [200, 200]
        assert host["np"][0]["via"] == "winhttp-default" and host["np"][1]["via"] == "direct"
    bare = _island(_render([_entry(_result("b"))]))[0]
    assert bare["tm"] == [] and bare["np"] == [] and bare["ms"] is None


def test_stopped_banner_and_unreadable_results() -> None:
    html = _render(_hostile(), run=RunInfo(run_id="r", present=True, stopped=True),
                   skipped=[SkippedResult("hosts/x/result.json", f"bad {XSS}")])
    assert 'id="stopped"' in html and "stopped before it finished" in html
    assert "hosts/x/result.json" in html and "bad &lt;script&gt;" in html
    plain = _render(_hostile())
    assert 'id="stopped"' not in plain and 'id="skipped"' not in plain
    assert "No usable run.json" in _render(_hostile(), run=RunInfo())


@dataclass
class _State:
    status: str
    category: str


@dataclass
class _Change:
    host: str
    before: _State | None
    after: _State | None
    last_seen_ok: str | None


def test_changes_and_trend_only_when_given() -> None:
    plain = _render(_hostile())
    assert 'id="changes"' not in plain and 'id="trend"' not in plain

    changes = {
        "broke": [_Change(f"{XSS}{RTL}", _State("ok", "ok"),
                          _State("fail", "proxy_auth_required"), "2026-01-01T02:00:00Z")],
        "recovered": [{"host": "gone<i>", "before": "dns_failure", "after": "ok"}],
        "changed": [], "previous_run_id": "r0",
    }
    trend = [{"run_id": f"r{i}", "started_at": f"2026-01-0{i}T02:00:00Z", "ok": i, "warn": 1,
              "fail": 5 - i} for i in range(1, 4)]
    html = _render(_hostile(), changes=changes, trend=trend)

    section = html.split('id="changes"', 1)[1].split('id="trend"', 1)[0]
    assert "<code>r0</code>" in section
    assert "Broke since the previous run (1)" in section and "Recovered (1)" in section
    assert '<a href="#host-0"><bdi>&lt;script&gt;window.__pwned=1&lt;/script&gt;' in section
    assert "2026-01-01T02:00:00Z" in section and "gone&lt;i&gt;" in section
    assert '<span class="badge fail">fail</span> <code>proxy_auth_required</code>' in section
    assert "Changed category" not in section  # empty kinds are left out
    trend_part = html.split('id="trend"', 1)[1]
    assert trend_part.count("<code>r") == 3 and "<svg" in trend_part

    empty = _render(_hostile(), changes={"broke": [], "recovered": [], "changed": []}, trend=[])
    assert "No host changed status or category." in empty and "no runs" in empty


def test_changes_from_the_diff_module_shapes() -> None:
    diff = pytest.importorskip("fleet_ecs.report.diff")
    changes = diff.compare(
        diff.RunRef("r0"), {"ok-01": diff.HostState("fail", "dns_failure"),
                            "wr-01": diff.HostState("ok", "ok")},
        diff.RunRef("r1"), {"ok-01": diff.HostState("ok", "ok"),
                            "wr-01": diff.HostState("fail", "winrm_unreachable")},
        last_seen_ok={"wr-01": "2026-01-01T02:00:00Z"})
    trend = [diff.TrendPoint("r0", "2026-01-01T02:00:00Z", 2, 1, 0, 1)]
    html = _render(_hostile(), changes=changes, trend=trend)
    section = html.split('id="changes"', 1)[1].split('id="trend"', 1)[0]
    assert '<a href="#host-1"><bdi>wr-01</bdi></a>' in section
    assert "2026-01-01T02:00:00Z" in section and "Recovered (1)" in section


def test_charts_escape_labels_and_bin_values() -> None:
    svg = charts.bar_chart([charts.Bar(XSS, ((2, "fail"), (1, "ok")))], title=f"t{XSS}")
    assert XSS not in svg and "&lt;script&gt;" in svg and svg.count("<rect") == 2
    assert charts.histogram_bins([0, 0.4, 1.0, 9.9]) == [
        (float(i), float(i + 1), n) for i, n in enumerate([2, 1, 0, 0, 0, 0, 0, 0, 0, 1])]
    assert charts.histogram_bins([]) == [] and "no values" in charts.histogram([], title="x",
                                                                                unit="s")
    assert ecs_region("https://mdav.eu.endpoint.security.microsoft.com/ecs/") == (
        "eu", "mdav.eu.endpoint.security.microsoft.com")
    assert ecs_region("javascript:alert(1)")[0] == "unparsable"
    assert ecs_region("https://gccmod.ecs.office.com/")[0].startswith("government")
    assert ecs_region(None) == ("none", "")


def test_five_thousand_hosts_render_fast_and_small() -> None:
    categories = list(Category)
    entries = []
    for i in range(5_000):
        cat = categories[i % len(categories)]
        status = Status.OK if cat is Category.OK else Status.FAIL
        result = _result(
            f"ws-{i:05d}.corp.example.test", status, cat, groups=[f"site-{i % 40}", "wks"],
            hint="h" * 120, evidence=[f"evidence line {n} for host {i}" for n in range(4)],
            findings=[Finding("f", Status.WARN, "m" * 80)], duration_s=(i % 97) / 7,
            facts=slim_facts({"probe": _probe(100 + i % 500), "ecs": {"elapsed_ms": 300}}))
        entries.append(_entry(result, capture=i % 3 == 0))

    started = time.perf_counter()
    html = _render(entries)
    elapsed = time.perf_counter() - started

    assert elapsed < 5.0, f"rendering 5,000 hosts took {elapsed:.2f} s"
    size = len(html.encode("utf-8"))
    assert size < 15 * 1024 * 1024, f"report.html is {size} bytes"
    hosts = _island(html)
    assert len(hosts) == 5_000 and all(h["tm"] for h in hosts)
    assert "and 21 more groups" in html  # 41 groups, the worst 20 charted
