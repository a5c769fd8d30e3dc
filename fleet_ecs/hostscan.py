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
from fleet_ecs.models import Category, Finding, HostResult, HostSpec, ScanSettings, Status
from fleet_ecs.preflight import addressed_by_ip
from fleet_ecs.probe.diagnose import UAC_HINT, Verdict, failure
from fleet_ecs.probe.runner import ProbeOutcome, run_probe
from fleet_ecs.transport.faults import TRANSIENT, one_line
from fleet_ecs.transport.session import Budget, HostSession

logger = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Transient faults (quota, a vanished shell, a reset) get a new shell after a pause; the pause
# grows so that a host at its shell quota has time to expire an idle shell.
RETRY_BACKOFF = (2.0, 6.0)
_RETRY_MIN_LEFT = 10.0


def scan_host(
    spec: HostSpec, password: str | None, settings: ScanSettings, budget: Budget, run_dir: Path
) -> HostResult:
    started_at, t0 = now_iso(), time.monotonic()
    retried: list[str] = []
    while True:
        outcome, error = _attempt(spec, password, settings, budget, run_dir)
        if not _should_retry(error, budget, len(retried)):
            break
        pause = RETRY_BACKOFF[len(retried)]
        retried.append(f"{error.category.value} ({error.message})")
        logger.info("%s: %s; retrying with a new shell in %.0f s", spec.name,
                    error.category.value, pause)
        if budget.stop.wait(pause):
            break
    result = _result(spec, outcome, error)
    result.deadline_s = spec.deadline or settings.deadline
    result.run_id = settings.run_id
    _add_host_notes(result, spec, retried)
    result.started_at = started_at
    result.finished_at = now_iso()
    result.duration_s = round(time.monotonic() - t0, 3)
    return result


def _attempt(
    spec: HostSpec, password: str | None, settings: ScanSettings, budget: Budget, run_dir: Path
) -> tuple[ProbeOutcome, HostError | None]:
    outcome = ProbeOutcome()
    error: HostError | None = None
    session = HostSession(spec, password, settings, budget)
    try:
        session.open()
        run_probe(session, settings, rundir.host_dir(run_dir, spec.name), run_dir, outcome)
    except HostError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - one host's bug must not stop the fleet
        logger.exception("%s: unexpected error", spec.name)
        error = HostError(Category.PROBE_ERROR, one_line(f"{type(exc).__name__}: {exc}"))
    finally:
        session.close()
    return outcome, error


def _should_retry(error: HostError | None, budget: Budget, done: int) -> bool:
    return (
        error is not None
        and error.category in TRANSIENT
        and done < len(RETRY_BACKOFF)
        and not budget.stop.is_set()
        and budget.remaining() > RETRY_BACKOFF[done] + _RETRY_MIN_LEFT
    )


def _add_host_notes(result: HostResult, spec: HostSpec, retried: list[str]) -> None:
    for reason in retried:
        result.findings.append(
            Finding("retried", Status.OK, f"retried with a new shell after {reason}"))
    if spec.transport.value == "https" and spec.cert_validation is False:
        result.findings.append(Finding(
            "cert_validation_off", Status.WARN,
            "certificate validation of the WinRM listener is turned off for this host"))
    if addressed_by_ip(spec):
        result.findings.append(Finding(
            "ntlm_fallback", Status.OK,
            "addressed by IP address: Negotiate cannot use Kerberos and falls back to NTLM"))
    if result.category is Category.WINRM_AUTH_FAILED and _local_account(spec.username):
        result.hint = f"{result.hint} {UAC_HINT}"


def _local_account(username: str | None) -> bool:
    """A local account: no domain, or the ``.\\`` / machine prefix Windows uses for one."""
    if not username or "@" in username:
        return False
    domain, _, _user = username.rpartition("\\")
    return domain in ("", ".") or domain.lower() == "localhost"


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
        auth=spec.auth,
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
