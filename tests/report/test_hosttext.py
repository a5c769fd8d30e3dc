"""Unit tests of the per-host text report for the unusual shapes of raw facts."""

from __future__ import annotations

from fleet_ecs.models import Category, HostResult, Status
from fleet_ecs.report.hosttext import SECTION_TITLES, render_host_text
from fleet_ecs.report.rundir import RunInfo


def _result(**kw: object) -> HostResult:
    base = dict(host="ws01", address="192.0.2.1", port=5985, transport="http",
                status=Status.FAIL, category=Category.POWERSHELL_UNSUPPORTED, hint="too old")
    base.update(kw)
    return HostResult(**base)  # type: ignore[arg-type]


def test_old_powershell_stops_early_and_other_steps_explain() -> None:
    result = _result(step="facts", facts={"facts": {"step": "facts", "schema": 1,
                                                    "ps_version": "4.0"}})
    text = render_host_text(result, RunInfo(run_id="r9", version="9.9", present=True))

    assert "PowerShell        : 4.0" in text
    assert "(not collected: PowerShell is older than 5.1" in text
    assert "(not collected: scan stopped at step 'facts')" in text
    assert "Tool version      : fleet-ecs 9.9" in text
    assert [t for t in SECTION_TITLES if t not in text] == []


def test_no_error_no_step_names_the_missing_step() -> None:
    text = render_host_text(_result())
    assert "(not collected: the probe step returned no facts)" in text
    assert "(not collected: the ecs step returned no facts)" in text
    assert "Evidence:\n  (none)" in text


def test_capture_not_requested_and_partial_probe() -> None:
    probe = {"step": "probe", "schema": 1, "url": "https://ecs.example.test/", "host": None,
             "capture": {"requested": False}, "dns": None, "tcp": None,
             "winhttp_proxy": None, "http": None}
    text = render_host_text(_result(facts={"probe": probe, "facts": "not a dict"}))

    assert text.count("Network capture not requested for this host.") == 2
    assert "Final ECS URL: https://ecs.example.test/" in text
    assert "(not collected: the probe step reported no DNS result)" in text
    assert "(not collected: the probe step reported no web request)" in text
    assert "(not collected: the facts step returned no facts)" in text


def test_hostile_header_names_and_multiline_values_stay_in_place() -> None:
    http = {"status": 200, "status_description": "OK", "elapsed_ms": 5,
            "headers": {"X-A\r\nInjected": "v1\nv2", "X-\x07Bell": "ok"},
            "error_status": None, "error_message": None}
    text = render_host_text(_result(facts={"probe": {"http": http}}))

    assert "Web Request Successful:" in text
    assert "  X-A Injected    : v1\n                    v2" in text
    assert "X-<U+0007>Bell" in text and "\x07" not in text
    assert "\nInjected" not in text
