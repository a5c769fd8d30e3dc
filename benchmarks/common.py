"""What both benchmarks share: the benchmark fleet, its simulator process, and measuring.

The simulated fleet runs in a child process (``benchmarks.simserver``) so that its CPU time is
not the controller's: ``getrusage`` of the benchmark process then measures the controller
alone. Both processes build the host list with ``bench_specs`` from the same arguments, so
they agree on names, addresses and settings without passing an inventory around.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fleet_ecs.models import HostSpec
from fleet_ecs.sim.fleet import demo_addresses, scenario_spec

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
# Away from the demo's 5985 and the tests' 20000-39999, so a running demo or test suite on the
# same machine does not collide with a benchmark fleet.
DEFAULT_PORT = 45985
SCENARIO_FOR_AUTH = {"basic": "healthy", "ntlm": "ntlm-healthy"}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def bench_specs(
    n: int, base: str, port: int, auth: str, delay: float, capture_kb: int
) -> list[HostSpec]:
    """``n`` healthy hosts from ``base``: steps of ``delay`` s, captures of ``capture_kb`` KiB."""
    scenario = SCENARIO_FOR_AUTH[auth]
    specs = []
    for i, address in enumerate(demo_addresses(n, base)):
        spec = scenario_spec(scenario, f"bench-{i + 1:05d}", address, port=port)
        specs.append(dataclasses.replace(spec, vars={
            "scenario": scenario, "sim_delay": delay, "sim_capture_kb": capture_kb}))
    return specs


def quiet_logging() -> None:
    """Warnings only; pypsrp logs every retried Receive at ERROR with a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("pypsrp", "spnego", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def max_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb(pid: int | str = "self") -> float:
    """Current resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE / (1024 * 1024)


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of another process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class RssSampler:
    """Samples this process's RSS every ``interval`` s in a thread: start, peak, end, series."""

    def __init__(self, interval: float = 0.5, progress: Any = None) -> None:
        self.interval = interval
        self.progress = progress  # a callable giving e.g. hosts done, stored with each sample
        self.samples: list[tuple[float, float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        done = self.progress() if self.progress is not None else None
        self.samples.append((round(time.monotonic() - self._t0, 2), round(rss_mb(), 1), done))

    @property
    def start(self) -> float:
        return self.samples[0][1]

    @property
    def peak(self) -> float:
        return max(s[1] for s in self.samples)

    @property
    def end(self) -> float:
        return self.samples[-1][1]

    def series(self, points: int = 11) -> list[tuple[float, float, Any]]:
        """About ``points`` evenly spaced samples, for reading growth over the run."""
        if len(self.samples) <= points:
            return list(self.samples)
        step = (len(self.samples) - 1) / (points - 1)
        return [self.samples[round(i * step)] for i in range(points)]


class SimProcess:
    """The simulated fleet in a child process, started and stopped by this one.

    The child prints ``READY`` once every listener is bound and stops when its stdin closes
    (or on SIGTERM); ``stop`` kills it if it does not end in time. It is only ever this
    child, by its own pid, that is ended.
    """

    def __init__(self, *, hosts: int, base: str, port: int, auth: str, delay: float,
                 capture_kb: int, ready_timeout: float = 300.0) -> None:
        self.args = [sys.executable, "-m", "benchmarks.simserver", "--hosts", str(hosts),
                     "--base", base, "--port", str(port), "--auth", auth,
                     "--delay", repr(delay), "--capture-kb", str(capture_kb)]
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.final: dict[str, Any] = {}
        self.startup_s = 0.0

    def __enter__(self) -> SimProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        try:
            line = self._read_line(self.ready_timeout)
            if not line.startswith("READY"):
                raise RuntimeError(f"simulator did not start: {line.strip() or 'no output'}")
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()  # the child's signal to stop
            line = self._read_line(timeout)
            if line.startswith("DONE "):
                self.final = json.loads(line[5:])
            proc.wait(timeout)
        except (subprocess.TimeoutExpired, TimeoutError, OSError, ValueError):
            logger.warning("simulator pid %d did not stop in time; killing it", proc.pid)
            proc.kill()
            proc.wait(10)

    def _read_line(self, timeout: float) -> str:
        """One line of the child's stdout, or TimeoutError (read in a thread to bound it)."""
        assert self.proc is not None and self.proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not box:
            raise TimeoutError(f"no answer from the simulator within {timeout:g} s")
        return box[0]


def emit(figures: dict[str, Any], as_json: bool) -> None:
    """One ``name: value`` line per figure, or a single JSON object."""
    if as_json:
        print(json.dumps(figures, sort_keys=False))
        return
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        if isinstance(value, float):
            value = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)
        print(f"{key:<{width}}  {value}")
