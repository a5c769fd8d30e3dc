"""Named situations a simulated host can be in, as data.

A scenario is a set of overrides on top of the healthy baseline documents that
``fleet_ecs.sim.steps`` builds for a host: ``facts``, ``ecs`` and ``probe`` are deep-merged
into the step's JSON document (a dict merges key by key; any other value, ``None`` and lists
included, replaces). Strings in overrides may name ``${host}`` (the ECS host name the probe
was given), ``${ip}`` (the first address that name resolves to), ``${mpcmdrun}`` (the MpCmdRun
path the ecs step was given), ``${temp}`` (the login's temp folder) and ``${timeout_ms}`` (the
probe's network timeout in ms); ``string.Template`` fills them in.

Beyond the endpoint's documents, a scenario may describe WinRM itself: which auth methods
the listener offers (``auth_methods``), an HTTPS certificate (``tls``), a misbehaviour of the
service, the listener or the network path (``fault``) and slow replies
(``response_delay``). ``client`` says how a client must connect to such a host (auth,
transport, encryption, fleet CA), which is what ``fleet.demo_specs`` writes into HostSpecs.

Names describe the situation, not the verdict; ``expected`` records the category the
controller should reach, for tests. ``DEMO_ORDER`` fixes which scenario demo host ``i`` gets
(``DEMO_ORDER[i % len(DEMO_ORDER)]``): later work appends, never reorders.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import Category, Status, Transport
from fleet_ecs.sim import windows_text as wt

logger = logging.getLogger(__name__)

Overrides = Mapping[str, Any]


@dataclass(frozen=True)
class ClientHints:
    """How a client must connect to a host in this scenario (what ``demo_specs`` writes)."""

    auth: str = "basic"
    transport: Transport = Transport.HTTP
    encryption: str = "never"  # pypsrp ``encryption``: never, auto, always
    use_fleet_ca: bool = False  # cert_validation = the fleet's CA bundle (HTTPS only)


HTTPS_BASIC = ClientHints(transport=Transport.HTTPS, use_fleet_ca=True)
NTLM_SEALED = ClientHints(auth="ntlm", encryption="auto")


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    expected: Category
    expected_status: Status
    listening: bool = True  # False: nothing answers at the host's address
    accepts_demo_password: bool = True
    delay: float = 0.0  # seconds each step takes before it answers
    client: ClientHints = field(default_factory=ClientHints)
    # Methods the listener offers, Windows' names: negotiate (NTLM here), kerberos, basic.
    auth_methods: tuple[str, ...] = ("negotiate", "basic")
    tls: str | None = None  # certificate kind (fleet_ecs.sim.tls.KINDS); None: plain HTTP
    # A misbehaviour of the service (shells.SERVICE_FAULTS), of the listener or the path to it
    # (listener.NETWORK_FAULTS), or "syn-drop" (connections never complete).
    fault: str | None = None
    response_delay: float = 0.0  # seconds every HTTP reply is held back (vars.sim_delay wins)
    facts: Overrides = field(default_factory=dict)
    facts_only: tuple[str, ...] | None = None  # the facts document keeps only these keys
    ecs: Overrides = field(default_factory=dict)
    probe: Overrides = field(default_factory=dict)


_DNS_ERROR_ID = "DNS_ERROR_RCODE_NAME_ERROR,Microsoft.DnsClient.Commands.ResolveDnsName"
PROXY_URL = "http://proxy.contoso.com:8080/"
_PROXY_TEXT = wt.winhttp_proxy("proxy.contoso.com:8080")
_VIA_PROXY = {
    "winhttp_proxy": {"output": _PROXY_TEXT, "exit_code": 0},
    "http": {"proxy": PROXY_URL},
}
_DIRECT_TCP_TIMES_OUT = {
    "ok": False,
    "elapsed_ms": 21034,
    "error": wt.socket_timeout_message("${ip}", 443),
    "socket_error": 10060,
}
_NO_RESPONSE = {
    "status": None,
    "status_description": None,
    "headers": {},
    "body_excerpt": None,
    "cert": None,
}


def _merge(*layers: Overrides) -> dict[str, Any]:
    """Deep-merge override layers (later wins); used to compose the data below."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = _merge(out[key], value)
            else:
                out[key] = value
    return out


_ALL = (
    Scenario("healthy", "Defender reaches ECS directly", Category.OK, Status.OK),
    Scenario(
        "winrm-service-stopped",
        "WinRM is stopped: nothing listens on the host's address",
        Category.WINRM_UNREACHABLE,
        Status.FAIL,
        listening=False,
    ),
    Scenario(
        "expired-service-password",
        "the scan account's password was changed on the host; every login is refused",
        Category.WINRM_AUTH_FAILED,
        Status.FAIL,
        accepts_demo_password=False,
    ),
    Scenario(
        "standard-user-account",
        "the scan account is not a local administrator",
        Category.INSUFFICIENT_PRIVILEGE,
        Status.FAIL,
        facts={"is_admin": False},
    ),
    Scenario(
        "legacy-powershell-4",
        "Windows PowerShell 4.0 (WMF 4) host",
        Category.POWERSHELL_UNSUPPORTED,
        Status.FAIL,
        facts={"ps_version": "4.0"},
        facts_only=("step", "schema", "ps_version"),
    ),
    Scenario(
        "defender-not-installed",
        "the Microsoft Defender feature is not installed",
        Category.DEFENDER_MISSING,
        Status.FAIL,
        facts={
            "defender_install_location": None,
            "platform_root": None,
            "platform_folders": [],
            "windefend_service": None,
            "mdcoresvc_service": None,
            "mp_status": None,
            "mp_status_error": wt.mp_status_missing_error(),
        },
        ecs={
            "exists": False,
            "signature": None,
            "ran": False,
            "exit_code": None,
            "output": None,
            "elapsed_ms": None,
        },
    ),
    Scenario(
        "tampered-mpcmdrun",
        "MpCmdRun.exe no longer matches its Authenticode signature",
        Category.DEFENDER_BINARY_UNTRUSTED,
        Status.FAIL,
        ecs={
            "signature": {
                "status": "HashMismatch",
                "status_message": wt.signature_hash_mismatch_message("${mpcmdrun}"),
            },
            "ran": False,
            "exit_code": None,
            "output": None,
            "elapsed_ms": None,
        },
    ),
    Scenario(
        "old-platform-without-ecs-switch",
        "the Defender platform predates MpCmdRun -DisplayECSConnection",
        Category.ECS_URL_UNKNOWN,
        Status.FAIL,
        ecs={
            "exit_code": 2147942487,
            "output": wt.mpcmdrun_unknown_option("${temp}"),
            "elapsed_ms": 412,
        },
    ),
    Scenario(
        "dns-filter-nxdomain",
        "the DNS filter answers NXDOMAIN for the ECS name",
        Category.DNS_FAILURE,
        Status.FAIL,
        probe={
            "dns": {
                "elapsed_ms": 31,
                "records": [],
                "error": wt.dns_name_error("${host}"),
                "error_id": _DNS_ERROR_ID,
                "native_code": 9003,
            },
            "tcp": {"address": None, "ok": False, "elapsed_ms": None, "error": None,
                    "socket_error": None},
            "http": _merge(_NO_RESPONSE, {
                "elapsed_ms": 2270,
                "error_status": "NameResolutionFailure",
                "error_message": "The remote name could not be resolved: '${host}'",
                "inner_errors": [],
            }),
        },
    ),
    Scenario(
        "proxy-requires-authentication",
        "egress only through a proxy that demands user authentication",
        Category.PROXY_AUTH_REQUIRED,
        Status.FAIL,
        probe=_merge(_VIA_PROXY, {
            "tcp": _DIRECT_TCP_TIMES_OUT,
            "http": _merge(_NO_RESPONSE, {
                "elapsed_ms": 88,
                "status": 407,
                "status_description": "Proxy Authentication Required",
                "headers": {
                    "Proxy-Authenticate": 'Negotiate, NTLM, Basic realm="Contoso Web Proxy"',
                    "Proxy-Connection": "close",
                    "Content-Type": "text/html",
                    "Content-Length": "0",
                },
                "body_excerpt": "",
                "error_status": "ProtocolError",
                "error_message": (
                    "The remote server returned an error: (407) Proxy Authentication Required."
                ),
            }),
        }),
    ),
    Scenario(
        "firewall-drops-443",
        "a firewall silently drops outbound 443 and there is no proxy",
        Category.TCP_BLOCKED,
        Status.FAIL,
        probe={
            "tcp": _DIRECT_TCP_TIMES_OUT,
            "http": _merge(_NO_RESPONSE, {
                "elapsed_ms": 21047,
                "error_status": "ConnectFailure",
                "error_message": "Unable to connect to the remote server",
                "inner_errors": [wt.socket_timeout_message("${ip}", 443)],
            }),
        },
    ),
    Scenario(
        "ecs-not-answering",
        "the ECS front end accepts the connection but never answers",
        Category.ECS_TIMEOUT,
        Status.FAIL,
        probe={
            "http": _merge(_NO_RESPONSE, {
                "elapsed_ms": "${timeout_ms}",
                "error_status": "Timeout",
                "error_message": "The operation has timed out",
                "inner_errors": [],
            }),
        },
    ),
    Scenario(
        "trusted-tls-inspection",
        "a proxy re-signs TLS with a corporate CA the host trusts",
        Category.TLS_INTERCEPTED,
        Status.FAIL,
        probe=_merge(_VIA_PROXY, {
            "http": {
                "headers": {"Via": "1.1 proxy.contoso.com (Contoso Web Gateway)"},
                "cert": {
                    "issuer": "CN=Contoso Outbound Inspection CA, O=Contoso Ltd",
                    "chain": [
                        "CN=${host}",
                        "CN=Contoso Outbound Inspection CA, O=Contoso Ltd",
                        "CN=Contoso Root CA 2021, O=Contoso Ltd",
                    ],
                    "not_before": "2025-06-13T00:00:00Z",
                    "not_after": "2025-07-13T00:00:00Z",
                },
            },
        }),
    ),
    Scenario(
        "tls-handshake-reset",
        "the TLS handshake is reset before a certificate arrives",
        Category.TLS_FAILURE,
        Status.FAIL,
        probe={
            "http": _merge(_NO_RESPONSE, {
                "elapsed_ms": 143,
                "error_status": "SecureChannelFailure",
                "error_message": (
                    "The request was aborted: Could not create SSL/TLS secure channel."
                ),
                "inner_errors": [],
            }),
        },
    ),
    Scenario(
        "proxy-block-page",
        "the proxy refuses the ECS site with its block page",
        Category.HTTP_ERROR,
        Status.FAIL,
        probe=_merge(_VIA_PROXY, {
            "http": _merge(_NO_RESPONSE, {
                "elapsed_ms": 64,
                "status": 403,
                "status_description": "Forbidden",
                "headers": {
                    "Content-Type": "text/html; charset=utf-8",
                    "Cache-Control": "no-cache",
                    "Connection": "close",
                },
                "body_excerpt": wt.proxy_block_page("${host}"),
                "error_status": "ProtocolError",
                "error_message": "The remote server returned an error: (403) Forbidden.",
            }),
        }),
    ),
    Scenario(
        "ecs-service-error",
        "ECS is reached over Microsoft's chain but answers 503",
        Category.HTTP_ERROR,
        Status.WARN,
        probe={
            "http": {
                "status": 503,
                "status_description": "Service Unavailable",
                "headers": {"Content-Type": "text/html", "Retry-After": "120"},
                "body_excerpt": (
                    "<h2>Our services aren't available right now</h2>"
                    "<p>We're working to restore all services as soon as possible. "
                    "Please check back soon.</p>"
                ),
                "error_status": "ProtocolError",
                "error_message": "The remote server returned an error: (503) Server Unavailable.",
            },
        },
    ),
    Scenario(
        "slow-endpoint",
        "a healthy host that takes its time with every step",
        Category.OK,
        Status.OK,
        delay=1.5,
    ),
    Scenario(
        "ntlm-healthy",
        "a healthy host reached with NTLM and WinRM message encryption over HTTP",
        Category.OK,
        Status.OK,
        client=NTLM_SEALED,
        auth_methods=("negotiate", "kerberos"),
    ),
    Scenario(
        "https-healthy",
        "a healthy host reached with Basic over HTTPS, certificate from the fleet CA",
        Category.OK,
        Status.OK,
        client=HTTPS_BASIC,
        tls="trusted",
    ),
    Scenario(
        "https-untrusted-certificate",
        "the HTTPS listener presents a self-signed certificate",
        Category.WINRM_CERT_INVALID,
        Status.FAIL,
        client=HTTPS_BASIC,
        tls="untrusted",
    ),
    Scenario(
        "https-expired-certificate",
        "the HTTPS listener's certificate expired a month ago",
        Category.WINRM_CERT_INVALID,
        Status.FAIL,
        client=HTTPS_BASIC,
        tls="expired",
    ),
    Scenario(
        "https-wrong-name-certificate",
        "the HTTPS listener's certificate names another computer",
        Category.WINRM_CERT_INVALID,
        Status.FAIL,
        client=HTTPS_BASIC,
        tls="wrong-name",
    ),
    Scenario(
        "shell-quota-exceeded",
        "leaked shells fill the account's MaxShellsPerUser quota; Create is refused",
        Category.WINRM_QUOTA,
        Status.FAIL,
        fault="shell-quota",
    ),
    Scenario(
        "operations-quota-exceeded",
        "the account's MaxConcurrentOperationsPerUser is used up; Command is refused",
        Category.WINRM_QUOTA,
        Status.FAIL,
        fault="operations-quota",
    ),
    Scenario(
        "shell-lost-once",
        "the first shell dies under a running command; a new shell works",
        Category.OK,
        Status.OK,
        fault="shell-lost-once",
    ),
    Scenario(
        "access-denied",
        "the account logs on but may not use the PowerShell endpoint",
        Category.INSUFFICIENT_PRIVILEGE,
        Status.FAIL,
        fault="access-denied",
    ),
    Scenario(
        "listener-never-answers",
        "something accepts connections on the WinRM port and never answers",
        Category.WINRM_TIMEOUT,
        Status.FAIL,
        fault="never-answer",
    ),
    Scenario(
        "connection-reset-mid-response",
        "after the pool opens, a reply is cut half-way by a TCP reset",
        Category.WINRM_CONNECTION_RESET,
        Status.FAIL,
        fault="reset-mid-response",
    ),
    Scenario(
        "syn-dropped",
        "a firewall drops the connection attempts: connect times out",
        Category.WINRM_UNREACHABLE,
        Status.FAIL,
        fault="syn-drop",
    ),
    Scenario(
        "very-slow-responses",
        "a healthy host whose every reply takes two seconds",
        Category.OK,
        Status.OK,
        response_delay=2.0,
    ),
    Scenario(
        "malformed-xml",
        "a Receive reply that is not well-formed XML",
        Category.WINRM_PROTOCOL_ERROR,
        Status.FAIL,
        fault="malformed-receive",
    ),
    Scenario(
        "oversized-response",
        "a Receive reply of 8 MB, far over the client's MaxEnvelopeSize",
        Category.WINRM_PROTOCOL_ERROR,
        Status.FAIL,
        fault="oversized-receive",
    ),
    Scenario(
        "http-500-plain",
        "every message is refused with HTTP 500 and no SOAP body",
        Category.WINRM_PROTOCOL_ERROR,
        Status.FAIL,
        fault="http-500-plain",
    ),
    Scenario(
        "session-configuration-missing",
        "the Microsoft.PowerShell session configuration is not registered",
        Category.WINRM_ENDPOINT_NOT_FOUND,
        Status.FAIL,
        fault="configuration-missing",
    ),
    Scenario(
        "auth-method-not-offered",
        "the listener offers only Negotiate and Kerberos; Basic is refused",
        Category.WINRM_AUTH_METHOD_UNAVAILABLE,
        Status.FAIL,
        auth_methods=("negotiate", "kerberos"),
    ),
    Scenario(
        "proxy-error-page",
        "an HTTP proxy answers in WinRM's place with its error page",
        Category.WINRM_PROXY_ERROR,
        Status.FAIL,
        fault="proxy-page",
    ),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}

DEMO_ORDER: list[str] = [
    "healthy",
    "winrm-service-stopped",
    "expired-service-password",
    "standard-user-account",
    "legacy-powershell-4",
    "defender-not-installed",
    "tampered-mpcmdrun",
    "old-platform-without-ecs-switch",
    "dns-filter-nxdomain",
    "proxy-requires-authentication",
    "firewall-drops-443",
    "ecs-not-answering",
    "trusted-tls-inspection",
    "tls-handshake-reset",
    "proxy-block-page",
    "ecs-service-error",
    "slow-endpoint",
    # WinRM itself: authentication, transport and service faults.
    "ntlm-healthy",
    "https-healthy",
    "https-untrusted-certificate",
    "https-expired-certificate",
    "https-wrong-name-certificate",
    "shell-quota-exceeded",
    "operations-quota-exceeded",
    "shell-lost-once",
    "access-denied",
    "listener-never-answers",
    "connection-reset-mid-response",
    "syn-dropped",
    "very-slow-responses",
    "malformed-xml",
    "oversized-response",
    "http-500-plain",
    "session-configuration-missing",
    "auth-method-not-offered",
    "proxy-error-page",
]


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise SimulatorError(f"unknown simulator scenario {name!r}; known: {known}") from None
