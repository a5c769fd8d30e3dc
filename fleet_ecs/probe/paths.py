"""What one probed target says about each network path, read from codes, never from words.

A *target* is one ECS URL as the probe step (or the alternates step) checked it: DNS, TCP to
each address, a direct TLS handshake, and two HTTP requests:

* the machine's path (``machine``): WinHTTP, the way Defender's SYSTEM services go out, through
  the WinHTTP proxy or Defender's own static proxy;
* the admin's path (``http``): .NET HttpWebRequest in the WinRM user's context, with that
  user's proxy and trust store (what the single-machine script tests).

A path is *reachable* only when it got an HTTP response and the certificate chain seen for the
target is rooted in one of Microsoft's public roots: a TCP success proves nothing alone, since
some firewalls answer on 443 themselves.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from fleet_ecs.probe import parse

# Root CAs of the chains Microsoft's Defender and ECS front ends present, by SHA-1 thumbprint.
# Anything else at the top of the chain means someone re-signed the traffic (TLS inspection),
# which Defender's certificate pinning rejects even when the machine trusts that root.
MICROSOFT_ROOTS = {
    "DF3C24F9BFD666761B268073FE06D1CC8D4F82A4": "DigiCert Global Root G2",
    "7E04DE896A3E666D00E687D33FFAD93BE83D349E": "DigiCert Global Root G3",
    "A8985D3A65E5E5C4B2D7D66D40C6DD2FB19C5436": "DigiCert Global Root CA",
    "D4DE20D05E66FC53FE1A50882C78DB2852CAE474": "Baltimore CyberTrust Root",
    "73A5E64A3BFF8316FF0EDCCC618A906E4EAE4D74": "Microsoft RSA Root Certificate Authority 2017",
    "999A64C37FF47D9FAB95F14769891460EEC4C3C5": "Microsoft ECC Root Certificate Authority 2017",
    "8F43288AD272F3103B6FB1428485EA3014C0BCFE": "Microsoft Root Certificate Authority 2011",
}

# WinHTTP error numbers (winhttp.h); their English glosses in the wild are often wrong, so the
# number is what we classify by.
WINHTTP_ERRORS = {
    12002: "timeout",
    12007: "name not resolved",
    12029: "cannot connect",
    12030: "connection aborted",
    12152: "invalid server response",
    12175: "secure channel failure",
    12057: "revocation check failed",
    12045: "invalid certificate authority",
    12044: "client certificate needed",
    12038: "certificate name mismatch",
    12037: "certificate date invalid",
}
WINHTTP_TIMEOUT = 12002
WINHTTP_NAME = 12007
WINHTTP_CONNECT = {12029, 12030}
WINHTTP_TLS = {12175, 12057, 12045, 12038, 12037}

# Windows Sockets error numbers.
WSA_ERRORS = {10060: "timed out", 10061: "refused", 10065: "host unreachable",
              10051: "network unreachable", 10054: "reset by peer", 10013: "access denied"}


@dataclass
class Chain:
    """The certificate chain seen for a target, and where it came from."""

    source: str  # "tls" (direct handshake) or "http" (the admin path's request)
    subjects: list[str]
    root_thumbprint: str | None
    issuer: str | None

    @property
    def root(self) -> str:
        return self.subjects[-1] if self.subjects else "(empty chain)"

    @property
    def microsoft(self) -> bool:
        if self.root_thumbprint:
            return self.root_thumbprint.upper() in MICROSOFT_ROOTS
        # Schema-1 documents carry subjects only; a subject can be copied, a thumbprint cannot.
        common_name = self.root.split(",", 1)[0].removeprefix("CN=").strip()
        return common_name in MICROSOFT_ROOTS.values()


@dataclass
class Path:
    """One HTTP path to a target: whether it answered, and the words that prove it."""

    name: str  # "machine" or "admin"
    known: bool  # False when the probe gave no result for this path at all
    answered: bool = False  # an HTTP status came back
    status: int | None = None
    kind: str | None = None  # timeout, name, connect, tls, proxy_auth, http, other
    evidence: list[str] = field(default_factory=list)


@dataclass
class Target:
    url: str
    host: str
    addresses: list[str]
    sinkholed: list[str]
    dns_error: str | None
    tcp_ok: bool | None  # any address connected; None when not tried
    tls_ok: bool | None
    chain: Chain | None
    machine: Path
    admin: Path

    @property
    def reachable(self) -> bool:
        """Some path got an HTTP response over a Microsoft-rooted chain."""
        answered = self.machine.answered or self.admin.answered
        return answered and self.chain is not None and self.chain.microsoft


def read_target(doc: dict[str, Any]) -> Target:
    dns = doc.get("dns") or {}
    addresses = parse.dns_addresses(dns)
    tcp_all = doc.get("tcp_all")
    if tcp_all is None and (doc.get("tcp") or {}).get("address"):
        tcp_all = [doc["tcp"]]
    tcp_ok = None if not tcp_all else any(t.get("ok") for t in tcp_all)
    tls = doc.get("tls")
    return Target(
        url=doc.get("url") or "",
        host=doc.get("host") or "",
        addresses=addresses,
        sinkholed=[a for a in addresses if is_sinkhole(a)],
        dns_error=dns.get("error"),
        tcp_ok=tcp_ok,
        tls_ok=None if tls is None else bool(tls.get("ok")),
        chain=_chain(doc),
        machine=_machine(doc.get("machine")),
        admin=_admin(doc.get("http")),
    )


def is_sinkhole(address: str) -> bool:
    """An answer no real ECS front end has: unspecified, loopback, link-local, multicast."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast


def _chain(doc: dict[str, Any]) -> Chain | None:
    tls_cert = ((doc.get("tls") or {}).get("cert")) or None
    http_cert = ((doc.get("http") or {}).get("cert")) or None
    # The admin path's certificate is what its proxy showed; prefer it when present, since a
    # TLS-inspecting proxy only appears there. The direct handshake covers the rest.
    for source, cert in (("http", http_cert), ("tls", tls_cert)):
        if not cert or not cert.get("chain"):
            continue
        chain = cert["chain"]
        subjects = [c.get("subject", "") if isinstance(c, dict) else str(c) for c in chain]
        last = chain[-1]
        thumb = last.get("thumbprint") if isinstance(last, dict) else None
        if thumb is None and cert.get("chain_thumbprints"):
            thumb = cert["chain_thumbprints"][-1]  # the admin path lists them beside subjects
        return Chain(source, subjects, thumb, cert.get("issuer"))
    return None


def _machine(doc: dict[str, Any] | None) -> Path:
    if not doc:
        return Path("machine", known=False)
    status = _int(doc.get("status"))
    path = Path("machine", known=True, answered=status is not None, status=status)
    code = _int(doc.get("error_code"))
    via = doc.get("proxy") or doc.get("proxy_source") or "direct"
    if status is not None:
        path.evidence.append(f"machine path (WinHTTP via {via}): HTTP {status}")
        if status == 407:
            path.kind = "proxy_auth"
        elif not 200 <= status < 300:
            path.kind = "http"
        return path
    if code is None:
        path.known = False
        return path
    path.kind = _winhttp_kind(code)
    gloss = WINHTTP_ERRORS.get(code, "error")
    path.evidence.append(f"machine path (WinHTTP via {via}): error {code} ({gloss})")
    return path


def _admin(doc: dict[str, Any] | None) -> Path:
    if not doc:
        return Path("admin", known=False)
    status = _int(doc.get("status"))
    error = doc.get("error_status")
    path = Path("admin", known=True, answered=status is not None, status=status)
    via = doc.get("proxy") or "direct"
    if status is not None:
        path.evidence.append(f"admin path (HttpWebRequest via {via}): HTTP {status}")
        if status == 407:
            path.kind = "proxy_auth"
        elif not 200 <= status < 300 or error:
            path.kind = "http"
        return path
    if not error:
        path.known = False
        return path
    path.kind = {
        "Timeout": "timeout", "NameResolutionFailure": "name",
        "ProxyNameResolutionFailure": "proxy", "ConnectFailure": "connect",
        "SecureChannelFailure": "tls", "TrustFailure": "tls", "ReceiveFailure": "connect",
        "SendFailure": "connect", "ConnectionClosed": "connect",
    }.get(error, "other")
    path.evidence.append(f"admin path (HttpWebRequest via {via}): {error}")
    return path


def _winhttp_kind(code: int) -> str:
    if code == WINHTTP_TIMEOUT:
        return "timeout"
    if code == WINHTTP_NAME:
        return "name"
    if code in WINHTTP_CONNECT:
        return "connect"
    if code in WINHTTP_TLS:
        return "tls"
    return "other"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
