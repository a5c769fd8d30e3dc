"""The fleet-wide ``report.html``: one self-contained page rendered from ``report.html.j2``.

The page carries its CSS and JavaScript inline (``templates/assets/``, allowed by hash in a
strict Content-Security-Policy), its charts as inline SVG (``fleet_ecs.report.charts``) and
its hosts as a JSON data island that the script turns into a paged, sortable table. Nothing is
fetched from anywhere, so the file opens from disk and can be mailed around.

Every value shown came from, or through, an endpoint:

* the Jinja environment autoescapes and the template never marks data ``|safe``; the only
  ``Markup`` it receives is built here or in ``charts`` with every value escaped;
* the data island escapes ``<``, ``>``, ``&`` and U+2028/9, so no endpoint string can end the
  ``<script>`` element, and the page's script inserts text with ``textContent`` only;
* bidirectional controls and other control characters are shown as ``<U+XXXX>``
  (``textclean``), and host names are isolated with ``<bdi>``;
* links are built here, URL-quoted, only to files inside the run directory; ECS URLs are text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup

from fleet_ecs.models import Category, HostResult, Status
from fleet_ecs.probe.diagnose import PRECEDENCE
from fleet_ecs.probe.paths import read_target
from fleet_ecs.report import charts
from fleet_ecs.report.rundir import HostEntry, RunInfo, SkippedResult
from fleet_ecs.report.textclean import clean_text

if TYPE_CHECKING:
    import jinja2

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "report.html.j2"
CSS_ASSET = "assets/report.css"
JS_ASSET = "assets/report.js"
STATUS_ORDER = (Status.FAIL, Status.WARN, Status.OK)
_STATUS_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}
# The order in which the probe decides, then the faults met before the probe ran.
# The session's categories first (a host never reached comes before anything it could say),
# then the probe's in decision order, ok last: one order for the page, the CSV summary and XLSX.
CATEGORY_ORDER = (*(c for c in Category if c not in PRECEDENCE), *PRECEDENCE)
_CATEGORY_RANK = {cat: rank for rank, cat in enumerate(CATEGORY_ORDER)}
# Categories that mean the scanner never got a working session on the host.
UNREACHED_PREFIXES = ("winrm_", "client_")
# An endpoint can send megabytes of text; the page keeps a bounded share, report.txt the rest.
MAX_TEXT = 4_000
MAX_LINES = 60
TOP_GROUPS = 20
TOP_ENDPOINTS = 10
_GEO_RE = re.compile(r"^mdav\.([a-z]{2,4})\.endpoint\.security\.microsoft\.com$")


def html_environment() -> jinja2.Environment:
    """A Jinja2 environment over the packaged templates folder, autoescaping everything."""
    import jinja2  # lazy: keeps CLI start-up light

    from fleet_ecs.resources import templates_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def href(rel_path: str) -> str:
    """A relative link to ``rel_path`` (forward slashes) with every segment URL-quoted."""
    return "/".join(quote(part, safe="") for part in rel_path.split("/"))


def host_sort_key(entry: HostEntry) -> tuple[int, str, str]:
    """Failures first, then warnings, then healthy hosts; by name within each."""
    return (_STATUS_RANK.get(entry.result.status, len(STATUS_ORDER)), entry.result.host,
            entry.host_dir)


def json_island(data: Any) -> Markup:
    """``data`` as JSON that can sit inside ``<script type="application/json">`` unharmed.

    ``</script>`` or ``<!--`` in a value would end or confuse the element, so ``<``, ``>`` and
    ``&`` are written as JSON ``\\u`` escapes; U+2028/9 too, for older JavaScript parsers.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return Markup(text)


def csp_hash(text: str) -> str:
    """The CSP source expression that allows exactly this inline script or style."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """Endpoint text made safe to show: visible controls, valid UTF-8, at most ``limit`` chars."""
    out = clean_text(value)
    if len(out) > limit:
        out = f"{out[:limit]}\u2026 ({len(out) - limit} more characters in report.txt)"
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a \\ud800 escape in result.json
        out = out.encode("utf-8", "replace").decode("utf-8")
    return out


def _lines(values: Iterable[Any]) -> list[str]:
    items = list(values)
    kept = [text(v) for v in items[:MAX_LINES]]
    if len(items) > MAX_LINES:
        kept.append(f"\u2026 {len(items) - MAX_LINES} more lines in report.txt")
    return kept


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and value >= 0 else None  # drops NaN


def _finite(value: Any) -> float:
    number = _ms(value)
    return 0.0 if number is None or number == float("inf") else number


def category_rank(category: Category) -> int:
    return _CATEGORY_RANK.get(category, len(CATEGORY_ORDER))


def reached(result: HostResult) -> bool:
    """The scanner got a working session on the host (its category is not a WinRM/client one)."""
    return not result.category.value.startswith(UNREACHED_PREFIXES)


# --- facts: timings and network paths -----------------------------------------------------

_HEAVY_KEYS = ("headers", "body_excerpt", "inner_errors")


def slim_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a result's raw facts the HTML page shows, in the same shape.

    ``build_reports`` drops the raw facts before it keeps results for the fleet outputs; passing
    ``facts=slim_facts(result.facts)`` instead keeps the timings and both network paths for the
    drill-down at a few hundred bytes a host.
    """
    probe = _dict(facts.get("probe"))
    if not probe:
        return {}
    slim_probe: dict[str, Any] = {k: probe.get(k) for k in ("url", "host", "tcp", "tcp_all")}
    dns = _dict(probe.get("dns"))
    slim_probe["dns"] = {"elapsed_ms": dns.get("elapsed_ms"), "error": dns.get("error"),
                         "records": (dns.get("records") or [])[:8]
                         if isinstance(dns.get("records"), list) else []}
    for key in ("tls", "http", "machine"):
        doc = probe.get(key)
        slim_probe[key] = ({k: v for k, v in doc.items() if k not in _HEAVY_KEYS}
                           if isinstance(doc, dict) else doc)
    ecs = _dict(facts.get("ecs"))
    return {"probe": slim_probe, "ecs": {"elapsed_ms": ecs.get("elapsed_ms")}}


def _first_ok_tcp(probe: dict[str, Any]) -> float | None:
    tries = probe.get("tcp_all")
    tries = tries if isinstance(tries, list) else [probe.get("tcp")]
    for attempt in tries:
        attempt = _dict(attempt)
        if attempt.get("ok"):
            return _ms(attempt.get("elapsed_ms"))
    return None


def http_elapsed_ms(facts: Mapping[str, Any]) -> float | None:
    """How long the ECS request took: the machine path (Defender's), else the admin path."""
    probe = _dict(facts.get("probe"))
    for key in ("machine", "http"):
        elapsed = _ms(_dict(probe.get(key)).get("elapsed_ms"))
        if elapsed is not None:
            return elapsed
    return None


def _timings(facts: Mapping[str, Any]) -> list[list[Any]]:
    probe = _dict(facts.get("probe"))
    http = _dict(probe.get("http"))
    rows = [
        ("MpCmdRun -GetEcsUrl", _ms(_dict(facts.get("ecs")).get("elapsed_ms"))),
        ("DNS lookup", _ms(_dict(probe.get("dns")).get("elapsed_ms"))),
        ("TCP connect", _first_ok_tcp(probe)),
        ("TLS handshake (direct)", _ms(_dict(probe.get("tls")).get("elapsed_ms"))),
        ("First byte (admin path)", _ms(http.get("first_byte_ms"))),
        ("HTTP request, admin path", _ms(http.get("elapsed_ms"))),
        ("HTTP request, machine path", _ms(_dict(probe.get("machine")).get("elapsed_ms"))),
    ]
    return [[label, ms] for label, ms in rows if ms is not None]


def _paths(facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    probe = _dict(facts.get("probe"))
    if not probe:
        return []
    try:
        target = read_target(probe)
    except Exception:  # noqa: BLE001 - odd facts must not cost the fleet page
        logger.warning("cannot read the network paths of a probe document", exc_info=True)
        return []
    if not (target.machine.known or target.admin.known):
        return []
    out = []
    names = {"machine": "Machine path (WinHTTP, as Defender's services go out)",
             "admin": "Admin path (HttpWebRequest in the scanning account)"}
    for path, doc in ((target.machine, probe.get("machine")), (target.admin, probe.get("http"))):
        doc = _dict(doc)
        via = doc.get("proxy") or doc.get("proxy_source") or ("direct" if doc else "")
        out.append({
            "name": names.get(path.name, path.name), "known": path.known,
            "answered": path.answered, "status": path.status, "kind": path.kind or "",
            "via": text(via, 300), "evidence": _lines(path.evidence),
        })
    return out


# --- per-host records for the data island ---------------------------------------------------

def _host_record(index: int, entry: HostEntry) -> dict[str, Any]:
    result = entry.result
    facts = result.facts if isinstance(result.facts, dict) else {}
    return {
        "i": index,
        "h": text(result.host, 300),
        "a": text(f"{result.address}:{result.port}", 300),
        "t": text(result.transport, 20),
        "au": text(result.auth or "", 40),
        "g": [text(g, 200) for g in result.groups[:MAX_LINES]],
        "s": result.status.value,
        "c": result.category.value,
        "cr": category_rank(result.category),
        "hint": text(result.hint),
        "ev": _lines(result.evidence),
        "fi": [[f.severity.value, text(f.code, 200), text(f.message)]
               for f in result.findings[:MAX_LINES]],
        "st": text(result.step or "", 100),
        "err": text(result.error or ""),
        "url": text(result.ecs_url or "", 2_000),
        "urls": [text(u, 2_000) for u in result.ecs_urls[:MAX_LINES]],
        "http": result.http_status if isinstance(result.http_status, int) else None,
        "px": text(result.proxy or "", 2_000),
        "d": round(_finite(result.duration_s), 3),
        "ms": http_elapsed_ms(facts),
        "t0": text(result.started_at, 60),
        "t1": text(result.finished_at, 60),
        "rep": href(entry.report_path) if entry.report_path else None,
        "cap": href(entry.capture_path) if entry.capture_path else None,
        "tm": _timings(facts),
        "np": _paths(facts),
    }


# --- headline figures and charts ------------------------------------------------------------

def _pct(part: int, whole: int) -> str:
    return "n/a" if not whole else f"{100.0 * part / whole:.1f} %"


def _headline(results: Sequence[HostResult], run: RunInfo) -> dict[str, Any]:
    scanned = len(results)
    reachable = sum(1 for r in results if reached(r))
    ecs_ok = sum(1 for r in results if r.category is Category.OK)
    return {
        "scanned": scanned,
        "inventory": run.hosts,
        "reachable": reachable,
        "ecs_ok": ecs_ok,
        "failing": sum(1 for r in results if r.status is Status.FAIL),
        "share": _pct(ecs_ok, scanned),
        "share_of_reachable": _pct(ecs_ok, reachable),
        "share_value": 0.0 if not scanned else round(ecs_ok / scanned, 4),
    }


def _status_bars(counts: Mapping[str, Counter[str]], labels: Sequence[str]) -> list[charts.Bar]:
    return [charts.Bar(label, tuple((counts[label][s.value], s.value) for s in STATUS_ORDER))
            for label in labels]


def _category_chart(results: Sequence[HostResult]) -> Markup:
    counts: dict[str, Counter[str]] = {}
    for r in results:
        if r.category is not Category.OK:
            counts.setdefault(r.category.value, Counter())[r.status.value] += 1
    labels = [c.value for c in CATEGORY_ORDER if c.value in counts]
    return charts.bar_chart(_status_bars(counts, labels), title="Hosts not OK, by category")


def _group_chart(results: Sequence[HostResult]) -> tuple[Markup, int]:
    counts: dict[str, Counter[str]] = {}
    for r in results:
        for group in (r.groups or ["(no group)"]):
            counts.setdefault(text(group, 200), Counter())[r.status.value] += 1
    ranked = sorted(counts, key=lambda g: (-counts[g]["fail"], -counts[g]["warn"],
                                           -sum(counts[g].values()), g))
    shown = ranked[:TOP_GROUPS]
    chart = charts.bar_chart(_status_bars(counts, shown),
                             title="Hosts by inventory group, worst first")
    return chart, len(ranked) - len(shown)


def ecs_region(url: str | None) -> tuple[str, str]:
    """``(region, endpoint host)`` of an ECS URL; ``("none", "")`` when there is none."""
    if not url:
        return "none", ""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        host = ""
    if not host:
        return "unparsable", ""
    match = _GEO_RE.match(host)
    if match:
        return match.group(1), host
    if host.endswith(".ecs.office.com") or host == "ecs.office.com":
        return "government (ecs.office.com)", host
    return "other", host


def _ecs_charts(results: Sequence[HostResult]) -> tuple[Markup, Markup]:
    regions: Counter[str] = Counter()
    hosts: Counter[str] = Counter()
    for r in results:
        region, host = ecs_region(r.ecs_url)
        regions[region] += 1
        if host:
            hosts[text(host, 200)] += 1
    region_bars = [charts.Bar(name, ((n, "info"),)) for name, n in regions.most_common()]
    top = hosts.most_common(TOP_ENDPOINTS)
    rest = sum(hosts.values()) - sum(n for _, n in top)
    host_bars = [charts.Bar(name, ((n, "info"),)) for name, n in top]
    if rest:
        host_bars.append(charts.Bar("(other endpoints)", ((rest, "info"),)))
    return (charts.bar_chart(region_bars, title="ECS region of each host"),
            charts.bar_chart(host_bars, title="ECS endpoint host names"))


# --- changes and trend (shapes from fleet_ecs.report.diff, read generically) --------------

def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _state(value: Any) -> dict[str, str]:
    """A before/after value as ``{status, category}``: a record, an enum, or plain text."""
    if value is None:
        return {"status": "", "category": ""}
    if isinstance(value, str):
        return {"status": "", "category": text(value, 300)}
    status, category = _field(value, "status"), _field(value, "category")
    if status is None and category is None:
        return {"status": "", "category": text(getattr(value, "value", value), 300)}
    status = getattr(status, "value", status) or ""
    category = getattr(category, "value", category) or ""
    return {"status": status if status in ("ok", "warn", "fail") else "",
            "category": text(category, 300)}


# (attribute of ``changes``, heading, colour); ``fleet_ecs.report.diff.RunChanges`` has all.
_CHANGE_KINDS = (
    ("broke", "Broke since the previous run", "fail"),
    ("changed", "Changed category or status", "warn"),
    ("appeared", "New hosts", "warn"),
    ("recovered", "Recovered", "ok"),
    ("disappeared", "No longer in the run", "info"),
)


def _changes(changes: Any, anchors: Mapping[str, int]) -> dict[str, Any] | None:
    if changes is None:
        return None
    sections = []
    for key, title, css in _CHANGE_KINDS:
        rows = []
        for item in list(_field(changes, key) or []):
            host = text(_field(item, "host", ""), 300)
            after = _state(_field(item, "after"))
            rows.append({
                "host": host, "before": _state(_field(item, "before")), "after": after,
                "last_seen_ok": text(_field(item, "last_seen_ok") or "", 100),
                "still_bad": after["status"] not in ("", "ok"),
                "anchor": anchors.get(host),
            })
        sections.append({"key": key, "title": title, "css": css, "rows": rows})
    previous = _field(changes, "previous_run_id") or _field(_field(changes, "before"), "run_id")
    return {"sections": sections, "previous": text(previous or "", 200),
            "total": sum(len(s["rows"]) for s in sections)}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _trend(trend: Any) -> dict[str, Any] | None:
    if trend is None:
        return None
    rows = [{"run_id": text(_field(p, "run_id", ""), 100),
             "started_at": text(_field(p, "started_at", ""), 60),
             "ok": _int(_field(p, "ok")), "warn": _int(_field(p, "warn")),
             "fail": _int(_field(p, "fail")),
             "stopped": _field(p, "stopped") is True} for p in list(trend)]
    points = [charts.TrendPoint(r["started_at"][5:16].replace("T", " ") or r["run_id"],
                                r["ok"], r["warn"], r["fail"]) for r in rows]
    return {"rows": rows, "chart": charts.trend_chart(points)}


# --- the page -------------------------------------------------------------------------------

def _asset(name: str) -> str:
    from fleet_ecs.resources import template_text

    return template_text(name)


def render_html(
    entries: Iterable[HostEntry],
    *,
    run: RunInfo,
    by_status: Mapping[Status, int],
    by_category: Mapping[Category, int],
    skipped: Iterable[SkippedResult] = (),
    builder_version: str = "",
    environment: jinja2.Environment | None = None,
    changes: Any = None,
    trend: Any = None,
) -> str:
    """The whole ``report.html`` as text (write it as UTF-8).

    ``changes`` (hosts that ``broke``, ``recovered`` or ``changed``, each with ``host``,
    ``before``, ``after``, ``last_seen_ok``) and ``trend`` (runs oldest first, each with
    ``run_id``, ``started_at``, ``ok``, ``warn``, ``fail``) are read by attribute or key; their
    sections appear only when they are given.
    """
    env = environment or html_environment()
    ordered = sorted(entries, key=host_sort_key)
    results = [e.result for e in ordered]
    records = [_host_record(i, e) for i, e in enumerate(ordered)]
    anchors: dict[str, int] = {}
    for record in records:
        anchors.setdefault(record["h"], record["i"])
    categories = [
        {"name": cat.value, "count": by_category.get(cat, 0),
         "fail": sum(1 for r in results if r.category is cat and r.status is Status.FAIL)}
        for cat in CATEGORY_ORDER if by_category.get(cat, 0)
    ]
    group_chart, groups_left_out = _group_chart(results)
    region_chart, endpoint_chart = _ecs_charts(results)
    durations = [_finite(r.duration_s) for r in results]
    http_ms = [ms for ms in (rec["ms"] for rec in records) if ms is not None]
    css, js = _asset(CSS_ASSET), _asset(JS_ASSET)
    context = {
        "run": run,
        "settings": sorted((text(k, 200), text(v, 1_000)) for k, v in run.settings.items()),
        "total": len(ordered),
        "headline": _headline(results, run),
        "statuses": [{"name": s.value, "count": by_status.get(s, 0)} for s in STATUS_ORDER],
        "categories": categories,
        "groups": sorted({g for rec in records for g in rec["g"]}),
        "charts": {
            "categories": _category_chart(results),
            "groups": group_chart,
            "groups_left_out": groups_left_out,
            "regions": region_chart,
            "endpoints": endpoint_chart,
            "duration": charts.histogram(durations, title="Scan time per host", unit="seconds"),
            "http": charts.histogram(http_ms, title="ECS request time per host",
                                     unit="milliseconds") if http_ms else None,
        },
        "hosts_json": json_island(records),
        "skipped": [{"path": text(s.path, 500), "reason": text(s.reason)} for s in skipped],
        "changes": _changes(changes, anchors),
        "trend": _trend(trend),
        "builder_version": builder_version,
        "css": Markup(css),
        "js": Markup(js),
        "csp": Markup(f"default-src 'none'; script-src {csp_hash(js)}; "
                      f"style-src {csp_hash(css)}; img-src data:; connect-src 'none'; "
                      "base-uri 'none'; form-action 'none'"),
    }
    return env.get_template(TEMPLATE_NAME).render(context)
