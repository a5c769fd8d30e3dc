"""From one host's raw facts to a verdict: status, one category, evidence, findings and a hint.

Rules are checked in ``Category`` precedence order; the first that applies wins. Everything else
noteworthy becomes a finding. Verdicts rest on codes and enumerations Windows reports
(``WebExceptionStatus`` names, HTTP status, WSA socket codes, DNS native codes), never on the
English text of a message: messages are localized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.models import Category, Diagnosis, Finding, Status
from fleet_ecs.probe import parse

# Root CAs of the chains Microsoft's Defender and ECS front ends present. Anything else at the
# top of the chain means someone re-signed the traffic (TLS inspection), which Defender's
# certificate pinning rejects even when the machine trusts that root.
# GAP: matched by subject name only, because the probe reports chain subjects; a hostile
# inspection CA could copy a subject. Comparing root thumbprints needs the probe to report
# them (the deeper certificate work is planned with the Defender-path probe).
MICROSOFT_ROOTS = (
    "Microsoft Root Certificate Authority 2011",
    "Microsoft RSA Root Certificate Authority 2017",
    "Microsoft ECC Root Certificate Authority 2017",
    "DigiCert Global Root G2",
    "DigiCert Global Root G3",
    "DigiCert Global Root CA",
    "Baltimore CyberTrust Root",
)

HINTS: dict[Category, str] = {
    Category.WINRM_UNREACHABLE: "WinRM does not accept connections: check the WinRM service, "
    "its listener (winrm enumerate winrm/config/listener) and the firewall between us and the host.",
    Category.WINRM_AUTH_FAILED: "The account was rejected: check the credential reference, the "
    "account's password and that the chosen auth method is enabled on the host.",
    Category.INSUFFICIENT_PRIVILEGE: "The account is not a local administrator on this host: "
    "add it to Administrators (or use a JEA endpoint) so the probe can read Defender state.",
    Category.POWERSHELL_UNSUPPORTED: "Windows PowerShell 5.1 is required: install Windows "
    "Management Framework 5.1 on this host.",
    Category.DEFENDER_MISSING: "Microsoft Defender Antivirus is not installed or its platform "
    "is missing: check the Defender feature and onboarding on this host.",
    Category.DEFENDER_BINARY_UNTRUSTED: "MpCmdRun.exe is not validly signed by Microsoft, so it "
    "was not run: treat the host as possibly tampered and investigate before repairing Defender.",
    Category.ECS_URL_UNKNOWN: "MpCmdRun did not report an ECS URL: update the Defender platform "
    "(the switch needs a recent platform) and check that the Defender core service runs.",
    Category.DNS_FAILURE: "The ECS host name does not resolve: check the DNS servers and any DNS "
    "filtering for *.endpoint.security.microsoft.com and ecs.office.com.",
    Category.PROXY_AUTH_REQUIRED: "The proxy demands authentication, which Defender (SYSTEM) "
    "cannot give: exempt the ECS URLs from proxy authentication.",
    Category.TCP_BLOCKED: "No TCP connection to ECS on port 443 and no proxy is configured: "
    "allow outbound 443 to the ECS host or configure the WinHTTP proxy.",
    Category.ECS_TIMEOUT: "ECS did not answer in time: look for packet loss or a slow proxy "
    "(the fetched capture shows where the request stalls).",
    Category.TLS_INTERCEPTED: "TLS to ECS is re-signed by a non-Microsoft CA: exclude the ECS "
    "and Defender URLs from TLS inspection (Defender pins its certificates).",
    Category.TLS_FAILURE: "The TLS handshake with ECS failed: check TLS 1.2 support and cipher "
    "policy on the host, and any device that resets TLS connections.",
    Category.HTTP_ERROR: "ECS or something in front of it answered with an HTTP error: read the "
    "status and body excerpt in the host report.",
    Category.OK: "Defender can reach its ECS configuration service from this host.",
    Category.WINRM_ERROR: "WinRM answered but the session failed: see the error for the "
    "WS-Management fault or HTTP status.",
    Category.PROBE_ERROR: "The probe could not complete on this host: see the error and the "
    "failing step.",
    Category.DEADLINE_EXCEEDED: "The host did not finish within its deadline: rerun with a "
    "longer --deadline or check the host's load.",
    Category.CANCELLED: "The scan was stopped before this host finished: rerun the scan.",
    Category.WINRM_TIMEOUT: "WinRM accepted the connection but did not answer: the WinRM "
    "service may be hung, or a device in the path swallows the traffic; restart WinRM.",
    Category.WINRM_CERT_INVALID: "The WinRM listener's HTTPS certificate failed validation: "
    "renew it or give the inventory the issuing CA (cert_validation: path/to/ca.pem).",
    Category.WINRM_QUOTA: "Windows refused a new shell or operation (WinRM quota): close "
    "leaked sessions (they expire after IdleTimeout) or raise MaxShellsPerUser.",
    Category.WINRM_PROTOCOL_ERROR: "WinRM's reply could not be understood: check for a device "
    "rewriting the traffic and the WinRM service's health.",
    Category.WINRM_CONNECTION_RESET: "The host dropped the WinRM connection mid-exchange: "
    "look for firewalls or IPS devices resetting long connections, or a WinRM restart.",
    Category.WINRM_ENDPOINT_NOT_FOUND: "No such WinRM endpoint: check the port and path, and "
    "that the session configuration (configuration_name) is registered on the host.",
    Category.WINRM_AUTH_METHOD_UNAVAILABLE: "The host does not offer this authentication "
    "method: pick one it offers (auth:) or enable it (winrm set winrm/config/service/auth).",
    Category.WINRM_PROXY_ERROR: "An HTTP proxy answered instead of WinRM: exempt WinRM traffic "
    "from the proxy (no proxy: setting, or the proxy's bypass list).",
    Category.CLIENT_CONFIG_ERROR: "The scanning machine is not set up for this auth method: "
    "install the missing library or get a Kerberos ticket or keytab, then rerun.",
}

# Local accounts in Administrators lose their admin token over the network unless
# LocalAccountTokenFilterPolicy is set, and WinRM then answers 401 as for a wrong password.
UAC_HINT = ("For a local account in Administrators, remote UAC filtering also gives 401: set "
            "LocalAccountTokenFilterPolicy=1 on the host, or use a domain account.")

_SUCCESS = range(200, 300)


@dataclass
class Verdict:
    """A diagnosis plus the summary values the CSV shows for every host."""

    diagnosis: Diagnosis
    ecs_url: str | None = None
    ecs_urls: list[str] = field(default_factory=list)
    http_status: int | None = None
    dns_ok: bool | None = None
    tcp_ok: bool | None = None
    proxy: str | None = None


def failure(category: Category, message: str, evidence: list[str] | None = None) -> Diagnosis:
    """A diagnosis for a host whose scan stopped before the probe could tell more."""
    return Diagnosis(Status.FAIL, category, HINTS[category], evidence or [message], [])


def diagnose(docs: dict[str, dict[str, Any]]) -> Verdict:
    """Decide a host's verdict from its step documents (keys: facts, ecs, probe)."""
    return _Diagnoser(docs).run()


class _Diagnoser:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.facts = docs.get("facts") or {}
        self.ecs = docs.get("ecs") or {}
        self.probe = docs.get("probe") or {}
        self.findings: list[Finding] = []
        self.verdict = Verdict(Diagnosis(Status.OK, Category.OK, HINTS[Category.OK]))

    def run(self) -> Verdict:
        self._note_environment()
        decided = (
            self._privilege()
            or self._powershell()
            or self._defender()
            or self._binary()
            or self._ecs_url()
            or self._network()
        )
        if decided is None:
            decided = self._verdict(Status.OK, Category.OK, self._ok_evidence())
        decided.findings = self.findings
        self.verdict.diagnosis = decided
        return self.verdict

    def _verdict(self, status: Status, category: Category, evidence: list[str]) -> Diagnosis:
        return Diagnosis(status, category, HINTS[category], [line for line in evidence if line])

    def _find(self, code: str, severity: Status, message: str) -> None:
        self.findings.append(Finding(code, severity, message))

    # -- host and Defender --------------------------------------------------------------

    def _note_environment(self) -> None:
        choice = parse.choose_platform(self.facts)
        if choice.source == "newest-folder" and choice.string_sort_pick:
            picked = choice.folder.rsplit("\\", 1)[-1] if choice.folder else None
            if picked != choice.string_sort_pick:
                self._find(
                    "platform_string_sort", Status.OK,
                    f"newest platform is {picked}; a string sort would have picked "
                    f"{choice.string_sort_pick}",
                )
        status = self.facts.get("mp_status") or {}
        mode = status.get("AMRunningMode")
        if mode and mode != "Normal":
            self._find("running_mode", Status.WARN, f"Defender running mode is {mode!r}")
        core = self.facts.get("mdcoresvc_service")
        if core is not None and core != "Running":
            self._find("core_service", Status.WARN, f"MDCoreSvc service is {core}")
        capture = self.probe.get("capture") or {}
        if capture.get("requested") and not capture.get("started"):
            self._find(
                "capture_not_started", Status.WARN,
                "network capture did not start: "
                + _first_line(capture.get("start_output") or capture.get("status_before")),
            )
        if capture.get("stale_stopped"):
            self._find("stale_capture", Status.WARN, "a leftover fleet-ecs trace was stopped first")

    def _privilege(self) -> Diagnosis | None:
        if self.facts.get("is_admin") is False:
            user = self.facts.get("user") or "the account"
            return self._verdict(
                Status.FAIL, Category.INSUFFICIENT_PRIVILEGE,
                [f"{user} is not a member of the local Administrators group"],
            )
        return None

    def _powershell(self) -> Diagnosis | None:
        version = self.facts.get("ps_version")
        if version and parse.version_tuple(version) < (5, 1):
            return self._verdict(
                Status.FAIL, Category.POWERSHELL_UNSUPPORTED,
                [f"PowerShell {version} (5.1 required)"],
            )
        return None

    def _defender(self) -> Diagnosis | None:
        choice = parse.choose_platform(self.facts)
        if choice.folder is None:
            evidence = ["no InstallLocation under HKLM\\SOFTWARE\\Microsoft\\Windows Defender",
                        "no versioned folder under " + (self.facts.get("platform_root") or
                                                        "the Defender Platform folder")]
            if self.facts.get("windefend_service") is None:
                evidence.append("service WinDefend not found")
            if self.facts.get("mp_status_error"):
                evidence.append("Get-MpComputerStatus: " + _first_line(self.facts["mp_status_error"]))
            return self._verdict(Status.FAIL, Category.DEFENDER_MISSING, evidence)
        if self.ecs and self.ecs.get("exists") is False:
            return self._verdict(
                Status.FAIL, Category.DEFENDER_MISSING, [f"{self.ecs.get('path')} does not exist"]
            )
        return None

    def _binary(self) -> Diagnosis | None:
        if not self.ecs:
            return None
        signature = self.ecs.get("signature") or {}
        status = signature.get("status")
        subject = signature.get("signer_subject") or ""
        if status != "Valid" or "O=Microsoft Corporation" not in subject:
            return self._verdict(
                Status.FAIL, Category.DEFENDER_BINARY_UNTRUSTED,
                [f"{self.ecs.get('path')}: signature {status or 'unknown'}"
                 + (f" ({_first_line(signature.get('status_message'))})"
                    if signature.get("status_message") else ""),
                 f"signer: {subject or 'none'}"],
            )
        return None

    def _ecs_url(self) -> Diagnosis | None:
        if not self.ecs:
            return None
        urls = parse.parse_ecs_urls(self.ecs.get("output"))
        self.verdict.ecs_urls = urls
        if len(urls) > 1:
            self._find("several_ecs_urls", Status.OK, "MpCmdRun reported: " + ", ".join(urls))
        if urls:
            self.verdict.ecs_url = urls[0]
            return None
        evidence = [f"MpCmdRun -DisplayECSConnection exit code {self.ecs.get('exit_code')}"]
        evidence += [f"output: {line}" for line in _lines(self.ecs.get("output"))[:3]]
        return self._verdict(Status.FAIL, Category.ECS_URL_UNKNOWN, evidence)

    # -- network ------------------------------------------------------------------------

    def _network(self) -> Diagnosis | None:
        if not self.probe:
            return None
        dns = self.probe.get("dns") or {}
        tcp = self.probe.get("tcp") or {}
        http = self.probe.get("http") or {}
        proxy = parse.parse_winhttp_proxy((self.probe.get("winhttp_proxy") or {}).get("output"))
        used_proxy = http.get("proxy") or (None if proxy.direct else proxy.server)
        addresses = parse.dns_addresses(dns)
        self.verdict.dns_ok = bool(addresses) and not dns.get("error")
        self.verdict.tcp_ok = tcp.get("ok") if tcp.get("address") else None
        self.verdict.http_status = _int(http.get("status"))
        self.verdict.proxy = used_proxy
        host = self.probe.get("host")
        return (
            self._dns(dns, host, addresses, used_proxy)
            or self._proxy_auth(http)
            or self._tcp(tcp, used_proxy)
            or self._timeout(http)
            or self._tls(http)
            or self._http(http)
        )

    def _dns(self, dns, host, addresses, used_proxy) -> Diagnosis | None:  # noqa: ANN001
        if addresses and not dns.get("error"):
            return None
        evidence = [f"Resolve-DnsName {host}: " + _first_line(dns.get("error") or "no A/AAAA record")]
        if dns.get("native_code"):
            evidence.append(f"DNS error code {dns['native_code']}")
        if used_proxy:
            # Behind a proxy the proxy resolves names; a local DNS failure is then only a finding.
            self._find("dns_local_failure", Status.WARN, evidence[0])
            return None
        return self._verdict(Status.FAIL, Category.DNS_FAILURE, evidence)

    def _proxy_auth(self, http: dict[str, Any]) -> Diagnosis | None:
        if _int(http.get("status")) != 407:
            return None
        return self._verdict(
            Status.FAIL, Category.PROXY_AUTH_REQUIRED,
            [f"HTTP 407 from proxy {http.get('proxy') or self.verdict.proxy or '(unknown)'}",
             _first_line(http.get("error_message"))],
        )

    def _tcp(self, tcp: dict[str, Any], used_proxy: str | None) -> Diagnosis | None:
        if not tcp.get("address") or tcp.get("ok"):
            return None
        line = (f"TCP {tcp['address']}:{tcp.get('port', 443)} failed"
                f" (socket error {tcp.get('socket_error')}): {_first_line(tcp.get('error'))}")
        if used_proxy:
            self._find("direct_tcp_failed", Status.OK, line + " (expected behind a proxy)")
            return None
        return self._verdict(Status.FAIL, Category.TCP_BLOCKED, [line, "no proxy configured"])

    def _timeout(self, http: dict[str, Any]) -> Diagnosis | None:
        if http.get("error_status") != "Timeout":
            return None
        return self._verdict(
            Status.FAIL, Category.ECS_TIMEOUT,
            [f"request to {self.probe.get('url')} timed out after {http.get('elapsed_ms')} ms",
             _first_line(http.get("error_message"))],
        )

    def _tls(self, http: dict[str, Any]) -> Diagnosis | None:
        cert = http.get("cert") or {}
        chain = cert.get("chain") or []
        if chain and not _microsoft_rooted(chain):
            return self._verdict(
                Status.FAIL, Category.TLS_INTERCEPTED,
                [f"certificate issuer: {cert.get('issuer')}", f"chain root: {chain[-1]}",
                 "the root is not one of Microsoft's public roots"],
            )
        if http.get("error_status") in ("SecureChannelFailure", "TrustFailure"):
            evidence = [f"{http['error_status']}: {_first_line(http.get('error_message'))}"]
            evidence += [f"inner: {_first_line(e)}" for e in (http.get("inner_errors") or [])[:2]]
            return self._verdict(Status.FAIL, Category.TLS_FAILURE, evidence)
        return None

    def _http(self, http: dict[str, Any]) -> Diagnosis | None:
        status = _int(http.get("status"))
        chain = (http.get("cert") or {}).get("chain") or []
        if status in _SUCCESS and not http.get("error_status"):
            if not chain:
                self._find("chain_unknown", Status.WARN, "the certificate chain was not recorded")
            return None
        evidence = []
        if status is not None:
            evidence.append(f"HTTP {status} {http.get('status_description') or ''}".strip())
        if http.get("error_status"):
            evidence.append(f"{http['error_status']}: {_first_line(http.get('error_message'))}")
        evidence += [f"inner: {_first_line(e)}" for e in (http.get("inner_errors") or [])[:2]]
        if http.get("body_excerpt"):
            evidence.append("body: " + _first_line(http["body_excerpt"], 160))
        # A response over a Microsoft-rooted chain proves the path works; the service itself
        # answered with an error, which is worth a look but is not a network fault.
        status_level = Status.WARN if status is not None and chain else Status.FAIL
        return self._verdict(status_level, Category.HTTP_ERROR, evidence or ["no HTTP response"])

    def _ok_evidence(self) -> list[str]:
        http = (self.probe.get("http") or {})
        cert = http.get("cert") or {}
        return [f"HTTP {http.get('status')} from {self.probe.get('url')} in {http.get('elapsed_ms')} ms",
                f"certificate issuer: {cert.get('issuer')}"]


def _microsoft_rooted(chain: list[str]) -> bool:
    root = chain[-1] or ""
    common_name = root.split(",", 1)[0].removeprefix("CN=").strip()
    return common_name in MICROSOFT_ROOTS


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _first_line(text: Any, limit: int = 200) -> str:
    lines = _lines(str(text) if text is not None else "")
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."
