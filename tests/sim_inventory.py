"""A fleet-ecs inventory for simulated hosts, as several end-to-end tests write one."""

from __future__ import annotations

import textwrap
from pathlib import Path

from fleet_ecs.sim.fleet import find_free_block


def write_sim_inventory(path: Path, scenarios: list[str], *, credential: str = "simulator",
                        base: str | None = None, width: int = 2, **sim_vars: object) -> Path:
    """Hosts ``h01``... (``width`` digits), one per scenario, on a free loopback block."""
    prefix = (base or find_free_block(len(scenarios))).rsplit(".", 1)[0]
    extra = "".join(f", {key}: {value}" for key, value in sim_vars.items())
    hosts = "\n".join(
        f"  - name: h{i:0{width}d}\n    address: {prefix}.{i}\n"
        f"    vars: {{scenario: {name}{extra}}}"
        for i, name in enumerate(scenarios, start=1))
    path.write_text(textwrap.dedent(f"""\
        defaults:
          auth: basic
          message_encryption: never
          username: fleet-ecs-demo
          credential: {credential}
        hosts:
        """) + hosts + "\n")
    return path
