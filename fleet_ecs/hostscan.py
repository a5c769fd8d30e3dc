"""Scan one host from start to finish, in a worker thread, and always return a ``HostResult``.

A failed host is data: every ``HostError`` becomes a result with its category; anything
unexpected becomes a ``probe_error`` result with the exception logged, never an exception that
could take the rest of the fleet down.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from fleet_ecs import rundir
from fleet_ecs.errors import HostError
from fleet_ecs.models import Category, HostResult, HostSpec, ScanSettings, Status
from fleet_ecs.probe.diagnose import Verdict, failure
from fleet_ecs.probe.runner import ProbeOutcome, run_probe
from fleet_ecs.transport.faults import one_line
from fleet_ecs.transport.session import Budget, HostSession

logger = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def scan_host(
    spec: HostSpec, password: str | None, settings: ScanSettings, budget: Budget, run_dir: Path
) -> HostResult:
    started_at, t0 = now_iso(), time.monotonic()
    outcome = ProbeOutcome()
    error: HostError | None = None
    session = HostSession(spec, password, settings, budget)
    try:
        session.open()
        outcome = run_probe(session, settings, rundir.host_dir(run_dir, spec.name), run_dir)
    except HostError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - one host's bug must not stop the fleet
        logger.exception("%s: unexpected error", spec.name)
        error = HostError(Category.PROBE_ERROR, one_line(f"{type(exc).__name__}: {exc}"))
    finally:
        session.close()
    result = _result(spec, outcome, error)
    result.started_at = started_at
    result.finished_at = now_iso()
    result.duration_s = round(time.monotonic() - t0, 3)
    return result


def _result(spec: HostSpec, outcome: ProbeOutcome, error: HostError | None) -> HostResult:
    verdict = outcome.verdict or Verdict(failure(Category.PROBE_ERROR, "no result"))
    diagnosis = verdict.diagnosis
    # A transport failure decides the verdict unless the probe had already reached one: a host
    # that was proven unable to reach ECS stays so even if fetching its capture then failed.
    if error is not None and (outcome.verdict is None or diagnosis.status is Status.OK):
        diagnosis = failure(error.category, error.message)
    result = HostResult(
        host=spec.name,
        address=spec.address,
        port=spec.port,
        transport=spec.transport.value,
        status=diagnosis.status,
        category=diagnosis.category,
        hint=diagnosis.hint,
        evidence=list(diagnosis.evidence),
        findings=list(diagnosis.findings),
        groups=list(spec.groups),
        ecs_url=verdict.ecs_url,
        ecs_urls=list(verdict.ecs_urls),
        http_status=verdict.http_status,
        dns_ok=verdict.dns_ok,
        tcp_ok=verdict.tcp_ok,
        proxy=verdict.proxy,
        error=error.message if error else None,
        step=error.step if error else None,
        files=list(outcome.files),
        facts=dict(outcome.docs),
    )
    if outcome.notes:
        result.facts["notes"] = list(outcome.notes)
    return result
