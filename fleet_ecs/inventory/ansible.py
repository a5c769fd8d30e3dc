"""Ansible inventories (YAML or INI) reduced to HostSpecs: the group tree and the variable map.

Both Ansible parsers fill an ``AnsibleTree``. Resolution follows Ansible: every group is under
``all``; group variables apply from the shallowest group to the deepest (depth = longest path
from ``all``), ties broken by ``ansible_group_priority`` and then by name; host variables win.
The merged variables are then mapped onto fleet-ecs settings (``ansible_host`` -> address, ...).
With neither port nor scheme given the host is reached over https on 5986, as Ansible's winrm
and psrp plugins do. Passwords and Vault values are refused where they are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.inventory.model import Located, Source
from fleet_ecs.inventory.patterns import expand_host_pattern
from fleet_ecs.inventory.settings import (
    build_host,
    check_host_name,
    check_unique,
    is_refused_key,
    refused_key_problem,
)
from fleet_ecs.inventory.yaml_lines import VaultValue
from fleet_ecs.models import HostSpec, Transport

CONNECTIONS = ("psrp", "winrm")
VAULT_PREFIX = "$ANSIBLE_VAULT;"
_ROOT = "all"
_IMPLICIT = ("all", "ungrouped")
# pywinrm's transport names that mean HTTP basic authentication.
_WINRM_AUTH_ALIASES = {"plaintext": "basic", "ssl": "basic"}


@dataclass
class _Group:
    name: str
    line: int | None
    vars: dict[str, Located] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    # A dict keeps insertion order and makes membership tests cheap on large groups.
    hosts: dict[str, None] = field(default_factory=dict)


@dataclass
class _Host:
    name: str
    line: int | None
    vars: dict[str, Located] = field(default_factory=dict)


def refuse_secret(
    src: Source, key: Any, value: Any, line: int | None, host: str | None,
    seen: set[int] | None = None,
) -> None:
    """Raise for a password key, a ``!vault`` value or an inline ``$ANSIBLE_VAULT;`` blob."""
    # Aliased YAML nodes are shared: visit each once, or an alias bomb takes forever.
    seen = set() if seen is None else seen
    if isinstance(value, (dict, list)):
        if id(value) in seen:
            return
        seen.add(id(value))
    vault = isinstance(value, VaultValue) or (
        isinstance(value, str) and value.lstrip().startswith(VAULT_PREFIX)
    )
    if vault or is_refused_key(key):
        problem = refused_key_problem(str(key), ansible=True, vault=vault)
        raise src.error(problem, line=line, host=host)
    if isinstance(value, dict):
        for inner_key, inner in value.items():
            refuse_secret(src, inner_key, inner, line, host, seen)
    elif isinstance(value, list):
        for inner in value:
            refuse_secret(src, key, inner, line, host, seen)


class AnsibleTree:
    """Groups and hosts as an Ansible inventory declares them, before any inheritance."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.groups: dict[str, _Group] = {_ROOT: _Group(_ROOT, None)}
        self.hosts: dict[str, _Host] = {}

    def group(self, name: Any, line: int | None) -> _Group:
        if not isinstance(name, str) or not name.strip() or any(c in name for c in " \t[]:"):
            raise self.src.error(f"invalid group name {name!r}", line=line)
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = _Group(name, line)
        elif found.line is None:
            found.line = line
        return found

    def add_child(self, parent: str, child: Any, line: int | None) -> None:
        self.group(child, line)
        if child == _ROOT:
            raise self.src.error("group 'all' cannot be a child group", line=line)
        children = self.groups[parent].children
        if child not in children:
            children.append(child)

    def set_var(self, group: str, key: Any, value: Any, line: int | None) -> None:
        refuse_secret(self.src, key, value, line, None)
        self.groups[group].vars[str(key)] = Located(value, line)

    def add_hosts(
        self, group: str, pattern: Any, line: int | None, host_vars: dict[Any, Located]
    ) -> None:
        """Add the host(s) ``pattern`` names to ``group``; repeated hosts merge their vars."""
        if isinstance(pattern, int) and not isinstance(pattern, bool):
            pattern = str(pattern)
        if not isinstance(pattern, str):
            raise self.src.error(f"host name must be text, not {pattern!r}", line=line)
        try:
            names = expand_host_pattern(pattern)
        except ValueError as exc:
            raise self.src.error(str(exc), line=line) from None
        for name in names:
            check_host_name(self.src, name, line)
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _Host(name, line)
            for key, located in host_vars.items():
                refuse_secret(self.src, key, located.value, located.line, name)
                host.vars[str(key)] = located
            self.groups[group].hosts.setdefault(name)

    def resolve(self, *, kind: str) -> list[HostSpec]:
        """HostSpecs in order of first appearance; ``kind`` names the format in messages."""
        if not self.hosts:
            raise self.src.error(f"no hosts defined in this {kind} inventory")
        check_unique(self.src, [(host.name, host.line) for host in self.hosts.values()])
        self.groups.setdefault("ungrouped", _Group("ungrouped", None))
        parents = self._parents()
        depth: dict[str, int] = {}
        for name in self.groups:
            self._depth(name, parents, depth, ())
        direct: dict[str, list[str]] = {}
        for group in self.groups.values():
            for member in group.hosts:
                direct.setdefault(member, []).append(group.name)

        specs = []
        for host in sorted(self.hosts.values(), key=lambda h: h.line or 0):
            chain = self._ancestors(direct.get(host.name, []), parents)
            chain.sort(key=lambda g: (depth[g], self._priority(g), g))
            merged: dict[str, Located] = {}
            for group_name in chain:
                merged.update(self.groups[group_name].vars)
            merged.update(host.vars)
            merged.pop("ansible_group_priority", None)
            layer, free = map_variables(self.src, host.name, merged)
            specs.append(
                build_host(
                    self.src,
                    host.name,
                    line=host.line,
                    layers=[layer],
                    groups=[g for g in chain if g not in _IMPLICIT],
                    host_vars=free,
                    default_transport=Transport.HTTPS,
                )
            )
        return specs

    def _parents(self) -> dict[str, list[str]]:
        parents: dict[str, list[str]] = {name: [] for name in self.groups}
        for group in self.groups.values():
            for child in group.children:
                parents[child].append(group.name)
        for name, found in parents.items():
            if name != _ROOT and not found:
                found.append(_ROOT)
        return parents

    def _depth(
        self, name: str, parents: dict[str, list[str]], memo: dict[str, int], path: tuple[str, ...]
    ) -> int:
        if name in memo:
            return memo[name]
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise self.src.error(f"group cycle: {cycle}", line=self.groups[name].line)
        if name == _ROOT:
            memo[name] = 0
        else:
            deeper = (*path, name)
            memo[name] = 1 + max(self._depth(p, parents, memo, deeper) for p in parents[name])
        return memo[name]

    def _ancestors(self, groups: list[str], parents: dict[str, list[str]]) -> list[str]:
        seen: dict[str, None] = {}
        pending = list(groups)
        if not set(groups) - {_ROOT}:
            pending.append("ungrouped")
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen[name] = None
            pending.extend(parents.get(name, [_ROOT]))
        seen.setdefault(_ROOT, None)
        return list(seen)

    def _priority(self, name: str) -> int:
        found = self.groups[name].vars.get("ansible_group_priority")
        if found is None:
            return 1
        try:
            return int(found.value)
        except (TypeError, ValueError):
            raise self.src.error(
                f"ansible_group_priority of group {name!r} must be a whole number",
                line=found.line,
            ) from None


def map_variables(
    src: Source, host: str, merged: dict[str, Located]
) -> tuple[dict[str, Located], dict[str, Any]]:
    """Split merged Ansible variables into a fleet-ecs settings layer and free vars."""
    used: set[str] = set()

    def take(*keys: str) -> Located | None:
        used.update(keys)
        for key in keys:
            if key in merged and merged[key].value is not None:
                return merged[key]
        return None

    connection = take("ansible_connection")
    winrm_first = False
    if connection is not None:
        value = str(connection.value).strip().lower()
        if value not in CONNECTIONS:
            raise src.error(
                f"ansible_connection {value!r} is not supported: fleet-ecs reaches Windows "
                f"hosts over WinRM ({' or '.join(CONNECTIONS)})",
                line=connection.line,
                host=host,
            )
        winrm_first = value == "winrm"

    def prefer(psrp: str, winrm: str) -> Located | None:
        return take(winrm, psrp) if winrm_first else take(psrp, winrm)

    layer: dict[str, Located] = {}
    specific_user = prefer("ansible_psrp_user", "ansible_winrm_user")
    for setting, found in (
        ("address", take("ansible_host")),
        ("port", take("ansible_port")),
        ("username", _first(specific_user, take("ansible_user"))),
        ("transport", prefer("ansible_psrp_protocol", "ansible_winrm_scheme")),
        ("configuration_name", take("ansible_psrp_configuration_name")),
        (
            "message_encryption",
            prefer("ansible_psrp_message_encryption", "ansible_winrm_message_encryption"),
        ),
        ("credential", take("fleet_ecs_credential")),
        ("connect_timeout", take("ansible_psrp_connection_timeout")),
        ("read_timeout", prefer("ansible_psrp_read_timeout", "ansible_winrm_read_timeout_sec")),
        (
            "operation_timeout",
            prefer("ansible_psrp_operation_timeout", "ansible_winrm_operation_timeout_sec"),
        ),
        ("proxy", take("ansible_psrp_proxy")),
        ("negotiate_hostname_override", take("ansible_psrp_negotiate_hostname_override")),
        ("negotiate_service", take("ansible_psrp_negotiate_service")),
        ("negotiate_delegate", take("ansible_psrp_negotiate_delegate")),
        ("negotiate_send_cbt", take("ansible_psrp_negotiate_send_cbt")),
        ("certificate_pem", prefer("ansible_psrp_certificate_pem", "ansible_winrm_cert_pem")),
        (
            "certificate_key_pem",
            prefer("ansible_psrp_certificate_key_pem", "ansible_winrm_cert_key_pem"),
        ),
        ("credssp_auth_mechanism", take("ansible_psrp_credssp_auth_mechanism")),
        ("credssp_disable_tlsv1_2", take("ansible_psrp_credssp_disable_tlsv1_2")),
        ("credssp_minimum_version", take("ansible_psrp_credssp_minimum_version")),
    ):
        if found is not None:
            layer[setting] = found

    psrp_auth = take("ansible_psrp_auth")
    winrm_auth = take("ansible_winrm_transport")
    if winrm_auth is not None:
        winrm_auth = _winrm_auth(winrm_auth)
    auth = _first(winrm_auth, psrp_auth) if winrm_first else _first(psrp_auth, winrm_auth)
    if auth is not None:
        layer["auth"] = auth

    cert = _cert_setting(src, host, prefer)
    if cert is not None:
        layer["cert_validation"] = cert
    free = {key: located.value for key, located in merged.items() if key not in used}
    return layer, free


def _first(*found: Located | None) -> Located | None:
    return next((item for item in found if item is not None), None)


def _winrm_auth(found: Located) -> Located:
    # pywinrm accepts a comma list and tries each in turn; fleet-ecs uses the first.
    first = str(found.value).split(",")[0].strip().lower()
    return Located(_WINRM_AUTH_ALIASES.get(first, first), found.line)


def _cert_setting(
    src: Source, host: str, prefer: Callable[[str, str], Located | None]
) -> Located | None:
    mode = prefer("ansible_psrp_cert_validation", "ansible_winrm_server_cert_validation")
    bundle = prefer("ansible_psrp_ca_cert", "ansible_winrm_ca_trust_path")
    if mode is not None:
        word = str(mode.value).strip().lower()
        if word not in ("validate", "ignore"):
            raise src.error(
                f"certificate validation {word!r} must be validate or ignore",
                line=mode.line,
                host=host,
            )
        if word == "ignore":
            return Located(False, mode.line)
    if bundle is not None:
        return bundle
    return Located(True, mode.line) if mode is not None else None
