"""The simulated fleet: many WinRM hosts on loopback addresses, served from one event loop.

Each simulated host listens at its own 127.x.y.z address (Linux routes all of 127.0.0.0/8 to
loopback without configuration) on its port, with its own user list, scenario and
bookkeeping. ``SimulatedFleet`` runs them in the caller's event loop; ``start_in_thread``
gives the demo and the tests a fleet in a daemon thread of the same process, because pypsrp
is synchronous and its clients run in threads anyway. One loop serves thousands of hosts: a
listener costs one socket, a connection one task.

HTTPS hosts present certificates from a ``TlsMaterial`` (``fleet_ecs.sim.tls``). Unless the
caller passes its own, every fleet of the process shares one, created on first use and
removed at exit, so that ``demo_specs`` can name its CA bundle (``shared_ca_bundle``) before
the fleet exists. Files the fleet writes for itself (NTLM user lists) live in a private
directory it removes when it stops.
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import logging
import random
import resource
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import Category, HostSpec, Transport
from fleet_ecs.sim import scenarios
from fleet_ecs.sim.auth import AuthSetup, build_host_auth
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.listener import NETWORK_FAULTS, HostListener
from fleet_ecs.sim.raw import check_raw
from fleet_ecs.sim.shells import WinRMService
from fleet_ecs.sim.state import HostSnapshot, HostState
from fleet_ecs.sim.steps import DEFAULT_CAPTURE_BYTES, HostContext
from fleet_ecs.sim.tls import TlsMaterial
from fleet_ecs.sim.windows_text import profile_for

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5985
DEFAULT_HTTPS_PORT = 5986
DEFAULT_BASE = "127.77.0.0"
_FDS_PER_HOST = 2  # a listening socket plus, typically, one client connection at a time
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass
class SimHost:
    """One simulated host as the fleet serves it."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    scenario: str = "healthy"
    users: Mapping[str, str] = field(default_factory=dict)
    delay: float | None = None  # seconds per step; None: the scenario's own delay
    capture_kb: int | None = None  # size of the simulated capture; None: the default
    # Methods offered, Windows' names in any order (auth.METHOD_NAMES); None: the scenario's.
    auth_methods: tuple[str, ...] | None = None
    tls: str | None = None  # certificate kind for HTTPS (tls.KINDS); None: the scenario's
    response_delay: float | None = None  # seconds per HTTP reply; None: the scenario's
    # Verbatim replacements in the step documents (vars.sim_raw; see fleet_ecs.sim.raw).
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def listening(self) -> bool:
        return scenarios.get(self.scenario).listening

    @property
    def offered_methods(self) -> tuple[str, ...]:
        if self.auth_methods is not None:
            return self.auth_methods
        return scenarios.get(self.scenario).auth_methods

    @property
    def certificate(self) -> str | None:
        return self.tls if self.tls is not None else scenarios.get(self.scenario).tls

    @property
    def reply_delay(self) -> float:
        if self.response_delay is not None:
            return self.response_delay
        return scenarios.get(self.scenario).response_delay


def build_hosts(specs: list[HostSpec]) -> list[SimHost]:
    """Simulated hosts for inventory hosts.

    ``vars`` may set scenario, sim_delay, sim_capture_kb and sim_raw (``fleet_ecs.sim.raw``).
    """
    hosts = []
    for spec in specs:
        name = str(spec.vars.get("scenario", "healthy"))
        scenario = scenarios.get(name)
        _check_loopback(spec.name, spec.address)
        if scenario.accepts_demo_password:
            users = {DEMO_USERNAME: DEMO_PASSWORD}
        else:
            # A password nobody knows: the demo login is refused like an expired one.
            users = {DEMO_USERNAME: secrets.token_urlsafe(24)}
        delay = _number(spec, "sim_delay", float)
        reply_delay = None
        if scenario.response_delay:  # in a slow-reply scenario, sim_delay slows the replies
            delay, reply_delay = None, delay
        hosts.append(
            SimHost(
                name=spec.name,
                address=spec.address,
                port=spec.port,
                scenario=name,
                users=users,
                delay=delay,
                capture_kb=_number(spec, "sim_capture_kb", int),
                response_delay=reply_delay,
                raw=check_raw(spec.name, spec.vars.get("sim_raw")),
            )
        )
    return hosts


def _number(spec: HostSpec, key: str, kind: type) -> float | int | None:
    value = spec.vars.get(key)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise SimulatorError(f"host {spec.name}: {key} must be a number, not {value!r}") from None
    if number < 0:
        raise SimulatorError(f"host {spec.name}: {key} must not be negative")
    return number


def _check_loopback(name: str, address: str) -> None:
    try:
        ok = ipaddress.ip_address(address) in _LOOPBACK
    except ValueError:
        ok = False
    if not ok:
        raise SimulatorError(f"simulated host {name} must use a 127.x.y.z address, not {address}")


def demo_addresses(n: int, base: str = DEFAULT_BASE) -> list[str]:
    """``n`` consecutive loopback addresses from ``base``, skipping .0 and .255 last octets."""
    start = int(ipaddress.IPv4Address(base))
    out: list[str] = []
    value = start
    while len(out) < n:
        address = ipaddress.IPv4Address(value)
        if address not in _LOOPBACK:
            raise SimulatorError(f"{n} demo hosts do not fit in 127.0.0.0/8 from {base}")
        if value & 0xFF not in (0, 255):
            out.append(str(address))
        value += 1
    return out


def demo_specs(
    n: int,
    base: str = DEFAULT_BASE,
    *,
    port: int = DEFAULT_PORT,
    https_port: int = DEFAULT_HTTPS_PORT,
    ca_bundle: str | Path | None = None,
    seed: int = 0,
) -> list[HostSpec]:
    """The demo inventory: ``ws-0001``... each with the next scenario of ``DEMO_ORDER``.

    Each host is described the way its scenario's ``ClientHints`` say a client must connect:
    auth method, HTTP or HTTPS (``https_port``), message encryption, and for HTTPS the CA
    bundle to validate with (``ca_bundle``, by default the process's shared fleet CA, made
    only when some demo host needs it).

    ``seed`` 0 is that fixed mapping. Any other seed moves about a tenth of the hosts (at
    least one) to another scenario, chosen from the seed alone (``demo_scenarios``), so two
    demo runs with different seeds differ the way two nights of a real fleet do. Host names
    never depend on the seed: history and diff match hosts by name.
    """
    return [
        scenario_spec(scenario, f"ws-{i + 1:04d}", address, port=port,
                      https_port=https_port, ca_bundle=ca_bundle)
        for i, (scenario, address) in enumerate(
            zip(demo_scenarios(n, seed), demo_addresses(n, base)))
    ]


# Scenarios a seed may move a host into: quick ones (no timeouts, retries or slow replies,
# so a seeded demo takes as long as an unseeded one), each with its own verdict.
SEED_TARGETS = (
    "healthy", "winrm-service-stopped", "expired-service-password", "standard-user-account",
    "defender-not-installed", "dns-filter-nxdomain", "proxy-requires-authentication",
    "firewall-drops-443", "trusted-tls-inspection", "tls-handshake-reset", "proxy-block-page",
    "ecs-service-error", "core-service-stopped", "not-onboarded", "dns-sinkhole",
)
SEED_SHARE = 0.1


def demo_scenarios(n: int, seed: int = 0) -> list[str]:
    """The scenario of each of ``n`` demo hosts for ``seed`` (see ``demo_specs``).

    Of the hosts a seed moves, half (as far as there are) are healthy ones that break; the
    others are failing ones that are fixed or fail another way, so that a diff between two
    seeds shows every kind of change.
    """
    order = scenarios.DEMO_ORDER
    chosen = [order[i % len(order)] for i in range(n)]
    if seed == 0 or n == 0:
        return chosen
    rng = random.Random(seed)  # deterministic per seed; not for anything secret
    moved = max(1, round(n * SEED_SHARE))
    healthy = [i for i, name in enumerate(chosen) if scenarios.get(name).expected is Category.OK]
    failing = [i for i in range(n) if i not in set(healthy)]
    breaking = rng.sample(healthy, min(len(healthy), (moved + 1) // 2))
    others = rng.sample(failing, min(len(failing), moved - len(breaking)))
    for index in sorted(breaking + others):
        current = scenarios.get(chosen[index]).expected
        if current is not Category.OK and rng.random() < 0.5:
            chosen[index] = "healthy"  # fixed overnight
            continue
        targets = [t for t in SEED_TARGETS
                   if t != "healthy" and scenarios.get(t).expected != current]
        chosen[index] = rng.choice(targets)
    return chosen


def scenario_spec(
    scenario: str,
    name: str,
    address: str,
    *,
    port: int = DEFAULT_PORT,
    https_port: int = DEFAULT_HTTPS_PORT,
    ca_bundle: str | Path | None = None,
) -> HostSpec:
    """The inventory entry a client needs for one simulated host in ``scenario``."""
    hints = scenarios.get(scenario).client
    https = hints.transport == Transport.HTTPS
    validation: bool | str = True
    if https and hints.use_fleet_ca:
        validation = str(ca_bundle if ca_bundle is not None else shared_ca_bundle())
    return HostSpec(
        name=name,
        address=address,
        port=https_port if https else port,
        transport=hints.transport,
        auth=hints.auth,
        cert_validation=validation,
        username=DEMO_USERNAME,
        credential="simulator",
        message_encryption=hints.encryption,
        vars={"scenario": scenario},
    )


def find_free_block(
    n: int, port: int = DEFAULT_PORT, https_port: int | None = DEFAULT_HTTPS_PORT
) -> str:
    """A ``127.x.0.0`` base whose ``n`` demo addresses can all be bound on the ports."""
    ports = [port] if https_port is None else [port, https_port]
    for second in range(77, 127):
        base = f"127.{second}.0.0"
        addresses = demo_addresses(n, base)
        if all(_can_bind(a, p) for a in addresses for p in ports):
            return base
    raise SimulatorError(f"no free block of {n} loopback addresses on port(s) "
                         f"{', '.join(map(str, ports))}")


def _can_bind(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


_shared_tls: TlsMaterial | None = None
_shared_lock = threading.Lock()


def shared_tls() -> TlsMaterial:
    """The process's shared certificate material (created on first use, removed at exit)."""
    global _shared_tls
    with _shared_lock:
        if _shared_tls is None:
            _shared_tls = TlsMaterial()
            atexit.register(_shared_tls.close)
        return _shared_tls


def shared_ca_bundle() -> Path:
    """The CA bundle that validates the certificates of fleets using the shared material."""
    return shared_tls().ca_bundle_path


def raise_fd_limit(needed: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards ``needed`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        # Ask once for all the room there is; needs no privilege up to the hard limit.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        logger.info("raised the open-file limit from %d to %s", soft, hard)
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning("open-file limit %d is below the %d a fleet this size may need",
                       soft, needed)
    return soft


class _SynDropper:
    """A port whose accept queue is kept full, so the kernel drops every further SYN.

    A listening socket with backlog 0 queues one connection; the simulator makes that one
    itself and never accepts it. Clients then see their connect time out, as behind a
    firewall that drops packets, rather than being refused.
    """

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            self._server.bind((address, port))
            self._server.listen(0)
            self._filler.settimeout(2.0)
            self._filler.connect((address, port))
        except OSError as exc:
            self.close()
            reason = exc.strerror or str(exc)
            raise SimulatorError(
                f"simulated host {name} cannot listen on {address}:{port}: {reason}"
            ) from exc

    def close(self) -> None:
        self._filler.close()
        self._server.close()


class SimulatedFleet:
    """All simulated hosts of one run."""

    def __init__(self, hosts: list[SimHost], tls: TlsMaterial | None = None) -> None:
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise SimulatorError("simulated host names must be unique")
        self.hosts = {h.name: h for h in hosts}
        self._states = {h.name: HostState(h.name) for h in hosts}
        self._listeners: list[HostListener] = []
        self._droppers: list[_SynDropper] = []
        self._tls = tls
        self._workdir: Path | None = None

    @property
    def tls(self) -> TlsMaterial:
        """The certificate material of this fleet's HTTPS hosts."""
        if self._tls is None:
            self._tls = shared_tls()
        return self._tls

    @property
    def ca_bundle_path(self) -> Path:
        """The CA bundle to pass as pypsrp ``cert_validation`` for this fleet's trusted hosts."""
        return self.tls.ca_bundle_path

    async def start(self) -> None:
        """Bind every listening host; on any failure nothing stays bound."""
        live = [h for h in self.hosts.values() if h.listening]
        raise_fd_limit(len(live) * _FDS_PER_HOST + 256)
        self._workdir = Path(tempfile.mkdtemp(prefix="fleet-ecs-sim-fleet-"))
        try:
            for host in live:
                if scenarios.get(host.scenario).fault == "syn-drop":
                    self._droppers.append(_SynDropper(host.name, host.address, host.port))
                    continue
                listener = self._listener(host)
                await listener.start()
                self._listeners.append(listener)
        except SimulatorError:
            await self.stop()
            raise
        logger.info("simulated fleet up: %d host(s) listening",
                    len(self._listeners) + len(self._droppers))

    async def stop(self) -> None:
        listeners, self._listeners = self._listeners, []
        droppers, self._droppers = self._droppers, []
        await asyncio.gather(*(listener.stop() for listener in listeners))
        for dropper in droppers:
            dropper.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def state(self, host_name: str) -> HostSnapshot:
        try:
            return self._states[host_name].snapshot()
        except KeyError:
            raise SimulatorError(f"no simulated host named {host_name}") from None

    def leftovers(self) -> dict[str, list[str]]:
        """Host name -> what was left behind there, for hosts that are not clean."""
        out = {}
        for name, state in self._states.items():
            problems = state.snapshot().leftovers
            if problems:
                out[name] = problems
        return out

    def start_in_thread(self, timeout: float = 10.0) -> FleetHandle:
        """Run the fleet in a daemon thread; returns once all listeners are bound."""
        handle = FleetHandle(self)
        handle._start(timeout)
        return handle

    def _listener(self, host: SimHost) -> HostListener:
        scenario = scenarios.get(host.scenario)
        state = self._states[host.name]
        profile = profile_for(host.name)
        capture = DEFAULT_CAPTURE_BYTES if host.capture_kb is None else host.capture_kb * 1024

        def context(login: str) -> HostContext:
            return HostContext(profile, scenario, state, login, capture, host.raw)

        delay = scenario.delay if host.delay is None else host.delay
        fault = scenario.fault
        service_fault = fault if fault is not None and fault not in NETWORK_FAULTS else None
        service = WinRMService(host.address, context, delay, service_fault)
        assert self._workdir is not None  # made by start()
        auth = build_host_auth(host.offered_methods,
                               AuthSetup(host.name, host.address, host.users, self._workdir))
        context_tls: ssl.SSLContext | None = None
        if host.certificate is not None:
            context_tls = self.tls.server_context(host.name, host.address, host.certificate)
        return HostListener(
            host.name, host.address, host.port, auth, service, state,
            ssl_context=context_tls,
            fault=fault if fault in NETWORK_FAULTS else None,
            response_delay=host.reply_delay,
        )


class FleetHandle:
    """A fleet running in its own event loop thread."""

    def __init__(self, fleet: SimulatedFleet) -> None:
        self.fleet = fleet
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fleet-ecs-sim", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _start(self, timeout: float) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise SimulatorError(f"simulated fleet did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(_quiet_handler)
        try:
            self._loop.run_until_complete(self.fleet.start())
        except BaseException as exc:  # reported to the starting thread, not lost here
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self.fleet.stop())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def state(self, host_name: str) -> HostSnapshot:
        return self.fleet.state(host_name)

    def leftovers(self) -> dict[str, list[str]]:
        return self.fleet.leftovers()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every listener and connection and end the thread."""
        if self._thread.is_alive() and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass  # loop closed meanwhile
        self._thread.join(timeout)

    def __enter__(self) -> FleetHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _quiet_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Keep clients that refuse a certificate or drop a connection out of the error log.

    A failed TLS handshake is a scenario working as intended (the client rejected the bad
    certificate), not a simulator fault; everything else goes to asyncio's default handler.
    """
    exc = context.get("exception")
    if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
        logger.debug("connection ended: %s", context.get("message"))
        return
    loop.default_exception_handler(context)
