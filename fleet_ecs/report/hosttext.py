"""The per-host ``report.txt``: the single-machine script's report, rebuilt from raw facts.

Admins know the sections of the script they ran by hand on one machine (network capture start,
Latest Defender Platform, Final ECS URL, DNS Lookup, Port 443 Connectivity Test, System Proxy
Configuration, Web Request, network capture stop, ETL file). This module prints the same
sections, in the same order, from the facts the probe steps returned, and adds a header and
our diagnosis on top. It is plain Python, not a template: the layout is line-oriented and
every value needs ``clean_text`` anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import metadata
from pathlib import PureWindowsPath
from typing import Any

from fleet_ecs.models import HostResult
from fleet_ecs.report.rundir import RunInfo
from fleet_ecs.report.textclean import as_text, clean_text

logger = logging.getLogger(__name__)

SECTION_TITLES = (
    "Diagnosis",
    "Network Capture Start",
    "Latest Defender Platform",
    "Final ECS URL",
    "DNS Lookup",
    "Port 443 Connectivity Test",
    "System Proxy Configuration",
    "Web Request",
    "Network Capture Stop",
    "ETL File Location",
)
_LABEL_WIDTH = 18


def tool_version() -> str:
    """The installed fleet-ecs version, or ``unknown`` when running from an uninstalled tree."""
    try:
        return metadata.version("fleet-ecs")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Text:
    """A growing list of lines with the few layouts the report needs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def title(self, text: str, underline: str = "-") -> None:
        if self.lines:
            self.lines.append("")
        text = clean_text(text).replace("\n", " ")
        self.lines += [text, underline * len(text)]

    def line(self, text: Any = "") -> None:
        self.lines += clean_text(text).split("\n")

    def field(self, label: str, value: Any) -> None:
        """``Label : value``; continuation lines of a multi-line value line up under the value."""
        label = clean_text(label).replace("\n", " ")
        first, *rest = clean_text(value).split("\n")
        self.lines.append(f"{label:<{_LABEL_WIDTH}}: {first}".rstrip())
        self.lines += [" " * (_LABEL_WIDTH + 2) + line for line in rest]

    def block(self, text: Any, indent: str = "    ") -> None:
        """Verbatim command output, indented, trailing blank lines dropped."""
        body = clean_text(text).rstrip().lstrip("\n")
        if not body:
            self.lines.append(f"{indent}(no output)")
            return
        self.lines += [(indent + line).rstrip() for line in body.split("\n")]

    def bullets(self, items: Iterable[Any]) -> None:
        count = 0
        for item in items:
            first, *rest = clean_text(item).split("\n")
            self.lines.append(f"  - {first}")
            self.lines += [f"    {line}" for line in rest]
            count += 1
        if not count:
            self.lines.append("  (none)")

    def missing(self, why: str) -> None:
        self.line(f"(not collected: {why})")

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _doc(result: HostResult, key: str) -> dict[str, Any] | None:
    facts = result.facts if isinstance(result.facts, dict) else {}
    doc = facts.get(key)
    return doc if isinstance(doc, dict) else None


def _sub(doc: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    value = doc.get(key) if doc else None
    return value if isinstance(value, dict) else None


def _why(result: HostResult, step: str) -> str:
    """Why the facts of ``step`` are absent, in the words of the result."""
    if result.error:
        where = f"scan stopped at step '{result.step}'" if result.step else "scan failed"
        return f"{where}: {result.error}"
    if result.step:
        return f"scan stopped at step '{result.step}'"
    return f"the {step} step returned no facts"


def _exit_note(code: Any) -> str:
    return "" if code in (None, 0, "0") else f" (exit code {as_text(code)})"


def _header(out: _Text, result: HostResult, run: RunInfo) -> None:
    out.title("fleet-ecs host report", "=")
    out.field("Host", result.host)
    out.field("Address", f"{result.address}:{result.port} ({result.transport})")
    if result.groups:
        out.field("Groups", "; ".join(as_text(g) for g in result.groups))
    out.field("Scan started", result.started_at or "(unknown)")
    out.field("Scan finished", result.finished_at or "(unknown)")
    out.field("Duration", f"{result.duration_s:.3f} s")
    out.field("Run", run.run_id or "(run.json missing)")
    version = run.version or f"{tool_version()} (report builder; run.json gives none)"
    out.field("Tool version", f"fleet-ecs {version}")


def _diagnosis(out: _Text, result: HostResult) -> None:
    out.title("Diagnosis")
    out.field("Status", result.status.value.upper())
    out.field("Category", result.category.value)
    out.field("Hint", result.hint)
    if result.step:
        out.field("Failed step", result.step)
    if result.error:
        out.field("Error", result.error)
    out.line("Evidence:")
    out.bullets(result.evidence)
    out.line("Findings:")
    out.bullets(f"[{f.severity.value.upper()}] {f.code}: {f.message}" for f in result.findings)


def _capture_start(out: _Text, result: HostResult, probe: dict[str, Any] | None) -> None:
    out.title("Network Capture Start")
    capture = _sub(probe, "capture")
    if probe is None:
        out.missing(_why(result, "probe"))
        return
    if capture is None:
        out.missing("the probe step reported no capture state")
        return
    if not capture.get("requested"):
        out.line("Network capture not requested for this host.")
        return
    if capture.get("status_before") is not None:
        out.line(f"Trace session before start{_exit_note(capture.get('status_before_exit'))}:")
        out.block(capture.get("status_before"))
    if capture.get("stale_stopped"):
        out.line("A stale fleet-ecs trace session was stopped first.")
    out.line("Starting network capture...")
    out.block(capture.get("start_output"))
    out.field("Started", capture.get("started"))
    if capture.get("start_exit") not in (None, 0):
        out.field("Exit code", capture.get("start_exit"))


def _platform_name(facts: dict[str, Any]) -> str:
    location = facts.get("defender_install_location")
    if isinstance(location, str) and location.strip():
        name = PureWindowsPath(location.strip().rstrip("\\/")).name
        if name:
            return name
    mp_status = facts.get("mp_status")
    if isinstance(mp_status, dict) and mp_status.get("AMProductVersion"):
        return as_text(mp_status["AMProductVersion"])
    return "(unknown)"


def _platform(out: _Text, result: HostResult, facts: dict[str, Any] | None) -> None:
    out.title("Latest Defender Platform")
    if facts is None:
        out.missing(_why(result, "facts"))
        return
    if set(facts) <= {"step", "schema", "ps_version"}:
        out.field("PowerShell", facts.get("ps_version"))
        out.missing("PowerShell is older than 5.1, the facts step stopped early")
        return
    out.line(f"Latest Defender Platform: {_platform_name(facts)}")
    out.field("Install location", facts.get("defender_install_location"))
    out.field("Platform root", facts.get("platform_root"))
    folders = facts.get("platform_folders")
    if isinstance(folders, list):
        out.line("Platform folders:")
        out.bullets(folders)
    mp_status = facts.get("mp_status")
    if isinstance(mp_status, dict):
        for key in ("AMProductVersion", "AMEngineVersion", "AMServiceVersion", "AMRunningMode",
                    "RealTimeProtectionEnabled"):
            out.field(key, mp_status.get(key))
    if facts.get("mp_status_error"):
        out.field("Get-MpComputerStatus", facts.get("mp_status_error"))
    out.field("WinDefend service", facts.get("windefend_service"))
    out.field("MDCoreSvc service", facts.get("mdcoresvc_service"))
    build = as_text(facts.get("os_build"))
    if facts.get("os_ubr") is not None:
        build = f"{build}.{as_text(facts.get('os_ubr'))}"
    out.field("OS", f"{as_text(facts.get('os_caption'))} {build}".strip())
    out.field("PowerShell", f"{as_text(facts.get('ps_version'))} "
                            f"{as_text(facts.get('ps_edition'))}".strip())
    out.field("Computer name", facts.get("computer_name"))
    out.field("User", facts.get("user"))
    out.field("Elevated", facts.get("is_admin"))


def _ecs_url(out: _Text, result: HostResult, ecs: dict[str, Any] | None,
             probe: dict[str, Any] | None) -> None:
    out.title("Final ECS URL")
    url = result.ecs_url or (probe or {}).get("url")
    if url:
        out.line(f"Final ECS URL: {as_text(url)}")
    else:
        out.line("Final ECS URL: (none found)")
    others = [u for u in result.ecs_urls if u != url]
    if others:
        out.line("Other ECS URLs reported:")
        out.bullets(others)

    out.line("")
    out.line("MpCmdRun -DisplayECSConnection:")
    if ecs is None:
        out.missing(_why(result, "ecs"))
        return
    out.field("Path", ecs.get("path"))
    out.field("Exists", ecs.get("exists"))
    signature = _sub(ecs, "signature")
    if signature is not None:
        out.field("Signature", signature.get("status"))
        if signature.get("status_message"):
            out.field("Signature message", signature.get("status_message"))
        out.field("Signer", signature.get("signer_subject"))
    out.field("Ran", ecs.get("ran"))
    if ecs.get("ran"):
        out.field("Exit code", ecs.get("exit_code"))
        out.field("Elapsed", f"{as_text(ecs.get('elapsed_ms'))} ms")
        out.line("Output:")
        out.block(ecs.get("output"))


def _dns(out: _Text, result: HostResult, probe: dict[str, Any] | None) -> None:
    name = as_text((probe or {}).get("host"))
    out.title(f"DNS Lookup for {name}:" if name else "DNS Lookup")
    if probe is None:
        out.missing(_why(result, "probe"))
        return
    dns = _sub(probe, "dns")
    if dns is None:
        out.missing("the probe step reported no DNS result")
        return
    records = [r for r in dns.get("records") or [] if isinstance(r, dict)]
    if records:
        rows = [("Name", "Type", "TTL", "IPAddress/NameHost")]
        for rec in records:
            data = rec.get("IPAddress", rec.get("NameHost"))
            rows.append(tuple(clean_text(v) for v in
                              (rec.get("Name"), rec.get("Type"), rec.get("TTL"), data)))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            out.line("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    else:
        out.line("(no records)")
    if dns.get("error"):
        out.field("Error", dns.get("error"))
        out.field("Error id", dns.get("error_id"))
        out.field("Native code", dns.get("native_code"))
    out.field("Elapsed", f"{as_text(dns.get('elapsed_ms'))} ms")


def _tcp(out: _Text, result: HostResult, probe: dict[str, Any] | None) -> None:
    out.title("Port 443 Connectivity Test")
    if probe is None:
        out.missing(_why(result, "probe"))
        return
    tcp = _sub(probe, "tcp")
    if tcp is None:
        out.missing("the probe step reported no TCP test")
        return
    out.field("RemoteAddress", tcp.get("address"))
    out.field("RemotePort", tcp.get("port"))
    out.field("TcpTestSucceeded", tcp.get("ok"))
    out.field("Elapsed", f"{as_text(tcp.get('elapsed_ms'))} ms")
    if tcp.get("error"):
        out.field("Error", tcp.get("error"))
    if tcp.get("socket_error") is not None:
        out.field("Socket error", tcp.get("socket_error"))


def _proxy(out: _Text, result: HostResult, probe: dict[str, Any] | None) -> None:
    out.title("System Proxy Configuration")
    if probe is None:
        out.missing(_why(result, "probe"))
        return
    proxy = _sub(probe, "winhttp_proxy")
    if proxy is None:
        out.missing("the probe step reported no netsh winhttp output")
        return
    out.line(f"netsh winhttp show proxy{_exit_note(proxy.get('exit_code'))}:")
    out.block(proxy.get("output"))


def _web_request(out: _Text, result: HostResult, probe: dict[str, Any] | None) -> None:
    out.title("Web Request")
    if probe is None:
        out.missing(_why(result, "probe"))
        return
    http = _sub(probe, "http")
    if http is None:
        out.missing("the probe step reported no web request")
        return
    failed = bool(http.get("error_status") or http.get("error_message"))
    out.line("Web Request Failed:" if failed else "Web Request Successful:")
    if http.get("status") is not None:
        code = f"{as_text(http.get('status'))} {as_text(http.get('status_description'))}"
        out.field("Status Code", code.strip())
    out.field("Proxy", http.get("proxy") or "(none)")
    out.field("Elapsed", f"{as_text(http.get('elapsed_ms'))} ms")
    if failed:
        out.field("Error Status", http.get("error_status"))
        out.field("Error Message", http.get("error_message"))
        for inner in http.get("inner_errors") or []:
            out.field("Inner Exception", inner)
    headers = http.get("headers")
    if isinstance(headers, dict) and headers:
        out.line("Response Headers:")
        for name, value in headers.items():
            out.field(f"  {as_text(name)}", value)
    if http.get("body_excerpt"):
        out.line("Server Response:")
        out.block(http.get("body_excerpt"))
    cert = _sub(http, "cert")
    if cert is not None:
        out.line("TLS certificate:")
        for key in ("subject", "issuer", "thumbprint", "not_before", "not_after"):
            out.field(f"  {key}", cert.get(key))
        chain = cert.get("chain")
        if isinstance(chain, list) and chain:
            out.line("  chain (leaf first):")
            out.bullets(chain)


def _capture_stop(out: _Text, result: HostResult, probe: dict[str, Any] | None) -> None:
    out.title("Network Capture Stop")
    if probe is None:
        out.missing(_why(result, "probe"))
        return
    capture = _sub(probe, "capture")
    if capture is None:
        out.missing("the probe step reported no capture state")
        return
    if not capture.get("requested"):
        out.line("Network capture not requested for this host.")
        return
    out.line("Stopping network capture...")
    out.block(capture.get("stop_output"))
    if capture.get("stop_exit") not in (None, 0):
        out.field("Exit code", capture.get("stop_exit"))


def _etl(out: _Text, result: HostResult, probe: dict[str, Any] | None,
         capture_rel: str | None) -> None:
    out.title("ETL File Location")
    capture = _sub(probe, "capture")
    if capture is not None and capture.get("path"):
        out.field("On the endpoint", capture.get("path"))
        out.field("Size", f"{as_text(capture.get('size'))} bytes")
        out.field("SHA-256", capture.get("sha256"))
    elif probe is None:
        out.missing(_why(result, "probe"))
    else:
        out.line("Trace file not found on the endpoint.")
    out.field("Fetched copy", capture_rel or "(none in this run directory)")


def render_host_text(
    result: HostResult, run: RunInfo | None = None, *, capture_rel: str | None = None
) -> str:
    """The full ``report.txt`` of one host (LF line ends; write it as UTF-8).

    ``capture_rel`` is the fetched capture relative to the run directory, when one exists.
    """
    run = run or RunInfo()
    facts, ecs, probe = _doc(result, "facts"), _doc(result, "ecs"), _doc(result, "probe")
    out = _Text()
    _header(out, result, run)
    _diagnosis(out, result)
    _capture_start(out, result, probe)
    _platform(out, result, facts)
    _ecs_url(out, result, ecs, probe)
    _dns(out, result, probe)
    _tcp(out, result, probe)
    _proxy(out, result, probe)
    _web_request(out, result, probe)
    _capture_stop(out, result, probe)
    _etl(out, result, probe, capture_rel)
    return out.render()
