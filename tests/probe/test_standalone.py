"""The standalone probe script: shape, Windows PowerShell 5.1 safety, reuse and contract keys.

Nothing here runs PowerShell: the script is checked by parsing (tree-sitter-powershell), by the
5.1 lint, and by comparing it with the step templates and the contract.
"""

from __future__ import annotations

import json
import re

import pytest
from test_scripts import CONTRACT_KEYS

from fleet_ecs.probe import contract, parse, pslint, scripts, standalone

pytest.importorskip("tree_sitter")
pytest.importorskip("tree_sitter_powershell")

RUN_ID = "20250707T114122Z-3f9c"

# The contract's keys, written once in test_scripts.py: the standalone script must produce the
# same documents as the step scripts it is assembled from.
DOC_KEYS = {step: CONTRACT_KEYS[step] for step in ("facts", "ecs", "probe", "alternates")}
ENVELOPE = [
    ("format", "version", "run_id", "computer_name", "generated_at", "docs"),
    ("facts", "ecs", "probe", "alternates"),
]


def _render(**overrides: object) -> str:
    args: dict[str, object] = {"run_id": RUN_ID, "capture": True, "timeout_sec": 20}
    args.update(overrides)
    return standalone.render_standalone(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def script() -> str:
    return _render(out_dir_hint="C:\\Temp\\o'brien")


def _hash_literal_keys(text: str) -> list[tuple[str, ...]]:
    root = pslint._parse(text.encode("utf-8")).root_node
    literals = []
    for node in pslint._walk(root):
        if node.type == "hash_literal_expression":
            literals.append(tuple(
                entry.children[0].text.decode()
                for body in node.children
                if body.type == "hash_literal_body"
                for entry in body.children
                if entry.type == "hash_entry"
            ))
    return literals


def _code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_it_parses_and_passes_the_ps51_lint(script):
    assert pslint.parse_errors(script) == []
    assert pslint.lint_ps51(script) == []


def test_it_is_ascii_and_not_a_step_script(script):
    assert script.isascii()
    assert "\r" not in script
    assert contract.step_of(script) is None
    assert "$FE_" not in script
    assert contract.parse_inputs(script) == {}
    assert "{{" not in script and "{%" not in script


def test_param_block_comes_first_with_outdir_and_nocapture(script):
    root = pslint._parse(script.encode("utf-8")).root_node
    first = next(child for child in root.children if child.type != "comment")
    text = first.text.decode()

    assert first.type == "param_block"
    assert "[string]$OutDir = " in text
    assert "[switch]$NoCapture" in text


def test_the_header_explains_changes_and_signing(script):
    header = script.split("param(", 1)[0]

    assert all(line.startswith("#") for line in header.splitlines())
    for needed in ("changes: nothing, except its own folder", "netsh", "stops itself",
                   "Set-AuthenticodeSignature", "-CodeSigningCert", "-TimestampServer",
                   "-OutDir"):
        assert needed in header, needed


def test_every_step_fragment_is_included_verbatim(script):
    context = scripts.template_context()
    for name in ("probe/_common.ps1.j2", "probe/_network.ps1.j2", "probe/_facts.ps1.j2",
                 "probe/_ecs.ps1.j2", "probe/_probe.ps1.j2", "probe/_alternates.ps1.j2"):
        fragment = scripts.load_template(name).render(**context)
        assert fragment in script, name
        assert script.count(fragment) == 1, name


@pytest.mark.parametrize("step", list(DOC_KEYS))
def test_each_document_holds_the_contract_keys(script, step):
    literals = _hash_literal_keys(script)
    for keys in DOC_KEYS[step]:
        assert keys in literals, keys


def test_the_step_functions_are_called_once_each(script):
    code = _code(script)
    for call in ("Get-FeFactsDoc -PsVersion", "Invoke-FeEcsDoc -MpCmdRun",
                 "Invoke-FeProbeDoc -Url", "Invoke-FeAlternatesDoc -Urls"):
        assert code.count(call) == 1, call


def test_the_envelope_keys_and_file(script):
    literals = _hash_literal_keys(script)
    code = _code(script)

    for keys in ENVELOPE:
        assert keys in literals, keys
    assert f"format = '{standalone.FORMAT}'" in code
    assert f"version = {standalone.FORMAT_VERSION}" in code
    assert "$feFileName = 'fleet-ecs-' + $feComputer + '-' + $feStamp + '.json'" in code
    assert "(New-Object System.Text.UTF8Encoding($false))" in code
    assert "Write-Output ('fleet-ecs: wrote ' + $feOutPath)" in code
    # The result goes where the admin says, never to some profile's desktop.
    assert "desktop" not in code.lower()
    assert "GetFolderPath" not in code


def test_values_arrive_only_as_quoted_constants(script):
    code = _code(script)

    assert f"$feRunId = {contract.psquote(RUN_ID)}" in code
    assert "$feCapture = '1'" in code
    assert "$feTimeoutSec = '20'" in code
    assert f"$feTraceSession = {contract.psquote(contract.TRACE_SESSION)}" in code
    assert f"$feTrustedPublisher = {contract.psquote(standalone.TRUSTED_PUBLISHER)}" in code
    assert "[string]$OutDir = 'C:\\Temp\\o''brien'," in code


def test_out_dir_hint_is_one_quoted_literal():
    text = _render(out_dir_hint="C:\\Temp\\it's; Remove-Item C:\\ -Recurse")
    assert "[string]$OutDir = 'C:\\Temp\\it''s; Remove-Item C:\\ -Recurse'," in text
    assert pslint.parse_errors(text) == []
    assert "[string]$OutDir = ''," in _render()


def test_capture_off_and_timeout_are_rendered():
    text = _code(_render(capture=False, timeout_sec=7))

    assert "$feCapture = '0'" in text
    assert "$feTimeoutSec = '7'" in text
    assert "if ($NoCapture) { $feCapture = '0' }" in text


@pytest.mark.parametrize("run_id", ["", "..", "a..b", "a b", "x'y", "-x", "a/b", "a\\b",
                                    "r" * 65, "caf\u00e9"])
def test_bad_run_ids_are_refused(run_id):
    with pytest.raises(ValueError, match="run id"):
        _render(run_id=run_id)


@pytest.mark.parametrize(("name", "value"), [("timeout_sec", 0), ("timeout_sec", 301),
                                             ("timeout_sec", True), ("capture_max_mb", 0)])
def test_bad_numbers_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        _render(**{name: value})


@pytest.mark.parametrize("hint", ["C:\\a\nb", "C:\\caf\u00e9", "C:\\x\x00"])
def test_bad_out_dir_hints_are_refused(hint):
    with pytest.raises(ValueError, match="out_dir_hint"):
        _render(out_dir_hint=hint)


def test_choices_follow_the_python_rules(script):
    code = _code(script)

    # The same ECS line and URL patterns as fleet_ecs.probe.parse.
    assert "'" + parse._ECS_LINE_RE.pattern.replace("'", "''") + "'" in code
    assert "'" + parse._URL_RE.pattern.replace("'", "''") + "'" in code
    assert f"$app = '{parse.ECS_APP_PATH}'" in code
    # Platform folders compared as versions, never sorted as text.
    assert "[version]::TryParse($Matches[1], [ref]$version)" in code
    assert "Sort-Object" not in code
    # The fallbacks, in order: geo endpoint, then the global endpoint.
    geo = "return 'https://mdav.' + $Geo + '.endpoint.security.microsoft.com/ecs/config/v1/'"
    assert code.index(geo) < code.index("return 'https://ecs.office.com/config/v1/'")
    assert "@('us', 'eu', 'uk', 'au', 'ch', 'in') -contains $geo" in code


def test_old_powershell_branch_writes_hand_built_json(script):
    code = _code(script)
    branch = code.split("if ((-not $PSVersionTable)", 1)[1].split("[IO.File]", 1)[0]
    expression = branch.split("$feOld = ", 1)[1]
    values = {"feRunId": RUN_ID, "feComputer": "WS-0042", "feGeneratedAt": "2025-07-07T11:41:22Z",
              "feVersion": "2.0"}
    pieces = re.findall(r"'((?:[^']|'')*)'|\$(\w+)", expression)
    text = "".join(literal.replace("''", "'") if not name else values[name]
                   for literal, name in pieces)

    assert json.loads(text) == {
        "format": "fleet-ecs-standalone", "version": 1, "run_id": RUN_ID,
        "computer_name": "WS-0042", "generated_at": "2025-07-07T11:41:22Z",
        "docs": {"facts": {"step": "facts", "schema": contract.SCHEMA, "ps_version": "2.0"}},
    }
    for newer in ("[ordered]", "ConvertTo-Json", "::new("):
        assert newer not in code.split("$ProgressPreference", 1)[0]
