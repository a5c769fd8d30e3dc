"""The benchmark's simulated fleet, run as its own process by ``benchmarks.common.SimProcess``.

    python -m benchmarks.simserver --hosts N --base 127.x.0.0 --port P --auth basic \
        --delay SECONDS_PER_STEP --capture-kb K

Prints ``READY <n>`` once every host listens, serves until its stdin closes or SIGTERM, then
prints ``DONE {json}`` (its CPU seconds, peak RSS and what the hosts were left with) and exits.
Binds nothing but the loopback addresses of ``--base`` (``SimulatedFleet`` refuses others).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from benchmarks.common import bench_specs, cpu_seconds, max_rss_mb, quiet_logging
from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simserver")
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth", choices=("basic", "ntlm"), default="basic")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per step")
    parser.add_argument("--capture-kb", type=int, default=256)
    args = parser.parse_args(argv)
    quiet_logging()

    specs = bench_specs(args.hosts, args.base, args.port, args.auth, args.delay, args.capture_kb)
    fleet = SimulatedFleet(build_hosts(specs))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    handle = fleet.start_in_thread(timeout=max(30.0, args.hosts / 20))
    try:
        print(f"READY {args.hosts}", flush=True)
        waiter = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
        waiter.start()
        while not stop.wait(1.0):  # a timed wait lets the SIGTERM handler run promptly
            pass
    finally:
        handle.stop(timeout=30.0)
    leftovers = fleet.leftovers()
    print("DONE " + json.dumps({
        "cpu_s": round(cpu_seconds(), 2),
        "max_rss_mb": round(max_rss_mb(), 1),
        "hosts_with_leftovers": len(leftovers),
        "example_leftover": next(iter(leftovers.items()), None),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
