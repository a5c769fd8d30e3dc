"""From one host's raw facts to a verdict: status, one category, evidence, findings and a hint.

Rules run in ``PRECEDENCE`` order; the first that applies wins, and everything else noteworthy
becomes a finding. Defender's own state is judged before the network, because a stopped core
service or a policy that turns ECS off explains an unreachable ECS better than any firewall.

Verdicts rest on codes and enumerations Windows reports (``WebExceptionStatus`` names, WinHTTP
and WSA error numbers, HTTP status, DNS native codes, root certificate thumbprints), never on
the English text of a message: messages are localized.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.models import Category, Diagnosis, Finding, Status
from fleet_ecs.probe import parse
from fleet_ecs.probe.hints import HINTS, UAC_HINT  # noqa: F401 - UAC_HINT is re-exported
from fleet_ecs.probe.paths import WSA_ERRORS, Target, read_target

C = Category
PRECEDENCE = (
    C.INSUFFICIENT_PRIVILEGE, C.POWERSHELL_UNSUPPORTED, C.DEFENDER_MISSING,
    C.DEFENDER_NOT_ACTIVE, C.CORE_SERVICE_STOPPED, C.ECS_DISABLED_BY_POLICY, C.NOT_ONBOARDED,
    C.PLATFORM_TOO_OLD, C.DEFENDER_BINARY_UNTRUSTED, C.ECS_URL_UNKNOWN, C.PROBE_INCOMPLETE,
    C.ECS_PARTIALLY_BLOCKED, C.DNS_SINKHOLED, C.DNS_FAILURE, C.PROXY_AUTH_REQUIRED,
    C.TCP_BLOCKED, C.ECS_TIMEOUT, C.TLS_INTERCEPTED, C.TLS_FAILURE, C.PROXY_PATH_MISMATCH,
    C.HTTP_ERROR, C.OK,
)

# The platform that brought the Defender Core service, the client of ECS (mde-ecs-facts §2.1).
CORE_SERVICE_PLATFORM = {"client": (4, 18, 23110, 2009), "server": (4, 18, 25050, 5)}
PASSIVE_MODES = {"Passive Mode", "SxS Passive Mode", "Passive"}
# Failures of the network, as opposed to Defender's state: only these make alternates useful.
NETWORK_FAILURES = frozenset({
    C.DNS_SINKHOLED, C.DNS_FAILURE, C.PROXY_AUTH_REQUIRED, C.TCP_BLOCKED, C.ECS_TIMEOUT,
    C.TLS_INTERCEPTED, C.TLS_FAILURE, C.PROXY_PATH_MISMATCH, C.HTTP_ERROR,
})


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
    """Decide a host's verdict from its step documents (facts, ecs, probe, alternates)."""
    return _Diagnoser(docs).run()


def ecs_target(facts: dict[str, Any], ecs: dict[str, Any]) -> tuple[str | None, str]:
    """The ECS URL to probe and where it came from: ``mpcmdrun``, ``geo`` or ``none``.

    MpCmdRun's own answer wins. When the switch is unknown on the host's platform, the
    documented endpoint of the device's geography stands in, so the network is still tested.
    """
    urls = parse.parse_ecs_urls(ecs.get("output"))
    if urls:
        return urls[0], "mpcmdrun"
    geo = device_geo(facts)
    if geo:
        return f"https://mdav.{geo}.endpoint.security.microsoft.com/ecs/config/v1/", "geo"
    return None, "none"


def device_geo(facts: dict[str, Any]) -> str | None:
    """The tenant geography from OnboardedInfo (``vortexGeoLocation``), lower case, or None."""
    raw = facts.get("onboarded_info")
    if not raw:
        return None
    try:
        info = json.loads(raw)
        if isinstance(info.get("body"), str):  # the value nests a JSON document as text
            info = {**info, **json.loads(info["body"])}
    except (ValueError, TypeError, AttributeError):
        return None
    geo = str(info.get("vortexGeoLocation") or "").strip().lower()
    return geo if geo in ("us", "eu", "uk", "au", "ch", "in") else None


class _Diagnoser:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.facts = docs.get("facts") or {}
        self.ecs = docs.get("ecs") or {}
        self.probe = docs.get("probe") or {}
        self.alternates = (docs.get("alternates") or {}).get("targets") or []
        self.findings: list[Finding] = []
        self.verdict = Verdict(Diagnosis(Status.OK, Category.OK, HINTS[Category.OK]))
        self.target: Target | None = read_target(self.probe) if self.probe else None
        self.platform = parse.choose_platform(self.facts)
        self.used_proxy: str | None = None
        self.rules: dict[Category, Callable[[], Diagnosis | None]] = {
            C.INSUFFICIENT_PRIVILEGE: self._privilege,
            C.POWERSHELL_UNSUPPORTED: self._powershell,
            C.DEFENDER_MISSING: self._defender_missing,
            C.DEFENDER_NOT_ACTIVE: self._not_active,
            C.CORE_SERVICE_STOPPED: self._core_service,
            C.ECS_DISABLED_BY_POLICY: self._policy,
            C.NOT_ONBOARDED: self._onboarding,
            C.PLATFORM_TOO_OLD: self._platform_age,
            C.DEFENDER_BINARY_UNTRUSTED: self._binary,
            C.ECS_URL_UNKNOWN: self._ecs_url,
            C.PROBE_INCOMPLETE: self._incomplete,
            C.ECS_PARTIALLY_BLOCKED: self._partial,
            C.DNS_SINKHOLED: self._sinkhole,
            C.DNS_FAILURE: self._dns,
            C.PROXY_AUTH_REQUIRED: self._proxy_auth,
            C.TCP_BLOCKED: self._tcp,
            C.ECS_TIMEOUT: self._timeout,
            C.TLS_INTERCEPTED: self._intercepted,
            C.TLS_FAILURE: self._tls_failure,
            C.PROXY_PATH_MISMATCH: self._mismatch,
            C.HTTP_ERROR: self._http,
        }

    def run(self) -> Verdict:
        self._note_environment()
        self._summarise_network()
        if self.target is None:
            decided = self.decide_network_free()
        else:
            decided = self._first(PRECEDENCE[:-1])
        if decided is None:
            decided = self._ok()
        decided.findings = self.findings
        if decided.status is Status.OK and any(f.severity is Status.WARN for f in self.findings):
            decided.status = Status.WARN
        self.verdict.diagnosis = decided
        return self.verdict

    def decide_network_free(self) -> Diagnosis | None:
        """Before (or without) a probe step, only the host and Defender rules can decide."""
        return self._first(PRECEDENCE[: PRECEDENCE.index(C.PROBE_INCOMPLETE)])

    def _first(self, categories: tuple[Category, ...]) -> Diagnosis | None:
        for category in categories:
            decided = self.rules[category]()
            if decided is not None:
                return decided
        return None

    def _verdict(self, status: Status, category: Category, evidence: list[str]) -> Diagnosis:
        return Diagnosis(status, category, HINTS[category], [line for line in evidence if line])

    def _find(self, code: str, severity: Status, message: str) -> None:
        self.findings.append(Finding(code, severity, message))

    # -- findings that never decide alone ------------------------------------------------

    def _note_environment(self) -> None:
        choice = self.platform
        if choice.source == "newest-folder" and choice.string_sort_pick:
            picked = choice.folder.rsplit("\\", 1)[-1] if choice.folder else None
            if picked != choice.string_sort_pick:
                self._find("platform_string_sort", Status.OK,
                           f"newest platform is {picked}; a string sort would have picked "
                           f"{choice.string_sort_pick}")
        if self._passive():
            mode = (self.facts.get("mp_status") or {}).get("AMRunningMode")
            self._find("passive_mode", Status.WARN,
                       f"Defender Antivirus runs in passive mode ({mode}): another antivirus "
                       "product protects this host; ECS settings apply, scans do not")
        capture = self.probe.get("capture") or {}
        if capture.get("other_session"):
            self._find("other_trace_session", Status.WARN,
                       "another netsh trace session was already running: it was left alone "
                       "and this host was probed without a capture")
        elif capture.get("requested") and not capture.get("started"):
            self._find("capture_not_started", Status.WARN, "network capture did not start: "
                       + _first_line(capture.get("start_output") or capture.get("status_before")))
        if capture.get("stale_stopped"):
            self._find("stale_capture", Status.WARN, "a leftover fleet-ecs trace was stopped first")
        if self.ecs and not parse.parse_ecs_urls(self.ecs.get("output")):
            url, source = ecs_target(self.facts, self.ecs)
            if source == "geo":
                self._find("ecs_url_from_geo", Status.WARN,
                           f"MpCmdRun -DisplayECSConnection gave no URL (exit code "
                           f"{self.ecs.get('exit_code')}); probed the documented endpoint "
                           f"of the device's geography instead: {url}")

    def _passive(self) -> bool:
        mode = (self.facts.get("mp_status") or {}).get("AMRunningMode")
        policy = self.facts.get("defender_policy") or {}
        forced = 1 in (policy.get("ForceDefenderPassiveMode"), policy.get("PassiveMode"))
        # EDR in block mode runs beside another antivirus: passive only if the setting says so.
        return mode in PASSIVE_MODES or (mode == "EDR Block Mode" and forced)

    # -- host and Defender ---------------------------------------------------------------

    def _privilege(self) -> Diagnosis | None:
        if self.facts.get("is_admin") is False:
            user = self.facts.get("user") or "the account"
            return self._verdict(Status.FAIL, C.INSUFFICIENT_PRIVILEGE,
                                 [f"{user} is not a member of the local Administrators group"])
        return None

    def _powershell(self) -> Diagnosis | None:
        version = self.facts.get("ps_version")
        if version and parse.version_tuple(version) < (5, 1):
            return self._verdict(Status.FAIL, C.POWERSHELL_UNSUPPORTED,
                                 [f"PowerShell {version} (5.1 required)"])
        return None

    def _defender_missing(self) -> Diagnosis | None:
        choice = self.platform
        if choice.folder is None:
            evidence = ["no InstallLocation under HKLM\\SOFTWARE\\Microsoft\\Windows Defender",
                        "no versioned folder under " + (self.facts.get("platform_root")
                                                        or "the Defender Platform folder")]
            if self.facts.get("windefend_service") is None:
                evidence.append("service WinDefend not found")
            if self.facts.get("mp_status_error"):
                evidence.append("Get-MpComputerStatus: "
                                + _first_line(self.facts["mp_status_error"]))
            return self._verdict(Status.FAIL, C.DEFENDER_MISSING, evidence)
        if self.ecs and self.ecs.get("exists") is False:
            return self._verdict(Status.FAIL, C.DEFENDER_MISSING,
                                 [f"{self.ecs.get('path')} does not exist"])
        return None

    def _not_active(self) -> Diagnosis | None:
        service = self.facts.get("windefend_service")
        mode = (self.facts.get("mp_status") or {}).get("AMRunningMode")
        if mode == "Not running" or (service is not None and service != "Running"):
            return self._verdict(Status.FAIL, C.DEFENDER_NOT_ACTIVE,
                                 [f"WinDefend service: {service}",
                                  f"AMRunningMode: {mode}" if mode else ""])
        return None

    def _core_service(self) -> Diagnosis | None:
        core = self.facts.get("mdcoresvc_service")
        if core is not None and core != "Running":
            return self._verdict(Status.FAIL, C.CORE_SERVICE_STOPPED,
                                 [f"MDCoreSvc (Microsoft Defender Core Service) is {core}"])
        return None

    def _policy(self) -> Diagnosis | None:
        policy = self.facts.get("defender_policy") or {}
        if policy.get("DisableCoreServiceECSIntegration") == 1:
            return self._verdict(Status.FAIL, C.ECS_DISABLED_BY_POLICY, [
                "HKLM\\Software\\Policies\\Microsoft\\Windows Defender\\Features\\"
                "DisableCoreServiceECSIntegration = 1"])
        return None

    def _onboarding(self) -> Diagnosis | None:
        if "onboarding_state" not in self.facts:  # schema 1: not collected
            return None
        state = self.facts.get("onboarding_state")
        if state != 1:
            return self._verdict(Status.FAIL, C.NOT_ONBOARDED, [
                f"OnboardingState = {state if state is not None else '(absent)'}",
                f"Sense service: {self.facts.get('sense_service')}"])
        return None

    def _platform_age(self) -> Diagnosis | None:
        version_text = (self.facts.get("mp_status") or {}).get("AMProductVersion") \
            or self.platform.version
        version = parse.version_tuple(version_text)
        if not version:
            return None
        kind = "client" if self.facts.get("product_type") in (None, 1) else "server"
        needed = CORE_SERVICE_PLATFORM[kind]
        if version < needed:
            return self._verdict(Status.FAIL, C.PLATFORM_TOO_OLD, [
                f"Defender platform {version_text} on a {kind}",
                f"the Defender Core service needs {'.'.join(map(str, needed))} or later"])
        return None

    def _binary(self) -> Diagnosis | None:
        if not self.ecs:
            return None
        signature = self.ecs.get("signature") or {}
        status = signature.get("status")
        subject = signature.get("signer_subject") or ""
        if status != "Valid" or "O=Microsoft Corporation" not in subject:
            message = _first_line(signature.get("status_message"))
            return self._verdict(Status.FAIL, C.DEFENDER_BINARY_UNTRUSTED, [
                f"{self.ecs.get('path')}: signature {status or 'unknown'}"
                + (f" ({message})" if message else ""),
                f"signer: {subject or 'none'}"])
        return None

    def _ecs_url(self) -> Diagnosis | None:
        if not self.ecs:
            return None
        urls = parse.parse_ecs_urls(self.ecs.get("output"))
        self.verdict.ecs_urls = urls
        if len(urls) > 1:
            self._find("several_ecs_urls", Status.OK, "MpCmdRun reported: " + ", ".join(urls))
        url, source = ecs_target(self.facts, self.ecs)
        self.verdict.ecs_url = url
        if url is not None:
            return None
        evidence = [f"MpCmdRun -DisplayECSConnection exit code {self.ecs.get('exit_code')}"]
        evidence += [f"output: {line}" for line in _lines(self.ecs.get("output"))[:3]]
        evidence.append("the device's geography is unknown (no OnboardedInfo)")
        return self._verdict(Status.FAIL, C.ECS_URL_UNKNOWN, evidence)

    # -- the probe itself ------------------------------------------------------------------

    def _incomplete(self) -> Diagnosis | None:
        missing = []
        capture = self.probe.get("capture") or {}
        if capture.get("requested") and self.facts.get("is_elevated") is False:
            missing.append("network capture: the session is not elevated (netsh trace needs "
                           "an elevated token)")
        if "CommandNotFoundException" in str((self.probe.get("dns") or {}).get("error_id")):
            missing.append("DNS: Resolve-DnsName is not available on this host")
        http = self.probe.get("http") or {}
        if http.get("tls12_available") is False and not self.target.machine.known:
            missing.append("HTTPS: .NET offers no TLS 1.2 to the admin path and the machine "
                           "path gave no result")
        if missing:
            return self._verdict(Status.FAIL, C.PROBE_INCOMPLETE,
                                 ["not checked: " + m for m in missing])
        return None

    def _summarise_network(self) -> None:
        if not self.target:
            return
        t = self.target
        proxy = parse.parse_winhttp_proxy((self.probe.get("winhttp_proxy") or {}).get("output"))
        http = self.probe.get("http") or {}
        machine = self.probe.get("machine")
        winhttp = None if proxy.direct else proxy.server
        if machine:
            # Defender's path decides what "direct" means: its static proxy, else WinHTTP's.
            self.used_proxy = machine.get("proxy") or (
                winhttp if machine.get("proxy_source") != "direct" else None)
        else:  # schema 1: only the admin's path was measured
            self.used_proxy = http.get("proxy") or winhttp
        self.verdict.proxy = self.used_proxy or http.get("proxy")
        self.verdict.dns_ok = bool(t.addresses) and not t.dns_error and not t.sinkholed
        self.verdict.tcp_ok = t.tcp_ok
        self.verdict.http_status = t.admin.status if t.admin.status is not None \
            else t.machine.status
        if t.tcp_ok is False and self.used_proxy:
            self._find("direct_tcp_failed", Status.OK,
                       f"direct TCP to {t.host}:443 failed (expected behind a proxy)")
        dns_failed = not t.addresses or t.dns_error
        if dns_failed and self.used_proxy:
            # Behind a proxy the proxy resolves names; a local DNS failure is only a finding.
            self._find("dns_local_failure", Status.WARN,
                       _dns_failure_line(t.host, self.probe.get("dns") or {}))

    def _network_verdict(self) -> Diagnosis | None:
        """The first network category for the configured endpoint (used by ``_partial``)."""
        return self._first(PRECEDENCE[PRECEDENCE.index(C.DNS_SINKHOLED):-1])

    def _partial(self) -> Diagnosis | None:
        if not self.alternates or self.target is None or self.target.reachable:
            return None
        primary = self._network_verdict()
        if primary is None or primary.category not in NETWORK_FAILURES:
            return None
        targets = [read_target(doc) for doc in self.alternates]
        working = [t for t in targets if t.reachable]
        if not working:
            return None
        evidence = [f"configured endpoint {self.target.host}: {primary.category.value}"]
        evidence += [f"alternate {t.host}: reachable" for t in working]
        evidence += [f"alternate {t.host}: not reachable" for t in targets if not t.reachable]
        evidence += primary.evidence[:2]
        return self._verdict(Status.FAIL, C.ECS_PARTIALLY_BLOCKED, evidence)

    def _sinkhole(self) -> Diagnosis | None:
        t = self.target
        if not t.sinkholed:
            return None
        return self._verdict(Status.FAIL, C.DNS_SINKHOLED, [
            f"Resolve-DnsName {t.host} answered {', '.join(t.sinkholed)}: a sinkhole, "
            "not a Microsoft front end"])

    def _dns(self) -> Diagnosis | None:
        t = self.target
        if t.addresses and not t.dns_error:
            return None
        if self.used_proxy:
            return None  # the proxy resolves names; see the finding in _summarise_network
        dns = self.probe.get("dns") or {}
        evidence = [_dns_failure_line(t.host, dns)]
        if dns.get("native_code"):
            evidence.append(f"DNS error code {dns['native_code']}")
        return self._verdict(Status.FAIL, C.DNS_FAILURE, evidence)

    def _proxy_auth(self) -> Diagnosis | None:
        t = self.target
        if 407 not in (t.machine.status, t.admin.status):
            return None
        http = self.probe.get("http") or {}
        return self._verdict(Status.FAIL, C.PROXY_AUTH_REQUIRED, [
            f"HTTP 407 from proxy {self.used_proxy or '(unknown)'}",
            *t.machine.evidence, *t.admin.evidence, _first_line(http.get("error_message"))])

    def _tcp(self) -> Diagnosis | None:
        t = self.target
        if self.used_proxy or t.tcp_ok is not False or t.tls_ok:
            return None
        if t.machine.answered or t.admin.answered:
            return None
        tcp_all = self.probe.get("tcp_all") or [self.probe.get("tcp") or {}]
        evidence = [f"TCP {c.get('address')}:{c.get('port', 443)} failed (socket error "
                    f"{_wsa(c.get('socket_error'))}): {_first_line(c.get('error'))}"
                    for c in tcp_all if c.get("address")]
        return self._verdict(Status.FAIL, C.TCP_BLOCKED, [*evidence, "no proxy configured"])

    def _timeout(self) -> Diagnosis | None:
        t = self.target
        if t.machine.answered or t.admin.answered:
            return None
        if "timeout" not in (t.machine.kind, t.admin.kind):
            return None
        http = self.probe.get("http") or {}
        return self._verdict(Status.FAIL, C.ECS_TIMEOUT, [
            f"request to {t.url} timed out", *t.machine.evidence, *t.admin.evidence,
            _first_line(http.get("error_message"))])

    def _intercepted(self) -> Diagnosis | None:
        chain = self.target.chain
        if chain is None or chain.microsoft:
            return None
        return self._verdict(Status.FAIL, C.TLS_INTERCEPTED, [
            f"certificate issuer: {chain.issuer}", f"chain root: {chain.root}"
            + (f" (thumbprint {chain.root_thumbprint})" if chain.root_thumbprint else ""),
            f"seen by the {'admin path' if chain.source == 'http' else 'direct TLS handshake'}",
            "the root is not one of Microsoft's public roots"])

    def _tls_failure(self) -> Diagnosis | None:
        t = self.target
        if t.machine.answered or t.admin.answered:
            return None
        handshake_failed = t.tcp_ok and t.tls_ok is False
        if not (handshake_failed or "tls" in (t.machine.kind, t.admin.kind)):
            return None
        http = self.probe.get("http") or {}
        tls = self.probe.get("tls") or {}
        evidence = [*t.machine.evidence, *t.admin.evidence]
        if http.get("error_status"):
            evidence.append(f"{http['error_status']}: {_first_line(http.get('error_message'))}")
        evidence += [f"inner: {_first_line(e)}" for e in (http.get("inner_errors") or [])[:2]]
        if handshake_failed:
            evidence.append("TCP to 443 connected but the TLS handshake failed: "
                            + _first_line(tls.get("error")))
        return self._verdict(Status.FAIL, C.TLS_FAILURE, evidence)

    def _mismatch(self) -> Diagnosis | None:
        t = self.target
        if not (t.machine.known and t.admin.known) or t.machine.answered == t.admin.answered:
            return None
        status = Status.WARN if t.machine.answered else Status.FAIL
        meaning = ("Defender's path works; only the admin's (user proxy) path fails"
                   if t.machine.answered else
                   "the admin's path works but Defender's own path (WinHTTP) does not")
        return self._verdict(status, C.PROXY_PATH_MISMATCH,
                             [meaning, *t.machine.evidence, *t.admin.evidence])

    def _http(self) -> Diagnosis | None:
        t = self.target
        statuses = [p.status for p in (t.machine, t.admin) if p.status is not None]
        if statuses and all(200 <= s < 300 for s in statuses):
            return None
        http = self.probe.get("http") or {}
        evidence = [*t.machine.evidence, *t.admin.evidence]
        if http.get("error_status"):
            evidence.append(f"{http['error_status']}: {_first_line(http.get('error_message'))}")
        evidence += [f"inner: {_first_line(e)}" for e in (http.get("inner_errors") or [])[:2]]
        if http.get("body_excerpt"):
            evidence.append("body: " + _first_line(http["body_excerpt"], 160))
        # Any response over a Microsoft-rooted chain proves the path works; the service itself
        # answered with an error, which is worth a look but is not a network fault.
        over_microsoft = bool(statuses) and t.chain is not None and t.chain.microsoft
        status = Status.WARN if over_microsoft else Status.FAIL
        return self._verdict(status, C.HTTP_ERROR, evidence or ["no HTTP response"])

    def _ok(self) -> Diagnosis:
        t = self.target
        if t is None:
            return self._verdict(Status.OK, C.OK, [])
        if t.chain is None:
            self._find("chain_unknown", Status.WARN, "the certificate chain was not recorded")
        evidence = [*t.machine.evidence, *t.admin.evidence]
        if t.chain is not None:
            evidence.append(f"chain root: {t.chain.root}")
        return self._verdict(Status.OK, C.OK, evidence)


def _dns_failure_line(host: str, dns: dict[str, Any]) -> str:
    return f"Resolve-DnsName {host}: " + _first_line(dns.get("error") or "no A/AAAA record")


def _wsa(code: Any) -> str:
    """A WSA error number with its meaning: the English message beside it is localized."""
    gloss = WSA_ERRORS.get(code) if isinstance(code, int) else None
    return f"{code}, {gloss}" if gloss else str(code)


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _first_line(text: Any, limit: int = 200) -> str:
    lines = _lines(str(text) if text is not None else "")
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."
