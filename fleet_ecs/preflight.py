"""Checks of the scanning machine and the inventory that need no host, made before the scan.

A fault on the scanning machine (a missing library, no Kerberos ticket) would otherwise show
up as the same failure on thousands of hosts; here it is found once, reported once, and the
hosts it concerns get their result without a connection attempt.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from fleet_ecs.models import HostSpec

logger = logging.getLogger(__name__)


@dataclass
class ClientIssue:
    """One problem of the scanning machine, and the hosts it stops."""

    key: str
    message: str
    hosts: list[str] = field(default_factory=list)


def client_key(spec: HostSpec) -> str:
    """Hosts sharing this key share every client-side requirement of their connection."""
    return f"{spec.auth}/{spec.transport.value}/{spec.message_encryption}"


def addressed_by_ip(spec: HostSpec) -> bool:
    """True when Negotiate must fall back to NTLM: Kerberos needs a host name for its SPN."""
    if spec.auth not in ("negotiate", "kerberos"):
        return False
    if spec.wsman_options.get("negotiate_hostname_override"):
        return False
    try:
        ipaddress.ip_address(spec.address)
    except ValueError:
        return False
    return True


def check_client(hosts: Iterable[HostSpec], passwords: dict[str, bool]) -> dict[str, ClientIssue]:
    """Client-side problems, keyed by ``client_key``; ``passwords`` says who has a password."""
    issues: dict[str, ClientIssue] = {}
    for spec in hosts:
        problem = _problem(spec, passwords.get(spec.name, False))
        if problem is None:
            continue
        key = f"{client_key(spec)}:{problem}"
        issues.setdefault(key, ClientIssue(key, problem)).hosts.append(spec.name)
    return issues


def _problem(spec: HostSpec, has_password: bool) -> str | None:
    if spec.auth in ("basic", "ntlm", "credssp") and not spec.username:
        return f"auth {spec.auth} needs a username: set username: in the inventory"
    if spec.auth == "credssp" and not _importable("requests_credssp"):
        return "auth credssp needs the requests-credssp package: pip install 'pypsrp[credssp]'"
    if spec.auth == "kerberos":
        if not _importable("gssapi"):
            return ("auth kerberos needs GSSAPI: pip install 'pypsrp[kerberos]' "
                    "(and the system's Kerberos libraries)")
        if not has_password and not _kerberos_credential():
            return ("auth kerberos without a password needs a Kerberos ticket or keytab on "
                    "this machine: run kinit, or set KRB5_CLIENT_KTNAME to a keytab")
    if spec.auth == "certificate":
        if spec.transport.value != "https":
            return "auth certificate works only over https"
        if not {"certificate_pem", "certificate_key_pem"} <= set(spec.wsman_options):
            return "auth certificate needs certificate_pem and certificate_key_pem"
    if spec.auth in ("basic", "certificate") and spec.transport.value == "http" \
            and spec.message_encryption != "never":
        return (f"auth {spec.auth} over http cannot encrypt messages: use https or set "
                "message_encryption: never")
    return None


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _kerberos_credential() -> bool:
    """Whether GSSAPI finds an initiator credential (ticket cache or client keytab)."""
    try:
        import gssapi

        gssapi.Credentials(usage="initiate")
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable credential"
        logger.debug("no Kerberos initiator credential: %s", exc)
        return False
    return True
