"""The loaded inventory, and the small location helpers every format parser shares.

``Source`` knows how to name a place in the file (path as the user typed it, line, host) so that
each parser raises one ``InventoryError`` worded the same way. ``Located`` pairs a raw setting with
the line it was written on, so an error found after inheritance still points at the right line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_ecs.errors import InventoryError
from fleet_ecs.models import HostSpec


@dataclass(frozen=True)
class Located:
    """A raw value from the file and the 1-based line it came from (None when unknown)."""

    value: Any
    line: int | None = None


@dataclass(frozen=True)
class Source:
    """The inventory file: the name shown in messages and the folder for relative paths."""

    shown: str
    directory: Path

    @classmethod
    def for_path(cls, path: Path) -> Source:
        return cls(str(path), path.resolve().parent)

    def error(
        self, problem: str, *, line: int | None = None, host: str | None = None
    ) -> InventoryError:
        if line and host:
            where: str | None = f"line {line} (host {host})"
        elif line:
            where = f"line {line}"
        elif host:
            where = f"host {host}"
        else:
            where = None
        return InventoryError(self.shown, problem, where)


@dataclass
class Inventory:
    """The hosts of one inventory file, in file order, with unique names.

    ``groups`` maps each group name to the names of its hosts (host order); ``format`` says which
    shape the file was read as: ``native``, ``ansible-yaml``, ``ansible-ini``, ``csv`` or ``plain``.
    """

    path: Path
    hosts: list[HostSpec]
    groups: dict[str, list[str]] = field(default_factory=dict)
    format: str = "native"

    def __len__(self) -> int:
        return len(self.hosts)

    def __iter__(self) -> Iterator[HostSpec]:
        return iter(self.hosts)

    def host(self, name: str) -> HostSpec:
        """The host called ``name`` (exact match); KeyError if there is none."""
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise KeyError(name)


def groups_of(hosts: list[HostSpec]) -> dict[str, list[str]]:
    """Group name -> host names, in the order hosts appear."""
    result: dict[str, list[str]] = {}
    for spec in hosts:
        for group in spec.groups:
            result.setdefault(group, []).append(spec.name)
    return result
