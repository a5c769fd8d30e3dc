"""The native fleet-ecs YAML inventory: ``defaults``, ``groups`` and ``hosts``.

A host's settings come from the host itself, then its groups in order (the host's own
``groups:`` list first, then groups that list the host, in file order), then ``defaults``, then
the built-in defaults. ``vars`` merge key by key in the same order. Unknown keys are errors,
except inside ``vars``, because a misspelt setting silently ignored is a host scanned wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.inventory.model import Located, Source
from fleet_ecs.inventory.settings import (
    SETTING_KEYS,
    build_host,
    check_host_name,
    check_unique,
    is_refused_key,
    refused_key_problem,
)
from fleet_ecs.inventory.yaml_lines import LineList, LineMap, VaultValue
from fleet_ecs.models import HostSpec

TOP_KEYS = ("defaults", "groups", "hosts")
_DEFAULTS_KEYS = (*SETTING_KEYS, "vars")
_GROUP_KEYS = (*SETTING_KEYS, "hosts", "vars")
_HOST_KEYS = ("name", *SETTING_KEYS, "groups", "vars")

Layer = dict[str, Located]


@dataclass
class _Host:
    name: str
    line: int
    layer: Layer = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[tuple[str, int]] = field(default_factory=list)
    defined: bool = False


@dataclass
class _Group:
    line: int
    layer: Layer
    vars: dict[str, Any]


def looks_native(data: LineMap) -> bool:
    return any(key in data for key in TOP_KEYS) and "all" not in data


def parse_native(src: Source, data: LineMap) -> list[HostSpec]:
    """Build the hosts of a native inventory already loaded by ``yaml_lines.load_yaml``."""
    for key in data:
        if key not in TOP_KEYS:
            raise src.error(
                f"unknown top-level key {key!r} (expected {', '.join(TOP_KEYS)})",
                line=data.line_of(key),
            )
    defaults_layer, defaults_vars = _settings(
        src, data.get("defaults"), _DEFAULTS_KEYS, "defaults", data.line_of("defaults")
    )
    parser = _Parser(src)
    parser.read_groups(data.get("groups"), data.line_of("groups"))
    parser.read_hosts(data.get("hosts"), data.line_of("hosts"))
    if not parser.hosts:
        raise src.error("no hosts defined (add a hosts: list)")
    return [parser.build(host, defaults_layer, defaults_vars) for host in parser.ordered()]


class _Parser:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.groups: dict[str, _Group] = {}
        self.members: dict[str, list[str]] = {}  # host key -> groups that list it
        self.hosts: dict[str, _Host] = {}

    def read_groups(self, groups: Any, line: int) -> None:
        if groups is None:
            return
        if not isinstance(groups, LineMap):
            raise self.src.error("groups must be a mapping of group name to settings", line=line)
        for name, body in groups.items():
            group_line = groups.line_of(name)
            if not isinstance(name, str) or not name.strip():
                raise self.src.error("group names must be text", line=group_line)
            where = f"group {name!r}"
            layer, group_vars = _settings(self.src, body, _GROUP_KEYS, where, group_line)
            self.groups[name] = _Group(group_line, layer, group_vars)
            if isinstance(body, LineMap) and body.get("hosts") is not None:
                self._read_group_hosts(name, body["hosts"], body.line_of("hosts"))

    def _read_group_hosts(self, group: str, hosts: Any, line: int) -> None:
        if isinstance(hosts, LineList):
            for item, item_line in zip(hosts, hosts.item_lines, strict=True):
                host = self._mention(item, item_line)
                self.members.setdefault(host.name.lower(), []).append(group)
        elif isinstance(hosts, LineMap):
            for item, body in hosts.items():
                item_line = hosts.line_of(item)
                host = self._mention(item, item_line)
                if body is not None:
                    self._define(host, body, item_line, allow_name=False)
                self.members.setdefault(host.name.lower(), []).append(group)
        else:
            raise self.src.error(
                f"hosts of group {group!r} must be a list of names or a mapping", line=line
            )

    def read_hosts(self, hosts: Any, line: int) -> None:
        if hosts is None:
            return
        if isinstance(hosts, LineList):
            for item, item_line in zip(hosts, hosts.item_lines, strict=True):
                if isinstance(item, LineMap):
                    if "name" not in item:
                        raise self.src.error("host entry has no name:", line=item_line)
                    host = self._mention(item["name"], item.line_of("name"))
                    self._define(host, item, item_line, allow_name=True)
                else:
                    self._define(self._mention(item, item_line), None, item_line, True)
        elif isinstance(hosts, LineMap):
            for item, body in hosts.items():
                item_line = hosts.line_of(item)
                self._define(self._mention(item, item_line), body, item_line, allow_name=False)
        else:
            raise self.src.error("hosts must be a list or a mapping of host names", line=line)

    def _name(self, name: Any, line: int) -> str:
        if isinstance(name, int) and not isinstance(name, bool):
            name = str(name)
        return check_host_name(self.src, name, line)

    def _mention(self, name: Any, line: int) -> _Host:
        text = self._name(name, line)
        host = self.hosts.get(text.lower())
        if host is None:
            host = self.hosts[text.lower()] = _Host(text, line)
        elif host.name != text:
            check_unique(self.src, [(host.name, host.line), (text, line)])
        return host

    def _define(self, host: _Host, body: Any, line: int, allow_name: bool) -> None:
        if host.defined:
            check_unique(self.src, [(host.name, host.line), (host.name, line)])
        host.defined = True
        host.line = min(host.line, line)
        keys = _HOST_KEYS if allow_name else _HOST_KEYS[1:]
        host.layer, host.vars = _settings(self.src, body, keys, None, line, host=host.name)
        if isinstance(body, LineMap) and body.get("groups") is not None:
            host.groups = _group_list(self.src, body["groups"], body.line_of("groups"), host.name)

    def ordered(self) -> list[_Host]:
        return sorted(self.hosts.values(), key=lambda host: host.line)

    def build(self, host: _Host, defaults: Layer, defaults_vars: dict[str, Any]) -> HostSpec:
        names: list[str] = []
        for group, group_line in host.groups:
            if group not in self.groups:
                raise self.src.error(
                    f"group {group!r} is not defined under groups:",
                    line=group_line,
                    host=host.name,
                )
            names.append(group)
        names += self.members.get(host.name.lower(), [])
        names = list(dict.fromkeys(names))
        chain = [self.groups[name] for name in names]

        merged_vars: dict[str, Any] = dict(defaults_vars)
        for entry in reversed(chain):
            merged_vars.update(entry.vars)
        merged_vars.update(host.vars)
        return build_host(
            self.src,
            host.name,
            line=host.line,
            layers=[host.layer, *(entry.layer for entry in chain), defaults],
            groups=names,
            host_vars=merged_vars,
        )


def _settings(
    src: Source,
    body: Any,
    allowed: tuple[str, ...],
    owner: str | None,
    line: int,
    *,
    host: str | None = None,
) -> tuple[Layer, dict[str, Any]]:
    """The settings layer and vars of one mapping (defaults, a group or a host)."""
    if body is None:
        return {}, {}
    label = owner or f"host {host}"
    if not isinstance(body, LineMap):
        raise src.error(f"{label} must be a mapping of settings", line=line, host=host)
    layer: Layer = {}
    host_vars: dict[str, Any] = {}
    for key, value in body.items():
        key_line = body.line_of(key)
        _refuse(src, key, value, key_line, host)
        if key not in allowed:
            where = f" in {owner}" if owner else ""
            raise src.error(
                f"unknown key {key!r}{where} (expected one of {', '.join(allowed)}; "
                "free data goes under vars:)",
                line=key_line,
                host=host,
            )
        if key == "vars":
            host_vars = _vars(src, value, key_line, host)
        elif key in SETTING_KEYS:
            layer[key] = Located(value, key_line)
    return layer, host_vars


def _vars(src: Source, value: Any, line: int, host: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, LineMap):
        raise src.error("vars must be a mapping", line=line, host=host)
    _refuse_nested(src, value, host)
    return {str(key): _plain(item) for key, item in value.items()}


def _refuse(src: Source, key: Any, value: Any, line: int, host: str | None) -> None:
    if isinstance(value, VaultValue):
        raise src.error(
            refused_key_problem(str(key), ansible=False, vault=True), line=line, host=host
        )
    if is_refused_key(key):
        raise src.error(refused_key_problem(key, ansible=False), line=line, host=host)


def _refuse_nested(src: Source, value: Any, host: str | None, seen: set[int] | None = None) -> None:
    # YAML aliases make the tree a graph that shares nodes; visiting each node once keeps a
    # "billion laughs" inventory linear instead of exponential.
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, LineMap):
        for key, item in value.items():
            _refuse(src, key, item, value.line_of(key), host)
            _refuse_nested(src, item, host, seen)
    elif isinstance(value, LineList):
        for item, line in zip(value, value.item_lines, strict=True):
            _refuse(src, "vars", item, line, host)
            _refuse_nested(src, item, host, seen)


def _group_list(src: Source, value: Any, line: int, host: str) -> list[tuple[str, int]]:
    if isinstance(value, str):
        return [(value, line)]
    if isinstance(value, LineList) and all(isinstance(item, str) for item in value):
        return list(zip(value, value.item_lines, strict=True))
    raise src.error("groups must be a group name or a list of group names", line=line, host=host)


def _plain(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """Strip the line-tracking containers so HostSpec.vars holds ordinary dicts and lists.

    Shared (aliased) nodes stay shared, so converting an alias-heavy file stays linear.
    """
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        plain: Any = {}
        memo[id(value)] = plain
        plain.update({key: _plain(item, memo) for key, item in value.items()})
        return plain
    if isinstance(value, list):
        items: list[Any] = []
        memo[id(value)] = items
        items.extend(_plain(item, memo) for item in value)
        return items
    return value
