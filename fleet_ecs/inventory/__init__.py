"""Inventories: which Windows hosts to scan and how to reach each one.

``load_inventory(path)`` reads the native fleet-ecs YAML, an Ansible YAML or INI inventory, a CSV
with a header row, or a plain list of host names, and returns an ``Inventory`` of ``HostSpec``.
Inventories hold credential references (``env:NAME``, ``prompt``, ``simulator``), never passwords;
see ``fleet_ecs.credentials``.
"""

from __future__ import annotations

from fleet_ecs.inventory.loader import FORMATS, load_inventory, sniff
from fleet_ecs.inventory.model import Inventory
from fleet_ecs.inventory.patterns import expand_host_pattern
from fleet_ecs.inventory.settings import host_name_problem

__all__ = [
    "FORMATS",
    "Inventory",
    "expand_host_pattern",
    "host_name_problem",
    "load_inventory",
    "sniff",
]
