"""The opt-in SYSTEM measurement of the machine path (probe input SystemPath, _system.ps1.j2).

Nothing here runs PowerShell or the Task Scheduler: the rendered scripts are checked by parsing
(tree-sitter-powershell), by the 5.1 lint and by their structure (which call sits in which
function, behind which guard); the simulator and the runner are checked by running them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fleet_ecs.models import ScanSettings
from fleet_ecs.probe import contract, pslint, runner, scripts
from fleet_ecs.sim import scenarios
from fleet_ecs.sim.credentials import DEMO_USERNAME
from fleet_ecs.sim.state import HostState
from fleet_ecs.sim.steps import HostContext, start_step
from fleet_ecs.sim.windows_text import profile_for

pytest.importorskip("tree_sitter")
pytest.importorskip("tree_sitter_powershell")

WORK_DIR = r"C:\Users\adm.o'brien\AppData\Local\Temp\fleet-ecs-20250707T114122Z-3f9c"
INPUTS: dict[str, object] = {
    "Url": "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/"
    "MicrosoftWindowsDefenderClient/1.0.0.0",
    "Host": "mdav.us.endpoint.security.microsoft.com",
    "WorkDir": WORK_DIR,
    "Capture": True,
    "CaptureMaxMb": 64,
    "TimeoutSec": 20,
    "TraceSession": contract.TRACE_SESSION,
    "BodyLimit": 4096,
    "DefenderProxy": "",
    "MachineProxy": "",
}
FOLDER = r"'\FleetEcs\'"


def render(system_path: object) -> str:
    return scripts.render_step("probe", **INPUTS, SystemPath=system_path)


@pytest.fixture(scope="module")
def on() -> str:
    return render("1")


@pytest.fixture(scope="module")
def off() -> str:
    return render("0")


def _nodes(text: str) -> list[Any]:
    return list(pslint._walk(pslint._parse(text.encode("utf-8")).root_node))


def _calls(text: str, name: str) -> list[Any]:
    """The command nodes invoking ``name`` (not its definition, not a mention in a comment)."""
    return [n for n in _nodes(text) if n.type == "command"
            and n.children and n.children[0].type == "command_name"
            and n.children[0].text.decode().lower() == name.lower()]


def _ancestors(node: Any) -> list[Any]:
    out = []
    node = node.parent
    while node is not None:
        out.append(node)
        node = node.parent
    return out


def _key(node: Any) -> tuple[str, int, int]:
    return node.type, node.start_byte, node.end_byte


def _function_of(node: Any) -> str | None:
    for up in _ancestors(node):
        if up.type == "function_statement":
            return next(c.text.decode() for c in up.children if c.type == "function_name")
    return None


def _function_source(text: str, name: str) -> str:
    found = [n for n in _nodes(text) if n.type == "function_statement"
             and any(c.type == "function_name" and c.text.decode() == name for c in n.children)]
    assert len(found) == 1, name
    return found[0].text.decode()


def _code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


# --- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "0", True, False])
def test_rendered_probe_parses_and_passes_the_ps51_lint(value):
    text = render(value)

    assert pslint.parse_errors(text) == []
    assert pslint.lint_ps51(text) == []
    assert contract.parse_inputs(text)["SystemPath"] == ("1" if value in ("1", True) else "0")


def test_switching_on_changes_only_the_input_line(on, off):
    assert on.replace("$FE_SystemPath = '1'", "$FE_SystemPath = '0'") == off
    assert on != off


def test_system_path_defaults_to_off_for_callers_that_do_not_pass_it(off):
    assert scripts.render_step("probe", **INPUTS) == off
    with pytest.raises(ValueError, match="unexpected SystemPath"):
        scripts.render_step("alternates", Urls="", TimeoutSec=1, BodyLimit=1, DefenderProxy="",
                            SystemPath="1")


def test_the_fragment_is_included_once_and_takes_no_inputs(off):
    source = scripts.fragment_source("probe/_system.ps1.j2")

    assert "$FE_" not in source
    assert off.count("function Invoke-FeSystemTask {") == 1
    hostile = scripts.render_step(
        "probe", **(INPUTS | {"WorkDir": "SENTINEL'; Register-ScheduledTask x; '"}),
        SystemPath="1")
    assert "SENTINEL" not in scripts.script_body(hostile)
    assert scripts.script_body(hostile) == scripts.script_body(off)


# --- the guard: nothing scheduled unless SystemPath is '1' ---------------------------------


def test_register_is_reached_only_behind_the_system_path_guard(off):
    """The '0' render holds the definitions; the only way to them is `if ($SystemPath -eq '1')`."""
    chain = [
        ("Register-ScheduledTask", "Invoke-FeSystemTask"),
        ("Start-ScheduledTask", "Invoke-FeSystemTask"),
        ("Invoke-FeSystemTask", "Invoke-FeSystemMachine"),
        ("Invoke-FeSystemMachine", "Invoke-FeSystemTargetChecks"),
        ("Invoke-FeSystemTargetChecks", "Invoke-FeProbeDoc"),
    ]
    for callee, caller in chain:
        calls = _calls(off, callee)
        assert calls, callee
        assert {_function_of(c) for c in calls} == {caller}, callee
    (entry,) = _calls(off, "Invoke-FeSystemTargetChecks")
    guards = [up for up in _ancestors(entry) if up.type == "if_statement"]
    assert guards, "Invoke-FeSystemTargetChecks is called without a guard"
    condition = next(c for c in guards[0].children if c.type == "pipeline").text.decode()
    assert condition == "$SystemPath -eq '1'"
    # The default path keeps today's in-session checks, in the else branch of that guard.
    (plain,) = _calls(off, "Invoke-FeTargetChecks")
    assert any(up.type == "else_clause" for up in _ancestors(plain))
    assert _key(guards[0]) in [_key(up) for up in _ancestors(plain)]
    # The script's entry point passes the input through; the function defaults to off.
    assert "-SystemPath $FE_SystemPath" in off
    assert "[string]$SystemPath = '0'" in off


def test_every_scheduled_task_call_names_our_folder(on):
    commands = ("Register-ScheduledTask", "Start-ScheduledTask", "Stop-ScheduledTask",
                "Unregister-ScheduledTask", "Get-ScheduledTask", "Get-ScheduledTaskInfo")
    for name in commands:
        calls = _calls(on, name)
        assert calls, name
        for call in calls:
            text = call.text.decode()
            assert f"-TaskPath {FOLDER}" in text, text
    # No task is created or changed in any other way.
    code = _code(on)
    for other in ("Set-ScheduledTask", "schtasks", "Enable-ScheduledTask",
                  "RegisterTaskDefinition", "-EncodedCommand", "-enc ", "-Force"):
        assert other.lower() not in code.lower(), other


def test_registration_as_system_one_shot_and_bounded(on):
    (register,) = _calls(on, "Register-ScheduledTask")
    text = register.text.decode()
    for part in ("-TaskName $taskName", "-Action $action", "-Principal $principal",
                 "-Trigger $trigger", "-Settings $settings", "-ErrorAction Stop"):
        assert part in text, part
    code = _code(on)
    assert "return 'FleetEcs-' + $id" in code
    assert "New-Object System.Security.Principal.SecurityIdentifier('S-1-5-18')" in code
    assert "-UserId $systemName -LogonType ServiceAccount" in code
    assert "-RunLevel Highest" in code
    assert ("'-NoProfile -NonInteractive -ExecutionPolicy Bypass -File \"' +\n"
            "            $scriptPath + '\"'") in code
    assert "-ExecutionTimeLimit (" in code
    assert "-DeleteExpiredTaskAfter (New-TimeSpan -Minutes 1)" in code
    assert "$trigger.EndBoundary = " in code
    # The wait is bounded by the timeout and ends early when the task ended without a result.
    assert "if ($clock.ElapsedMilliseconds -ge $waitMs) {" in code
    assert "$waitMs = $TimeoutMs + 20000" in code
    assert "Start-Sleep -Milliseconds 200" in code


def test_unregister_only_our_names_and_always_in_a_finally(on):
    (unregister,) = _calls(on, "Unregister-ScheduledTask")
    assert _function_of(unregister) == "Remove-FeSystemTask"
    remove = _function_source(on, "Remove-FeSystemTask")
    guard = ("if (-not $TaskName.StartsWith('FleetEcs-', [StringComparison]::Ordinal)) "
             "{ return $false }")
    assert guard in remove
    assert remove.index(guard) < remove.index("Unregister-ScheduledTask")
    assert "-TaskName $TaskName -TaskPath '\\FleetEcs\\' -Confirm:$false" in remove

    calls = _calls(on, "Remove-FeSystemTask")
    assert {_function_of(c) for c in calls} == {"Invoke-FeSystemTask"}
    in_finally = [c for c in calls if any(up.type == "finally_clause" for up in _ancestors(c))]
    assert [c.text.decode() for c in in_finally] == ["Remove-FeSystemTask $taskName"]
    # The other call removes stale tasks: same folder, our prefix, nothing else.
    (stale,) = [c for c in calls if c not in in_finally]
    loop = next(up for up in _ancestors(stale) if up.type == "foreach_statement").text.decode()
    assert loop.startswith("foreach ($old in $stale) {")
    assert "$stale = @(Get-ScheduledTask -TaskPath '\\FleetEcs\\' " in _code(on)
    assert "($old.TaskPath -eq '\\FleetEcs\\')" in loop
    assert ".StartsWith('FleetEcs-', [StringComparison]::Ordinal)" in loop


def test_files_are_deleted_and_the_folder_removed_only_when_empty(on):
    task = _function_source(on, "Invoke-FeSystemTask")
    finally_part = task[task.index("} finally {"):]
    for leaf in ("'system-machine.ps1'", "'system-input.json'", "'system-machine.json'"):
        assert leaf in finally_part, leaf
    assert "[IO.File]::Delete($folder + '\\' + $leaf)" in finally_part
    assert "[IO.Directory]::Delete($folder)" in finally_part
    folder = _function_source(on, "Remove-FeSystemTaskFolder")
    assert "if ($folder.GetTasks(1).Count -eq 0) {" in folder
    # The folder holding the SYSTEM script: a fresh name, writable by SYSTEM and admins only.
    make = _function_source(on, "New-FeSystemFolder")
    assert "[Guid]::NewGuid()" in make
    assert "SetAccessRuleProtection($true, $false)" in make
    assert "@('S-1-5-18', 'S-1-5-32-544')" in make
    assert "[IO.Directory]::CreateDirectory($path, $security)" in make


def test_fallback_is_in_session_and_says_so(on):
    machine = _function_source(on, "Invoke-FeSystemMachine")
    catch = machine[machine.index("} catch {"):]

    assert "Invoke-FeMachine $Url $TimeoutMs $BodyLimit $DefenderProxy" in catch
    assert "$machine.system_error = $failure" in catch
    # "system-task" is set only where the SYSTEM result was read back.
    assert _code(on).count("'system-task'") == 1
    task = _function_source(on, "Invoke-FeSystemTask")
    assert task.index("ConvertFrom-Json") < task.index("$result.mechanism = 'system-task'")


def test_system_target_checks_match_the_default_checks_but_for_the_machine(on):
    """Invoke-FeSystemTargetChecks is a copy of Invoke-FeTargetChecks; this keeps them equal."""
    def body(name: str) -> list[str]:
        lines = _function_source(on, name).splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("param("))
        return lines[start + 1:]

    plain = body("Invoke-FeTargetChecks")
    system = body("Invoke-FeSystemTargetChecks")
    machine = "    $doc.machine = Invoke-FeMachine $doc.url $TimeoutMs $BodyLimit $DefenderProxy"
    assert machine in plain
    expected = [
        "    $doc.machine = Invoke-FeSystemMachine $doc.url $WorkDir $TimeoutMs $BodyLimit "
        "$DefenderProxy" if line == machine else line
        for line in plain
    ]
    assert system == expected


# --- the script the task runs ----------------------------------------------------------------


def _inner_script(text: str) -> str:
    """What New-FeSystemScript writes, rebuilt here from the rendered definitions."""
    parts = ["# header"]
    for name in ("Find-FeException", "Get-FeReason", "Invoke-FeMachine"):
        source = _function_source(text, name)
        definition = source[source.index("{") + 1:source.rindex("}")]
        parts.append("function " + name + " {" + definition + "}")
    main = _function_source(text, "New-FeSystemScript")
    parts.append(main[main.index("@'\n") + 3:main.index("\n'@")] + "\n")
    return "\r\n\r\n".join(parts) + "\r\n"


def test_the_system_script_parses_lints_and_reads_values_only_as_data(on):
    inner = _inner_script(on)

    assert pslint.parse_errors(inner) == []
    assert pslint.lint_ps51(inner) == []
    # Inputs come from the JSON file beside the script; nothing is interpolated into it.
    assert "(Join-Path $PSScriptRoot 'system-input.json')" in inner
    assert "ConvertFrom-Json -InputObject $feText" in inner
    assert "Invoke-Expression" not in inner and "iex " not in inner
    assert "[IO.File]::Move($feOutput + '.part', $feOutput)" in inner
    # It carries the exact in-session measurement, not a second copy that could drift.
    assert "New-Object -ComObject 'WinHttp.WinHttpRequest.5.1'" in inner
    new_script = _function_source(on, "New-FeSystemScript")
    assert "(Get-Command -Name $name -CommandType Function -ErrorAction Stop).Definition" in \
        new_script
    # The inputs file holds exactly what Invoke-FeMachine needs, plus where to write.
    task = _function_source(on, "Invoke-FeSystemTask")
    keys = re.findall(r"(?m)^\s+(\w+) = \$", task[task.index("$inputs = [ordered]@{"):])[:5]
    assert keys == ["url", "timeout_ms", "body_limit", "defender_proxy", "output"]
    for key in keys:
        assert f"$feInput.{key}" in inner, key


# --- the simulator and the runner --------------------------------------------------------------


def _sim_probe(scenario: str, system_path: str) -> dict[str, Any]:
    ctx = HostContext(profile_for("ws-0042"), scenarios.get(scenario), HostState("ws-0042"),
                      DEMO_USERNAME, raw={})
    step = start_step(ctx, render(system_path))
    step.begin()
    outputs = list(step.outputs())
    step.finish()
    return json.loads(outputs[-1])


@pytest.mark.parametrize("scenario", ["healthy", "ecs-not-answering"])
def test_simulator_answers_system_task_only_when_asked(scenario):
    plain = _sim_probe(scenario, "0")["machine"]
    system = _sim_probe(scenario, "1")["machine"]

    assert plain["mechanism"] == "winhttp-com"
    assert system["mechanism"] == "system-task"
    assert "system_error" not in system
    # Nothing else changes.
    for doc in (plain, system):
        doc.pop("mechanism")
        doc.pop("elapsed_ms")
        (doc.get("headers") or {}).pop("Date", None)
        (doc.get("headers") or {}).pop("X-MSEdge-Ref", None)
    assert plain == system


class _Recorder:
    """A StepSession that records the probe script and stops the run right there."""

    def __init__(self) -> None:
        self.scripts: dict[str, str] = {}

    def run_step(self, step: str, script: str, **_: Any) -> Any:
        self.scripts[step] = script
        raise _Stop

    def fetch(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("no fetch expected")

    def begin_cleanup(self) -> None:
        pass


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("setting", "expected"), [(False, "0"), (True, "1")])
def test_runner_passes_the_setting(monkeypatch, tmp_path: Path, setting, expected):
    assert ScanSettings().system_path is False
    recorder = _Recorder()
    healthy = {"is_admin": True}

    def fake_step(session, outcome, step, **inputs):
        if step == "probe":
            session.run_step(step, scripts.render_step(step, **inputs))
        outcome.docs[step] = healthy
        return healthy

    monkeypatch.setattr(runner, "_step", fake_step)
    monkeypatch.setattr(runner, "diagnose", _ok_verdict)
    monkeypatch.setattr(runner.parse, "choose_platform", lambda facts: _Folder())
    monkeypatch.setattr(runner, "ecs_target", lambda facts, ecs: ("https://ecs.office.com/x", ""))
    monkeypatch.setattr(runner, "_cleanup", lambda *a, **k: None)
    settings = ScanSettings(run_id="r1", system_path=setting)
    with pytest.raises(_Stop):
        runner.run_probe(recorder, settings, tmp_path, tmp_path)

    assert contract.parse_inputs(recorder.scripts["probe"])["SystemPath"] == expected


class _Folder:
    folder = r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.25050.5-0"


def _ok_verdict(docs: dict) -> Any:
    from fleet_ecs.models import Category

    class _Diagnosis:
        category = Category.OK

    class _Verdict:
        diagnosis = _Diagnosis()

    return _Verdict()
