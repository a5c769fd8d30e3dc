"""Drive a whole fleet concurrently: one asyncio task per host, bounded and rate limited.

pypsrp is synchronous, so each host's scan runs in a worker thread of a dedicated executor
sized to the concurrency bound. The event loop owns the policy: a semaphore for how many hosts
are in flight, an ``asyncio-throttle`` limit on how many new connections start per second (the
domain controllers feel every new Negotiate logon), and a deadline per host.

The workers are daemon threads: a worker stuck inside a socket call past every timeout must
never keep the CLI from exiting. Results stream to disk as they arrive; memory holds only the
hosts in flight and a few counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from fleet_ecs import rundir
from fleet_ecs.errors import OutputError
from fleet_ecs.hostscan import now_iso, scan_host
from fleet_ecs.models import Category, Diagnosis, HostResult, HostSpec, ScanSettings, Status
from fleet_ecs.preflight import ClientIssue, client_key
from fleet_ecs.probe.diagnose import failure
from fleet_ecs.transport.session import CLEANUP_GRACE, Budget

logger = logging.getLogger(__name__)

# Past its deadline a worker still gets this long to stop its capture and close its shell.
_JOIN_GRACE = CLEANUP_GRACE + 5.0


class DaemonExecutor:
    """A fixed pool of daemon worker threads (``ThreadPoolExecutor`` joins its threads at exit)."""

    def __init__(self, workers: int, name: str = "fleet-ecs-worker") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, func: Callable, *args) -> Future:  # noqa: ANN002
        future: Future = Future()
        self._jobs.put((future, func, args))
        return future

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, func, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                future.set_exception(exc)


@dataclass
class ScanCounters:
    total: int = 0
    done: int = 0
    failing: int = 0
    in_flight: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass
class ScanOutcome:
    counters: ScanCounters
    stopped: bool = False


class Controller:
    def __init__(
        self,
        settings: ScanSettings,
        run_dir: Path,
        passwords: Callable[[HostSpec], str | None],
        on_result: Callable[[HostResult, ScanCounters], None] | None = None,
        scan: Callable[..., HostResult] = scan_host,
        group_limits: dict[str, int] | None = None,
        client_issues: dict[str, ClientIssue] | None = None,
    ) -> None:
        self.settings = settings
        self._scan = scan
        self.group_limits = dict(group_limits or {})
        # Hosts that cannot be scanned because of the scanning machine, decided up front or by
        # the first host that met the fault; later hosts of the same kind are not contacted.
        self._client_faults: dict[str, str] = {}
        self._preflight: dict[str, str] = {
            host: issue.message for issue in (client_issues or {}).values() for host in issue.hosts
        }
        self.run_dir = run_dir
        self.passwords = passwords
        self.on_result = on_result
        self.counters = ScanCounters()
        self.stop_event = threading.Event()
        # The first failure to write a result: the run stops starting hosts and reports it.
        self.output_error: OutputError | None = None

    def request_stop(self) -> None:
        """Start no new host; in-flight hosts stop at their next step and clean up."""
        self.stop_event.set()

    async def run(self, hosts: Iterable[HostSpec]) -> ScanOutcome:
        hosts = list(hosts)
        self.counters.total = len(hosts)
        workers = max(1, min(self.settings.concurrency, len(hosts) or 1))
        executor = DaemonExecutor(workers)
        semaphore = asyncio.Semaphore(workers)
        throttler = _throttler(self.settings.rate)
        groups = {name: asyncio.Semaphore(n) for name, n in self.group_limits.items()}
        try:
            tasks = [
                asyncio.create_task(self._one(spec, executor, semaphore, throttler, groups))
                for spec in hosts
            ]
            await asyncio.gather(*tasks)
        finally:
            executor.shutdown()
        if self.output_error is not None:
            raise self.output_error
        return ScanOutcome(self.counters, stopped=self.stop_event.is_set())

    async def _one(self, spec, executor, semaphore, throttler, groups) -> None:  # noqa: ANN001
        skipped = self._client_fault(spec)
        if skipped is not None:
            self._record(skipped)
            return
        async with contextlib.AsyncExitStack() as limits:
            # Group limits first, in a fixed order, so two hosts never wait on each other.
            for name in sorted(set(spec.groups) & groups.keys()):
                await limits.enter_async_context(groups[name])
            await limits.enter_async_context(semaphore)
            if not self.stop_event.is_set():
                await self._admit(throttler)
            if self.stop_event.is_set():
                # Every inventory host gets a row, so a stopped run never looks complete.
                self._record(self._unscanned(spec))
                return
            skipped = self._client_fault(spec)
            if skipped is not None:
                self._record(skipped)
                return
            self.counters.in_flight += 1
            try:
                result = await self._scan_in_worker(spec, executor)
            finally:
                self.counters.in_flight -= 1
        if result.category is Category.CLIENT_CONFIG_ERROR:
            self._client_faults.setdefault(client_key(spec), result.error or result.hint)
        self._record(result)

    async def _admit(self, throttler) -> None:  # noqa: ANN001
        """Wait for the rate limit's next slot, but give up at once when the scan stops.

        At a low rate hundreds of hosts queue here; a stop must not wait for their turns.
        Abandoning a pending ``acquire`` takes no slot: asyncio-throttle records a start only
        once it grants one.
        """
        while not self.stop_event.is_set():
            try:
                await asyncio.wait_for(throttler.acquire(), timeout=0.25)
                return
            except asyncio.TimeoutError:
                continue

    def _client_fault(self, spec: HostSpec) -> HostResult | None:
        message = self._preflight.get(spec.name) or self._client_faults.get(client_key(spec))
        if message is None:
            return None
        return self._without_scan(spec, failure(Category.CLIENT_CONFIG_ERROR, message), 0.0)

    def _unscanned(self, spec: HostSpec) -> HostResult:
        diagnosis = failure(Category.CANCELLED, "not scanned: the scan was stopped first")
        return self._without_scan(spec, diagnosis, 0.0)

    def _without_scan(self, spec: HostSpec, diagnosis: Diagnosis, duration: float) -> HostResult:
        stamp = now_iso()
        return HostResult(
            host=spec.name, address=spec.address, port=spec.port,
            transport=spec.transport.value, auth=spec.auth, status=diagnosis.status,
            category=diagnosis.category, hint=diagnosis.hint, evidence=diagnosis.evidence,
            groups=list(spec.groups), error=diagnosis.evidence[0], started_at=stamp,
            finished_at=stamp, duration_s=duration,
            deadline_s=spec.deadline or self.settings.deadline, run_id=self.settings.run_id,
        )

    async def _scan_in_worker(self, spec: HostSpec, executor: DaemonExecutor) -> HostResult:
        deadline = spec.deadline or self.settings.deadline
        budget = Budget(deadline, self.stop_event)
        future = executor.submit(
            self._scan, spec, self.passwords(spec), self.settings, budget, self.run_dir
        )
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline + _JOIN_GRACE)
        except asyncio.TimeoutError:
            # The worker ignored every timeout it was given; report the host and move on. The
            # daemon thread finishes (or not) on its own without blocking the run.
            logger.error("%s: worker did not return within its deadline", spec.name)
            diagnosis = failure(
                Category.DEADLINE_EXCEEDED, f"no answer within the {deadline:g} s deadline")
            return self._without_scan(spec, diagnosis, deadline)

    def _record(self, result: HostResult) -> None:
        if self.output_error is not None:
            return  # the disk already refused; keep what is written intact, add nothing
        try:
            rundir.write_result(self.run_dir, result)
        except OutputError as exc:
            # A full or read-only disk: results already written stay as they are; hosts in
            # flight are told to stop and clean up, and no new host is started.
            logger.error("cannot write results any more: %s", exc)
            self.output_error = exc
            self.request_stop()
            return
        counters = self.counters
        counters.done += 1
        counters.by_status[result.status.value] = counters.by_status.get(result.status.value, 0) + 1
        if result.status is not Status.OK:
            counters.failing += 1
        logger.info("%s: %s %s", result.host, result.status.value, result.category.value)
        if self.on_result is not None:
            self.on_result(result, counters)


def _throttler(rate: float):  # noqa: ANN202
    """At most ``rate`` new connections per second, spread evenly rather than in bursts.

    One start per 1/rate seconds keeps fractional rates exact (0.5/s is one every 2 s) and
    spares the domain controllers a burst at the top of each second. Above 50/s the throttle's
    own polling interval (10 ms) would cap the rate, so whole-second windows are used there.
    """
    from asyncio_throttle import Throttler

    if rate > 50:
        return Throttler(rate_limit=int(rate), period=1.0)
    return Throttler(rate_limit=1, period=1.0 / rate)
