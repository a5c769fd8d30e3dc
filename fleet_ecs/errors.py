"""The one exception hierarchy of fleet-ecs.

    FleetEcsError                 root; ``exit_code`` says what the CLI returns
    +-- ConfigError               the scan cannot run: exit 3
    |   +-- InventoryError        malformed inventory: names file, line or host
    |   +-- CredentialError       a credential reference cannot be resolved
    |   +-- OutputError           the run directory cannot be written
    +-- HostError                 one host failed; carries the category, never crosses hosts
    |   +-- TransportError        WinRM/PSRP failure translated at the transport boundary
    |   +-- ProbeError            a probe step returned something we cannot use
    +-- SimulatorError            the simulated fleet cannot start (address in use, ...)

A failed host is data (a ``HostResult``), not an exception: ``HostError`` only travels from the
transport or probe up to the controller, which turns it into a result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet_ecs.models import Category

EXIT_OK = 0
EXIT_HOSTS_NOT_OK = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3


class FleetEcsError(Exception):
    exit_code = EXIT_CANNOT_RUN


class ConfigError(FleetEcsError):
    pass


class InventoryError(ConfigError):
    def __init__(self, path: str, problem: str, where: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.where = where
        location = f"{path}, {where}" if where else path
        super().__init__(f"{location}: {problem}")


class CredentialError(ConfigError):
    pass


class OutputError(ConfigError):
    pass


class HostError(FleetEcsError):
    def __init__(self, category: Category, message: str, *, step: str | None = None) -> None:
        self.category = category
        self.message = message
        self.step = step
        super().__init__(message)


class TransportError(HostError):
    pass


class ProbeError(HostError):
    pass


class SimulatorError(FleetEcsError):
    pass
