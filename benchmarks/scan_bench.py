"""Scan benchmark: the real controller against a simulated fleet running in its own process.

    python -m benchmarks.scan_bench --hosts 1000 --concurrency 100 --probe-seconds 10 \
        [--auth basic|ntlm] [--capture off|on-failure|always] [--capture-kb 256] [--json]

Every host is healthy and each of its steps takes the same simulated time, so that one host's
probe takes about ``--probe-seconds`` (t): the simulator's delay applies per pipeline, so it
is t divided by the number of steps a healthy host runs (facts, ecs, probe, cleanup, plus
fetch when ``--capture always``). The ideal wall time is ceil(N / C) x t; everything above it
is what connecting, authenticating, polling and writing results cost.

Figures (one ``name  value`` line each, or one JSON object with ``--json``): wall time, the
ideal and the ratio, controller CPU seconds per host (getrusage of this process, which runs
only the controller), the controller's RSS at start, peak and end (sampled every 0.5 s) and
its ru_maxrss, the simulator's CPU seconds, capture fetch throughput, and how long building
the reports afterwards took. The run directory is a temporary one, removed afterwards unless
``--out`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import shutil
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_PORT,
    RssSampler,
    SimProcess,
    bench_specs,
    cpu_seconds,
    emit,
    max_rss_mb,
    quiet_logging,
)
from fleet_ecs import rundir
from fleet_ecs.controller import Controller
from fleet_ecs.models import CaptureMode, ScanSettings
from fleet_ecs.sim.credentials import DEMO_PASSWORD
from fleet_ecs.sim.fleet import find_free_block
from fleet_ecs.transport.session import HostSession

BASE_STEPS = 4  # facts, ecs, probe, cleanup on a healthy host
MB = 1024 * 1024


class FetchTimer:
    """Times every ``HostSession.fetch`` of this process (the benchmark's only patch)."""

    def __init__(self) -> None:
        self.fetches: list[tuple[int, float, float]] = []  # (bytes, start, seconds)
        self._lock = threading.Lock()
        self._original = HostSession.fetch

    def __enter__(self) -> FetchTimer:
        original = self._original

        @functools.wraps(original)
        def timed(session: HostSession, *args: Any, **kwargs: Any) -> tuple[int, str]:
            t0 = time.monotonic()
            size, sha256 = original(session, *args, **kwargs)
            with self._lock:
                self.fetches.append((size, t0, time.monotonic() - t0))
            return size, sha256

        HostSession.fetch = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        HostSession.fetch = self._original  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scan_bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", "-n", type=int, required=True)
    parser.add_argument("--concurrency", "-c", type=int, required=True)
    parser.add_argument("--probe-seconds", "-t", type=float, required=True,
                        help="simulated time of one host's whole probe (all steps)")
    parser.add_argument("--auth", choices=("basic", "ntlm"), default="basic",
                        help="basic (no message encryption) or ntlm (NTLM with HTTP encryption)")
    parser.add_argument("--capture", choices=[m.value for m in CaptureMode], default="off")
    parser.add_argument("--capture-kb", type=int, default=256, help="size of each capture")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--deadline", type=float, default=600.0, help="per-host deadline (s)")
    parser.add_argument("--out", type=Path, help="keep the run directory here")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = parser.parse_args(argv)
    quiet_logging()

    capture = CaptureMode(args.capture)
    steps = BASE_STEPS + (1 if capture is CaptureMode.ALWAYS else 0)
    delay = args.probe_seconds / steps
    base = find_free_block(args.hosts, port=args.port, https_port=None)
    specs = bench_specs(args.hosts, base, args.port, args.auth, delay, args.capture_kb)
    settings = ScanSettings(
        concurrency=args.concurrency, rate=max(1000.0, 10.0 * args.concurrency),
        deadline=args.deadline, capture=capture, connect_timeout=10.0, read_timeout=30.0,
        operation_timeout=20.0, probe_timeout=3.0,
        capture_max_mb=max(20, math.ceil(args.capture_kb / 1024)),
        run_id=f"bench-{int(time.time())}",
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="fleet-ecs-bench-"))
    try:
        with SimProcess(hosts=args.hosts, base=base, port=args.port, auth=args.auth,
                        delay=delay, capture_kb=args.capture_kb) as sim:
            figures = _run(args, specs, settings, out, sim, delay, steps)
        figures["sim_cpu_s"] = sim.final.get("cpu_s")
        figures["sim_cpu_s_per_host"] = round(sim.final.get("cpu_s", 0) / args.hosts, 4)
        figures["sim_max_rss_mb"] = sim.final.get("max_rss_mb")
        figures["sim_hosts_with_leftovers"] = sim.final.get("hosts_with_leftovers")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    emit(figures, args.json)
    return 0 if figures["hosts_ok"] == args.hosts else 1


def _run(args: argparse.Namespace, specs: list, settings: ScanSettings, out: Path,
         sim: SimProcess, delay: float, steps: int) -> dict[str, Any]:
    rundir.prepare(out)
    controller = Controller(settings, out, lambda _spec: DEMO_PASSWORD)
    cpu0, sim_cpu0 = cpu_seconds(), sim.cpu_seconds()
    with FetchTimer() as fetches, RssSampler(progress=lambda: controller.counters.done) as rss:
        t0 = time.monotonic()
        asyncio.run(controller.run(specs))
        wall = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    sim_cpu_scan = sim.cpu_seconds() - sim_cpu0
    maxrss_scan = max_rss_mb()

    from fleet_ecs.report.build import build_reports  # timed separately: not part of the scan

    t1 = time.monotonic()
    report_error = None
    try:
        build_reports(out)
    except Exception as exc:  # noqa: BLE001 - the scan's figures stand without the report
        report_error = f"{type(exc).__name__}: {exc}"
    report_s = time.monotonic() - t1

    n, c, t = args.hosts, args.concurrency, args.probe_seconds
    ideal = math.ceil(n / c) * t
    counters = controller.counters
    figures: dict[str, Any] = {
        "date": date.today().isoformat(),
        "hosts": n, "concurrency": c, "probe_seconds": t, "auth": args.auth,
        "capture": args.capture, "capture_kb": args.capture_kb,
        "step_delay_s": round(delay, 4), "steps_per_host": steps,
        "hosts_ok": counters.by_status.get("ok", 0),
        "by_status": dict(counters.by_status),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(wall / ideal, 3),
        "controller_cpu_s": round(cpu, 2),
        "controller_cpu_s_per_host": round(cpu / n, 4),
        "controller_cpu_share": round(cpu / wall, 3),  # cores used on average (of 2)
        "rss_start_mb": rss.start,
        "rss_peak_mb": rss.peak,
        "rss_end_mb": rss.end,
        "maxrss_scan_mb": round(maxrss_scan, 1),
        "maxrss_after_report_mb": round(max_rss_mb(), 1),
        "rss_series_s_mb_done": rss.series(),
        "report_build_s": round(report_s, 2),
        "report_build_error": report_error,
        "sim_cpu_s_during_scan": round(sim_cpu_scan, 2),
        "sim_startup_s": round(sim.startup_s, 2),
    }
    figures.update(_fetch_figures(fetches.fetches, delay))
    return figures


def _fetch_figures(fetches: list[tuple[int, float, float]], delay: float) -> dict[str, Any]:
    if not fetches:
        return {"fetches": 0}
    total = sum(size for size, _, _ in fetches)
    seconds = sum(s for _, _, s in fetches)
    # Each fetch step waits the simulated step delay before its first chunk; the transfer
    # rate is what remains.
    net = sum(max(s - delay, 1e-6) for _, _, s in fetches)
    window = max(t + s for _, t, s in fetches) - min(t for _, t, _ in fetches)
    return {
        "fetches": len(fetches),
        "fetched_mb": round(total / MB, 2),
        # One fetch's rate (many run at once, sharing the 2 cores), then the whole run's.
        "fetch_mb_per_s": round(total / MB / seconds, 2),
        "fetch_mb_per_s_net_of_step_delay": round(total / MB / net, 2),
        "fetch_mb_per_s_aggregate": round(total / MB / window, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
