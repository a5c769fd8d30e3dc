"""Fetch benchmark: fleet-ecs's chunked fetch against pypsrp's ``Client.fetch``, same file.

    python -m benchmarks.fetch_bench --mb 20 [--methods chunked,client] [--json]

One simulated host (its own process) gets a capture of ``--mb`` MiB by running the real probe
step with a capture. The file is then fetched once per method, each in a fresh Python process
so that its peak RSS (ru_maxrss) belongs to that method alone:

* ``chunked``: ``HostSession.fetch`` with the rendered fetch step (768 KiB base64 chunks, each
  decoded and written as it arrives), fleet-ecs's own path;
* ``client``: ``pypsrp.client.Client.fetch``, whose script returns the whole file as one
  base64 string followed by its SHA-1 (``fleet_ecs.sim.pypsrp_fetch``).

Both are timed from opening the connection to the file being on disk, and both results are
checked against the SHA-256 the probe step reported. Also reported: the simulator's CPU
seconds during each method (it runs on the same 2 cores). ``--profile`` writes a cProfile of
each worker next to the figures (``--profile-dir``).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_PORT,
    REPO,
    SimProcess,
    bench_specs,
    cpu_seconds,
    emit,
    max_rss_mb,
    quiet_logging,
    rss_mb,
)

WORK_DIR = "C:\\Windows\\TEMP\\fleet-ecs-fetchbench"
METHODS = ("chunked", "client")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fetch_bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=20, help="capture size in MiB")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated: chunked, client")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed per method before its worker is killed")
    parser.add_argument("--profile-dir", type=Path,
                        help="write a cProfile of each worker (and its top lines) here")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_logging()
    if args.worker:
        return _worker(args)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s): {', '.join(sorted(unknown))}")
    from fleet_ecs.sim.fleet import find_free_block

    base = find_free_block(1, port=args.port, https_port=None)
    spec = bench_specs(1, base, args.port, "basic", 0.0, args.mb * 1024)[0]
    tmp = Path(tempfile.mkdtemp(prefix="fleet-ecs-fetchbench-"))
    figures: dict[str, Any] = {"date": date.today().isoformat(), "mb": args.mb}
    try:
        with SimProcess(hosts=1, base=base, port=args.port, auth="basic", delay=0.0,
                        capture_kb=args.mb * 1024) as sim:
            capture = _make_capture(spec, args.mb)
            figures["file_bytes"] = capture["size"]
            for method in methods:
                sim_cpu0 = sim.cpu_seconds()
                result = _run_worker(args, method, spec.address, capture, tmp)
                result["sim_cpu_s"] = round(sim.cpu_seconds() - sim_cpu0, 2)
                result["sim_rss_mb_after"] = round(sim.rss_mb(), 1)
                for key, value in result.items():
                    figures[f"{method}_{key}"] = value
        figures["sim_max_rss_mb"] = sim.final.get("max_rss_mb")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if figures.get("chunked_ok") and figures.get("client_ok"):
        figures["speedup_chunked_vs_client"] = round(
            figures["client_wall_s"] / figures["chunked_wall_s"], 2)
    emit(figures, args.json)
    return 0 if all(figures.get(f"{m}_ok") for m in methods) else 1


def _make_capture(spec: Any, mb: int) -> dict[str, Any]:
    """Run the real probe step with a capture of ``mb`` MiB; returns its capture document."""
    from fleet_ecs.models import ScanSettings
    from fleet_ecs.probe.contract import TRACE_SESSION
    from fleet_ecs.probe.parse import parse_step_document
    from fleet_ecs.probe.scripts import render_step
    from fleet_ecs.sim.credentials import DEMO_PASSWORD
    from fleet_ecs.transport.session import Budget, HostSession

    session = HostSession(spec, DEMO_PASSWORD, ScanSettings(), Budget(120.0))
    try:
        session.open()
        url = "https://ecs.office.com/config/v1/"
        output = session.run_step("probe", render_step(
            "probe", Url=url, Host="ecs.office.com", WorkDir=WORK_DIR, Capture=True,
            CaptureMaxMb=mb, TimeoutSec=3, TraceSession=TRACE_SESSION, BodyLimit=2048,
            DefenderProxy=""))
    finally:
        session.close()
    capture = parse_step_document(output.objects, "probe")["capture"]
    if capture.get("size") != mb * 1024 * 1024:
        raise RuntimeError(f"the simulated capture has {capture.get('size')} bytes, not {mb} MiB")
    return capture


def _run_worker(args: argparse.Namespace, method: str, address: str,
                capture: dict[str, Any], tmp: Path) -> dict[str, Any]:
    dest = tmp / f"{method}.etl"
    command = [sys.executable, "-m", "benchmarks.fetch_bench", "--worker", method,
               "--address", address, "--port", str(args.port), "--path", capture["path"],
               "--dest", str(dest), "--mb", str(args.mb)]
    if args.profile_dir:
        command += ["--profile-dir", str(args.profile_dir)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:  # subprocess.run kills its own child
        return {"ok": False, "error": f"timed out after {args.timeout:g} s"}
    elapsed = time.monotonic() - t0
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": tail, "process_s": round(elapsed, 2)}
    result = json.loads(lines[-1][7:])
    digest = hashlib.sha256()
    with open(dest, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    result["ok"] = (dest.stat().st_size == capture["size"]
                    and digest.hexdigest().upper() == capture["sha256"].upper())
    dest.unlink()
    result["process_s"] = round(elapsed, 2)
    return result


def _worker(args: argparse.Namespace) -> int:
    """One fetch in this fresh process; prints ``RESULT {json}``."""
    from fleet_ecs.models import ScanSettings
    from fleet_ecs.probe.scripts import render_step
    from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
    from fleet_ecs.sim.fleet import scenario_spec
    from fleet_ecs.transport.session import Budget, HostSession

    try:
        from fleet_ecs.probe.runner import FETCH_CHUNK
    except ImportError:  # the runner's constant moved; the documented default
        FETCH_CHUNK = 768 * 1024
    import pypsrp.client  # noqa: F401 - imported before measuring, like the session's modules
    import pypsrp.powershell  # noqa: F401

    def chunked() -> None:
        spec = scenario_spec("healthy", "bench-00001", args.address, port=args.port)
        session = HostSession(spec, DEMO_PASSWORD, ScanSettings(deadline=args.timeout),
                              Budget(args.timeout))
        try:
            session.open()
            script = render_step("fetch", Path=args.path, ChunkSize=FETCH_CHUNK)
            if "max_bytes" in inspect.signature(HostSession.fetch).parameters:
                # As the runner bounds it: the capture's size limit plus netsh's slack.
                session.fetch("fetch", script, args.dest, max_bytes=(args.mb + 4) * 1024 * 1024)
            else:
                session.fetch("fetch", script, args.dest)
        finally:
            session.close()

    def client() -> None:
        from pypsrp.client import Client

        with Client(args.address, port=args.port, ssl=False, auth="basic", encryption="never",
                    username=DEMO_USERNAME, password=DEMO_PASSWORD, no_proxy=True,
                    operation_timeout=20, read_timeout=30) as remote:
            remote.fetch(args.path, str(args.dest))

    action = chunked if args.worker == "chunked" else client
    rss_before = rss_mb()
    cpu0, t0 = cpu_seconds(), time.monotonic()
    if args.profile_dir:
        import cProfile
        import io
        import pstats

        args.profile_dir.mkdir(parents=True, exist_ok=True)
        profiler = cProfile.Profile()
        profiler.runcall(action)
        wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        profiler.dump_stats(args.profile_dir / f"{args.worker}.prof")
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        (args.profile_dir / f"{args.worker}.txt").write_text(text.getvalue())
    else:
        action()
        wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    size = args.dest.stat().st_size
    print("RESULT " + json.dumps({
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "rss_before_mb": round(rss_before, 1), "max_rss_mb": round(max_rss_mb(), 1),
        "mb_per_s": round(size / (1024 * 1024) / wall, 2),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
