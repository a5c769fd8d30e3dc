"""The simulated probe steps: what each step script "prints" on a simulated host.

The simulator runs no PowerShell. It recognises a step by its marker line
(``fleet_ecs.probe.contract.step_of``), reads its ``$FE_*`` inputs and answers with the
document the contract describes, built from the host's healthy baseline plus its scenario's
overrides (``fleet_ecs.sim.scenarios``).

Every step document gets the inventory's verbatim replacements last (``vars.sim_raw``, see
``fleet_ecs.sim.raw``). The probe and alternates steps build each target the same way
(``build_target``): DNS first, then TCP to every address it gave, the direct TLS handshake,
and the two HTTP paths (machine: WinHTTP; admin: HttpWebRequest).

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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from fleet_ecs.probe.contract import SCHEMA, parse_inputs, step_of
from fleet_ecs.sim import windows_text as wt
from fleet_ecs.sim.capture import new_capture
from fleet_ecs.sim.raw import apply_raw
from fleet_ecs.sim.scenarios import HOST_GEO, Replace, Scenario
from fleet_ecs.sim.state import HostState

logger = logging.getLogger(__name__)

DEFAULT_CAPTURE_BYTES = 256 * 1024
DEFAULT_CHUNK = 256 * 1024


@dataclass
class HostContext:
    """Everything a step needs to know about the host it runs on.

    ``raw`` holds the inventory's verbatim replacements (``vars.sim_raw``, checked by
    ``raw.check_raw``): dotted paths whose value replaces that value in the step documents.
    """

    profile: wt.HostProfile
    scenario: Scenario
    state: HostState
    login: str
    capture_bytes: int = DEFAULT_CAPTURE_BYTES
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scenario.server:
            # A server-only situation on a host whose name says workstation: the whole host,
            # PSVersionTable included, becomes a server.
            self.profile = self.profile.as_server()

    @property
    def lang(self) -> str:
        return self.scenario.language


class UnknownScript(Exception):
    """The script is not one of fleet-ecs's step scripts (or of a schema we do not speak)."""


class Step:
    """One step invocation; subclasses fill in the three moments."""

    name = ""

    def __init__(self, ctx: HostContext, inputs: dict[str, str]) -> None:
        self.ctx = ctx
        self.inputs = inputs

    def begin(self) -> None:
        pass

    def outputs(self) -> Iterator[str]:
        yield _json(self.final_document())

    def finish(self) -> None:
        pass

    def final_document(self) -> dict[str, Any]:
        """The step's document with the inventory's verbatim replacements applied."""
        return apply_raw(self.document(), self.name, self.ctx.raw, self.ctx.profile.host_name)

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
    if isinstance(value, Replace):
        return _fill(value.value, values)
    if callable(value):
        return _fill(value(values), values)  # computed from the host (one entry per address)
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
            "ip": ctx.profile.ip(0), "ips": [ctx.profile.ip(0), ctx.profile.ip(1)],
            "mpcmdrun": wt.INBOX_MPCMDRUN, "timeout_ms": 15000, "lang": ctx.lang}
    base.update(extra)
    return base


def _json(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class FactsStep(Step):
    name = "facts"

    def document(self) -> dict[str, Any]:
        p = self.ctx.profile
        scenario = self.ctx.scenario
        install = f"{wt.PLATFORM_ROOT}\\{wt.CURRENT_PLATFORM}\\"
        version = wt.CURRENT_PLATFORM.rsplit("-", 1)[0]
        geo = p.geo.upper() if scenario.onboarded_geo == HOST_GEO else scenario.onboarded_geo
        doc = self._header("facts") | {
            "ps_version": p.ps_version,
            "ps_edition": "Desktop",
            "clr_version": "4.0.30319.42000",
            "computer_name": p.computer_name,
            "user": p.user_name(self.ctx.login),
            "is_admin": True,
            "is_elevated": True,
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
            "defender_policy": {
                "DisableCoreServiceECSIntegration": None,
                "ForceDefenderPassiveMode": None,
                "PassiveMode": None,
                "DisableCoreService1DSTelemetry": None,
            },
            "onboarding_state": 1,
            "onboarded_info": wt.onboarded_info(p, geo),
            "sense_service": "Running",
            "defender_proxy": {"ProxyServer": None, "ProxyPacUrl": None, "ProxyBypass": None},
            "telemetry_proxy": None,
            "winhttp_proxy": _winhttp_proxy(self.ctx),
        }
        doc = apply_overrides(doc, scenario.facts, _values(self.ctx))
        if scenario.facts_only is not None:
            doc = {k: v for k, v in doc.items() if k in scenario.facts_only}
        return doc


def _winhttp_proxy(ctx: HostContext) -> dict[str, Any]:
    """``netsh winhttp show proxy`` as the facts step reads it: the scenario's, else direct."""
    given = ctx.scenario.probe.get("winhttp_proxy")
    if isinstance(given, Mapping) and isinstance(given.get("output"), str):
        return {"output": given["output"], "exit_code": given.get("exit_code", 0)}
    return {"output": wt.winhttp_direct(ctx.lang), "exit_code": 0}


class EcsStep(Step):
    name = "ecs"

    def document(self) -> dict[str, Any]:
        p = self.ctx.profile
        path = self.inputs.get("MpCmdRun", "")
        folders = self.ctx.scenario.facts.get("platform_folders", p.platform_folders)
        exists = _known_mpcmdrun(path, folders)
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
            doc |= {"ran": True, "exit_code": 0,
                    "output": wt.mpcmdrun_ecs_output(p, self.ctx.lang),
                    "elapsed_ms": 380 + p.seed[7] % 400}
        values = _values(self.ctx, mpcmdrun=path)
        return apply_overrides(doc, self.ctx.scenario.ecs, values)


def _known_mpcmdrun(path: str, folders: list[str]) -> bool:
    # Windows paths are case-insensitive and Join-Path tolerates a doubled separator.
    norm = path.replace("/", "\\").lower()
    while "\\\\" in norm:
        norm = norm.replace("\\\\", "\\")
    known = {wt.INBOX_MPCMDRUN.lower()}
    known |= {f"{wt.PLATFORM_ROOT}\\{f}\\MpCmdRun.exe".lower() for f in folders}
    return norm in known


class ProbeStep(Step):
    """Name resolution, TCP, TLS, both HTTP paths to ECS, optionally under a capture."""

    name = "probe"

    def begin(self) -> None:
        state = self.ctx.state
        mode = self.ctx.scenario.capture
        self.requested = self.inputs.get("Capture") == "1"
        self.stale = state.capture_running and mode is None
        self.stale_path = state.capture_path or "C:\\Windows\\TEMP\\capture.etl"
        self.capture = None
        if self.stale:
            state.stop_capture()  # the probe stops a leftover session of its own first
        if self.requested and mode is None:
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
        host = self.inputs.get("Host") or self.ctx.profile.ecs_host
        target = build_target(self.ctx, self.inputs, self.inputs.get("Url", ""), host,
                              self.ctx.scenario.probe)
        doc = self._header("probe") | {
            "url": target.pop("url"),
            "host": target.pop("host"),
            "capture": self._capture_doc(),
        }
        return doc | target

    def _capture_doc(self) -> dict[str, Any]:
        lang = self.ctx.lang
        session = self.inputs.get("TraceSession", "FleetEcsTrace")
        max_mb = _int(self.inputs.get("CaptureMaxMb"), 20)
        before = wt.trace_status_none(lang)
        before_exit = 1
        if self.stale:
            before, before_exit = wt.trace_status_running(session, self.stale_path, max_mb,
                                                          lang), 0
        doc: dict[str, Any] = {
            "requested": self.requested, "status_before": before,
            "status_before_exit": before_exit, "stale_stopped": self.stale,
            "other_session": False, "started": False, "start_output": None,
            "start_exit": None, "stop_output": None, "stop_exit": None, "path": None,
            "size": None, "sha256": None,
        }
        mode = self.ctx.scenario.capture
        if mode == "other-session":
            # Someone else's trace (an MDE Client Analyzer -i run, say) in its default place.
            other = f"{self.ctx.profile.temp_dir('helpdesk')}\\NetTraces\\NetTrace.etl"
            doc |= {"status_before": wt.trace_status_running("NetTrace", other, 512, lang),
                    "status_before_exit": 0, "other_session": True}
        elif mode == "denied":
            denied = wt.elevation_required(lang)
            doc |= {"status_before": denied, "status_before_exit": 1}
            if self.requested:
                doc |= {"start_output": denied, "start_exit": 1}
        if self.capture is not None:
            path = self.capture.path
            doc |= {
                "started": True, "start_output": wt.trace_start(session, path, max_mb, lang),
                "start_exit": 0, "stop_output": wt.trace_stop(path, lang), "stop_exit": 0,
                "path": path, "size": self.capture.size, "sha256": self.capture.sha256,
            }
        return doc


class AlternatesStep(Step):
    """The probe's network checks for each extra ECS URL, without a capture."""

    name = "alternates"

    def document(self) -> dict[str, Any]:
        scenario = self.ctx.scenario
        overrides = scenario.alternates
        if overrides is None:
            # By default the host's situation applies to every Microsoft endpoint alike: a DNS
            # filter or a firewall that blocks one blocks the others.
            overrides = {k: v for k, v in scenario.probe.items() if k in TARGET_KEYS}
        urls = [u.strip() for u in self.inputs.get("Urls", "").split("|") if u.strip()]
        targets = []
        for url in urls:
            target = build_target(self.ctx, self.inputs, url, _host_of(url), overrides)
            targets.append({k: target[k] for k in TARGET_KEYS})
        return self._header("alternates") | {"targets": targets}


TARGET_KEYS = ("url", "host", "dns", "tcp_all", "tls", "machine", "http")


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def build_target(
    ctx: HostContext, inputs: Mapping[str, str], url: str, host: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """One probed target (the probe's keys but ``capture``), healthy unless ``overrides`` say.

    DNS is settled first, so that the rest (TCP to every address, the handshake) follows the
    addresses the name actually resolved to, sinkhole answers included.
    """
    p = ctx.profile
    timeout_ms = _int(inputs.get("TimeoutSec"), 15) * 1000
    values = _values(ctx, host=host, timeout_ms=timeout_ms + 37)
    dns = apply_overrides({"dns": _dns_ok(p, host)}, _only(overrides, "dns"), values)["dns"]
    ips = _addresses(dns)
    values |= {"ips": ips, "ip": ips[0] if ips else p.addresses(host)[0]}
    tcp_all = [_tcp_ok(p, ip, i) for i, ip in enumerate(ips[:4])]
    defender_proxy = inputs.get("DefenderProxy") or None
    doc: dict[str, Any] = {
        "url": url,
        "host": host,
        "dns": dns,
        "tcp": tcp_all[0] if tcp_all else _tcp_none(),
        "tcp_all": tcp_all,
        "tls": _tls_ok(p, host, ips[0]) if ips else None,
        "winhttp_proxy": {"output": wt.winhttp_direct(ctx.lang), "exit_code": 0},
        "machine": _machine_ok(p, host, defender_proxy),
        "http": _http_ok(p, host),
    }
    doc = apply_overrides(doc, overrides, values)
    if inputs.get("SystemPath") == "1" and isinstance(doc.get("machine"), dict):
        # The probe step's opt-in SYSTEM measurement; the simulated task always succeeds.
        doc["machine"]["mechanism"] = "system-task"
    limit = _int(inputs.get("BodyLimit"), 4096)
    for path in ("http", "machine"):
        part = doc.get(path)
        if isinstance(part, dict) and isinstance(part.get("body_excerpt"), str):
            part["body_excerpt"] = part["body_excerpt"][:limit]
    return doc


def _only(overrides: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {key: overrides[key]} if key in overrides else {}


def _addresses(dns: Mapping[str, Any]) -> list[str]:
    records = dns.get("records") or []
    return [r["IPAddress"] for r in records
            if isinstance(r, Mapping) and r.get("Type") in ("A", "AAAA") and r.get("IPAddress")]


def _dns_ok(p: wt.HostProfile, host: str) -> dict[str, Any]:
    parts = (host.lower().split(".") + ["", ""])[:2]
    stem = "-".join(p for p in parts if p)
    edge = f"{stem}-prod.trafficmanager.net"  # mdav-us-prod..., ecs-office-prod...
    front = f"{stem}-prod-fd.azurefd.net"
    first, second = p.addresses(host)
    records = [
        {"Name": host, "Type": "CNAME", "TTL": 300, "NameHost": edge},
        {"Name": edge, "Type": "CNAME", "TTL": 60, "NameHost": front},
        {"Name": front, "Type": "A", "TTL": 45, "IPAddress": first},
        {"Name": front, "Type": "A", "TTL": 45, "IPAddress": second},
    ]
    return {"elapsed_ms": 12 + p.seed[8] % 40, "records": records, "error": None,
            "error_id": None, "native_code": None}


def _tcp_ok(p: wt.HostProfile, ip: str, index: int) -> dict[str, Any]:
    return {"address": ip, "port": 443, "ok": True, "elapsed_ms": 23 + (p.seed[9] + index) % 30,
            "error": None, "socket_error": None}


def _tcp_none() -> dict[str, Any]:
    return {"address": None, "port": 443, "ok": False, "elapsed_ms": None, "error": None,
            "socket_error": None}


def ms_chain(host: str) -> list[dict[str, str]]:
    """The chain Microsoft's ECS front ends present, leaf first, with SHA-1 thumbprints."""
    return [
        {"subject": f"CN={host}", "thumbprint": wt.hex_id("leaf", host)},
        {"subject": wt.MS_LEAF_ISSUER, "thumbprint": wt.hex_id("ms-issuing-ca-04")},
        {"subject": wt.MS_ROOT, "thumbprint": wt.MS_ROOT_THUMBPRINT},
    ]


def _tls_ok(p: wt.HostProfile, host: str, ip: str) -> dict[str, Any]:
    return {
        "mechanism": "sslstream",
        "address": ip,
        "ok": True,
        "protocol": "Tls12",
        "elapsed_ms": 58 + p.seed[11] % 60,
        "error": None,
        "cert": _ms_leaf(host) | {"chain": ms_chain(host)},
    }


def _ms_leaf(host: str) -> dict[str, Any]:
    """The leaf certificate of Microsoft's ECS front end for ``host``, without its chain."""
    return {
        "subject": f"CN={host}",
        "issuer": wt.MS_LEAF_ISSUER,
        "thumbprint": wt.hex_id("leaf", host),
        "not_before": "2025-03-18T12:04:11Z",
        "not_after": "2026-03-13T12:04:11Z",
    }


def _headers(p: wt.HostProfile, body: str) -> dict[str, str]:
    now = format_datetime(datetime.now(timezone.utc), usegmt=True)
    ref = wt.hex_id(p.host_name, now, length=32)
    return {
        "Cache-Control": "max-age=3600, private",
        "Content-Length": str(len(body)),
        "Content-Type": "application/json; charset=utf-8",
        "Date": now,
        "ETag": '"' + wt.hex_id(p.host_name, "etag", length=16) + '"',
        "Strict-Transport-Security": "max-age=31536000",
        "X-Cache": "CONFIG_NOCACHE",
        "X-MSEdge-Ref": f"Ref A: {ref[:16]} Ref B: {p.geo.upper()}1EDGE0412 Ref C: {now}",
    }


def _machine_ok(p: wt.HostProfile, host: str, defender_proxy: str | None) -> dict[str, Any]:
    body = wt.ecs_body(p)
    return {
        "mechanism": "winhttp-com",
        "proxy": defender_proxy,
        # As the probe template reports it: WinHTTP's default settings are used without being
        # read in PowerShell; Python reads the proxy from the raw netsh text.
        "proxy_source": "defender" if defender_proxy else "winhttp-default",
        "elapsed_ms": 140 + p.seed[12] % 180,
        "status": 200,
        "status_text": "OK",
        "headers": _headers(p, body),
        "body_excerpt": body,
        "error_code": None,
        "error_message": None,
    }


def _http_ok(p: wt.HostProfile, host: str) -> dict[str, Any]:
    body = wt.ecs_body(p)
    elapsed = 160 + p.seed[10] % 200
    return {
        "proxy": None,
        "elapsed_ms": elapsed,
        "status": 200,
        "status_description": "OK",
        "headers": _headers(p, body),
        "body_excerpt": body,
        "error_status": None,
        "error_message": None,
        "inner_errors": [],
        "tls12_available": True,
        "first_byte_ms": elapsed - 9,
        # The admin path lists the chain's subjects and, beside them, their thumbprints.
        "cert": _ms_leaf(host) | {
            "chain": [c["subject"] for c in ms_chain(host)],
            "chain_thumbprints": [c["thumbprint"] for c in ms_chain(host)],
        },
    }


class FetchStep(Step):
    """Streams a file as base64 chunks, one output object per chunk, then its summary."""

    name = "fetch"

    def outputs(self) -> Iterator[str]:
        path = self.inputs.get("Path", "")
        capture = self.ctx.state.file(path)
        header = self._header("fetch")
        if capture is None:
            error = f"Cannot find path '{path}' because it does not exist."
            yield _json(self._raw(header | {"path": path, "error": error}))
            return
        for chunk in capture.chunks(_int(self.inputs.get("ChunkSize"), DEFAULT_CHUNK)):
            yield base64.b64encode(chunk).decode("ascii")
        doc = header | {"path": path, "size": capture.size, "sha256": capture.sha256}
        yield _json(self._raw(doc))

    def _raw(self, doc: dict[str, Any]) -> dict[str, Any]:
        return apply_raw(doc, self.name, self.ctx.raw, self.ctx.profile.host_name)


class CleanupStep(Step):
    name = "cleanup"
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
    "alternates": AlternatesStep,
    "fetch": FetchStep,
    "cleanup": CleanupStep,
}
