"""Results of the standalone script join a run and are diagnosed like scanned hosts."""

import json

import pytest
from typer.testing import CliRunner

from fleet_ecs import cli
from fleet_ecs.errors import ConfigError
from fleet_ecs.standalone import FORMAT, import_file
from test_diagnose_v2 import healthy


def write(tmp_path, name="WS-OFFLINE-7", docs=None, **extra):
    data = {"format": FORMAT, "version": 1, "run_id": "r1", "computer_name": name,
            "generated_at": "2026-12-04T10:00:00Z", "docs": docs or healthy(), **extra}
    path = tmp_path / f"fleet-ecs-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_import_adds_a_diagnosed_host_and_reports(tmp_path):
    ok = write(tmp_path)
    broken_docs = healthy()
    broken_docs["facts"]["mdcoresvc_service"] = "Stopped"
    broken = write(tmp_path, "SRV-DMZ-3", broken_docs)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli.app, ["import", str(run), str(ok), str(broken)])
    assert result.exit_code == 1, result.output
    data = json.loads((run / "hosts" / "srv-dmz-3" / "result.json").read_text())
    assert data["category"] == "core_service_stopped"
    assert data["transport"] == "standalone"
    assert (run / "results.csv").is_file() and (run / "hosts" / "ws-offline-7" / "report.txt")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON file"),
    (json.dumps({"format": "other"}), "not a fleet-ecs standalone result"),
    (json.dumps({"format": FORMAT, "version": 9, "docs": {}}), "unsupported"),
])
def test_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        import_file(tmp_path, path)


def test_hostile_computer_name_cannot_escape_the_run(tmp_path):
    path = write(tmp_path, name="../../etc/passwd")
    result = import_file(tmp_path / "run", path)
    assert result.host == "etc-passwd"
    assert (tmp_path / "run" / "hosts" / "etc-passwd" / "result.json").is_file()


def test_mislabelled_step_is_refused(tmp_path):
    docs = healthy()
    docs["probe"]["step"] = "facts"
    with pytest.raises(ConfigError, match="probe document"):
        import_file(tmp_path, write(tmp_path, docs=docs))


def test_a_host_already_in_the_run_is_not_overwritten(tmp_path):
    first = write(tmp_path, "PC 1")
    second = write(tmp_path, "PC_1")  # cleans up to the same folder name
    run = tmp_path / "run"
    import_file(run, first)
    with pytest.raises(ConfigError, match="already holds host pc-1"):
        import_file(run, second)
    assert import_file(run, second, replace=True).host == "pc-1"


def test_deeply_nested_file_is_refused_cleanly(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigError, match="nested too deeply|not a JSON file"):
        import_file(tmp_path, path)
