"""The one-line hint each category gives an admin: the likely cause and the next step."""

from __future__ import annotations

from fleet_ecs.models import Category

HINTS: dict[Category, str] = {
    Category.WINRM_UNREACHABLE: "WinRM does not accept connections: check the WinRM service, "
    "its listener (winrm enumerate winrm/config/listener) and the firewall on the way.",
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
HINTS.update({
    Category.DEFENDER_NOT_ACTIVE: "Microsoft Defender Antivirus is not running on this host: "
    "start the WinDefend service and check whether another antivirus product disabled it.",
    Category.CORE_SERVICE_STOPPED: "The Defender Core service (MDCoreSvc), which talks to ECS, "
    "is not running: start it (Start-Service MDCoreSvc) and check why it stopped.",
    Category.ECS_DISABLED_BY_POLICY: "A policy turns ECS off (DisableCoreServiceECSIntegration=1):"
    " if unintended, remove it from the GPO/Intune profile; otherwise this host is as designed.",
    Category.NOT_ONBOARDED: "The host is not onboarded to Defender for Endpoint: run the "
    "onboarding package for your tenant, then rescan.",
    Category.PLATFORM_TOO_OLD: "The Defender platform predates the Defender Core service that "
    "uses ECS: update the platform (KB4052623 / the Defender platform update channel).",
    Category.ECS_PARTIALLY_BLOCKED: "The configured ECS endpoint is blocked while other ECS "
    "endpoints answer: allow the configured one (see evidence) in the firewall or proxy.",
    Category.PROXY_PATH_MISMATCH: "Defender's path (WinHTTP, as SYSTEM) and the admin's path "
    "(user proxy) disagree: fix the proxy Defender uses (netsh winhttp / Defender proxy policy).",
    Category.DNS_SINKHOLED: "DNS answers the ECS name with a sinkhole address: a DNS filter "
    "blocks it; allow *.endpoint.security.microsoft.com and ecs.office.com in the DNS filter.",
    Category.PROBE_INCOMPLETE: "The probe could not run every check on this host (see "
    "evidence): no verdict about Defender or the network was made; fix that and rescan.",
})

