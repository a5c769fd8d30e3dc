"""Hand-made run directories and history databases for the history and diff tests."""

from __future__ import annotations

import json
from pathlib import Path

from fleet_ecs.models import Category, HostResult, Status

STATUS_OF = {"ok": Status.OK, "warn": Status.WARN, "fail": Status.FAIL}


def host(name: str, verdict: str = "ok", **kw: object) -> HostResult:
    """``verdict``: "ok", or "STATUS CATEGORY" such as "fail dns_failure"."""
    status, _, category = verdict.partition(" ")
    base = dict(
        host=name, address="192.0.2.10", port=5985, transport="http",
        status=STATUS_OF[status], category=Category(category or "ok"), hint="",
        started_at="2026-01-02T03:04:05+00:00", finished_at="2026-01-02T03:04:09+00:00",
        duration_s=1.5,
    )
    base.update(kw)
    return HostResult(**base)  # type: ignore[arg-type]


def write_run(folder: Path, run_id: str, hosts: dict[str, str], *, started: str = "",
              stopped: bool = False) -> Path:
    """A run directory whose hosts have the given verdicts (host -> "ok"/"fail CATEGORY")."""
    for name, verdict in hosts.items():
        (folder / "hosts" / name).mkdir(parents=True)
        (folder / "hosts" / name / "result.json").write_text(
            json.dumps(host(name, verdict).to_dict()), encoding="utf-8")
    (folder / "run.json").write_text(json.dumps({
        "run_id": run_id, "started_at": started or f"2026-01-0{run_id[-1]}T02:00:00+00:00",
        "finished_at": "", "inventory": "inv.yaml", "tool_version": "0.1.0", "hosts": len(hosts),
        "stopped": stopped,
    }), encoding="utf-8")
    return folder
