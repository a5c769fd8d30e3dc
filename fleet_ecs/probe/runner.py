"""The probe of one host, step by step, over an open ``HostSession`` (runs in a worker thread).

Order: facts -> ecs (signature + MpCmdRun) -> probe (DNS, TCP, TLS, both HTTP paths, inside a
capture) -> alternates (the other documented ECS endpoints, only when the network failed) ->
fetch (capture, when the policy asks) -> cleanup. Python decides between steps: whether
Defender's state already explains the host, which MpCmdRun to run, which URL to probe (the
geography's endpoint when MpCmdRun knows no URL), whether to try alternates, whether to fetch.
Whatever happens after the probe step started, cleanup runs, so that no capture is left running
and no file is left on the endpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleet_ecs.errors import HostError, ProbeError
from fleet_ecs.models import CaptureMode, Category, FetchedFile, ScanSettings, Status
from fleet_ecs.probe import contract, parse
from fleet_ecs.probe.diagnose import NETWORK_FAILURES, Verdict, device_geo, diagnose, ecs_target
from fleet_ecs.probe.scripts import render_step
from fleet_ecs.transport.faults import one_line

logger = logging.getLogger(__name__)

TRUSTED_PUBLISHER = "Microsoft Corporation"
FETCH_CHUNK = 768 * 1024
BODY_LIMIT = 2048


class StepSession(Protocol):
    """What the runner needs from a transport; ``HostSession`` provides it."""

    def run_step(self, step: str, script: str) -> Any: ...

    def fetch(self, step: str, script: str, dest: Path, max_bytes: int) -> tuple[int, str]: ...

    def begin_cleanup(self) -> None: ...


@dataclass
class ProbeOutcome:
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdict: Verdict | None = None
    files: list[FetchedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_probe(
    session: StepSession, settings: ScanSettings, host_dir: Path, run_dir: Path,
    outcome: ProbeOutcome | None = None,
) -> ProbeOutcome:
    """Run every step on one host; raises ``HostError`` when a step cannot complete.

    Documents are recorded in ``outcome`` as each step finishes, so that a caller holding it
    keeps what was collected even when a later step fails or the deadline cuts the host off.
    """
    outcome = outcome if outcome is not None else ProbeOutcome()
    facts = _step(session, outcome, "facts", RunId=settings.run_id)
    if "is_admin" not in facts:
        outcome.verdict = diagnose(outcome.docs)  # old PowerShell: stop here
        return outcome
    outcome.verdict = diagnose(outcome.docs)
    if outcome.verdict.diagnosis.category is not Category.OK:
        return outcome

    choice = parse.choose_platform(facts)
    mpcmdrun = f"{choice.folder}\\MpCmdRun.exe"
    _step(session, outcome, "ecs", MpCmdRun=mpcmdrun, TrustedPublisher=TRUSTED_PUBLISHER)
    outcome.verdict = diagnose(outcome.docs)
    if outcome.verdict.diagnosis.category is not Category.OK:
        return outcome  # Defender's state already explains the host; no network probe
    ecs_url, _source = ecs_target(facts, outcome.docs["ecs"])
    if ecs_url is None:
        return outcome

    work_dir = _work_dir(facts, settings.run_id)
    capture = settings.capture is not CaptureMode.OFF
    url = parse.probe_url(ecs_url)
    proxy = defender_proxy(facts)
    try:
        _step(
            session, outcome, "probe",
            Url=url, Host=_host_of(url), WorkDir=work_dir, Capture=capture,
            CaptureMaxMb=settings.capture_max_mb, TimeoutSec=int(settings.probe_timeout),
            TraceSession=contract.TRACE_SESSION, BodyLimit=BODY_LIMIT, DefenderProxy=proxy,
            MachineProxy=machine_proxy(facts), SystemPath=settings.system_path,
        )
        outcome.verdict = diagnose(outcome.docs)
        if outcome.verdict.diagnosis.category in NETWORK_FAILURES:
            # Is it this endpoint, or every ECS endpoint? Try the other documented ones.
            others = alternate_urls(url, device_geo(facts))
            _step(session, outcome, "alternates", Urls="|".join(others),
                  TimeoutSec=int(settings.probe_timeout), BodyLimit=BODY_LIMIT,
                  DefenderProxy=proxy)
            outcome.verdict = diagnose(outcome.docs)
        _maybe_fetch(session, outcome, settings, host_dir, run_dir, work_dir)
    finally:
        _cleanup(session, outcome, work_dir)
    return outcome


def defender_proxy(facts: dict[str, Any]) -> str:
    """Defender's own static proxy (``host:port``), which its services use before WinHTTP's."""
    server = ((facts.get("defender_proxy") or {}).get("ProxyServer") or "").strip()
    return server.removeprefix("http://").removeprefix("https://").rstrip("/")


def machine_proxy(facts: dict[str, Any]) -> str:
    """The ``host:port`` Defender's path goes through: its own proxy, else WinHTTP's; or ''."""
    own = defender_proxy(facts)
    if own:
        return own
    winhttp = parse.parse_winhttp_proxy((facts.get("winhttp_proxy") or {}).get("output"))
    if winhttp.direct or not winhttp.server:
        return ""
    # "proxy:8080" or "http=proxy:8080;https=proxy:8443": the https entry serves ECS.
    entries = dict(part.split("=", 1) for part in winhttp.server.split(";") if "=" in part)
    server = entries.get("https") or entries.get("http") or winhttp.server.split(";")[0]
    return server.removeprefix("http://").removeprefix("https://").rstrip("/")


def alternate_urls(primary: str, geo: str | None) -> list[str]:
    """The documented ECS endpoints other than ``primary`` (mde-ecs-facts §3.1, §3.2)."""
    candidates = [f"https://mdav.{geo or 'us'}.endpoint.security.microsoft.com/ecs/config/v1/",
                  "https://ecs.office.com/config/v1/"]
    urls = [parse.probe_url(u) for u in candidates]
    return [u for u in dict.fromkeys(urls) if _host_of(u) != _host_of(primary)]


def _step(session: StepSession, outcome: ProbeOutcome, step: str, **inputs: Any) -> dict:
    output = session.run_step(step, render_step(step, **inputs))
    doc = parse.parse_step_document(output.objects, step)
    outcome.docs[step] = doc
    for error in output.errors:
        outcome.notes.append(f"{step}: {error}")
    return doc


def _maybe_fetch(
    session: StepSession, outcome: ProbeOutcome, settings: ScanSettings,
    host_dir: Path, run_dir: Path, work_dir: str,
) -> None:
    capture = outcome.docs["probe"].get("capture") or {}
    path = capture.get("path")
    if not path or not capture.get("size"):
        return
    failed = outcome.verdict is not None and outcome.verdict.diagnosis.status is not Status.OK
    if settings.capture is CaptureMode.ON_FAILURE and not failed:
        return
    # The endpoint names the file and its size; neither is trusted. We fetch only our own file
    # from our own folder, and never more than the capture's bound.
    limit = capture_limit(settings)
    if not _inside(path, work_dir):
        raise ProbeError(Category.PROBE_ERROR,
                         f"the host reported a capture outside our folder: {path!r}", step="fetch")
    if not isinstance(capture.get("size"), int) or capture["size"] > limit:
        raise ProbeError(Category.PROBE_ERROR,
                         f"the host reported a capture of {capture.get('size')!r} bytes, over "
                         f"its bound of {limit}", step="fetch")
    dest = host_dir / "capture.etl"
    size, sha256 = session.fetch(
        "fetch", render_step("fetch", Path=path, ChunkSize=FETCH_CHUNK), dest, max_bytes=limit
    )
    rel = dest.relative_to(run_dir).as_posix()
    outcome.files.append(FetchedFile("capture", rel, size, sha256))


def capture_limit(settings: ScanSettings) -> int:
    """Bytes a capture may have: netsh's maxSize plus room for its last buffer and headers."""
    return settings.capture_max_mb * 1024 * 1024 + 4 * 1024 * 1024


def _inside(path: str, folder: str) -> bool:
    """Whether a Windows ``path`` names a file directly inside ``folder`` (case-insensitive)."""
    parent, _, leaf = path.rpartition("\\")
    return (
        parent.lower() == folder.rstrip("\\").lower()
        and leaf not in ("", ".", "..")
        and not any(c in leaf for c in ':/*?"<>|')
    )


def _cleanup(session: StepSession, outcome: ProbeOutcome, work_dir: str) -> None:
    session.begin_cleanup()
    try:
        _step(
            session, outcome, "cleanup", WorkDir=work_dir, TraceSession=contract.TRACE_SESSION
        )
    except HostError as exc:
        # A failed cleanup must not hide the verdict; it is reported as a finding instead.
        logger.warning("cleanup failed: %s", exc.message)
        outcome.notes.append(f"cleanup: {one_line(exc.message)}")


def _work_dir(facts: dict[str, Any], run_id: str) -> str:
    temp = (facts.get("temp_dir") or "C:\\Windows\\TEMP").rstrip("\\")
    return f"{temp}\\{contract.WORK_DIR_PREFIX}{run_id}"


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
