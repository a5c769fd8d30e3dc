"""A plain host list: one host name per line; ``#`` starts a comment; blank lines are skipped."""

from __future__ import annotations

from fleet_ecs.inventory.model import Source
from fleet_ecs.inventory.settings import UniqueNames, build_host
from fleet_ecs.models import HostSpec


def parse_plain(src: Source, text: str) -> list[HostSpec]:
    hosts: list[HostSpec] = []
    seen = UniqueNames(src)
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if len(name.split()) > 1:
            raise src.error(
                "expected one host name per line (use a YAML, INI or CSV inventory for settings)",
                line=number,
            )
        seen.add(name, number)
        hosts.append(build_host(src, name, line=number, layers=[]))
    if not hosts:
        raise src.error("no hosts defined (the file has only comments or blank lines)")
    return hosts
