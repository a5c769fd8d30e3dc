"""The ``fleet-ecs`` command line.

Exit codes (what a scheduler acts on):
    0  every host ok (scan: or no more than --fail-threshold of them not ok);
       diff: no host got worse
    1  at least one host not ok (status warn or fail), more than --fail-threshold of them,
       or the scan was stopped; diff: some host got worse
    2  usage error (typer/click's own code)
    3  the scan could not run: bad inventory, missing credentials, unwritable output,
       simulator address in use; history/diff: no usable history or no such run
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from fleet_ecs import __version__
from fleet_ecs.errors import (
    EXIT_CANNOT_RUN,
    EXIT_HOSTS_NOT_OK,
    EXIT_OK,
    ConfigError,
    FleetEcsError,
)
from fleet_ecs.models import CaptureMode, HostSpec, ScanSettings, Status

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
    level = logging.DEBUG if verbose else logging.WARNING
    root = logging.getLogger()
    configure = not root.handlers
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if configure:
        # The run log lowers fleet_ecs's level to INFO while a scan runs; the stderr handler
        # keeps its own level so that those records go to run.log only.
        for handler in root.handlers:
            handler.setLevel(level)
    # pypsrp logs whole SOAP envelopes at DEBUG and every retried Receive at ERROR with a
    # traceback; our per-host results say it better, so they speak only at -vv.
    wire = logging.DEBUG if verbose >= 2 else logging.CRITICAL
    for name in ("pypsrp", "spnego", "urllib3", "requests_credssp"):
        logging.getLogger(name).setLevel(wire)


def _history_option() -> Any:
    return typer.Option(
        None, "--history", metavar="PATH", dir_okay=False,
        help="History database (SQLite). Default: fleet-ecs/history.sqlite in the user's data "
        "folder ($XDG_DATA_HOME, else ~/.local/share, on Linux).")


def _quiet_option() -> Any:
    return typer.Option(
        False, "--quiet", "-q",
        help="No progress: only errors and the final summary line (for cron).")


@app.command()
def scan(
    inventory: Path = typer.Argument(
        ..., help="Inventory file (YAML, Ansible YAML/INI, CSV, list)."),
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
    fail_threshold: float = typer.Option(
        0.0, "--fail-threshold", min=0.0, max=1.0, metavar="FRACTION",
        help="Exit 1 only when more than this share of hosts is not ok (0.05: more than 5%); "
        "0: any host."),
    quiet: bool = _quiet_option(),
    history: Optional[Path] = _history_option(),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run in --out: scan only the hosts "
        "without a result there, keep the rest, then report on all of them."),
    system_path: bool = typer.Option(
        False, "--system-path", help="Measure Defender's path as SYSTEM through a one-shot "
        "scheduled task on each host (opt-in: your SOC will see task creation events)."),
) -> None:
    """Scan every host of INVENTORY and write results, CSV, XLSX and HTML into --out."""
    settings = ScanSettings(
        concurrency=concurrency, rate=rate, deadline=deadline, capture=capture,
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        operation_timeout=operation_timeout, run_id=_run_id(), system_path=system_path,
    )
    options = RunOptions(history=_history_path(history), quiet=quiet,
                         fail_threshold=fail_threshold, resume=resume)
    code = _guard(lambda: _scan_inventory(inventory, out, settings, _group_limits(group_limit),
                                          options))
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
    seed: int = typer.Option(
        0, "--seed", min=0,
        help="0: host i gets the i-th scenario of the fixed list. Another number moves about "
        "10% of the hosts to other scenarios, the same ones for the same seed, so that two "
        "demo runs give a diff."),
    fail_threshold: Optional[float] = typer.Option(
        None, "--fail-threshold", min=0.0, max=1.0, metavar="FRACTION",
        help="Exit like scan does with this threshold (default: exit 0 once the scan "
        "completes)."),
    quiet: bool = _quiet_option(),
    history: Optional[Path] = _history_option(),
) -> None:
    """Start a simulated fleet on loopback, scan it like a real one, and show the report."""
    out = out or Path(f"fleet-ecs-demo-{datetime.now():%Y%m%d-%H%M%S}")
    settings = ScanSettings(
        concurrency=concurrency, rate=200.0, capture=CaptureMode.ON_FAILURE,
        run_id=_run_id(), **DEMO_SETTINGS,
    )
    options = RunOptions(history=_history_path(history), quiet=quiet,
                         fail_threshold=fail_threshold, demo=fail_threshold is None)
    raise typer.Exit(_guard(lambda: _run_demo(hosts, out, settings, seed, options)))


@app.command()
def simulate(
    inventory: Path = typer.Argument(..., help="Inventory whose hosts to simulate."),
) -> None:
    """Serve the simulated endpoints of INVENTORY until stopped (Ctrl-C)."""
    raise typer.Exit(_guard(lambda: _serve(inventory)))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by scan or demo."),
    history: Optional[Path] = _history_option(),
) -> None:
    """Rebuild CSV, XLSX, JSONL, HTML and per-host reports from a run directory, without
    rescanning. A run recorded in the history gets its changes and trend again; the history
    is only read."""

    def rebuild() -> int:
        summary = _build_reports(run_dir, _history_path(history))
        _print_summary(summary, run_dir)
        return EXIT_OK if summary.all_ok else EXIT_HOSTS_NOT_OK

    raise typer.Exit(_guard(rebuild))


@app.command("history")
def history_(
    keep: Optional[int] = typer.Option(
        None, "--keep", min=0, metavar="N",
        help="First forget all but the newest N runs (their run folders stay on disk)."),
    history: Optional[Path] = _history_option(),
) -> None:
    """List the recorded runs, oldest first: id, start time, hosts, ok/warn/fail, folder."""
    raise typer.Exit(_guard(lambda: _list_history(_history_path(history), keep)))


@app.command()
def diff(
    run_a: Optional[str] = typer.Argument(
        None, help="The older run: a run id or a unique prefix of one. Default: the run "
        "before the newest."),
    run_b: Optional[str] = typer.Argument(
        None, help="The newer run. Default: the newest run."),
    history: Optional[Path] = _history_option(),
) -> None:
    """Show the hosts that broke, recovered, changed category, appeared or disappeared between
    two runs; write diff.txt and diff.csv into the newer run's folder. Exits 1 when some host
    got worse."""
    raise typer.Exit(_guard(lambda: _diff(_history_path(history), run_a, run_b)))


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
    replace: bool = typer.Option(
        False, "--replace", help="Replace hosts the run already holds (by default refused)."),
) -> None:
    """Add results of the standalone script to a run, diagnosed like scanned hosts."""

    def add() -> int:
        from fleet_ecs import rundir
        from fleet_ecs.standalone import import_file

        if not run_dir.is_dir():
            rundir.prepare(run_dir)  # a new run made of imported hosts only
        for path in files:
            result = import_file(run_dir, path, replace=replace)
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


@dataclass(frozen=True)
class RunOptions:
    """How a scan reports and ends, beyond what it scans (``ScanSettings``)."""

    history: Path | None = None  # record the run in this database; None: not recorded
    quiet: bool = False  # no progress, no report paths: errors and the summary line only
    fail_threshold: float | None = 0.0  # share of hosts not ok tolerated before exit 1
    demo: bool = False  # exit 0 once the scan completed, whatever the hosts say
    extra_meta: dict[str, object] = field(default_factory=dict)  # more keys for run.json
    resume: bool = False  # continue the run in ``out``: scan only hosts without a result


def _history_path(option: Path | None) -> Path:
    from fleet_ecs.history import default_path

    return option if option is not None else default_path()


def _scan_inventory(
    inventory: Path, out: Path, settings: ScanSettings, group_limits: dict[str, int],
    options: RunOptions | None = None,
) -> int:
    from fleet_ecs.credentials import resolve_credentials
    from fleet_ecs.inventory import load_inventory

    inv = load_inventory(inventory)
    unknown = sorted(set(group_limits) - set(inv.groups))
    if unknown:
        raise ConfigError(f"--group-limit names groups not in {inventory}: {', '.join(unknown)}")
    store = resolve_credentials(inv.hosts)
    return _scan(inv.hosts, store.password_for, out, settings, str(inventory), group_limits,
                 options=options)


def _scan(hosts: list[HostSpec], passwords, out: Path, settings: ScanSettings,  # noqa: ANN001
          source: str, group_limits: dict[str, int] | None = None, *,
          demo: bool = False, options: RunOptions | None = None) -> int:
    """Scan ``hosts`` into ``out``, record the run, build the reports; returns the exit code.

    Without ``options`` (tests calling this directly) nothing is recorded in any history.
    """
    from fleet_ecs import rundir

    options = options or RunOptions(demo=demo)
    if not options.resume:
        rundir.prepare(out)
        with _run_log(out):
            return _scan_prepared(hosts, passwords, out, settings, source, group_limits,
                                  options)
    meta, done = rundir.resume(out)
    if meta.get("inventory") not in (None, source):
        raise ConfigError(f"{out} holds a run of {meta['inventory']}, not of {source}: "
                          "resume it with that inventory, or scan into a new --out")
    skipped = [h for h in hosts if h.name in done]
    todo = [h for h in hosts if h.name not in done]
    settings = dataclasses.replace(settings, run_id=str(meta["run_id"]))
    typer.echo(f"resuming run {settings.run_id}: skipped {len(skipped)} host(s) that have a "
               f"result, scanning {len(todo)}", err=options.quiet)
    options = dataclasses.replace(options, extra_meta={
        **options.extra_meta, "started_at": meta.get("started_at"), "hosts": len(hosts),
        "resumed": int(meta.get("resumed") or 0) + 1})
    with _run_log(out):
        return _scan_prepared(todo, passwords, out, settings, source, group_limits, options)


def _scan_prepared(hosts: list[HostSpec], passwords, out: Path,  # noqa: ANN001
                   settings: ScanSettings, source: str,
                   group_limits: dict[str, int] | None, options: RunOptions) -> int:
    from fleet_ecs import rundir
    from fleet_ecs.controller import Controller
    from fleet_ecs.hostscan import now_iso
    from fleet_ecs.preflight import addressed_by_ip, check_client
    from fleet_ecs.progress import Progress

    issues = check_client(hosts, {h.name: passwords(h) is not None for h in hosts})
    for issue in issues.values():
        typer.echo(f"fleet-ecs: client_config_error for {len(issue.hosts)} host(s): "
                   f"{issue.message}", err=True)
    by_ip = sum(1 for h in hosts if addressed_by_ip(h))
    if by_ip:
        typer.echo(f"fleet-ecs: warning: {by_ip} host(s) use Negotiate/Kerberos but are "
                   "addressed by IP, so Negotiate falls back to NTLM for them; use names or "
                   "negotiate_hostname_override", err=True)
    meta: dict[str, object] = {
        "run_id": settings.run_id, "tool_version": __version__, "inventory": source,
        "started_at": now_iso(), "finished_at": None, "hosts": len(hosts),
        "settings": {k: (v.value if hasattr(v, "value") else v)
                     for k, v in settings.__dict__.items()},
        **options.extra_meta,
    }
    rundir.write_run_meta(out, meta)
    logger.info("run %s: scanning %d host(s) of %s into %s", settings.run_id, len(hosts),
                source, out)
    progress = (contextlib.nullcontext(None) if options.quiet else Progress(len(hosts)))
    with progress as shown:
        controller = Controller(settings, out, passwords,
                                on_result=shown.update if shown is not None else None,
                                group_limits=group_limits, client_issues=issues)
        outcome = _run_controller(controller, hosts)
    meta["finished_at"] = now_iso()
    meta["stopped"] = outcome.stopped
    rundir.write_run_meta(out, meta)
    recorded = _record_history(out, options.history)
    summary = _build_reports(out, recorded)
    _print_summary(summary, out, quiet=options.quiet)
    if outcome.stopped:
        typer.echo("fleet-ecs: the scan was stopped before every host was scanned", err=True)
    blocked = sum(len(issue.hosts) for issue in issues.values())
    if hosts and blocked == len(hosts):
        return EXIT_CANNOT_RUN  # the scanning machine, not the fleet, is what failed
    if options.demo:
        # The demo's fleet fails on purpose; the demo itself succeeded if its scan completed.
        return EXIT_HOSTS_NOT_OK if outcome.stopped else EXIT_OK
    return _exit_code(summary, outcome.stopped, options.fail_threshold or 0.0)


def _exit_code(summary, stopped: bool, threshold: float) -> int:  # noqa: ANN001
    """1 when stopped, or when more than ``threshold`` of the hosts are not ok (0: any).

    Unreadable result files count as hosts that are not ok.
    """
    total = summary.hosts + len(summary.skipped)
    if stopped or total == 0:
        return EXIT_HOSTS_NOT_OK
    not_ok = total - summary.by_status.get(Status.OK, 0)
    share = not_ok / total
    if not_ok and share <= threshold:
        logger.info("%d of %d host(s) not ok (%.1f%%), within --fail-threshold %g", not_ok,
                    total, share * 100, threshold)
    return EXIT_HOSTS_NOT_OK if share > threshold else EXIT_OK


RUN_LOG = "run.log"


@contextlib.contextmanager
def _run_log(out: Path) -> Iterator[None]:
    """fleet_ecs's log records, INFO and up, into ``out/run.log`` while the block runs.

    Only the ``fleet_ecs`` loggers write there (pypsrp's wire logs never do), and none of
    them logs a credential. The logger's level is lowered to INFO for the block if needed and
    restored after; the stderr handler has its own level (see ``_root``).
    """
    package = logging.getLogger("fleet_ecs")
    try:
        handler = logging.FileHandler(out / RUN_LOG, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"fleet-ecs: warning: no run log: {exc.strerror or exc}", err=True)
        yield
        return
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_level = package.level
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(old_level)
        handler.close()


def _record_history(out: Path, path: Path | None) -> Path | None:
    """Record the finished run in the history at ``path``; the path, or None if it failed.

    A history that cannot be written costs the changes section, never the scan's results.
    """
    if path is None:
        return None
    from fleet_ecs.history import HistoryError, opened, record_run_dir

    try:
        with opened(path) as db:
            record_run_dir(db, out)
    except (HistoryError, sqlite3.Error, OSError) as exc:
        typer.echo(f"fleet-ecs: warning: run not recorded in the history: {exc}", err=True)
        return None
    return path


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


def _build_reports(run_dir: Path, history: Path | None = None):  # noqa: ANN202
    from fleet_ecs.report.build import build_reports

    return build_reports(run_dir, history)


def _print_summary(summary, out: Path, *, quiet: bool = False) -> None:  # noqa: ANN001
    counts = ", ".join(f"{k.value} {v}" for k, v in summary.by_category.items())
    noun = "host" if summary.hosts == 1 else "hosts"
    typer.echo(f"{summary.hosts} {noun}: {counts or 'none'}")
    if summary.skipped:
        typer.echo(f"{len(summary.skipped)} unreadable result file(s) left out; see the report",
                   err=quiet)
    if quiet:
        return
    if summary.changes is not None:
        from fleet_ecs.report.diff import summary_line

        typer.echo(f"since run {summary.changes.before.run_id}: {summary_line(summary.changes)}")
    typer.echo(f"report: {out / 'report.html'}")
    typer.echo(f"csv:    {out / 'results.csv'}")
    typer.echo(f"xlsx:   {out / 'results.xlsx'}")
    if summary.changes is not None:
        typer.echo(f"diff:   {out / 'diff.txt'}")


def _list_history(path: Path, keep: int | None) -> int:
    from fleet_ecs.history import opened, prune, runs

    if not path.is_file() and keep is None:
        typer.echo(f"no runs recorded yet ({path} does not exist)")
        return EXIT_OK
    with opened(path) as db:
        if keep is not None:
            removed = prune(db, keep)
            typer.echo(f"pruned {removed} run(s); kept the newest {keep}")
        recorded = runs(db)
    if not recorded:
        typer.echo(f"no runs recorded in {path}")
        return EXIT_OK
    width = max(len("run id"), *(len(r.run_id) for r in recorded))
    typer.echo(f"{'run id':<{width}}  {'started (UTC)':<20} {'hosts':>6} {'ok':>6} {'warn':>6} "
               f"{'fail':>6}  dir")
    for run in recorded:
        started = run.started_at[:19].replace("T", " ")
        stopped = "  (stopped)" if run.stopped else ""
        typer.echo(f"{run.run_id:<{width}}  {started:<20} {run.hosts:>6} {run.ok:>6} "
                   f"{run.warn:>6} {run.fail:>6}  {run.run_dir}{stopped}")
    return EXIT_OK


def _diff(path: Path, name_a: str | None, name_b: str | None) -> int:
    from fleet_ecs.history import HistoryError, changes_between, find_run, opened, runs
    from fleet_ecs.report.diff import render_text, write_diff

    with opened(path, create=False) as db:
        order = [r.run_id for r in runs(db)]
        if name_a is None:
            if len(order) < 2:
                raise HistoryError(f"{len(order)} run(s) recorded in {path}; a diff needs two")
            before, after = find_run(db, order[-2]), find_run(db, order[-1])
        else:
            before = find_run(db, name_a)
            after = find_run(db, name_b if name_b is not None else order[-1])
            if before.run_id == after.run_id:
                hint = "name two runs" if name_b is not None else "it is the newest; name two"
                raise HistoryError(f"cannot compare run {before.run_id} with itself ({hint})")
        if order.index(before.run_id) > order.index(after.run_id):
            before, after = after, before  # always from the older run to the newer
        changes = changes_between(db, before.run_id, after.run_id)
    typer.echo(render_text(changes), nl=False)
    folder = Path(after.run_dir)
    if folder.is_dir():
        try:
            for written in write_diff(folder, changes):
                typer.echo(f"wrote {written}", err=True)
        except OSError as exc:
            typer.echo(f"fleet-ecs: warning: cannot write the diff into {folder}: "
                       f"{exc.strerror or exc}", err=True)
    else:
        typer.echo(f"fleet-ecs: warning: {folder} no longer exists; diff.txt not written",
                   err=True)
    return EXIT_HOSTS_NOT_OK if changes.worse else EXIT_OK


def _run_demo(count: int, out: Path, settings: ScanSettings, seed: int = 0,
              options: RunOptions | None = None) -> int:
    from fleet_ecs.sim.credentials import DEMO_PASSWORD

    options = options or RunOptions(demo=True)
    options = dataclasses.replace(options, extra_meta={**options.extra_meta, "demo_seed": seed})
    specs, handle = _start_demo_fleet(count, seed)
    if not options.quiet:
        typer.echo(f"simulated fleet: {count} hosts from {specs[0].address} (seed {seed})",
                   err=True)
    try:
        return _scan(specs, lambda _spec: DEMO_PASSWORD, out, settings, "demo", options=options)
    finally:
        handle.stop()


def _start_demo_fleet(count: int, seed: int):  # noqa: ANN202
    """A simulated fleet on a free loopback block; another demo may take the block first."""
    from fleet_ecs.errors import SimulatorError
    from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts, demo_specs, find_free_block

    for attempt in range(5):
        specs = demo_specs(count, find_free_block(count), seed=seed)
        try:
            return specs, SimulatedFleet(build_hosts(specs)).start_in_thread()
        except SimulatorError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))  # let the other demo finish binding its block
    raise AssertionError("unreachable")


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
