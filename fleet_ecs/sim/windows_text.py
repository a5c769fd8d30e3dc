"""What a simulated Windows host looks like and the texts its tools print.

Everything here is derived deterministically from the host name, so a host keeps the same
computer name, OS build, Defender geo and IP addresses across runs. Texts follow what Windows
prints (netsh, Get-AuthenticodeSignature, .NET WebException messages) where that is documented
or commonly seen; ``mpcmdrun_ecs_output`` is invented because Microsoft documents no format for
``MpCmdRun -DisplayECSConnection`` (see mde-ecs-facts.md §1.1): only its ``ECS Url:`` line is
known.

Addresses inside simulated output come from the documentation ranges 198.51.100.0/24 and
203.0.113.0/24 only.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

GEOS = ("us", "eu", "uk", "au")
MS_LEAF_ISSUER = "CN=Microsoft Azure RSA TLS Issuing CA 04, O=Microsoft Corporation, C=US"
MS_ROOT = "CN=DigiCert Global Root G2, OU=www.digicert.com, O=DigiCert Inc, C=US"
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

def winhttp_direct() -> str:
    return "\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).\r\n\r\n"


def winhttp_proxy(server: str, bypass: str = "<local>") -> str:
    return (
        "\r\nCurrent WinHTTP proxy settings:\r\n\r\n"
        f"    Proxy Server(s) :  {server}\r\n"
        f"    Bypass List     :  {bypass}\r\n\r\n"
    )


def trace_status_none() -> str:
    return "There is no trace session currently in progress.\r\n"


def trace_status_running(session: str, path: str, max_mb: int) -> str:
    return (
        "\r\nTrace configuration:\r\n"
        "-------------------------------------------------------------------\r\n"
        "Status:             Running\r\n"
        f"Trace File:         {path}\r\n"
        "Append:             Off\r\n"
        "Circular:           On\r\n"
        f"Max Size:           {max_mb} MB\r\n"
        "Report:             Disabled\r\n"
    )


def trace_start(session: str, path: str, max_mb: int) -> str:
    return trace_status_running(session, path, max_mb) + "\r\n"


def trace_stop(path: str) -> str:
    # report=disabled correlation=disabled: no cab, only the merge step (mde-ecs-facts.md §6).
    return (
        "Merging traces ... done\r\n"
        f"File location = {path}\r\n"
        "Tracing session was successfully stopped.\r\n"
    )


# --- MpCmdRun and signatures ---------------------------------------------------------------

def mpcmdrun_ecs_output(profile: HostProfile) -> str:
    # Invented layout around the one known line, "ECS Url: <base>"; see the module docstring.
    return (
        "ECS connection information for Microsoft Defender Core service:\r\n"
        f"ECS Url: {profile.ecs_base_url}\r\n"
        "ECS connection status: Connected\r\n"
    )


def mpcmdrun_unknown_option(temp_dir: str) -> str:
    log = f"{temp_dir}\\MpCmdRun.log"
    return f"CmdTool: Failed with hr = 0x80070057. Check {log} for more information"


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


# --- .NET / DnsClient error texts ----------------------------------------------------------

def dns_name_error(host: str) -> str:
    return f"{host} : DNS name does not exist"


def socket_timeout_message(ip: str, port: int) -> str:
    return (
        "A connection attempt failed because the connected party did not properly respond after "
        "a period of time, or established connection failed because connected host has failed "
        f"to respond {ip}:{port}"
    )


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
