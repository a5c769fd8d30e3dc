"""Typed values that cross module boundaries: host specs, scan settings and host results.

Everything here is plain data. Results serialise to and from JSON (``to_dict``/``from_dict``)
because ``hosts/<host>/result.json`` is the one source every report is derived from.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

RESULT_SCHEMA = 1


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


class Category(str, enum.Enum):
    """One verdict per host.

    Members are only ever appended and never renamed, because they are columns in people's
    spreadsheets and keys in the history database. Declaration order is the order of the first
    release; the order in which the probe's categories are *decided* (the first that applies
    wins) is ``fleet_ecs.probe.diagnose.PRECEDENCE``, which places later additions where they
    belong (Defender's state before the network, for example).
    """

    WINRM_UNREACHABLE = "winrm_unreachable"
    WINRM_AUTH_FAILED = "winrm_auth_failed"
    INSUFFICIENT_PRIVILEGE = "insufficient_privilege"
    POWERSHELL_UNSUPPORTED = "powershell_unsupported"
    DEFENDER_MISSING = "defender_missing"
    DEFENDER_BINARY_UNTRUSTED = "defender_binary_untrusted"
    ECS_URL_UNKNOWN = "ecs_url_unknown"
    DNS_FAILURE = "dns_failure"
    PROXY_AUTH_REQUIRED = "proxy_auth_required"
    TCP_BLOCKED = "tcp_blocked"
    ECS_TIMEOUT = "ecs_timeout"
    TLS_INTERCEPTED = "tls_intercepted"
    TLS_FAILURE = "tls_failure"
    HTTP_ERROR = "http_error"
    OK = "ok"
    # Faults of the scan itself rather than of the endpoint. They sit after ``ok`` in the
    # enum only so that the issue-mandated order above stays untouched; the transport reports
    # them directly, they never compete with the probe categories.
    WINRM_ERROR = "winrm_error"
    PROBE_ERROR = "probe_error"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    # What can go wrong before the probe runs, each with its own remedy.
    WINRM_TIMEOUT = "winrm_timeout"
    WINRM_CERT_INVALID = "winrm_cert_invalid"
    WINRM_QUOTA = "winrm_quota"
    WINRM_PROTOCOL_ERROR = "winrm_protocol_error"
    WINRM_CONNECTION_RESET = "winrm_connection_reset"
    WINRM_ENDPOINT_NOT_FOUND = "winrm_endpoint_not_found"
    WINRM_AUTH_METHOD_UNAVAILABLE = "winrm_auth_method_unavailable"
    WINRM_PROXY_ERROR = "winrm_proxy_error"
    CLIENT_CONFIG_ERROR = "client_config_error"
    # Defender's own state, and the situations that fool a naive network check.
    DEFENDER_NOT_ACTIVE = "defender_not_active"
    CORE_SERVICE_STOPPED = "core_service_stopped"
    ECS_DISABLED_BY_POLICY = "ecs_disabled_by_policy"
    NOT_ONBOARDED = "not_onboarded"
    PLATFORM_TOO_OLD = "platform_too_old"
    ECS_PARTIALLY_BLOCKED = "ecs_partially_blocked"
    PROXY_PATH_MISMATCH = "proxy_path_mismatch"
    DNS_SINKHOLED = "dns_sinkholed"
    PROBE_INCOMPLETE = "probe_incomplete"

    @property
    def precedence(self) -> int:
        return _ORDER.index(self)


_ORDER = list(Category)


class CaptureMode(str, enum.Enum):
    OFF = "off"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class Transport(str, enum.Enum):
    HTTP = "http"
    HTTPS = "https"


AUTH_METHODS = ("basic", "certificate", "credssp", "kerberos", "negotiate", "ntlm")


@dataclass(frozen=True)
class HostSpec:
    """One endpoint as the inventory describes it, after group and default inheritance."""

    name: str
    address: str
    port: int
    transport: Transport = Transport.HTTP
    auth: str = "negotiate"
    cert_validation: bool | str = True
    username: str | None = None
    credential: str | None = None
    groups: tuple[str, ...] = ()
    configuration_name: str = "Microsoft.PowerShell"
    message_encryption: str = "auto"
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # Per-host (usually per-group) overrides of the scan's timeouts, in seconds; None: the CLI's.
    connect_timeout: float | None = None
    read_timeout: float | None = None
    operation_timeout: float | None = None
    deadline: float | None = None
    # Extra pypsrp WSMan keyword arguments the inventory set (negotiate_hostname_override,
    # certificate_pem, credssp_auth_mechanism, proxy, ...), passed through as given.
    wsman_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def endpoint(self) -> str:
        return f"{self.transport.value}://{self.address}:{self.port}/wsman"


@dataclass(frozen=True)
class ScanSettings:
    concurrency: int = 32
    rate: float = 10.0
    deadline: float = 300.0
    capture: CaptureMode = CaptureMode.ON_FAILURE
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    operation_timeout: float = 20.0
    # Network probe budgets on the endpoint (seconds); the demo shortens them.
    probe_timeout: float = 15.0
    capture_max_mb: int = 20
    run_id: str = ""
    # Opt-in: measure the machine path as SYSTEM through a one-shot scheduled task (probe step
    # input SystemPath); off by default because remote SYSTEM tasks look like an attack.
    system_path: bool = False


@dataclass
class Finding:
    code: str
    severity: Status
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity.value, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Finding:
        return cls(data["code"], Status(data["severity"]), data["message"])


@dataclass
class Diagnosis:
    status: Status
    category: Category
    hint: str
    evidence: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class FetchedFile:
    name: str
    path: str  # relative to the run directory, forward slashes
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class HostResult:
    """Everything known about one host after its scan; written to ``hosts/<host>/result.json``."""

    host: str
    address: str
    port: int
    transport: str
    status: Status
    category: Category
    hint: str
    evidence: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    ecs_url: str | None = None
    ecs_urls: list[str] = field(default_factory=list)
    http_status: int | None = None
    dns_ok: bool | None = None
    tcp_ok: bool | None = None
    proxy: str | None = None
    error: str | None = None
    step: str | None = None
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    files: list[FetchedFile] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    schema: int = RESULT_SCHEMA
    auth: str | None = None  # pypsrp's auth method name
    deadline_s: float | None = None
    run_id: str | None = None  # the run that produced this result

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def file_path(self, name: str) -> str | None:
        for item in self.files:
            if item.name == name:
                return item.path
        return None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["category"] = self.category.value
        data["findings"] = [f.to_dict() for f in self.findings]
        data["files"] = [f.to_dict() for f in self.files]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostResult:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = Status(values["status"])
        values["category"] = Category(values["category"])
        values["findings"] = [Finding.from_dict(f) for f in values.get("findings", [])]
        values["files"] = [FetchedFile(**f) for f in values.get("files", [])]
        return cls(**values)
