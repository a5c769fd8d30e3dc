"""What a simulated Windows host looks like and the texts its tools print.

Everything here is derived deterministically from the host name, so a host keeps the same
computer name, OS build, Defender geo and IP addresses across runs. Texts follow what Windows
prints (netsh, Get-AuthenticodeSignature, .NET WebException messages) where that is documented
or commonly seen; ``mpcmdrun_ecs_output`` is invented because Microsoft documents no format for
``MpCmdRun -DisplayECSConnection`` (see mde-ecs-facts.md §1.1): only its ``ECS Url:`` line is
known.

Localizable wordings live in ``fleet_ecs.sim.localized``; the functions here take a ``lang``.
``onboarded_info`` follows the shape of public onboarding packages with invented contents.

Addresses inside simulated output come from the documentation ranges 198.51.100.0/24 and
203.0.113.0/24 only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, replace

from fleet_ecs.sim.localized import texts

logger = logging.getLogger(__name__)

GEOS = ("us", "eu", "uk", "au")
MS_LEAF_ISSUER = "CN=Microsoft Azure RSA TLS Issuing CA 04, O=Microsoft Corporation, C=US"
MS_ROOT = "CN=DigiCert Global Root G2, OU=www.digicert.com, O=DigiCert Inc, C=US"
# SHA-1 thumbprints as .NET prints them. The root's is DigiCert Global Root G2's real one (one of
# the Microsoft public roots the diagnosis recognises); the issuing CA's is invented.
MS_ROOT_THUMBPRINT = "DF3C24F9BFD666761B268073FE06D1CC8D4F82A4"
CONTOSO_ISSUER = "CN=Contoso Outbound Inspection CA, O=Contoso Ltd"
CONTOSO_ROOT = "CN=Contoso Root CA 2021, O=Contoso Ltd"
CONTOSO_ROOT_THUMBPRINT = "5C2A0E8B1F7D4A39C6E0B2D8F1A47E3C9B05D61A"  # invented
MS_SIGNER = "CN=Microsoft Windows Publisher, O=Microsoft Corporation, L=Redmond, S=Washington, C=US"
CURRENT_PLATFORM = "4.18.25050.5-0"
ENGINE_VERSION = "1.1.25050.6"
PLATFORM_ROOT = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform"
INBOX_MPCMDRUN = "C:\\Program Files\\Windows Defender\\MpCmdRun.exe"


@dataclass(frozen=True)
class OsRelease:
    caption: str
    build: int
    ubr: int
    ps_build: int  # Windows PowerShell reports the base build of enablement-package releases
    product_type: int  # Win32_OperatingSystem.ProductType: 1 workstation, 3 server


_SERVERS = (
    OsRelease("Microsoft Windows Server 2019 Datacenter", 17763, 6189, 17763, 3),
    OsRelease("Microsoft Windows Server 2022 Standard", 20348, 2966, 20348, 3),
    OsRelease("Microsoft Windows Server 2022 Datacenter", 20348, 3091, 20348, 3),
    OsRelease("Microsoft Windows Server 2025 Standard", 26100, 2894, 26100, 3),
)
_CLIENTS = (
    OsRelease("Microsoft Windows 11 Enterprise", 22631, 4460, 22621, 1),
    OsRelease("Microsoft Windows 11 Enterprise", 26100, 2894, 26100, 1),
    OsRelease("Microsoft Windows 10 Enterprise", 19045, 5247, 19041, 1),
)


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()


def hex_id(*parts: str, length: int = 40) -> str:
    """A deterministic upper-case hex identifier (thumbprints, ETags) from ``parts``."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:length].upper()


@dataclass(frozen=True)
class HostProfile:
    """The stable identity of one simulated Windows host."""

    host_name: str
    computer_name: str
    os: OsRelease
    geo: str
    seed: bytes

    @property
    def is_server(self) -> bool:
        return self.os.product_type != 1

    @property
    def ps_version(self) -> str:
        return f"5.1.{self.os.ps_build}.{self.os.ubr}"

    @property
    def ecs_host(self) -> str:
        return f"mdav.{self.geo}.endpoint.security.microsoft.com"

    @property
    def ecs_base_url(self) -> str:
        return f"https://{self.ecs_host}/ecs/config/v1/"

    @property
    def platform_folders(self) -> list[str]:
        # Get-ChildItem lists NTFS names in ordinal order; some pairs here sort wrongly when
        # compared as strings (4.18.23110.3-0 after 4.18.23110.2009-0, 4.18.2201.9-0 after
        # 4.18.2201.10-0), the trap the naive script falls into (mde-ecs-facts.md §2.2).
        folders = ["4.18.2304.8-0", "4.18.24090.11-0", CURRENT_PLATFORM]
        if self.is_server:
            folders += ["4.18.2201.10-0", "4.18.2201.9-0"]
        else:
            folders += ["4.18.23110.2009-0", "4.18.23110.3-0"]
        return sorted(folders, key=str.lower)

    def user_name(self, login: str) -> str:
        """``DOMAIN\\user`` for a WSMan login name; Basic logins are local accounts."""
        if "\\" in login:
            return login
        if "@" in login:
            user, _, domain = login.partition("@")
            return f"{domain.split('.')[0].upper()}\\{user}"
        return f"{self.computer_name}\\{login}"

    def temp_dir(self, login: str) -> str:
        profile = self.user_name(login).split("\\", 1)[1]
        return f"C:\\Users\\{profile}\\AppData\\Local\\Temp"

    def ip(self, index: int) -> str:
        """The ``index``-th address the ECS name resolves to (documentation ranges only)."""
        octet = 10 + self.seed[index % len(self.seed)] % 200
        prefix = "198.51.100" if index % 2 == 0 else "203.0.113"
        return f"{prefix}.{octet}"

    def addresses(self, name: str, count: int = 2) -> list[str]:
        """The addresses ``name`` resolves to from this host (documentation ranges only).

        The profile's own ECS name keeps ``ip(i)``; any other name gets addresses of its own.
        """
        if name.lower() == self.ecs_host:
            return [self.ip(i) for i in range(count)]
        digest = _digest(self.host_name, name.lower())
        prefixes = ("198.51.100", "203.0.113")
        return [f"{prefixes[i % 2]}.{10 + digest[i] % 200}" for i in range(count)]

    def as_server(self) -> HostProfile:
        """The same host, running a Windows Server release (for server-only scenarios)."""
        if self.is_server:
            return self
        return replace(self, os=_SERVERS[self.seed[0] % len(_SERVERS)])

    def process_id(self, counter: int) -> int:
        return 1000 + (int.from_bytes(self.seed[4:6], "big") + counter * 148) % 7000


def profile_for(host_name: str) -> HostProfile:
    seed = _digest("fleet-ecs-sim", host_name.lower())
    short = host_name.split(".")[0].upper()[:15]
    is_server = short.startswith(("SRV", "SERVER", "DC", "SQL", "APP", "WEB", "FS"))
    releases = _SERVERS if is_server else _CLIENTS
    os = releases[seed[0] % len(releases)]
    return HostProfile(host_name, short, os, GEOS[seed[1] % len(GEOS)], seed)


# --- netsh ---------------------------------------------------------------------------------

def winhttp_direct(lang: str = "en") -> str:
    t = texts(lang)
    return f"\r\n{t.winhttp_header}\r\n\r\n    {t.winhttp_direct}\r\n\r\n"


def winhttp_proxy(server: str, bypass: str = "<local>", lang: str = "en") -> str:
    t = texts(lang)
    return (
        f"\r\n{t.winhttp_header}\r\n\r\n"
        f"    {t.winhttp_server_label}{server}\r\n"
        f"    {t.winhttp_bypass_label}{bypass or t.winhttp_none}\r\n\r\n"
    )


def trace_status_none(lang: str = "en") -> str:
    return texts(lang).trace_none + "\r\n"


def trace_status_running(session: str, path: str, max_mb: int, lang: str = "en") -> str:
    t = texts(lang)
    status, trace_file, append, circular, max_size, report = t.trace_labels
    rows = (
        (status, t.trace_running), (trace_file, path), (append, t.trace_off),
        (circular, t.trace_on), (max_size, f"{max_mb} MB"), (report, t.trace_disabled),
    )
    # netsh pads the labels into a 20-character column; longer (localized) labels get one space.
    lines = "".join(f"{label.ljust(19)} {value}\r\n" for label, value in rows)
    return f"\r\n{t.trace_config}\r\n{'-' * 67}\r\n{lines}"


def trace_start(session: str, path: str, max_mb: int, lang: str = "en") -> str:
    return trace_status_running(session, path, max_mb, lang) + "\r\n"


def trace_stop(path: str, lang: str = "en") -> str:
    # report=disabled correlation=disabled: no cab, only the merge step (mde-ecs-facts.md §6).
    t = texts(lang)
    location = t.trace_location.format(path=path)
    return f"{t.trace_merging}\r\n{location}\r\n{t.trace_stopped}\r\n"


def elevation_required(lang: str = "en") -> str:
    return texts(lang).elevation_required + "\r\n"


# --- MpCmdRun and signatures ---------------------------------------------------------------

def mpcmdrun_ecs_output(profile: HostProfile, lang: str = "en") -> str:
    # Invented layout around the one known line, "ECS Url: <base>"; see the module docstring.
    t = texts(lang)
    return f"{t.mpcmdrun_header}\r\nECS Url: {profile.ecs_base_url}\r\n{t.mpcmdrun_status}\r\n"


def mpcmdrun_unknown_option(temp_dir: str) -> str:
    log = f"{temp_dir}\\MpCmdRun.log"
    return f"CmdTool: Failed with hr = 0x80070057. Check {log} for more information"


def mpcmdrun_service_stopped(temp_dir: str) -> str:
    # 0x800106BA: the Defender service is not running (mde-ecs-facts.md §1.2); same CmdTool
    # shape as the unknown-option failure, which is the one seen in the field.
    log = f"{temp_dir}\\MpCmdRun.log"
    return f"CmdTool: Failed with hr = 0x800106BA. Check {log} for more information"


def signature_valid_message() -> str:
    return "Signature verified."


def signature_hash_mismatch_message(path: str) -> str:
    return (
        f"The contents of file {path} might have been changed by an unauthorized user or "
        "process, because the hash of the file does not match the hash stored in the digital "
        "signature. The script cannot run on the specified system. For more information, run "
        "Get-Help about_Signing."
    )


def mp_status_missing_error() -> str:
    return (
        "The term 'Get-MpComputerStatus' is not recognized as the name of a cmdlet, function, "
        "script file, or operable program. Check the spelling of the name, or if a path was "
        "included, verify that the path is correct and try again."
    )


def onboarded_info(profile: HostProfile, geo: str | None) -> str:
    """The raw ``OnboardedInfo`` registry string: a signed envelope whose ``body`` is JSON text.

    The shape (an escaped JSON ``body`` beside ``sig``/``sha256sig``/``cert``/``chain``) is the
    one public onboarding packages carry; ids, signatures and the certificate are invented.
    ``geo`` None gives a body without any geography field, as older packages had.
    """
    org = hex_id(profile.host_name, "org", length=32).lower()
    org_id = f"{org[:8]}-{org[8:12]}-{org[12:16]}-{org[16:20]}-{org[20:]}"
    body: dict[str, object] = {"previousOrgIds": [], "orgId": org_id}
    if geo is not None:
        dc = _DATACENTERS.get(geo.upper(), "CentralUs3")
        region = geo.lower()
        body |= {
            "geoLocationUrl": f"https://edr-{_DC_SHORT.get(dc, 'cus3')}.{region}"
                              ".endpoint.security.microsoft.com/edr/",
            "datacenter": dc,
            "vortexGeoLocation": geo.upper(),
            "vortexServerUrl": f"https://{region}-v20.events.endpoint.security.microsoft.com"
                               "/OneCollector/1.0",
            "vortexTicketUrl": "https://events.data.microsoft.com",
            "partnerGeoLocation": f"GW_{geo.upper()}",
            "version": "1.7",
        }
    else:
        body["version"] = "1.2"
    envelope = {
        "body": json.dumps(body, separators=(",", ":")),
        "sig": _b64(profile.host_name, "sig", 344),
        "sha256sig": _b64(profile.host_name, "sha256sig", 344),
        "cert": _b64("onboarding-cert", "cert", 1200),
        "chain": [_b64("onboarding-chain", "0", 900)],
    }
    return json.dumps(envelope, separators=(",", ":"))


_DATACENTERS = {"US": "CentralUs3", "EU": "WestEurope3", "UK": "UkSouth3", "AU": "AustraliaEast"}
_DC_SHORT = {"CentralUs3": "cus3", "WestEurope3": "weu3", "UkSouth3": "uks", "AustraliaEast": "aue"}


def _b64(seed: str, kind: str, length: int) -> str:
    raw = b"".join(_digest(seed, kind, str(i)) for i in range(length // 32 + 1))
    return base64.b64encode(raw).decode("ascii")[:length]


# --- .NET / DnsClient / WinHTTP error texts -------------------------------------------------

def dns_name_error(host: str, lang: str = "en") -> str:
    return texts(lang).dns_name_error.format(host=host)


def name_unresolved_message(host: str, lang: str = "en") -> str:
    return texts(lang).name_unresolved.format(host=host)


def connect_failure_message(lang: str = "en") -> str:
    return texts(lang).connect_failure


def socket_timeout_message(ip: str, port: int, lang: str = "en") -> str:
    return texts(lang).socket_timeout.format(ip=ip, port=port)


def socket_refused_message(ip: str, port: int, lang: str = "en") -> str:
    return texts(lang).socket_refused.format(ip=ip, port=port)


def socket_address_invalid_message(ip: str, port: int) -> str:
    # WSAEADDRNOTAVAIL (10049), what TcpClient reports for a connect to 0.0.0.0.
    return f"The requested address is not valid in its context {ip}:{port}"


def proxy_auth_message(lang: str = "en") -> str:
    t = texts(lang)
    return t.protocol_error.format(code=407, text=t.proxy_auth_text)


def winhttp_message(code: int, lang: str = "en") -> str:
    return texts(lang).winhttp[code]


def proxy_block_page(host: str) -> str:
    return (
        "<!DOCTYPE html><html><head><title>Access Denied</title></head><body>"
        "<h1>Access to this site is blocked</h1>"
        f"<p>The site <b>{host}</b> is categorised as <i>Uncategorized / Unknown</i> and is "
        "blocked by Contoso web access policy.</p>"
        "<p>If you believe this is an error, contact the Contoso Service Desk and quote "
        "reference <code>WAP-403-7731</code>.</p><hr><p>proxy.contoso.com</p></body></html>"
    )


def ecs_body(profile: HostProfile) -> str:
    return (
        '{"MicrosoftDefenderForWindowsClient":{"DCO_MpFC_TS_UseStrictOriginQuery":0,'
        '"MpCoreSvc_EnableEcsRefresh":1,"MpCoreSvc_EcsRefreshIntervalMinutes":240},'
        '"Headers":{"ETag":"\\"' + hex_id(profile.host_name, "etag", length=16) + '\\"",'
        '"Expires":"Sat, 14 Jun 2025 10:12:44 GMT","CountryCode":"'
        + {"us": "US", "eu": "NL", "uk": "GB", "au": "AU"}[profile.geo] + '"}}'
    )
