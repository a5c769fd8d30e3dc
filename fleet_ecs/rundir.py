"""The run directory: where each host's result lands, atomically, the moment it is known.

Layout::

    DIR/run.json                   run metadata (written at start, updated at the end)
    DIR/hosts/<host>/result.json   one HostResult each; every report is derived from these
    DIR/hosts/<host>/capture.etl   fetched capture, where fetched
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fleet_ecs.atomic import atomic_text_writer
from fleet_ecs.errors import OutputError
from fleet_ecs.models import HostResult

RUN_FILE = "run.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def host_dir(run_dir: Path, host: str) -> Path:
    """The folder of one host, refusing names that could escape the run directory."""
    if not _SAFE_NAME.match(host) or ".." in host:
        raise OutputError(f"host name {host!r} cannot be used as a folder name")
    return run_dir / "hosts" / host


def prepare(run_dir: Path) -> None:
    """Create the run directory and claim it, before any host is contacted.

    A run directory holds one run: results of an earlier run would otherwise be mixed into
    this one's report under this one's name. ``run.json`` is created exclusively, so two
    scans started at once into the same directory cannot both claim it.
    """
    if (run_dir / RUN_FILE).exists() or any((run_dir / "hosts").glob("*/result.json")):
        raise OutputError(f"{run_dir} already holds a run; choose a new --out directory")
    try:
        (run_dir / "hosts").mkdir(parents=True, exist_ok=True)
        with open(run_dir / RUN_FILE, "x", encoding="utf-8") as claim:
            claim.write("{}\n")
    except FileExistsError as exc:
        raise OutputError(f"{run_dir} is being used by another run") from exc
    except OSError as exc:
        reason = exc.strerror or exc
        raise OutputError(f"cannot write to output directory {run_dir}: {reason}") from exc


def resume(run_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """The metadata of an interrupted run and the hosts that already have a final result.

    A host's result counts as final unless it says the scan was stopped before it finished
    (``cancelled``): those are scanned again, like hosts without any result.
    """
    try:
        meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OutputError(f"{run_dir} holds no run to resume (no {RUN_FILE})") from exc
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {run_dir / RUN_FILE}: {exc}") from exc
    if not isinstance(meta, dict) or not meta.get("run_id"):
        raise OutputError(f"{run_dir / RUN_FILE} does not describe a run")
    done = set()
    for path in (run_dir / "hosts").glob("*/result.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: scan the host again
        if isinstance(data, dict) and data.get("category") not in (None, "cancelled"):
            done.add(path.parent.name)
    return meta, done


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON durably: readers see either the old file or the complete new one."""
    with atomic_text_writer(path, durable=True) as out:
        json.dump(data, out, indent=1, ensure_ascii=False)


def write_result(run_dir: Path, result: HostResult) -> Path:
    path = host_dir(run_dir, result.host) / "result.json"
    try:
        write_json_atomic(path, result.to_dict())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def write_run_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    try:
        write_json_atomic(run_dir / RUN_FILE, meta)
    except OSError as exc:
        raise OutputError(f"cannot write {run_dir / RUN_FILE}: {exc.strerror or exc}") from exc
