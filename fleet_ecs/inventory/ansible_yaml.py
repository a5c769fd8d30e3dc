"""Ansible's YAML inventory: top-level groups (usually ``all``) with hosts, children and vars."""

from __future__ import annotations

from typing import Any

from fleet_ecs.inventory.ansible import AnsibleTree
from fleet_ecs.inventory.model import Located, Source
from fleet_ecs.inventory.yaml_lines import LineMap
from fleet_ecs.models import HostSpec

GROUP_KEYS = ("hosts", "children", "vars")


def looks_ansible(data: LineMap) -> bool:
    """True for ``all:`` at the top, or top-level groups made only of hosts/children/vars."""
    if "all" in data:
        return True
    return bool(data) and all(
        value is None or (isinstance(value, dict) and set(value) <= set(GROUP_KEYS))
        for value in data.values()
    )


def parse_ansible_yaml(src: Source, data: LineMap) -> list[HostSpec]:
    tree = AnsibleTree(src)
    for name, body in data.items():
        _read_group(tree, name, body, data.line_of(name), parent=None)
    return tree.resolve(kind="Ansible YAML")


def _read_group(tree: AnsibleTree, name: Any, body: Any, line: int, parent: str | None) -> None:
    src = tree.src
    tree.group(name, line)
    if parent is not None:
        tree.add_child(parent, name, line)
    if body is None:
        return
    if not isinstance(body, LineMap):
        raise src.error(f"group {name!r} must be a mapping with hosts, children or vars", line=line)
    for key in body:
        if key not in GROUP_KEYS:
            hint = " (put variables under vars:)" if isinstance(key, str) else ""
            raise src.error(
                f"unknown key {key!r} in group {name!r} (expected hosts, children or vars){hint}",
                line=body.line_of(key),
            )
    _read_vars(tree, name, body.get("vars"), body.line_of("vars"))
    _read_hosts(tree, name, body.get("hosts"), body.line_of("hosts"))
    children = body.get("children")
    if children is None:
        return
    if not isinstance(children, LineMap):
        raise src.error(
            f"children of group {name!r} must be a mapping", line=body.line_of("children")
        )
    for child, child_body in children.items():
        _read_group(tree, child, child_body, children.line_of(child), parent=name)


def _read_vars(tree: AnsibleTree, group: str, block: Any, line: int) -> None:
    if block is None:
        return
    if not isinstance(block, LineMap):
        raise tree.src.error(f"vars of group {group!r} must be a mapping", line=line)
    for key, value in block.items():
        tree.set_var(group, key, value, block.line_of(key))


def _read_hosts(tree: AnsibleTree, group: str, block: Any, line: int) -> None:
    if block is None:
        return
    if not isinstance(block, LineMap):
        raise tree.src.error(
            f"hosts of group {group!r} must be a mapping (host name: variables)", line=line
        )
    for pattern, host_vars in block.items():
        host_line = block.line_of(pattern)
        if host_vars is None:
            host_vars = LineMap()
        if not isinstance(host_vars, LineMap):
            raise tree.src.error(f"variables of host {pattern!r} must be a mapping", line=host_line)
        located = {key: Located(value, host_vars.line_of(key)) for key, value in host_vars.items()}
        tree.add_hosts(group, pattern, host_line, located)
