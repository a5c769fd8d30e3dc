"""The ``fleet-ecs`` command line.

Exit codes (what a scheduler acts on):
    0  every host ok
    1  at least one host not ok (status warn or fail)
    2  usage error (typer/click's own code)
    3  the scan could not run: bad inventory, missing credentials, unwritable output,
       simulator address in use
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from fleet_ecs import __version__
from fleet_ecs.errors import (
    EXIT_CANNOT_RUN,
    EXIT_HOSTS_NOT_OK,
    EXIT_OK,
    ConfigError,
    FleetEcsError,
)
from fleet_ecs.models import CaptureMode, HostSpec, ScanSettings

logger = logging.getLogger(__name__)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Check, across a Windows fleet, whether Microsoft Defender can reach its ECS service.",
)

# Short budgets for the simulated fleet: 50 hosts finish well under a minute.
DEMO_SETTINGS = dict(deadline=30.0, probe_timeout=3.0, read_timeout=10.0, connect_timeout=3.0)


def main() -> None:
    app()


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"fleet-ecs {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True,
        help="-v: fleet-ecs's own steps on stderr; -vv: also every WinRM message (very long)."),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pypsrp logs whole SOAP envelopes at DEBUG and every retried Receive at ERROR with a
    # traceback; our per-host results say it better, so they speak only at -vv.
    wire = logging.DEBUG if verbose >= 2 else logging.CRITICAL
    for name in ("pypsrp", "spnego", "urllib3", "requests_credssp"):
        logging.getLogger(name).setLevel(wire)


@app.command()
def scan(
    inventory: Path = typer.Argument(..., help="Inventory file (YAML, Ansible YAML/INI, CSV, list)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write results into."),
    concurrency: int = typer.Option(
        16, min=1, max=2000, help="Hosts scanned at once (each holds one WinRM shell)."),
    rate: float = typer.Option(
        4.0, min=0.1, help="New connections started per second; each is a logon your domain "
        "controllers serve."),
    deadline: float = typer.Option(300.0, min=5, help="Seconds allowed per host, end to end."),
    connect_timeout: float = typer.Option(10.0, min=1, help="Seconds to open a TCP connection."),
    read_timeout: float = typer.Option(30.0, min=3, help="Seconds to wait for a WinRM reply."),
    operation_timeout: float = typer.Option(
        20.0, min=1, help="WS-Management OperationTimeout; kept below --read-timeout."),
    group_limit: list[str] = typer.Option(
        [], "--group-limit", metavar="GROUP=N",
        help="At most N hosts of inventory group GROUP at once (repeatable), e.g. a site "
        "behind a slow link or near a busy domain controller."),
    capture: CaptureMode = typer.Option(
        CaptureMode.ON_FAILURE, help="Record a netsh trace and fetch it: off, on-failure, always."
    ),
) -> None:
    """Scan every host of INVENTORY and write results, CSV and HTML into --out."""
    settings = ScanSettings(
        concurrency=concurrency, rate=rate, deadline=deadline, capture=capture,
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        operation_timeout=operation_timeout, run_id=_run_id(),
    )
    code = _guard(lambda: _scan_inventory(inventory, out, settings, _group_limits(group_limit)))
    raise typer.Exit(code)


def _group_limits(values: list[str]) -> dict[str, int]:
    limits = {}
    for value in values:
        name, _, number = value.partition("=")
        if not name or not number.isdigit() or int(number) < 1:
            raise typer.BadParameter(f"{value!r}: expected GROUP=N with N >= 1",
                                     param_hint="--group-limit")
        limits[name] = int(number)
    return limits


@app.command()
def demo(
    hosts: int = typer.Option(20, "--hosts", "-n", min=1, max=5000, help="Simulated hosts."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory."),
    concurrency: int = typer.Option(25, min=1, max=2000, help="Hosts scanned at once."),
) -> None:
    """Start a simulated fleet on loopback, scan it like a real one, and show the report."""
    out = out or Path(f"fleet-ecs-demo-{datetime.now():%Y%m%d-%H%M%S}")
    settings = ScanSettings(
        concurrency=concurrency, rate=200.0, capture=CaptureMode.ON_FAILURE,
        run_id=_run_id(), **DEMO_SETTINGS,
    )
    raise typer.Exit(_guard(lambda: _run_demo(hosts, out, settings)))


@app.command()
def simulate(
    inventory: Path = typer.Argument(..., help="Inventory whose hosts to simulate."),
) -> None:
    """Serve the simulated endpoints of INVENTORY until stopped (Ctrl-C)."""
    raise typer.Exit(_guard(lambda: _serve(inventory)))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by scan or demo."),
) -> None:
    """Rebuild CSV, JSONL, HTML and per-host reports from a run directory, without rescanning."""

    def rebuild() -> int:
        summary = _build_reports(run_dir)
        _print_summary(summary, run_dir)
        return EXIT_OK if summary.all_ok else EXIT_HOSTS_NOT_OK

    raise typer.Exit(_guard(rebuild))


@app.command()
def script(
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write the script to this file instead of standard output."),
    timeout: int = typer.Option(15, min=1, max=300, help="Seconds allowed per network check."),
) -> None:
    """Print the probe as one PowerShell file, for a machine WinRM cannot reach.

    Run it there in an elevated Windows PowerShell 5.1 (`-OutDir` chooses where its result
    file goes, `-NoCapture` skips the network trace); bring the file back and add it to a run
    with `fleet-ecs import`. For AllSigned execution policies, sign it first with
    Set-AuthenticodeSignature and your code-signing certificate.
    """
    from fleet_ecs.probe.standalone import render_standalone

    text = render_standalone(run_id=_run_id(), capture=True, timeout_sec=timeout)
    if out is None:
        sys.stdout.write(text)
        raise typer.Exit(EXIT_OK)
    try:
        out.write_text(text, encoding="ascii", newline="\r\n")
    except OSError as exc:
        typer.echo(f"fleet-ecs: cannot write {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    typer.echo(f"wrote {out}")


@app.command("import")
def import_(
    run_dir: Path = typer.Argument(..., help="The run directory to add the hosts to."),
    files: list[Path] = typer.Argument(..., help="Result files written by the standalone script."),
) -> None:
    """Add results of the standalone script to a run, diagnosed like scanned hosts."""

    def add() -> int:
        from fleet_ecs import rundir
        from fleet_ecs.standalone import import_file

        if not run_dir.is_dir():
            rundir.prepare(run_dir)  # a new run made of imported hosts only
        for path in files:
            result = import_file(run_dir, path)
            typer.echo(f"{path}: {result.host} {result.status.value} {result.category.value}")
        summary = _build_reports(run_dir)
        _print_summary(summary, run_dir)
        return EXIT_OK if summary.all_ok else EXIT_HOSTS_NOT_OK

    raise typer.Exit(_guard(add))


# -- implementation ----------------------------------------------------------------------


def _guard(action) -> int:  # noqa: ANN001
    """Run ``action``; a ``FleetEcsError`` becomes one line on stderr and its exit code."""
    try:
        return action()
    except FleetEcsError as exc:
        typer.echo(f"fleet-ecs: {exc}", err=True)
        return exc.exit_code


def _run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _scan_inventory(
    inventory: Path, out: Path, settings: ScanSettings, group_limits: dict[str, int]
) -> int:
    from fleet_ecs.credentials import resolve_credentials
    from fleet_ecs.inventory import load_inventory

    inv = load_inventory(inventory)
    unknown = sorted(set(group_limits) - set(inv.groups))
    if unknown:
        raise ConfigError(f"--group-limit names groups not in {inventory}: {', '.join(unknown)}")
    store = resolve_credentials(inv.hosts)
    return _scan(inv.hosts, store.password_for, out, settings, str(inventory), group_limits)


def _scan(hosts: list[HostSpec], passwords, out: Path, settings: ScanSettings,  # noqa: ANN001
          source: str, group_limits: dict[str, int] | None = None, *,
          demo: bool = False) -> int:
    from fleet_ecs import rundir
    from fleet_ecs.controller import Controller
    from fleet_ecs.hostscan import now_iso
    from fleet_ecs.preflight import addressed_by_ip, check_client
    from fleet_ecs.progress import Progress

    rundir.prepare(out)
    issues = check_client(hosts, {h.name: passwords(h) is not None for h in hosts})
    for issue in issues.values():
        typer.echo(f"fleet-ecs: client_config_error for {len(issue.hosts)} host(s): "
                   f"{issue.message}", err=True)
    by_ip = sum(1 for h in hosts if addressed_by_ip(h))
    if by_ip:
        typer.echo(f"fleet-ecs: warning: {by_ip} host(s) use Negotiate/Kerberos but are "
                   "addressed by IP, so Negotiate falls back to NTLM for them; use names or "
                   "negotiate_hostname_override", err=True)
    meta = {
        "run_id": settings.run_id, "tool_version": __version__, "inventory": source,
        "started_at": now_iso(), "finished_at": None, "hosts": len(hosts),
        "settings": {k: (v.value if hasattr(v, "value") else v)
                     for k, v in settings.__dict__.items()},
    }
    rundir.write_run_meta(out, meta)
    with Progress(len(hosts)) as progress:
        controller = Controller(settings, out, passwords, on_result=progress.update,
                                group_limits=group_limits, client_issues=issues)
        outcome = _run_controller(controller, hosts)
    meta["finished_at"] = now_iso()
    meta["stopped"] = outcome.stopped
    rundir.write_run_meta(out, meta)
    summary = _build_reports(out)
    _print_summary(summary, out)
    if outcome.stopped:
        typer.echo("fleet-ecs: the scan was stopped before every host was scanned", err=True)
    blocked = sum(len(issue.hosts) for issue in issues.values())
    if hosts and blocked == len(hosts):
        return EXIT_CANNOT_RUN  # the scanning machine, not the fleet, is what failed
    if demo:
        # The demo's fleet fails on purpose; the demo itself succeeded if its scan completed.
        return EXIT_HOSTS_NOT_OK if outcome.stopped else EXIT_OK
    return EXIT_OK if summary.all_ok and not outcome.stopped else EXIT_HOSTS_NOT_OK


def _run_controller(controller, hosts: list[HostSpec]):  # noqa: ANN001, ANN202
    async def runner():  # noqa: ANN202
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, controller.request_stop)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests) or no signal support
        return await controller.run(hosts)

    return asyncio.run(runner())


def _build_reports(run_dir: Path):  # noqa: ANN202
    from fleet_ecs.report.build import build_reports

    return build_reports(run_dir)


def _print_summary(summary, out: Path) -> None:  # noqa: ANN001
    counts = ", ".join(f"{k.value} {v}" for k, v in summary.by_category.items())
    noun = "host" if summary.hosts == 1 else "hosts"
    typer.echo(f"{summary.hosts} {noun}: {counts or 'none'}")
    if summary.skipped:
        typer.echo(f"{len(summary.skipped)} unreadable result file(s) left out; see the report")
    typer.echo(f"report: {out / 'report.html'}")
    typer.echo(f"csv:    {out / 'results.csv'}")


def _run_demo(count: int, out: Path, settings: ScanSettings) -> int:
    from fleet_ecs.sim.credentials import DEMO_PASSWORD
    from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts, demo_specs, find_free_block

    specs = demo_specs(count, find_free_block(count))
    handle = SimulatedFleet(build_hosts(specs)).start_in_thread()
    typer.echo(f"simulated fleet: {count} hosts from {specs[0].address}", err=True)
    try:
        return _scan(specs, lambda _spec: DEMO_PASSWORD, out, settings, "demo", demo=True)
    finally:
        handle.stop()


def _serve(inventory: Path) -> int:
    from fleet_ecs.inventory import load_inventory
    from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts

    inv = load_inventory(inventory)
    fleet = SimulatedFleet(build_hosts(inv.hosts))
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Block the stop signals before the server thread starts (it inherits the mask), so that
    # they reach only the main thread, which waits for them synchronously below.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    handle = fleet.start_in_thread()
    try:
        typer.echo(f"ready: simulating {len(inv.hosts)} hosts of {inventory}; Ctrl-C stops")
        sys.stdout.flush()
        signal.sigwait(stop_signals)
    finally:
        handle.stop()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    return EXIT_OK
