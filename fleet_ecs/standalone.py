"""Results of the standalone probe script, brought into a run directory like any scanned host.

``fleet-ecs script`` prints one PowerShell file for machines WinRM cannot reach; run there, it
writes a JSON file holding the raw step documents. ``fleet-ecs import RUN_DIR FILE...`` reads
such files, diagnoses them with the same code as a scan, and writes each host's result.json.
The file came from an endpoint, so everything in it is treated as untrusted input.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from fleet_ecs import rundir
from fleet_ecs.errors import ConfigError
from fleet_ecs.hostscan import now_iso
from fleet_ecs.models import Finding, HostResult, Status
from fleet_ecs.probe.diagnose import diagnose

logger = logging.getLogger(__name__)

FORMAT = "fleet-ecs-standalone"
MAX_BYTES = 8 * 1024 * 1024  # a result is a few KB; anything near this is not one of ours
_STEPS = ("facts", "ecs", "probe", "alternates")
_HOST_CHARS = re.compile(r"[^a-z0-9.-]+")


class ImportError_(ConfigError):  # noqa: N801 - "ImportError" would shadow the builtin
    pass


def import_file(run_dir: Path, path: Path, *, replace: bool = False) -> HostResult:
    """Diagnose one standalone result file and write it as a host of ``run_dir``.

    A host the run already holds (scanned, or imported before) is refused unless ``replace``:
    two machines whose names clean up to the same folder name must not overwrite each other.
    """
    data = _read(path)
    docs = {step: data["docs"][step] for step in _STEPS
            if isinstance(data["docs"].get(step), dict)}
    for step, doc in docs.items():
        if doc.get("step") != step:
            raise ImportError_(f"{path}: the {step} document says it is {doc.get('step')!r}")
    host = host_name(str(data.get("computer_name") or ""), path)
    if not replace and (rundir.host_dir(run_dir, host) / "result.json").exists():
        raise ImportError_(f"{path}: the run already holds host {host}; use --replace to "
                           "replace it")
    verdict = diagnose(docs)
    diagnosis = verdict.diagnosis
    generated = str(data.get("generated_at") or "")[:40]
    result = HostResult(
        host=host, address=host, port=0, transport="standalone", status=diagnosis.status,
        category=diagnosis.category, hint=diagnosis.hint, evidence=list(diagnosis.evidence),
        findings=[*diagnosis.findings, Finding(
            "standalone", Status.OK, f"imported from {path.name}, generated {generated}")],
        ecs_url=verdict.ecs_url, ecs_urls=verdict.ecs_urls, http_status=verdict.http_status,
        dns_ok=verdict.dns_ok, tcp_ok=verdict.tcp_ok, proxy=verdict.proxy,
        started_at=generated, finished_at=now_iso(), facts=docs,
        run_id=str(data.get("run_id") or "")[:80] or None,
    )
    rundir.write_result(run_dir, result)
    logger.info("imported %s as host %s: %s", path, host, diagnosis.category.value)
    return result


def host_name(computer_name: str, path: Path) -> str:
    """A safe folder name from the reported computer name (NetBIOS names are upper case)."""
    name = _HOST_CHARS.sub("-", computer_name.strip().lower()).strip(".-")[:63]
    if not name:
        raise ImportError_(f"{path}: the file names no computer")
    return name


def _read(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImportError_(f"{path}: {size} bytes is too large for a fleet-ecs result")
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ImportError_(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportError_(f"{path}: not a JSON file: {exc}") from exc
    except RecursionError as exc:
        raise ImportError_(f"{path}: nested too deeply to be a fleet-ecs result") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportError_(f"{path}: not a fleet-ecs standalone result (format {FORMAT!r})")
    if data.get("version") != 1 or not isinstance(data.get("docs"), dict):
        raise ImportError_(f"{path}: unsupported standalone result version {data.get('version')!r}")
    return data
