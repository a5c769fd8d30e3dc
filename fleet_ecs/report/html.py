"""The fleet-wide ``report.html``, rendered from ``templates/report.html.j2``.

Every value shown came from, or through, an endpoint, so the environment autoescapes and the
template never marks data ``|safe``. Links are built here, already URL-quoted, and only for
files that exist. ECS URLs are shown as text, never as links: a hostile endpoint could report
a ``javascript:`` URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fleet_ecs.models import Category, Status
from fleet_ecs.report.rundir import HostEntry, RunInfo, SkippedResult

if TYPE_CHECKING:
    import jinja2

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "report.html.j2"
STATUS_ORDER = (Status.FAIL, Status.WARN, Status.OK)
_STATUS_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}


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


def _host_context(index: int, entry: HostEntry) -> dict[str, Any]:
    result = entry.result
    return {
        "anchor": f"host-{index}",
        "host": result.host,
        "address": f"{result.address}:{result.port}",
        "transport": result.transport,
        "groups": "; ".join(str(g) for g in result.groups),
        "status": result.status.value,
        "category": result.category.value,
        "hint": result.hint,
        "evidence": [str(e) for e in result.evidence],
        "findings": [
            {"severity": f.severity.value, "code": f.code, "message": f.message}
            for f in result.findings
        ],
        "step": result.step or "",
        "error": result.error or "",
        "ecs_url": result.ecs_url or "",
        "http_status": "" if result.http_status is None else str(result.http_status),
        "duration": f"{result.duration_s:.1f} s",
        "report_href": href(entry.report_path) if entry.report_path else None,
        "capture_href": href(entry.capture_path) if entry.capture_path else None,
    }


def render_html(
    entries: Iterable[HostEntry],
    *,
    run: RunInfo,
    by_status: Mapping[Status, int],
    by_category: Mapping[Category, int],
    skipped: Iterable[SkippedResult] = (),
    builder_version: str = "",
    environment: jinja2.Environment | None = None,
) -> str:
    """The whole ``report.html`` as text (write it as UTF-8)."""
    env = environment or html_environment()
    ordered = sorted(entries, key=host_sort_key)
    categories = [
        {"name": cat.value, "count": by_category.get(cat, 0)}
        for cat in sorted(Category, key=lambda c: c.precedence)
        if by_category.get(cat, 0)
    ]
    context = {
        "run": run,
        "settings": sorted((str(k), str(v)) for k, v in run.settings.items()),
        "total": len(ordered),
        "statuses": [{"name": s.value, "count": by_status.get(s, 0)} for s in STATUS_ORDER],
        "categories": categories,
        "hosts": [_host_context(i, e) for i, e in enumerate(ordered, start=1)],
        "skipped": list(skipped),
        "builder_version": builder_version,
    }
    return env.get_template(TEMPLATE_NAME).render(context)
