"""The simulated probe steps: what each step script "prints" on a simulated host.

The simulator runs no PowerShell. It recognises a step by its marker line
(``fleet_ecs.probe.contract.step_of``), reads its ``$FE_*`` inputs and answers with the
document the contract describes, built from the host's healthy baseline plus its scenario's
overrides (``fleet_ecs.sim.scenarios``).

A step has three moments, so that a pipeline stopped half-way leaves the same traces a real
one would: ``begin`` runs when the Command arrives (the probe starts its capture here),
``outputs`` yields the output objects once the step's delay has passed, and ``finish`` runs
after the last output (the probe has stopped its capture by then).
"""

from __future__ import annotations

import base64
import json
import logging
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from fleet_ecs.probe.contract import SCHEMA, parse_inputs, step_of
from fleet_ecs.sim import windows_text as wt
from fleet_ecs.sim.capture import new_capture
from fleet_ecs.sim.scenarios import Scenario
from fleet_ecs.sim.state import HostState

logger = logging.getLogger(__name__)

DEFAULT_CAPTURE_BYTES = 256 * 1024
DEFAULT_CHUNK = 256 * 1024


@dataclass
class HostContext:
    """Everything a step needs to know about the host it runs on."""

    profile: wt.HostProfile
    scenario: Scenario
    state: HostState
    login: str
    capture_bytes: int = DEFAULT_CAPTURE_BYTES


class UnknownScript(Exception):
    """The script is not one of fleet-ecs's step scripts (or of a schema we do not speak)."""


class Step:
    """One step invocation; subclasses fill in the three moments."""

    def __init__(self, ctx: HostContext, inputs: dict[str, str]) -> None:
        self.ctx = ctx
        self.inputs = inputs

    def begin(self) -> None:
        pass

    def outputs(self) -> Iterator[str]:
        yield json.dumps(self.document(), separators=(",", ":"))

    def finish(self) -> None:
        pass

    def document(self) -> dict[str, Any]:
        raise NotImplementedError

    def _header(self, step: str) -> dict[str, Any]:
        return {"step": step, "schema": SCHEMA}


def start_step(ctx: HostContext, script: str) -> Step:
    """The ``Step`` for a rendered step script; raises ``UnknownScript`` otherwise."""
    declared = step_of(script)
    if declared is None or declared[1] != SCHEMA or declared[0] not in _STEPS:
        raise UnknownScript(f"not a fleet-ecs step script of schema {SCHEMA}: {declared}")
    return _STEPS[declared[0]](ctx, parse_inputs(script))


def apply_overrides(
    base: dict[str, Any], overrides: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Deep-merge scenario ``overrides`` into ``base``, filling ``${name}`` from ``values``."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = apply_overrides(out[key], value, values)
        else:
            out[key] = _fill(value, values)
    return out


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}") and value[2:-1] in values:
            return values[value[2:-1]]  # a lone placeholder keeps the value's type
        return string.Template(value).safe_substitute(values)
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _values(ctx: HostContext, **extra: Any) -> dict[str, Any]:
    base = {"temp": ctx.profile.temp_dir(ctx.login), "host": ctx.profile.ecs_host,
            "ip": ctx.profile.ip(0), "mpcmdrun": wt.INBOX_MPCMDRUN, "timeout_ms": 15000}
    base.update(extra)
    return base


class FactsStep(Step):
    def document(self) -> dict[str, Any]:
        p = self.ctx.profile
        install = f"{wt.PLATFORM_ROOT}\\{wt.CURRENT_PLATFORM}\\"
        version = wt.CURRENT_PLATFORM.rsplit("-", 1)[0]
        doc = self._header("facts") | {
            "ps_version": p.ps_version,
            "ps_edition": "Desktop",
            "clr_version": "4.0.30319.42000",
            "computer_name": p.computer_name,
            "user": p.user_name(self.ctx.login),
            "is_admin": True,
            "os_caption": p.os.caption,
            "os_version": f"10.0.{p.os.build}",
            "os_build": str(p.os.build),
            "os_ubr": p.os.ubr,
            "product_type": p.os.product_type,
            "temp_dir": p.temp_dir(self.ctx.login),
            "defender_install_location": install,
            "platform_root": wt.PLATFORM_ROOT,
            "platform_folders": p.platform_folders,
            "windefend_service": "Running",
            "mdcoresvc_service": "Running",
            "mp_status": {
                "AMProductVersion": version,
                "AMEngineVersion": wt.ENGINE_VERSION,
                "AMServiceVersion": version,
                "AMRunningMode": "Normal",
                "RealTimeProtectionEnabled": True,
            },
            "mp_status_error": None,
        }
        scenario = self.ctx.scenario
        doc = apply_overrides(doc, scenario.facts, _values(self.ctx))
        if scenario.facts_only is not None:
            doc = {k: v for k, v in doc.items() if k in scenario.facts_only}
        return doc


class EcsStep(Step):
    def document(self) -> dict[str, Any]:
        p = self.ctx.profile
        path = self.inputs.get("MpCmdRun", "")
        exists = _known_mpcmdrun(path, p)
        doc = self._header("ecs") | {
            "path": path,
            "exists": exists,
            "signature": None,
            "ran": False,
            "exit_code": None,
            "output": None,
            "elapsed_ms": None,
        }
        if exists:
            doc["signature"] = {
                "status": "Valid",
                "status_message": wt.signature_valid_message(),
                "signer_subject": wt.MS_SIGNER,
                "signer_thumbprint": wt.hex_id("mpcmdrun-signer"),
            }
            doc |= {"ran": True, "exit_code": 0, "output": wt.mpcmdrun_ecs_output(p),
                    "elapsed_ms": 380 + p.seed[7] % 400}
        values = _values(self.ctx, mpcmdrun=path)
        return apply_overrides(doc, self.ctx.scenario.ecs, values)


def _known_mpcmdrun(path: str, profile: wt.HostProfile) -> bool:
    # Windows paths are case-insensitive and Join-Path tolerates a doubled separator.
    norm = path.replace("/", "\\").lower()
    while "\\\\" in norm:
        norm = norm.replace("\\\\", "\\")
    known = {wt.INBOX_MPCMDRUN.lower()}
    known |= {f"{wt.PLATFORM_ROOT}\\{f}\\MpCmdRun.exe".lower() for f in profile.platform_folders}
    return norm in known


class ProbeStep(Step):
    """Name resolution, TCP, WinHTTP proxy and HTTPS to ECS, optionally under a capture."""

    def begin(self) -> None:
        state = self.ctx.state
        self.stale = state.capture_running
        self.stale_path = state.capture_path or "C:\\Windows\\TEMP\\capture.etl"
        self.capture = None
        if self.stale:
            state.stop_capture()  # the probe stops a leftover session before starting its own
        if self.inputs.get("Capture") == "1":
            work_dir = self.inputs.get("WorkDir", "").rstrip("\\")
            max_bytes = _int(self.inputs.get("CaptureMaxMb"), 20) * 1024 * 1024
            size = min(self.ctx.capture_bytes, max_bytes)
            path = f"{work_dir}\\capture.etl"
            session = self.inputs.get("TraceSession", "FleetEcsTrace")
            self.capture = new_capture(self.ctx.profile.host_name, path, size, session)
            state.start_capture(self.capture)

    def finish(self) -> None:
        if self.capture is not None:
            self.ctx.state.stop_capture()

    def document(self) -> dict[str, Any]:
        p = self.ctx.profile
        host = self.inputs.get("Host") or p.ecs_host
        timeout_ms = _int(self.inputs.get("TimeoutSec"), 15) * 1000
        values = _values(self.ctx, host=host, timeout_ms=timeout_ms + 37)
        doc = self._header("probe") | {
            "url": self.inputs.get("Url", ""),
            "host": host,
            "capture": self._capture_doc(),
            "dns": _dns_ok(p, host),
            "tcp": {"address": p.ip(0), "port": 443, "ok": True, "elapsed_ms": 23 + p.seed[9] % 30,
                    "error": None, "socket_error": None},
            "winhttp_proxy": {"output": wt.winhttp_direct(), "exit_code": 0},
            "http": _http_ok(p, host),
        }
        doc = apply_overrides(doc, self.ctx.scenario.probe, values)
        limit = _int(self.inputs.get("BodyLimit"), 4096)
        body = doc["http"].get("body_excerpt")
        if isinstance(body, str):
            doc["http"]["body_excerpt"] = body[:limit]
        return doc

    def _capture_doc(self) -> dict[str, Any]:
        requested = self.capture is not None
        session = self.inputs.get("TraceSession", "FleetEcsTrace")
        max_mb = _int(self.inputs.get("CaptureMaxMb"), 20)
        before = wt.trace_status_none()
        before_exit = 1
        if self.stale:
            before, before_exit = wt.trace_status_running(session, self.stale_path, max_mb), 0
        doc: dict[str, Any] = {
            "requested": requested, "status_before": before, "status_before_exit": before_exit,
            "stale_stopped": self.stale, "started": False, "start_output": None,
            "start_exit": None, "stop_output": None, "stop_exit": None, "path": None,
            "size": None, "sha256": None,
        }
        if self.capture is not None:
            path = self.capture.path
            doc |= {
                "started": True, "start_output": wt.trace_start(session, path, max_mb),
                "start_exit": 0, "stop_output": wt.trace_stop(path), "stop_exit": 0,
                "path": path, "size": self.capture.size, "sha256": self.capture.sha256,
            }
        return doc


def _dns_ok(p: wt.HostProfile, host: str) -> dict[str, Any]:
    edge = f"mdav-{p.geo}-prod.trafficmanager.net"
    front = f"mdav-{p.geo}-prod-fd.azurefd.net"
    records = [
        {"Name": host, "Type": "CNAME", "TTL": 300, "NameHost": edge},
        {"Name": edge, "Type": "CNAME", "TTL": 60, "NameHost": front},
        {"Name": front, "Type": "A", "TTL": 45, "IPAddress": p.ip(0)},
        {"Name": front, "Type": "A", "TTL": 45, "IPAddress": p.ip(1)},
    ]
    return {"elapsed_ms": 12 + p.seed[8] % 40, "records": records, "error": None,
            "error_id": None, "native_code": None}


def _http_ok(p: wt.HostProfile, host: str) -> dict[str, Any]:
    body = wt.ecs_body(p)
    now = format_datetime(datetime.now(timezone.utc), usegmt=True)
    ref = wt.hex_id(p.host_name, now, length=32)
    headers = {
        "Cache-Control": "max-age=3600, private",
        "Content-Length": str(len(body)),
        "Content-Type": "application/json; charset=utf-8",
        "Date": now,
        "ETag": '"' + wt.hex_id(p.host_name, "etag", length=16) + '"',
        "Strict-Transport-Security": "max-age=31536000",
        "X-Cache": "CONFIG_NOCACHE",
        "X-MSEdge-Ref": f"Ref A: {ref[:16]} Ref B: {p.geo.upper()}1EDGE0412 Ref C: {now}",
    }
    return {
        "proxy": None,
        "elapsed_ms": 160 + p.seed[10] % 200,
        "status": 200,
        "status_description": "OK",
        "headers": headers,
        "body_excerpt": body,
        "error_status": None,
        "error_message": None,
        "inner_errors": [],
        "cert": {
            "subject": f"CN={host}",
            "issuer": wt.MS_LEAF_ISSUER,
            "thumbprint": wt.hex_id("leaf", host),
            "not_before": "2025-03-18T12:04:11Z",
            "not_after": "2026-03-13T12:04:11Z",
            "chain": [f"CN={host}", wt.MS_LEAF_ISSUER, wt.MS_ROOT],
        },
    }


class FetchStep(Step):
    """Streams a file as base64 chunks, one output object per chunk, then its summary."""

    def outputs(self) -> Iterator[str]:
        path = self.inputs.get("Path", "")
        capture = self.ctx.state.file(path)
        header = self._header("fetch")
        if capture is None:
            error = f"Cannot find path '{path}' because it does not exist."
            yield json.dumps(header | {"path": path, "error": error}, separators=(",", ":"))
            return
        for chunk in capture.chunks(_int(self.inputs.get("ChunkSize"), DEFAULT_CHUNK)):
            yield base64.b64encode(chunk).decode("ascii")
        doc = header | {"path": path, "size": capture.size, "sha256": capture.sha256}
        yield json.dumps(doc, separators=(",", ":"))


class CleanupStep(Step):
    def begin(self) -> None:
        self.trace_stopped = self.ctx.state.stop_capture()
        self.removed = self.ctx.state.remove_under(self.inputs.get("WorkDir", ""))

    def document(self) -> dict[str, Any]:
        return self._header("cleanup") | {
            "work_dir": self.inputs.get("WorkDir", ""),
            "trace_stopped": self.trace_stopped,
            "removed": self.removed,
            "error": None,
        }


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text not in (None, "") else default
    except ValueError:
        return default


_STEPS: dict[str, type[Step]] = {
    "facts": FactsStep,
    "ecs": EcsStep,
    "probe": ProbeStep,
    "fetch": FetchStep,
    "cleanup": CleanupStep,
}
