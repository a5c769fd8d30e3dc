"""Tests of reading a run directory: run.json, result files and capture lookup."""

from __future__ import annotations

import json
from pathlib import Path

from fleet_ecs.models import Category, FetchedFile, HostResult, Status
from fleet_ecs.report.rundir import (
    capture_rel_path,
    iter_results,
    load_results,
    read_run_info,
)


def _write(run_dir: Path, folder: str, result: HostResult) -> None:
    (run_dir / "hosts" / folder).mkdir(parents=True)
    (run_dir / "hosts" / folder / "result.json").write_text(json.dumps(result.to_dict()))


def _result(host: str, files: list[FetchedFile] | None = None) -> HostResult:
    return HostResult(host=host, address="192.0.2.9", port=5985, transport="http",
                      status=Status.OK, category=Category.OK, hint="", files=files or [])


def test_run_info_missing_corrupt_and_alternative_keys(tmp_path: Path) -> None:
    assert read_run_info(tmp_path).present is False
    (tmp_path / "run.json").write_text("{nope")
    info = read_run_info(tmp_path)
    assert not info.present and info.error and "JSONDecodeError" in info.error
    (tmp_path / "run.json").write_text(json.dumps(
        {"run_id": "r", "inventory_path": "i.yml", "tool_version": "1.2", "settings": [1]}))
    info = read_run_info(tmp_path)
    assert (info.present, info.inventory, info.version, info.settings) == (
        True, "i.yml", "1.2", {})


def test_results_sorted_and_folder_name_kept(tmp_path: Path) -> None:
    _write(tmp_path, "zulu_dir", _result("able"))
    _write(tmp_path, "baker", _result("baker"))
    loaded = list(iter_results(tmp_path))

    assert [item.host_dir for item in loaded] == ["baker", "zulu_dir"]
    assert loaded[1].rel_dir == "hosts/zulu_dir"
    assert [r.host for r in load_results(tmp_path)] == ["able", "baker"]


def test_capture_path_must_exist_and_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "secret.etl").write_bytes(b"x")
    climbing = FetchedFile("capture.etl", "../secret.etl", 1, "00")
    _write(tmp_path, "h", _result("h", [climbing]))
    (item,) = iter_results(tmp_path)
    assert capture_rel_path(tmp_path, item) is None

    (tmp_path / "hosts" / "h" / "capture.etl").write_bytes(b"ETL")
    assert capture_rel_path(tmp_path, item) == "hosts/h/capture.etl"
