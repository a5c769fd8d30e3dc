"""The simulated fleet: many WinRM hosts on loopback addresses, served from one event loop.

Each simulated host listens at its own 127.x.y.z address (Linux routes all of 127.0.0.0/8 to
loopback without configuration) on its port, with its own user list, scenario and
bookkeeping. ``SimulatedFleet`` runs them in the caller's event loop; ``start_in_thread``
gives the demo and the tests a fleet in a daemon thread of the same process, because pypsrp
is synchronous and its clients run in threads anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import HostSpec, Transport
from fleet_ecs.sim import scenarios
from fleet_ecs.sim.auth import BasicAuth, HostAuth
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.listener import HostListener
from fleet_ecs.sim.shells import WinRMService
from fleet_ecs.sim.state import HostSnapshot, HostState
from fleet_ecs.sim.steps import DEFAULT_CAPTURE_BYTES, HostContext
from fleet_ecs.sim.windows_text import profile_for

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5985
DEFAULT_BASE = "127.77.0.0"
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

    @property
    def listening(self) -> bool:
        return scenarios.get(self.scenario).listening


def build_hosts(specs: list[HostSpec]) -> list[SimHost]:
    """Simulated hosts for inventory hosts; ``vars`` may set scenario, sim_delay, sim_capture_kb."""
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
        hosts.append(
            SimHost(
                name=spec.name,
                address=spec.address,
                port=spec.port,
                scenario=name,
                users=users,
                delay=_number(spec, "sim_delay", float),
                capture_kb=_number(spec, "sim_capture_kb", int),
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


def demo_specs(n: int, base: str = DEFAULT_BASE) -> list[HostSpec]:
    """The demo inventory: ``ws-0001``... each with the next scenario of ``DEMO_ORDER``."""
    order = scenarios.DEMO_ORDER
    return [
        HostSpec(
            name=f"ws-{i + 1:04d}",
            address=address,
            port=DEFAULT_PORT,
            transport=Transport.HTTP,
            auth="basic",
            username=DEMO_USERNAME,
            credential="simulator",
            message_encryption="never",
            vars={"scenario": order[i % len(order)]},
        )
        for i, address in enumerate(demo_addresses(n, base))
    ]


def find_free_block(n: int, port: int = DEFAULT_PORT) -> str:
    """A ``127.x.y.0`` base whose first, middle and last demo addresses can be bound."""
    for second in range(77, 127):
        base = f"127.{second}.0.0"
        addresses = demo_addresses(n, base)
        probes = {addresses[0], addresses[len(addresses) // 2], addresses[-1]} if n else set()
        if all(_can_bind(a, port) for a in probes):
            return base
    raise SimulatorError(f"no free block of {n} loopback addresses on port {port}")


def _can_bind(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


class SimulatedFleet:
    """All simulated hosts of one run."""

    def __init__(self, hosts: list[SimHost]) -> None:
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise SimulatorError("simulated host names must be unique")
        self.hosts = {h.name: h for h in hosts}
        self._states = {h.name: HostState(h.name) for h in hosts}
        self._listeners: list[HostListener] = []

    async def start(self) -> None:
        """Bind every listening host; on any failure nothing stays bound."""
        for host in self.hosts.values():
            if not host.listening:
                continue
            listener = self._listener(host)
            try:
                await listener.start()
            except SimulatorError:
                await self.stop()
                raise
            self._listeners.append(listener)
        logger.info("simulated fleet up: %d host(s) listening", len(self._listeners))

    async def stop(self) -> None:
        listeners, self._listeners = self._listeners, []
        await asyncio.gather(*(listener.stop() for listener in listeners))

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
            return HostContext(profile, scenario, state, login, capture)

        delay = scenario.delay if host.delay is None else host.delay
        service = WinRMService(host.address, context, delay)
        auth = HostAuth([BasicAuth(host.users)])
        return HostListener(host.name, host.address, host.port, auth, service, state)


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
