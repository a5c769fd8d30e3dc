"""Verbatim raw outputs from the inventory: ``vars.sim_raw``.

A host's ``sim_raw`` maps dotted paths to values, for example::

    sim_raw:
      ecs.output: "ECS Url: https://...\r\n"
      probe.winhttp_proxy.output: "..."
      facts.mp_status.AMRunningMode: "Passive Mode"
      alternates.targets.0.http.status: 200

The first segment names a step (``fleet_ecs.probe.contract.STEPS``); the rest walks the step's
JSON document, a number indexing a list. The value replaces what the simulator would have
produced, verbatim (no ``${...}`` filling), after the scenario has been applied: a newly found
real-world output shape then runs through the whole pipeline without a code change.

Paths are checked when the fleet is built (``check_raw``). Whether a list index exists can only
be known when the step runs (the alternates' targets follow the step's inputs); an index that
does not exist then is skipped with a warning rather than breaking the simulated host.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fleet_ecs.errors import SimulatorError
from fleet_ecs.probe.contract import STEPS

logger = logging.getLogger(__name__)


def check_raw(host: str, raw: object) -> dict[str, Any]:
    """The validated ``sim_raw`` of ``host`` (a mapping, or JSON text of one, as INI gives).

    Raises ``SimulatorError`` naming the host and the path for anything that cannot apply.
    """
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SimulatorError(f"host {host}: sim_raw must be a mapping or a JSON object, "
                                 f"not {raw[:40]!r}") from None
    if not isinstance(raw, Mapping):
        raise SimulatorError(f"host {host}: sim_raw must be a mapping of dotted paths to values")
    checked: dict[str, Any] = {}
    for path, value in raw.items():
        parts = str(path).split(".")
        if parts[0] not in STEPS:
            raise SimulatorError(f"host {host}: sim_raw path {path!r} names unknown step "
                                 f"{parts[0]!r}; known: {', '.join(STEPS)}")
        if len(parts) < 2 or any(not part for part in parts):
            raise SimulatorError(f"host {host}: sim_raw path {path!r} must name a key inside "
                                 f"the {parts[0]} document (step.key[.key...])")
        if parts[1] in ("step", "schema"):
            # The controller recognises documents by these; replacing them breaks the run,
            # not the parser under test.
            raise SimulatorError(f"host {host}: sim_raw path {path!r} may not replace "
                                 f"{parts[1]!r}")
        checked[str(path)] = value
    return checked


def apply_raw(
    doc: dict[str, Any], step: str, raw: Mapping[str, Any], host: str = "?"
) -> dict[str, Any]:
    """``doc`` with every ``raw`` path of ``step`` replaced verbatim (``doc`` is not changed)."""
    mine = [(path.split(".")[1:], value) for path, value in raw.items()
            if path.split(".", 1)[0] == step]
    if not mine:
        return doc
    out = json.loads(json.dumps(doc))  # a deep copy; documents are plain JSON
    for parts, value in mine:
        _set(out, parts, value, host, step)
    return out


def _set(node: Any, parts: list[str], value: Any, host: str, step: str) -> None:
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join([step, *parts[: depth + 1]])
        if isinstance(node, list):
            try:
                index = int(part)
                node[index]  # noqa: B018 - raises IndexError when absent
            except (ValueError, IndexError):
                logger.warning("%s: sim_raw path %s: no list item %r here; skipped",
                               host, where, part)
                return
            if last:
                node[index] = value
                return
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}  # a key the simulator never produced: create it
            node = node[part]
        else:
            logger.warning("%s: sim_raw path %s: %s is not an object or list; skipped",
                           host, where, type(node).__name__)
            return
