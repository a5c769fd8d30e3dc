"""Rendering of the PowerShell probe steps, and the PowerShell 5.1 lint that guards them.

Nothing here runs PowerShell: scripts are checked by parsing (tree-sitter-powershell), by the
lint, and by reading them back through the contract's own ``step_of`` / ``parse_inputs``.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from fleet_ecs.probe import contract, pslint, scripts

pytest.importorskip("tree_sitter")
pytest.importorskip("tree_sitter_powershell")

REALISTIC: dict[str, dict[str, object]] = {
    "facts": {"RunId": "20250707T114122Z-3f9c"},
    "ecs": {
        "MpCmdRun": (
            r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.25050.5-0\MpCmdRun.exe"
        ),
        "TrustedPublisher": "Microsoft Corporation",
    },
    "probe": {
        "Url": "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/"
        "MicrosoftWindowsDefenderClient/1.0.0.0",
        "Host": "mdav.us.endpoint.security.microsoft.com",
        "WorkDir": r"C:\Windows\TEMP\fleet-ecs-20250707T114122Z-3f9c",
        "Capture": True,
        "CaptureMaxMb": 64,
        "TimeoutSec": 20,
        "TraceSession": contract.TRACE_SESSION,
        "BodyLimit": 4096,
        "DefenderProxy": "proxy.contoso.example:8080",
        "MachineProxy": "proxy.contoso.example:8080",
        "SystemPath": False,
    },
    "alternates": {
        "Urls": "https://mdav.eu.endpoint.security.microsoft.com/ecs/config/v1/"
        "MicrosoftWindowsDefenderClient/1.0.0.0"
        "|https://ecs.office.com/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0",
        "TimeoutSec": 20,
        "BodyLimit": 2048,
        "DefenderProxy": "",
    },
    "fetch": {
        "Path": r"C:\Windows\TEMP\fleet-ecs-20250707T114122Z-3f9c\capture.etl",
        "ChunkSize": 262144,
    },
    "cleanup": {
        "WorkDir": r"C:\Users\adm.o'brien\AppData\Local\Temp\fleet-ecs-20250707T114122Z-3f9c",
        "TraceSession": contract.TRACE_SESSION,
    },
}

# Everything that could end a PowerShell literal early or smuggle code into the script.
_HOSTILE_PARTS = (
    "'",
    "''",
    "\u2018",
    "\u2019",
    "\u201a\u201b",
    "'; Remove-Item -Recurse -Force C:\\ ; '",
    "$(Stop-Computer -Force)",
    "`$env:USERNAME`",
    '"; & calc.exe; "',
    "; exit 1;",
    "\n@'\nhere-string\n'@\n",
    '\n@"\n$(whoami)\n"@\n',
    "\r\n# fleet-ecs step: fetch v1\r\n",
    "\n$FE_Path = 'C:\\Windows\\System32\\config\\SAM'\n",
    "caf\u00e9 \u65e5\u672c \u2014 \U0001f600",
    "<# not a comment #> # nor this",
    "{{ inputs }} {% raw %}",
    "C:\\trailing\\",
)


def _hostile(step: str, name: str) -> str:
    """A value made of every hostile part, with a sentinel naming its input."""
    sentinel = f"SENTINEL-{step}-{name}"
    return "'" + sentinel + "".join(_HOSTILE_PARTS) + sentinel + "'"


HOSTILE = {
    step: {name: _hostile(step, name) for name in scripts.STEP_INPUTS[step]}
    for step in scripts.STEP_INPUTS
}

# Contract key lists (fleet_ecs/probe/contract.py docstring, schema 2), one tuple per document
# or sub-document, in the order the templates write them.
_TCP = ("address", "port", "ok", "elapsed_ms", "error", "socket_error")
_DNS = ("elapsed_ms", "records", "error", "error_id", "native_code")
_RECORD = ("Name", "Type", "TTL")
_HTTP = ("proxy", "elapsed_ms", "status", "status_description", "headers", "body_excerpt",
         "error_status", "error_message", "inner_errors", "cert", "tls12_available",
         "first_byte_ms")
_CERT = ("subject", "issuer", "thumbprint", "not_before", "not_after", "chain")
_CHAIN_ENTRY = ("subject", "thumbprint")
_TLS = ("mechanism", "address", "ok", "protocol", "elapsed_ms", "error", "cert")
_MACHINE = ("mechanism", "proxy", "proxy_source", "elapsed_ms", "status", "status_text",
            "headers", "body_excerpt", "error_code", "error_message")
_TARGET = ("url", "host", "dns", "tcp_all", "tls", "machine", "http")
CONTRACT_KEYS: dict[str, list[tuple[str, ...]]] = {
    "facts": [
        (
            "step", "schema", "ps_version", "ps_edition", "clr_version", "computer_name",
            "user", "is_admin", "os_caption", "os_version", "os_build", "os_ubr",
            "product_type", "temp_dir", "defender_install_location", "platform_root",
            "platform_folders", "windefend_service", "mdcoresvc_service", "mp_status",
            "mp_status_error",
            # schema 2
            "is_elevated", "defender_policy", "onboarding_state", "onboarded_info",
            "sense_service", "defender_proxy", "telemetry_proxy", "winhttp_proxy",
        ),
        (
            "AMProductVersion", "AMEngineVersion", "AMServiceVersion", "AMRunningMode",
            "RealTimeProtectionEnabled",
        ),
        ("DisableCoreServiceECSIntegration", "ForceDefenderPassiveMode", "PassiveMode",
         "DisableCoreService1DSTelemetry"),
        ("ProxyServer", "ProxyPacUrl", "ProxyBypass"),
    ],
    "ecs": [
        ("step", "schema", "path", "exists", "signature", "ran", "exit_code", "output",
         "elapsed_ms"),
        ("status", "status_message", "signer_subject", "signer_thumbprint"),
    ],
    "probe": [
        ("step", "schema", "url", "host", "capture", "dns", "tcp", "winhttp_proxy", "http",
         "tcp_all", "tls", "machine"),
        ("requested", "status_before", "status_before_exit", "stale_stopped", "started",
         "start_output", "start_exit", "stop_output", "stop_exit", "path", "size", "sha256",
         "other_session"),
        _DNS, _RECORD, _TCP,
        ("output", "exit_code"),
        _HTTP, _CERT, _TLS, _CHAIN_ENTRY, _MACHINE,
    ],
    "alternates": [
        ("step", "schema", "targets"),
        _TARGET, _DNS, _RECORD, _TCP, _HTTP, _CERT, _TLS, _CHAIN_ENTRY, _MACHINE,
    ],
    "fetch": [
        ("step", "schema", "path", "error"),
        ("step", "schema", "path", "size", "sha256"),
    ],
    "cleanup": [("step", "schema", "work_dir", "trace_stopped", "removed", "error")],
}

STEPS = list(contract.STEPS)
CASES = [(step, "realistic") for step in STEPS] + [(step, "hostile") for step in STEPS]


def _inputs(step: str, kind: str) -> dict[str, object]:
    return dict(REALISTIC[step] if kind == "realistic" else HOSTILE[step])


def _split(step: str, kind: str, text: str) -> tuple[str, str, str]:
    """(marker line, input block, body) of a rendered script."""
    marker = contract.STEP_MARKER.format(step=step, schema=contract.SCHEMA)
    block = scripts.input_block(step, **_inputs(step, kind))
    head = marker + "\n" + block + "\n"
    assert text.startswith(head)
    return marker, block, text[len(head):]


def _expected_values(step: str, kind: str) -> dict[str, str]:
    out = {}
    for name, value in _inputs(step, kind).items():
        if isinstance(value, bool):
            out[name] = "1" if value else "0"
        else:
            out[name] = str(value)
    return out


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], str]:
    return {(step, kind): scripts.render_step(step, **_inputs(step, kind)) for step, kind in CASES}


def _tree(text: str):
    return pslint._parse(text.encode("utf-8"))


@pytest.mark.parametrize(("step", "kind"), CASES)
def test_rendered_script_parses_without_error(rendered, step, kind):
    assert pslint.parse_errors(rendered[step, kind]) == []


@pytest.mark.parametrize(("step", "kind"), CASES)
def test_rendered_script_passes_the_ps51_lint(rendered, step, kind):
    assert pslint.lint_ps51(rendered[step, kind]) == []


@pytest.mark.parametrize(("step", "kind"), CASES)
def test_contract_reads_back_step_and_exact_inputs(rendered, step, kind):
    text = rendered[step, kind]

    assert contract.step_of(text) == (step, contract.SCHEMA)
    assert contract.parse_inputs(text) == _expected_values(step, kind)


@pytest.mark.parametrize(("step", "kind"), CASES)
def test_each_input_is_one_single_quoted_literal_for_the_parser(rendered, step, kind):
    """tree-sitter sees `$FE_<Name> = '<value>'` as one assignment of one verbatim string."""
    source = rendered[step, kind].encode("utf-8")
    root = _tree(rendered[step, kind]).root_node
    seen = {}
    for node in pslint._walk(root):
        if node.type != "assignment_expression":
            continue
        left = node.children[0].text.decode()
        if not left.startswith("$FE_"):
            continue
        strings = [n for n in pslint._walk(node.children[-1]) if n.type.startswith("verbatim")]
        assert len(strings) == 1, left
        seen[left[4:]] = source[strings[0].start_byte:strings[0].end_byte].decode()
    expected = _expected_values(step, kind)
    assert seen == {name: contract.psquote(value) for name, value in expected.items()}


@pytest.mark.parametrize("step", STEPS)
def test_values_reach_the_script_only_through_their_input_lines(rendered, step):
    marker, _block, hostile_body = _split(step, "hostile", rendered[step, "hostile"])
    _, _, realistic_body = _split(step, "realistic", rendered[step, "realistic"])

    # The body does not depend on the values at all...
    assert hostile_body == realistic_body
    # ...and no value text shows up outside the input block.
    for name in scripts.STEP_INPUTS[step]:
        sentinel = f"SENTINEL-{step}-{name}"
        assert sentinel not in marker + "\n" + hostile_body
    assert "SENTINEL" not in realistic_body


@pytest.mark.parametrize("step", STEPS)
def test_template_uses_only_its_own_inputs(rendered, step):
    _, _, body = _split(step, "realistic", rendered[step, "realistic"])
    used = set(re.findall(r"\$FE_([A-Za-z0-9]+)", body))
    expected = set(scripts.STEP_INPUTS[step])

    assert used <= expected
    if step != "facts":  # RunId only labels the facts script for the simulator and logs
        assert used == expected
    # No body line may look like an input line to parse_inputs.
    assert not re.search(r"(?m)^\$FE_", body)


_INCLUDE_RE = re.compile(r"\{% include 'probe/_[a-z]+\.ps1\.j2' %\}")


@pytest.mark.parametrize("step", STEPS)
def test_templates_use_only_trusted_placeholders(step):
    """Input values cannot be interpolated: the templates only see finished, quoted pieces."""
    source = scripts.template_source(step)
    placeholders = set(re.findall(r"\{\{(.*?)\}\}", source))
    statements = re.findall(r"\{%.*?%\}", source, re.S)

    assert source.splitlines()[:2] == ["{{ marker }}", "{{ inputs }}"]
    assert {p.strip() for p in placeholders} <= {"marker", "inputs", "schema", "work_dir_prefix"}
    # The only statement allowed is including a shared fragment, alone on its line.
    assert all(_INCLUDE_RE.fullmatch(statement) for statement in statements), statements
    for line in source.splitlines():
        assert "{%" not in line or _INCLUDE_RE.fullmatch(line), line
    assert "{#" not in source


def test_fragments_are_plain_functions_without_inputs():
    names = scripts.fragment_names()

    assert {"probe/_common.ps1.j2", "probe/_network.ps1.j2", "probe/_facts.ps1.j2",
            "probe/_ecs.ps1.j2", "probe/_probe.ps1.j2", "probe/_alternates.ps1.j2"} <= set(names)
    for name in names:
        source = scripts.fragment_source(name)
        placeholders = {p.strip() for p in re.findall(r"\{\{(.*?)\}\}", source)}
        assert placeholders <= {"schema", "work_dir_prefix"}, name
        assert "{%" not in source and "{#" not in source, name
        # Fragments take their values as parameters, so the standalone script can reuse them.
        assert "$FE_" not in source, name
        assert source.isascii(), name


def test_unknown_fragment_raises():
    with pytest.raises(ValueError, match="unknown probe fragment"):
        scripts.fragment_source("probe/facts.ps1.j2")


@pytest.mark.parametrize("step", STEPS)
def test_script_shape(rendered, step):
    text = rendered[step, "realistic"]

    assert text.splitlines()[0] == contract.STEP_MARKER.format(step=step, schema=contract.SCHEMA)
    assert text.isascii()
    assert "\r" not in text
    assert text.count("ConvertTo-Json") >= 1
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("step", STEPS)
def test_output_documents_hold_the_contract_keys(rendered, step):
    root = _tree(rendered[step, "realistic"]).root_node
    literals = []
    for node in pslint._walk(root):
        if node.type == "hash_literal_expression":
            keys = tuple(
                entry.children[0].text.decode()
                for body in node.children
                if body.type == "hash_literal_body"
                for entry in body.children
                if entry.type == "hash_entry"
            )
            literals.append(keys)
    for keys in CONTRACT_KEYS[step]:
        assert keys in literals, keys


def test_contract_key_lists_are_the_contract_docstrings():
    """Every key the tests expect is named in the contract, so the two cannot drift apart."""
    doc = contract.__doc__ or ""
    for step, tuples in CONTRACT_KEYS.items():
        assert re.search(rf"(?m)^{step}\s", doc), step
        for keys in tuples:
            for key in keys:
                assert re.search(rf"(?<![A-Za-z0-9_]){key}(?![A-Za-z0-9_])", doc), (step, key)


def _code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def test_facts_reads_each_documented_registry_value():
    text = scripts.render_step("facts", **REALISTIC["facts"])

    for fragment in (
        r"'SOFTWARE\Policies\Microsoft\Windows Defender'",
        r"$defenderPolicies + '\Features'",
        r"'SOFTWARE\Policies\Microsoft\Windows Advanced Threat Protection'",
        r"'SOFTWARE\Microsoft\Windows Advanced Threat Protection'",
        "\"$atp\\Status\" 'OnboardingState'",
        "'TelemetryProxyServer'",
        "OnboardedInfo",
        "Substring(0, 4096)",
        "RegistryView]::Registry64",
        "'Sense'",
        "'\"S-1-16-12288\"'",
    ):
        assert fragment in text, fragment
    # Registry reads never throw on a missing key: OpenSubKey answers $null instead.
    assert "OpenSubKey($SubKey, $false)" in text


def test_probe_never_stops_a_trace_session_that_is_not_named_ours():
    text = scripts.render_step("probe", **REALISTIC["probe"])
    code = "\n".join(_code_lines(text))
    stops = re.findall(r"@\('trace', 'stop'[^)]*\)", code)

    assert stops and all("sessionname=$TraceSession" in stop for stop in stops)
    # Someone else's session: recorded, and nothing is started.
    assert "$capture.other_session = $true" in code
    assert "if ($capture.other_session -ne $true) {" in code
    # Whether a session runs is read from netsh's exit code, not from its localized words.
    assert "if ($status.exit_code -eq 0) {" in code
    assert "$statusText.IndexOf($TraceSession, $ignoreCase)" in code
    assert "$statusText.IndexOf($prefix, $ignoreCase)" in code
    assert f"$prefix = {contract.psquote(contract.WORK_DIR_PREFIX)}" in code


@pytest.mark.parametrize("step", ["probe", "alternates"])
def test_network_steps_share_one_set_of_checks(rendered, step):
    text = rendered[step, "realistic"]
    code = "\n".join(_code_lines(text))

    for function in ("Resolve-FeDns", "Test-FeTcpAll", "Test-FeTls", "Invoke-FeMachine",
                     "Invoke-FeHttp", "New-FeTarget", "Invoke-FeTargetChecks"):
        assert code.count(f"function {function} {{") == 1, function
    # The machine path: WinHTTP COM, Defender's proxy or the WinHTTP default, bounded.
    assert "New-Object -ComObject 'WinHttp.WinHttpRequest.5.1'" in code
    assert "$request.SetProxy(2, $DefenderProxy)" in code
    assert "$request.SetProxy(0)" in code
    assert "$request.WaitForResponse($waitSec)" in code
    assert "(($hresult -shr 16) -band 0xFFFF) -eq 0x8007" in code
    # The direct handshake: TLS 1.2 with SNI, synchronous (the callback needs this thread).
    assert "$ssl.AuthenticateAsClient($HostName, $null, $tls12, $false)" in code
    assert "BeginAuthenticateAsClient" not in code
    assert "[Threading.WaitHandle]::WaitAny($handles, [int]$left, $false)" in code
    assert "Select-Object -First 4" in code


def test_steps_return_no_arrays_from_functions():
    """A returned array turns into {value, Count} in 5.1's ConvertTo-Json; dicts only."""
    for name in scripts.fragment_names():
        source = scripts.fragment_source(name)
        assert not re.search(r"return\s*,", source), name
        assert "Write-Output -NoEnumerate" not in source, name


def test_facts_old_powershell_branch_is_hand_built_json():
    text = scripts.render_step("facts", **REALISTIC["facts"])
    early = text.split("return", 1)[0]
    code = "\n".join(line for line in early.splitlines() if not line.lstrip().startswith("#"))
    line = next(line for line in early.splitlines() if '{"step":"facts"' in line)
    literal = line.strip().replace("' + $feVersion + '", "2.0")

    assert json.loads(literal.strip("'")) == {
        "step": "facts",
        "schema": contract.SCHEMA,
        "ps_version": "2.0",
    }
    for newer in ("[ordered]", "ConvertTo-Json", "::new(", " -in ", " -notin "):
        assert newer not in code


@pytest.mark.parametrize("step", STEPS)
def test_missing_input_raises(step):
    inputs = dict(REALISTIC[step])
    inputs.pop(scripts.STEP_INPUTS[step][0])
    with pytest.raises(ValueError, match="missing"):
        scripts.render_step(step, **inputs)


@pytest.mark.parametrize("step", STEPS)
def test_extra_input_raises(step):
    with pytest.raises(ValueError, match="unexpected Bogus"):
        scripts.render_step(step, Bogus="x", **REALISTIC[step])


def test_none_input_and_unknown_step_raise():
    with pytest.raises(ValueError, match="None"):
        scripts.render_step("facts", RunId=None)
    with pytest.raises(ValueError, match="unknown probe step"):
        scripts.render_step("reboot", RunId="x")


def test_step_inputs_table_covers_the_contract_steps():
    assert tuple(scripts.STEP_INPUTS) == contract.STEPS


def test_script_sha256_is_utf8_sha256():
    text = scripts.render_step("facts", RunId="a\u00e9")

    assert scripts.script_sha256(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert scripts.script_sha256(text) != scripts.script_sha256(text + " ")


PS7_SAMPLES = {
    "and": "a && b",
    "or": "a || b",
    "null_coalescing": "$x = $a ?? 1",
    "null_coalescing_assign": "$x ??= 1",
    "null_conditional_member": "${a}?.b",
    "null_conditional_index": "${a}?[0]",
    "ternary": "$x = $a ? 1 : 2",
    "foreach_parallel": "1..3 | ForEach-Object -Parallel { $_ }",
    "foreach_parallel_alias": "1..3 | % -Parallel { $_ }",
    "as_hashtable": "$j | ConvertFrom-Json -AsHashtable",
    "as_hashtable_prefix": "$j | ConvertFrom-Json -AsHash",
    "convertfrom_depth": "ConvertFrom-Json -Depth 3 $j",
    "clean_block": "function f {\n    process { 1 }\n    clean { 2 }\n}",
    "get_error": "Get-Error",
    "is_windows": "if ($IsWindows) { 1 }",
    "skip_certificate_check": "Invoke-WebRequest -Uri $u -SkipCertificateCheck",
    "ssl_protocol": "iwr $u -SslProtocol Tls12",
    "test_json": "Test-Json -Json $j",
    "enums_as_strings": "$x | ConvertTo-Json -EnumsAsStrings",
    "as_array": "ConvertTo-Json -AsArray $x",
    "join_path_three": "Join-Path $a b c",
    "join_path_named_three": "Join-Path -Path $a -ChildPath b c",
    "additional_child_path": "Join-Path $a b -AdditionalChildPath c",
    "ps_style": "$PSStyle.Reset",
    "as_byte_stream": "Get-Content $p -AsByteStream",
    "unicode_escape": '"arrow `u{2195}"',
    "background_job": "Start-Sleep 1 &",
    "using_namespace": "using namespace System.Net",
    "non_ascii_dash": "Get-Service \u2013Name WinDefend",
    "typographic_quotes": "Write-Output \u2018a\u2019",
    "ps7_in_subexpression": '"value: $($a ?? 1)"',
    "retry_prefix": "Invoke-WebRequest $u -MaximumRetry 3",
}


@pytest.mark.parametrize("name", sorted(PS7_SAMPLES))
def test_lint_flags_powershell7_constructs(name):
    assert pslint.lint_ps51(PS7_SAMPLES[name]) != []


PS51_SAMPLES = {
    "where_alias": "Get-ChildItem | ? { $_.Name }",
    "join_path_two": "Join-Path $a 'b'",
    "join_path_named_two": "Join-Path -Path $a -ChildPath b",
    "convertto_depth": "ConvertTo-Json -Depth 6 -Compress $x",
    "operators_in_single_quotes": "'a && b || c ?? d ? e : f $IsWindows'",
    "operators_in_comment": "# a && b || $x ?? 1\n$y = 1",
    "operators_in_here_string": "$x = @'\na ?? b && c\n'@",
    "stderr_redirect": "& $exe -DisplayECSConnection 2>&1",
    "wildcard": "Get-ChildItem a?.txt",
    "non_ascii_in_string": "$x = 'caf\u00e9 \u2018q\u2019'",
    "ordered": "$d = [ordered]@{ a = 1; b = @(1, 2) }",
    "prefix_of_a_51_parameter": "Invoke-WebRequest $u -Max 3 -UseBasicParsing",
}


@pytest.mark.parametrize("name", sorted(PS51_SAMPLES))
def test_lint_accepts_windows_powershell_51(name):
    assert pslint.lint_ps51(PS51_SAMPLES[name]) == []


@pytest.mark.parametrize("text", ["if ($x { 1 }", "$h = @{ a = 1", "$s = 'open", "$x = (1 + )"])
def test_parse_errors_reports_broken_scripts(text):
    problems = pslint.parse_errors(text)

    assert problems
    assert all(re.match(r"line \d+, col \d+: ", p) for p in problems)


def test_body_hash_does_not_depend_on_inputs():
    from fleet_ecs.probe.scripts import body_hashes, render_step, script_body, script_sha256

    hashes = body_hashes()
    assert set(hashes) == set(scripts.STEP_INPUTS)
    other = render_step("cleanup", WorkDir="C:\\Windows\\TEMP\\fleet-ecs-zz", TraceSession="T")
    assert script_sha256(script_body(other)) == hashes["cleanup"]
    assert "$FE_" not in script_body(other).split("\n", 1)[0]
