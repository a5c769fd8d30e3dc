"""Endpoints that lie or misbehave end their own host's scan, never the run, and never write
outside the run directory."""

from __future__ import annotations

import dataclasses

import pytest

from fleet_ecs.hostscan import scan_host
from fleet_ecs.models import CaptureMode, ScanSettings
from fleet_ecs.sim.credentials import DEMO_PASSWORD
from fleet_ecs.sim.fleet import SimulatedFleet, build_hosts, demo_specs, find_free_block
from fleet_ecs.transport.session import Budget

SETTINGS = ScanSettings(run_id="hostile", deadline=30, probe_timeout=3, read_timeout=10,
                        connect_timeout=3, capture=CaptureMode.ALWAYS, capture_max_mb=1)


def scan_with(tmp_path, sim_vars):
    (spec,) = demo_specs(1, find_free_block(1))
    spec = dataclasses.replace(spec, vars={"scenario": "healthy", **sim_vars})
    with SimulatedFleet(build_hosts([spec])).start_in_thread() as handle:
        result = scan_host(spec, DEMO_PASSWORD, SETTINGS, Budget(30), tmp_path / "run")
        leftovers = handle.leftovers()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    return result, leftovers, files


@pytest.mark.parametrize("path", [
    "C:\\Windows\\System32\\config\\SAM",
    "C:\\Users\\fleet-ecs-demo\\AppData\\Local\\Temp\\fleet-ecs-hostile\\..\\..\\x.etl",
    "C:\\Users\\fleet-ecs-demo\\AppData\\Local\\Temp\\fleet-ecs-hostile\\a/b.etl",
])
def test_capture_path_outside_our_folder_is_not_fetched(tmp_path, path):
    result, leftovers, files = scan_with(tmp_path, {"sim_raw": {"probe.capture.path": path}})
    assert result.category.value == "probe_error" and "outside our folder" in result.error
    assert files == []  # nothing fetched, nothing written (the caller writes result.json)
    assert leftovers == {}


def test_capture_announced_over_its_bound_is_refused(tmp_path):
    result, leftovers, files = scan_with(
        tmp_path, {"sim_raw": {"probe.capture.size": 50 * 1024 * 1024}})
    assert result.category.value == "probe_error" and "over its bound" in result.error
    assert files == [] and leftovers == {}


def test_a_stream_past_the_bound_is_cut_and_removed(tmp_path):
    from fleet_ecs.errors import TransportError
    from fleet_ecs.probe.scripts import render_step
    from fleet_ecs.transport.session import HostSession

    (spec,) = demo_specs(1, find_free_block(1))
    work = "C:\\Users\\fleet-ecs-demo\\AppData\\Local\\Temp\\fleet-ecs-cut"
    with SimulatedFleet(build_hosts([spec])).start_in_thread() as handle:
        session = HostSession(spec, DEMO_PASSWORD, SETTINGS, Budget(30))
        session.open()
        try:
            session.run_step("probe", render_step(
                "probe", Url="https://ecs.office.com/config/v1/", Host="ecs.office.com",
                WorkDir=work, Capture=True, CaptureMaxMb=1, TimeoutSec=3,
                TraceSession="FleetEcsTrace", BodyLimit=100, DefenderProxy="",
                MachineProxy=""))
            dest = tmp_path / "capture.etl"
            with pytest.raises(TransportError, match="grew past its bound"):
                session.fetch("fetch", render_step("fetch", Path=work + "\\capture.etl",
                                                   ChunkSize=65536), dest, max_bytes=200_000)
            assert list(tmp_path.iterdir()) == []  # neither the file nor its .part remain
            session.run_step("cleanup", render_step("cleanup", WorkDir=work,
                                                    TraceSession="FleetEcsTrace"))
        finally:
            session.close()
        assert handle.leftovers() == {}
