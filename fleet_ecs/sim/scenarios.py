"""Named situations a simulated host can be in, as data.

A scenario is a set of overrides on top of the healthy baseline documents that
``fleet_ecs.sim.steps`` builds for a host: ``facts``, ``ecs`` and ``probe`` are deep-merged
into the step's JSON document (a dict merges key by key; any other value, ``None`` and lists
included, replaces). Strings in overrides may name ``${host}`` (the ECS host name the probe
was given), ``${ip}`` (the first address that name resolves to), ``${mpcmdrun}`` (the MpCmdRun
path the ecs step was given), ``${temp}`` (the login's temp folder) and ``${timeout_ms}`` (the
probe's network timeout in ms); ``string.Template`` fills them in. An override value may also
be a callable of those values (``ips`` is the list of addresses the name resolved to, ``lang``
the host's display language), for per-address lists such as ``tcp_all``, and ``Replace(x)``
replaces a mapping outright instead of merging into it (response headers). ``alternates``
gives the overrides of each extra URL the alternates step checks; by default they are the
probe's own target overrides, because a DNS filter or a firewall meets every Microsoft
endpoint alike. ``language`` localizes every text Windows localizes (``sim.localized``);
``server``, ``onboarded_geo`` and ``capture`` shape the host, its OnboardedInfo and netsh trace.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.errors import SimulatorError
from fleet_ecs.models import Category, Status, Transport
from fleet_ecs.sim import windows_text as wt

logger = logging.getLogger(__name__)

Overrides = Mapping[str, Any]
HOST_GEO = "host"  # Scenario.onboarded_geo: the geography of the host's own ECS URL


@dataclass(frozen=True)
class Replace:
    """An override value that replaces a mapping instead of merging into it (headers)."""

    value: Any


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
    # The alternates step's per-target overrides; None: the probe's target overrides, since a
    # host's situation (a DNS filter, a firewall) usually meets every Microsoft endpoint alike.
    alternates: Overrides | None = None
    language: str = "en"  # display language of every text Windows localizes (sim.localized)
    server: bool = False  # the host runs Windows Server whatever its name says
    # The OnboardedInfo geography: HOST_GEO (the host's own), another ("EU"), None (no field).
    onboarded_geo: str | None = HOST_GEO
    # netsh trace: None (works), "denied" (not elevated), "other-session" (someone else's runs)
    capture: str | None = None


_DNS_ERROR_ID = "DNS_ERROR_RCODE_NAME_ERROR,Microsoft.DnsClient.Commands.ResolveDnsName"
PROXY = "proxy.contoso.com:8080"
PROXY_URL = f"http://{PROXY}/"
_NO_RESPONSE = {
    "status": None,
    "status_description": None,
    "headers": Replace({}),
    "body_excerpt": None,
    "cert": None,
    "first_byte_ms": None,
}
_NO_MACHINE_RESPONSE = {
    "status": None,
    "status_text": None,
    "headers": Replace({}),
    "body_excerpt": None,
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


# --- situation fragments: probe overrides, composed below -------------------------------------
# Values may be callables of the step's placeholder values (``ips``: the addresses DNS gave,
# ``lang``: the host's display language); they are called when the document is built.

def _via_winhttp_proxy(lang: str, proxy: str = PROXY, user_proxy: str | None = PROXY_URL) -> dict:
    """``netsh winhttp`` names ``proxy``; the machine path goes through it, the admin's
    HttpWebRequest through ``user_proxy`` (the WinRM user's Internet Options proxy)."""
    return {
        "winhttp_proxy": {"output": wt.winhttp_proxy(proxy, lang=lang), "exit_code": 0},
        "machine": {"proxy": None, "proxy_source": "winhttp-default"},
        "http": {"proxy": user_proxy},
    }


def _tcp_failures(wsa: int, elapsed: int, message: Callable[[str], str]) -> Callable:
    def build(values: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"address": ip, "port": 443, "ok": False, "elapsed_ms": elapsed + i * 3,
                 "error": message(ip), "socket_error": wsa}
                for i, ip in enumerate(values["ips"][:4])]
    return build


def _first(build: Callable) -> Callable:
    def first(values: Mapping[str, Any]) -> dict[str, Any]:
        entries = build(values)
        return entries[0] if entries else {"address": None, "port": 443, "ok": False,
                                           "elapsed_ms": None, "error": None,
                                           "socket_error": None}
    return first


def _no_direct_tcp(lang: str) -> dict[str, Any]:
    """Every address times out (WSAETIMEDOUT after Windows' ~21 s): no TCP, so no handshake."""
    build = _tcp_failures(10060, 21034, lambda ip: wt.socket_timeout_message(ip, 443, lang))
    return {"tcp": _first(build), "tcp_all": build, "tls": None}


def _machine_error(code: int, lang: str, elapsed: int | str) -> dict[str, Any]:
    return {"machine": _merge(_NO_MACHINE_RESPONSE, {
        "elapsed_ms": elapsed, "error_code": code,
        "error_message": wt.winhttp_message(code, lang),
    })}


def _machine_status(status: int, text: str, headers: Mapping[str, str], body: str,
                    elapsed: int) -> dict[str, Any]:
    return {"machine": {"status": status, "status_text": text, "headers": Replace(dict(headers)),
                        "body_excerpt": body, "elapsed_ms": elapsed, "error_code": None,
                        "error_message": None}}


def _admin_error(status: str, message: str, elapsed: int | str,
                 inner: list[str] | None = None) -> dict[str, Any]:
    return {"http": _merge(_NO_RESPONSE, {
        "elapsed_ms": elapsed, "error_status": status, "error_message": message,
        "inner_errors": inner or [],
    })}


def _chain_fields(issuer: str, root: str, root_thumbprint: str) -> tuple[dict, dict]:
    """(tls.cert, http.cert) overrides for a chain ``CN=<host>`` <- ``issuer`` <- ``root``."""
    tls_cert = {
        "issuer": issuer,
        "thumbprint": wt.hex_id("inspected-leaf"),
        "not_before": "2025-06-13T00:00:00Z",
        "not_after": "2025-07-13T00:00:00Z",
        "chain": [
            {"subject": "CN=${host}", "thumbprint": wt.hex_id("inspected-leaf")},
            {"subject": issuer, "thumbprint": wt.hex_id("inspection-issuer", issuer)},
            {"subject": root, "thumbprint": root_thumbprint},
        ],
    }
    http_cert = {
        "issuer": issuer,
        "thumbprint": wt.hex_id("inspected-leaf"),
        "not_before": "2025-06-13T00:00:00Z",
        "not_after": "2025-07-13T00:00:00Z",
        "chain": ["CN=${host}", issuer, root],
        "chain_thumbprints": [c["thumbprint"] for c in tls_cert["chain"]],
    }
    return tls_cert, http_cert


def _dns_nxdomain(lang: str) -> dict[str, Any]:
    return {
        "dns": {
            "elapsed_ms": 31,
            "records": [],
            "error": wt.dns_name_error("${host}", lang),
            "error_id": _DNS_ERROR_ID,
            "native_code": 9003,
        },
        **_machine_error(12007, lang, 2204),
        **_admin_error("NameResolutionFailure", wt.name_unresolved_message("${host}", lang),
                       2270),
    }


def _proxy_auth(lang: str) -> dict[str, Any]:
    headers = {
        "Proxy-Authenticate": 'Negotiate, NTLM, Basic realm="Contoso Web Proxy"',
        "Proxy-Connection": "close",
        "Content-Type": "text/html",
        "Content-Length": "0",
    }
    return _merge(
        _via_winhttp_proxy(lang),
        _no_direct_tcp(lang),
        # WinHttpRequest without credentials hands the proxy's 407 back as the status.
        _machine_status(407, "Proxy Authentication Required", headers, "", 81),
        {"http": _merge(_NO_RESPONSE, {
            "elapsed_ms": 88,
            "status": 407,
            "status_description": "Proxy Authentication Required",
            "headers": Replace(headers),
            "body_excerpt": "",
            "error_status": "ProtocolError",
            "error_message": wt.proxy_auth_message(lang),
            "first_byte_ms": 86,
        })},
    )


def _direct_tcp_blocked(lang: str) -> dict[str, Any]:
    """No proxy anywhere and outbound 443 silently dropped."""
    return _merge(
        _no_direct_tcp(lang),
        # The probe gives WinHTTP the same timeout as everything else: it gives up first.
        _machine_error(12002, lang, "${timeout_ms}"),
        _admin_error("ConnectFailure", wt.connect_failure_message(lang), 21047,
                     [wt.socket_timeout_message("${ip}", 443, lang)]),
    )


def _contoso_inspection(lang: str) -> dict[str, Any]:
    tls_cert, http_cert = _chain_fields(wt.CONTOSO_ISSUER, wt.CONTOSO_ROOT,
                                        wt.CONTOSO_ROOT_THUMBPRINT)
    return _merge(_via_winhttp_proxy(lang), {
        # A transparent gateway re-signs direct 443 too, so the direct handshake sees it.
        "tls": {"cert": tls_cert},
        "http": {"headers": {"Via": "1.1 proxy.contoso.com (Contoso Web Gateway)"},
                 "cert": http_cert},
    })


_USER_PROXY_IP = "198.51.100.77"
_USER_PROXY_URL = "http://userproxy.contoso.com:3128/"
_OLD_PROXY = "proxy-old.contoso.com:8080"
# TcpClient to a sinkhole answer of 0.0.0.0 fails at once with WSAEADDRNOTAVAIL.
_SINKHOLE_TCP = _tcp_failures(10049, 1, lambda ip: wt.socket_address_invalid_message(ip, 443))
_TLS_RESET = "Authentication failed because the remote party has closed the transport stream."
_BLOCK_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "close",
}
_UNAVAILABLE_HEADERS = {"Content-Type": "text/html", "Retry-After": "120"}
_UNAVAILABLE_BODY = (
    "<h2>Our services aren't available right now</h2>"
    "<p>We're working to restore all services as soon as possible. Please check back soon.</p>"
)

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
        # An onboarding package without a geography: nothing to fall back on.
        onboarded_geo=None,
    ),
    Scenario(
        "dns-filter-nxdomain",
        "the DNS filter answers NXDOMAIN for the ECS name",
        Category.DNS_FAILURE,
        Status.FAIL,
        probe=_dns_nxdomain("en"),
    ),
    Scenario(
        "proxy-requires-authentication",
        "egress only through a proxy that demands user authentication",
        Category.PROXY_AUTH_REQUIRED,
        Status.FAIL,
        probe=_proxy_auth("en"),
    ),
    Scenario(
        "firewall-drops-443",
        "a firewall silently drops outbound 443 and there is no proxy",
        Category.TCP_BLOCKED,
        Status.FAIL,
        probe=_direct_tcp_blocked("en"),
    ),
    Scenario(
        "ecs-not-answering",
        "the ECS front end accepts the connection but never answers",
        Category.ECS_TIMEOUT,
        Status.FAIL,
        # TCP and the handshake succeed over Microsoft's chain; no request gets an answer.
        probe=_merge(
            _machine_error(12002, "en", "${timeout_ms}"),
            _admin_error("Timeout", "The operation has timed out", "${timeout_ms}"),
        ),
    ),
    Scenario(
        "trusted-tls-inspection",
        "a proxy re-signs TLS with a corporate CA the host trusts",
        Category.TLS_INTERCEPTED,
        Status.FAIL,
        probe=_contoso_inspection("en"),
    ),
    Scenario(
        "tls-handshake-reset",
        "the TLS handshake is reset before a certificate arrives",
        Category.TLS_FAILURE,
        Status.FAIL,
        probe=_merge(
            {"tls": {"ok": False, "protocol": None, "elapsed_ms": 141, "cert": None,
                     "error": _TLS_RESET}},
            _machine_error(12175, "en", 139),
            _admin_error("SecureChannelFailure",
                         "The request was aborted: Could not create SSL/TLS secure channel.", 143),
        ),
    ),
    Scenario(
        "proxy-block-page",
        "the proxy refuses the ECS site with its block page",
        Category.HTTP_ERROR,
        Status.FAIL,
        probe=_merge(
            _via_winhttp_proxy("en"),
            _no_direct_tcp("en"),
            # The proxy refuses the CONNECT itself: no certificate ever arrives.
            _machine_status(403, "Forbidden", _BLOCK_HEADERS, wt.proxy_block_page("${host}"), 61),
            {"http": _merge(_NO_RESPONSE, {
                "elapsed_ms": 64,
                "status": 403,
                "status_description": "Forbidden",
                "headers": Replace(_BLOCK_HEADERS),
                "body_excerpt": wt.proxy_block_page("${host}"),
                "error_status": "ProtocolError",
                "error_message": "The remote server returned an error: (403) Forbidden.",
                "first_byte_ms": 62,
            })},
        ),
    ),
    Scenario(
        "ecs-service-error",
        "ECS is reached over Microsoft's chain but answers 503",
        Category.HTTP_ERROR,
        Status.WARN,
        probe=_merge(
            _machine_status(503, "Service Unavailable", _UNAVAILABLE_HEADERS,
                            _UNAVAILABLE_BODY, 233),
            {"http": {
                "status": 503,
                "status_description": "Service Unavailable",
                "headers": Replace(_UNAVAILABLE_HEADERS),
                "body_excerpt": _UNAVAILABLE_BODY,
                "error_status": "ProtocolError",
                "error_message": "The remote server returned an error: (503) Server Unavailable.",
            }},
        ),
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
    # Defender's own state: a network check cannot tell these apart from a blocked network.
    Scenario(
        "defender-service-stopped",
        "the Microsoft Defender Antivirus service is stopped",
        Category.DEFENDER_NOT_ACTIVE,
        Status.FAIL,
        facts={
            "windefend_service": "Stopped",
            "mp_status": {"AMRunningMode": "Not running", "RealTimeProtectionEnabled": False},
        },
        ecs={"exit_code": 2147550906, "output": wt.mpcmdrun_service_stopped("${temp}")},
    ),
    Scenario(
        "passive-mode-ecs-reachable",
        "Defender is in passive mode beside another antivirus; ECS is reachable",
        Category.OK,
        Status.WARN,
        facts={
            "mp_status": {"AMRunningMode": "Passive Mode"},
            "defender_policy": {"ForceDefenderPassiveMode": 1},
        },
    ),
    Scenario(
        "edr-block-mode-normal",
        "EDR in block mode with no passive-mode setting: Defender runs normally",
        Category.OK,
        Status.OK,
        facts={"mp_status": {"AMRunningMode": "EDR Block Mode"}},
    ),
    Scenario(
        "core-service-stopped",
        "the Microsoft Defender Core service (MDCoreSvc) is stopped",
        Category.CORE_SERVICE_STOPPED,
        Status.FAIL,
        facts={"mdcoresvc_service": "Stopped"},
    ),
    Scenario(
        "ecs-disabled-by-policy",
        "a policy sets DisableCoreServiceECSIntegration: ECS is off on purpose",
        Category.ECS_DISABLED_BY_POLICY,
        Status.FAIL,
        facts={"defender_policy": {"DisableCoreServiceECSIntegration": 1}},
    ),
    Scenario(
        "not-onboarded",
        "the device was never onboarded to Defender for Endpoint",
        Category.NOT_ONBOARDED,
        Status.FAIL,
        facts={"onboarding_state": 0, "sense_service": "Stopped", "onboarded_info": None},
    ),
    Scenario(
        "platform-before-core-service",
        "a server still on platform 4.18.24090.11, before servers got the Core service",
        Category.PLATFORM_TOO_OLD,
        Status.FAIL,
        server=True,
        facts={
            "defender_install_location": f"{wt.PLATFORM_ROOT}\\4.18.24090.11-0\\",
            "platform_folders": ["4.18.2201.10-0", "4.18.2201.9-0", "4.18.2304.8-0",
                                 "4.18.24090.11-0"],
            "mdcoresvc_service": None,
            "mp_status": {"AMProductVersion": "4.18.24090.11",
                          "AMServiceVersion": "4.18.24090.11",
                          "AMEngineVersion": "1.1.24090.11"},
        },
        ecs={
            "exit_code": 2147942487,
            "output": wt.mpcmdrun_unknown_option("${temp}"),
            "elapsed_ms": 398,
        },
    ),
    Scenario(
        "ecs-switch-unknown-geo-known",
        "MpCmdRun predates -DisplayECSConnection, but the onboarding names the EU geography",
        Category.OK,
        Status.WARN,
        onboarded_geo="EU",
        ecs={
            "exit_code": 2147942487,
            "output": wt.mpcmdrun_unknown_option("${temp}"),
            "elapsed_ms": 405,
        },
    ),
    # The network, as seen by each mechanism.
    Scenario(
        "dns-sinkhole",
        "the DNS filter answers 0.0.0.0 for Microsoft's names",
        Category.DNS_SINKHOLED,
        Status.FAIL,
        probe=_merge(
            {"dns": {"elapsed_ms": 9, "records": [
                {"Name": "${host}", "Type": "A", "TTL": 10, "IPAddress": "0.0.0.0"}]}},
            {"tcp": _first(_SINKHOLE_TCP), "tcp_all": _SINKHOLE_TCP, "tls": None},
            _machine_error(12029, "en", 4),
            _admin_error("ConnectFailure", wt.connect_failure_message("en"), 6,
                         [wt.socket_address_invalid_message("0.0.0.0", 443)]),
        ),
    ),
    Scenario(
        "firewall-answers-443",
        "a firewall completes TCP on 443 itself and resets the TLS handshake",
        Category.TLS_FAILURE,
        Status.FAIL,
        probe=_merge(
            {"tls": {"ok": False, "protocol": None, "elapsed_ms": 12, "cert": None,
                     "error": _TLS_RESET}},
            _machine_error(12175, "en", 15),
            _admin_error("SendFailure", "The underlying connection was closed: An unexpected "
                         "error occurred on a send.", 17, [_TLS_RESET]),
        ),
    ),
    Scenario(
        "regional-endpoint-blocked",
        "the firewall blocks the regional mdav endpoint; ecs.office.com is allowed",
        Category.ECS_PARTIALLY_BLOCKED,
        Status.FAIL,
        probe=_direct_tcp_blocked("en"),
        alternates={},  # every other endpoint answers 200 over Microsoft's chain
    ),
    Scenario(
        "user-proxy-only",
        "the WinRM user's Internet Options proxy is down; WinHTTP goes direct and works",
        Category.PROXY_PATH_MISMATCH,
        Status.WARN,
        probe=_merge(
            {"http": {"proxy": _USER_PROXY_URL}},
            _admin_error("ConnectFailure", wt.connect_failure_message("en"), 1012,
                         [wt.socket_refused_message(_USER_PROXY_IP, 3128)]),
        ),
    ),
    Scenario(
        "winhttp-proxy-blocks-system",
        "the WinHTTP proxy (machine path) refuses connections; the user's proxy works",
        Category.PROXY_PATH_MISMATCH,
        Status.FAIL,
        probe=_merge(
            _via_winhttp_proxy("en", proxy=_OLD_PROXY, user_proxy=PROXY_URL),
            _no_direct_tcp("en"),
            _machine_error(12029, "en", 1031),
        ),
    ),
    Scenario(
        "not-elevated-for-capture",
        "the scan's token is not elevated: netsh trace refuses to start",
        Category.PROBE_INCOMPLETE,
        Status.FAIL,
        facts={"is_elevated": False},
        capture="denied",
    ),
    Scenario(
        "someone-elses-trace-running",
        "an administrator's own netsh trace is running; the probe leaves it alone",
        Category.OK,
        Status.WARN,  # the diagnosis reports the other session as a warn finding
        capture="other-session",
    ),
    # Localized Windows: the same situations, every localizable text in another language.
    Scenario(
        "german-windows-healthy",
        "a healthy German Windows host",
        Category.OK,
        Status.OK,
        language="de",
    ),
    Scenario(
        "french-windows-proxy-auth",
        "a French Windows host behind a proxy that demands authentication",
        Category.PROXY_AUTH_REQUIRED,
        Status.FAIL,
        language="fr",
        probe=_proxy_auth("fr"),
    ),
    Scenario(
        "spanish-windows-dns-failure",
        "a Spanish Windows host whose DNS filter answers NXDOMAIN",
        Category.DNS_FAILURE,
        Status.FAIL,
        language="es",
        probe=_dns_nxdomain("es"),
    ),
    Scenario(
        "japanese-windows-healthy",
        "a healthy Japanese Windows host",
        Category.OK,
        Status.OK,
        language="ja",
    ),
    Scenario(
        "chinese-windows-direct-tcp-blocked",
        "a Chinese Windows host with no proxy and outbound 443 dropped",
        Category.TCP_BLOCKED,
        Status.FAIL,
        language="zh",
        probe=_direct_tcp_blocked("zh"),
    ),
    # The scanning machine's own fault: the inventory asks for client-certificate auth but
    # names no certificate. The controller must say so once, without contacting the host.
    Scenario(
        "client-certificate-not-configured",
        "the inventory asks for certificate auth but names no client certificate",
        Category.CLIENT_CONFIG_ERROR,
        Status.FAIL,
        client=ClientHints(auth="certificate", transport=Transport.HTTPS, encryption="auto",
                           use_fleet_ca=True),
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
    # Defender's state, the network per mechanism, the capture (issue 4).
    "defender-service-stopped",
    "passive-mode-ecs-reachable",
    "edr-block-mode-normal",
    "core-service-stopped",
    "ecs-disabled-by-policy",
    "not-onboarded",
    "platform-before-core-service",
    "ecs-switch-unknown-geo-known",
    "dns-sinkhole",
    "firewall-answers-443",
    "regional-endpoint-blocked",
    "user-proxy-only",
    "winhttp-proxy-blocks-system",
    "not-elevated-for-capture",
    "someone-elses-trace-running",
    # Localized Windows.
    "german-windows-healthy",
    "french-windows-proxy-auth",
    "spanish-windows-dns-failure",
    "japanese-windows-healthy",
    "chinese-windows-direct-tcp-blocked",
    "client-certificate-not-configured",
]


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise SimulatorError(f"unknown simulator scenario {name!r}; known: {known}") from None
