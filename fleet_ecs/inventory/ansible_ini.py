"""Ansible's INI inventory: ``[group]``, ``[group:vars]`` and ``[group:children]`` sections.

Host lines are split like a shell would (quotes, ``#`` comments), as Ansible does. Every value
stays text; the settings layer converts ports and booleans.
"""

from __future__ import annotations

import re
import shlex

from fleet_ecs.inventory.ansible import AnsibleTree
from fleet_ecs.inventory.model import Located, Source
from fleet_ecs.models import HostSpec

_SECTION = re.compile(r"\[([^\]\[:\s]+)(?::([A-Za-z]+))?\]\s*(?:[#;].*)?\Z")
_KINDS = ("hosts", "vars", "children")


def parse_ansible_ini(src: Source, text: str) -> list[HostSpec]:
    tree = AnsibleTree(src)
    group, kind = "ungrouped", "hosts"
    tree.group(group, None)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            group, kind = _section(src, line, number)
            tree.group(group, number)
        elif kind == "hosts":
            _host_line(tree, group, line, number)
        elif kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise src.error(f"expected key=value in [{group}:vars]", line=number)
            tree.set_var(group, key.strip(), _unquote(value.strip()), number)
        else:
            child = re.split(r"\s[#;]|\s", line, maxsplit=1)[0]
            tree.add_child(group, child, number)
    return tree.resolve(kind="Ansible INI")


def _section(src: Source, line: str, number: int) -> tuple[str, str]:
    match = _SECTION.match(line)
    if match is None:
        raise src.error(f"invalid section header {line!r}", line=number)
    kind = (match.group(2) or "hosts").lower()
    if kind not in _KINDS:
        raise src.error(
            f"unknown section type ':{match.group(2)}' (expected :vars or :children)", line=number
        )
    return match.group(1), kind


def _host_line(tree: AnsibleTree, group: str, line: str, number: int) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise tree.src.error(f"cannot split host line: {exc}", line=number) from None
    if not tokens:
        return
    pattern, *pairs = tokens
    host_vars: dict[str, Located] = {}
    name, colon, port = pattern.rpartition(":")
    # host:port, but not the colons of a range (web[1:3]) or of an IPv6 address.
    if colon and "]" not in port and ":" not in re.sub(r"\[[^\]]*\]", "", name):
        if not port.isdigit():
            raise tree.src.error(f"invalid port {port!r} after host {name!r}", line=number)
        pattern = name
        host_vars["ansible_port"] = Located(port, number)
    for position, pair in enumerate(pairs, start=2):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # The item itself is not quoted back: it might be a password typed without a key.
            raise tree.src.error(
                f"expected key=value after host {pattern!r} (item {position} is not)",
                line=number,
            )
        host_vars[key] = Located(value, number)
    tree.add_hosts(group, pattern, number, host_vars)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
