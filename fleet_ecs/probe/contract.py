"""The contract between the PowerShell probe steps and everything that reads their output.

How a step travels
------------------
Each step is one PowerShell script rendered from ``templates/probe/<step>.ps1.j2`` and run as a
single pipeline (``PowerShell.add_script``) in the host's one RunspacePool. Every rendered script

* starts with the marker line ``# fleet-ecs step: <step> v<schema>`` (``STEP_MARKER`` below);
* then assigns its inputs, one per line, as ``$FE_<Name> = '<value>'``: a PowerShell
  single-quoted literal in which every quote character is doubled (see ``psquote``). Numbers
  and booleans are rendered the same way, as strings, so every input has one shape;
* writes to the output stream exactly one JSON document (``ConvertTo-Json -Compress``),
  except ``fetch``, which writes base64 chunks and then one JSON document.

The simulated fleet recognises a step by its marker and reads its inputs from those
assignment lines (``parse_inputs``); the controller never sends anything else.

The JSON documents are *raw facts*: texts as Windows printed them, numbers as Windows
reported them. Parsing and every decision happen in Python (``fleet_ecs.probe.parse`` and
``fleet_ecs.probe.diagnose``).

Step inputs (``$FE_<Name>``)
----------------------------
facts   RunId
ecs     MpCmdRun (full path of the MpCmdRun.exe to run), TrustedPublisher (the ``O=`` value the
        signer subject must hold, ``Microsoft Corporation``)
probe   Url, Host, WorkDir (``<temp>\\fleet-ecs-<run id>``), Capture (``1``/``0``),
        CaptureMaxMb, TimeoutSec, TraceSession, BodyLimit (bytes of body to keep),
        DefenderProxy (``host:port`` of Defender's own static proxy, or empty: the machine path
        then uses the WinHTTP proxy), MachineProxy (``host:port`` the machine path goes through
        as Python read it from the facts: Defender's proxy, else the WinHTTP proxy; empty for
        direct; the capture is filtered to the ECS addresses plus this proxy's),
        SystemPath (``1``/``0``; ``0`` unless the user opted in; ``1`` measures the machine
        path as SYSTEM in a one-shot scheduled task ``\\FleetEcs\\FleetEcs-<run id>``,
        registered, started and unregistered by the step itself; opt-in because creating
        SYSTEM tasks remotely looks like an attack to a SOC)
alternates Urls (``|``-separated ECS URLs to try besides the configured one), TimeoutSec,
        BodyLimit, DefenderProxy
fetch   Path, ChunkSize (bytes per base64 chunk, before encoding)
cleanup WorkDir, TraceSession

Step outputs (keys; ``null`` is allowed wherever a fact could not be gathered)
-----------------------------------------------------------------------------
facts   {step, schema, ps_version, ps_edition, clr_version, computer_name, user, is_admin,
         os_caption, os_version, os_build, os_ubr, product_type, temp_dir,
         defender_install_location, platform_root, platform_folders: [names],
         windefend_service: "Running"|"Stopped"|...|null, mdcoresvc_service,
         mp_status: {AMProductVersion, AMEngineVersion, AMServiceVersion, AMRunningMode,
                     RealTimeProtectionEnabled} | null,
         mp_status_error}
        Schema 2 adds: is_elevated (token elevation; netsh trace needs it),
         defender_policy: {DisableCoreServiceECSIntegration, ForceDefenderPassiveMode,
                           PassiveMode, DisableCoreService1DSTelemetry} (DWORDs or null; from
           HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Features,
           ...\\Policies\\Microsoft\\Windows Advanced Threat Protection and
           HKLM\\SOFTWARE\\Microsoft\\Windows Defender),
         onboarding_state (DWORD from ...\\Windows Advanced Threat Protection\\Status\\
           OnboardingState, or null), onboarded_info (the raw OnboardedInfo JSON string, at most
           4 KiB, or null), sense_service (status of the Sense service or null),
         defender_proxy: {ProxyServer, ProxyPacUrl, ProxyBypass} (strings or null, from
           HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender), telemetry_proxy (the
           TelemetryProxyServer policy value or null), winhttp_proxy: {output, exit_code}
           (``netsh winhttp show proxy``, raw, as in the probe step; read here so that the
           capture can be filtered to the proxy Defender's path goes through).
        When PowerShell is older than 5.1 the script stops early and the document holds only
        {step, schema, ps_version}.
ecs     {step, schema, path, exists,
         signature: {status, status_message, signer_subject, signer_thumbprint} | null,
         ran, exit_code, output, elapsed_ms}
        ``output`` is MpCmdRun's stdout and stderr joined with CRLF, verbatim. ``ran`` is false
        when the binary is missing or its signature is not Valid from the trusted publisher.
probe   {step, schema, url, host,
         capture: {requested, status_before, status_before_exit, stale_stopped, started,
                   start_output, start_exit, stop_output, stop_exit, path, size, sha256},
         dns: {elapsed_ms, records: [{Name, Type, TTL, IPAddress|NameHost}], error,
               error_id, native_code},
         tcp: {address, port, ok, elapsed_ms, error, socket_error},
         winhttp_proxy: {output, exit_code},
         http: {proxy, elapsed_ms, status, status_description, headers: {name: value},
                body_excerpt, error_status, error_message, inner_errors: [..],
                cert: {subject, issuer, thumbprint, not_before, not_after, chain: [subjects,
                       leaf first]} | null}}
        ``error_status`` is the ``System.Net.WebExceptionStatus`` name (``ProtocolError``,
        ``NameResolutionFailure``, ``ConnectFailure``, ``Timeout``, ``TrustFailure``,
        ``SecureChannelFailure``, ...); ``socket_error`` a WSA code (10060, 10061, ...).
        ``http`` is the *admin's path*: .NET HttpWebRequest in the WinRM user's context, with
        that user's proxy and the machine trust store.
        Schema 2 adds (every fact says which mechanism produced it; null when unknown):
         http.tls12_available (false when .NET offers no TLS 1.2: the admin path is then not
           a verdict), http.first_byte_ms, http.cert.chain_thumbprints (SHA-1, beside
           http.cert.chain's subjects, leaf first);
         capture.other_session (true when ``netsh trace show status`` succeeded and the
           running session is not ours: no capture is started and nothing is stopped);
         tcp_all: [{address, port, ok, elapsed_ms, error, socket_error}] (every DNS address,
           at most 4, each tried directly with TcpClient);
         tls: {mechanism: "sslstream", address, ok, protocol ("Tls12", ...), elapsed_ms,
               error, cert: {subject, issuer, thumbprint, not_before, not_after,
               chain: [{subject, thumbprint}] (leaf first)}} | null (a direct handshake; null
               when no address took a TCP connection);
         machine: {mechanism: "winhttp-com", proxy (Defender's static proxy when the request
                   was sent through it, else null), proxy_source ("defender", or
                   "winhttp-default": WinHTTP's own setting, which PowerShell does not read;
                   Python takes the proxy from the raw ``winhttp_proxy`` text),
                   elapsed_ms, status, status_text, headers: {..}, body_excerpt,
                   error_code (the WinHTTP error number, e.g. 12007, 12029, 12175),
                   error_message}: the *machine's path*, as Defender's SYSTEM services go out
                   (WinHttp.WinHttpRequest.5.1 with the WinHTTP proxy, or Defender's own
                   static proxy when set). It has no certificate access; the chain comes
                   from ``tls``.
                   With SystemPath ``1``, mechanism is "system-task" when the same request
                   ran as SYSTEM in the scheduled task (the same keys otherwise). When that
                   could not be done (no ScheduledTasks module, access denied, execution
                   policy, timeout) the request runs in the WinRM user's session as without
                   SystemPath, mechanism stays "winhttp-com", and one more key, system_error
                   (why the SYSTEM run failed, a message), is present; it is absent otherwise.
fetch   base64 chunk strings in order, then {step, schema, path, size, sha256} (upper-case hex,
        as Get-FileHash prints it). A missing file gives only {step, schema, path, error}.
cleanup {step, schema, work_dir, trace_stopped, removed, error}
alternates {step, schema, targets: [{url, host, dns, tcp_all, tls, machine, http}]}: the same
        checks as ``probe`` (same keys, same meaning) for each extra URL, without a capture.
        Run only when the configured endpoint failed, so the report can say which endpoints
        are blocked and which are not. Its machine path is always measured in the WinRM
        user's session (mechanism "winhttp-com"), SystemPath or not.
"""

from __future__ import annotations

import re

SCHEMA = 2
STEPS = ("facts", "ecs", "probe", "alternates", "fetch", "cleanup")
STEP_MARKER = "# fleet-ecs step: {step} v{schema}"
TRACE_SESSION = "FleetEcsTrace"
WORK_DIR_PREFIX = "fleet-ecs-"

_MARKER_RE = re.compile(r"^# fleet-ecs step: (?P<step>[a-z]+) v(?P<schema>\d+)\s*$", re.M)
# A quote character inside the literal is always doubled (see ``psquote``).
_LITERAL_BODY = (
    r"(?:[^'\u2018\u2019\u201a\u201b]|''|\u2018\u2018|\u2019\u2019|\u201a\u201a|\u201b\u201b)*"
)
_INPUT_RE = re.compile(
    r"^\$FE_(?P<name>[A-Za-z0-9]+) = '(?P<value>" + _LITERAL_BODY + r")'\s*$", re.M)
_QUOTES = "'\u2018\u2019\u201a\u201b"


def psquote(value: object) -> str:
    """Render ``value`` as a PowerShell single-quoted literal.

    PowerShell treats the typographic quotes U+2018..U+201B as single quotes too, so each of
    them must be doubled as well, or a value holding one could end the literal early.
    """
    text = "" if value is None else str(value)
    if isinstance(value, bool):
        text = "1" if value else "0"
    out = []
    for char in text:
        out.append(char * 2 if char in _QUOTES else char)
    return "'" + "".join(out) + "'"


def psunquote(literal_body: str) -> str:
    """Undo ``psquote`` on the text between the outer quotes."""
    out = []
    i = 0
    while i < len(literal_body):
        char = literal_body[i]
        out.append(char)
        if char in _QUOTES and i + 1 < len(literal_body) and literal_body[i + 1] == char:
            i += 1
        i += 1
    return "".join(out)


def step_of(script: str) -> tuple[str, int] | None:
    """The (step, schema) a rendered script declares, or None if it is not one of ours."""
    match = _MARKER_RE.search(script)
    if match is None:
        return None
    return match["step"], int(match["schema"])


def parse_inputs(script: str) -> dict[str, str]:
    """The ``$FE_<Name>`` inputs of a rendered script, unquoted, keyed by ``<Name>``."""
    return {m["name"]: psunquote(m["value"]) for m in _INPUT_RE.finditer(script)}
