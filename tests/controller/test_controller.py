"""The controller's policy without sockets: concurrency bound, deadlines, stop, results on disk."""

import asyncio
import json
import threading
import time

from fleet_ecs.controller import Controller
from fleet_ecs.models import Category, HostResult, HostSpec, ScanSettings, Status


def spec(i):
    return HostSpec(name=f"h{i:03d}", address="127.0.0.1", port=5985)


def fake_result(host, status=Status.OK):
    return HostResult(host=host.name, address=host.address, port=host.port, transport="http",
                      status=status, category=Category.OK if status is Status.OK else
                      Category.DNS_FAILURE, hint="h")


def test_concurrency_bound_and_results_written(tmp_path):
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def scan(host, password, settings, budget, run_dir):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return fake_result(host, Status.FAIL if host.name.endswith("3") else Status.OK)

    settings = ScanSettings(concurrency=4, rate=1000, deadline=10)
    controller = Controller(settings, tmp_path, lambda h: None, scan=scan)
    outcome = asyncio.run(controller.run([spec(i) for i in range(20)]))
    assert state["peak"] == 4
    assert outcome.counters.done == 20
    assert outcome.counters.failing == 2
    files = sorted((tmp_path / "hosts").glob("*/result.json"))
    assert len(files) == 20
    assert json.loads(files[3].read_text())["status"] == "fail"


def test_rate_limit_spaces_new_connections(tmp_path):
    starts = []

    def scan(host, password, settings, budget, run_dir):
        starts.append(time.monotonic())
        return fake_result(host)

    settings = ScanSettings(concurrency=10, rate=5, deadline=10)
    asyncio.run(Controller(settings, tmp_path, lambda h: None, scan=scan).run(
        [spec(i) for i in range(7)]))
    # 5 per second: the 6th and 7th start only in the next period.
    assert max(starts) - min(starts) >= 0.9


def test_worker_that_ignores_its_deadline_becomes_a_result(tmp_path, monkeypatch):
    import fleet_ecs.controller as controller_module

    monkeypatch.setattr(controller_module, "_JOIN_GRACE", 0.2)
    release = threading.Event()

    def scan(host, password, settings, budget, run_dir):
        release.wait(5)
        return fake_result(host)

    settings = ScanSettings(concurrency=2, rate=100, deadline=0.3)
    t0 = time.monotonic()
    outcome = asyncio.run(Controller(settings, tmp_path, lambda h: None, scan=scan).run([spec(1)]))
    release.set()
    assert time.monotonic() - t0 < 3
    data = json.loads((tmp_path / "hosts" / "h001" / "result.json").read_text())
    assert data["category"] == "deadline_exceeded"
    assert outcome.counters.failing == 1


def test_stop_starts_no_new_host(tmp_path):
    seen = []

    def scan(host, password, settings, budget, run_dir):
        seen.append(host.name)
        controller.request_stop()
        return fake_result(host)

    settings = ScanSettings(concurrency=1, rate=100, deadline=5)
    controller = Controller(settings, tmp_path, lambda h: None, scan=scan)
    outcome = asyncio.run(controller.run([spec(i) for i in range(5)]))
    assert seen == ["h000"]
    assert outcome.stopped


def test_group_limit_bounds_hosts_of_that_group(tmp_path):
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "others": 0}

    def scan(host, password, settings, budget, run_dir):
        in_group = "site-b" in host.groups
        with lock:
            if in_group:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.03)
        with lock:
            if in_group:
                state["now"] -= 1
            else:
                state["others"] += 1
        return fake_result(host)

    hosts = [HostSpec(name=f"b{i}", address="127.0.0.1", port=5985, groups=("site-b",))
             for i in range(8)] + [spec(i) for i in range(8)]
    settings = ScanSettings(concurrency=10, rate=1000, deadline=10)
    controller = Controller(settings, tmp_path, lambda h: None, scan=scan,
                            group_limits={"site-b": 2})
    outcome = asyncio.run(controller.run(hosts))
    assert state["peak"] == 2
    assert state["others"] == 8 and outcome.counters.done == 16


def test_client_fault_is_met_once_then_applied_without_connecting(tmp_path):
    from fleet_ecs.preflight import ClientIssue

    calls = []

    def scan(host, password, settings, budget, run_dir):
        calls.append(host.name)
        result = fake_result(host, Status.FAIL)
        result.category = Category.CLIENT_CONFIG_ERROR
        result.error = "no Kerberos ticket"
        return result

    kerberos = [HostSpec(name=f"k{i}", address="127.0.0.1", port=5985, auth="kerberos")
                for i in range(4)]
    blocked = HostSpec(name="c0", address="127.0.0.1", port=5986, auth="credssp")
    issues = {"x": ClientIssue("x", "credssp needs requests-credssp", ["c0"])}
    settings = ScanSettings(concurrency=1, rate=1000, deadline=10)
    controller = Controller(settings, tmp_path, lambda h: None, scan=scan, client_issues=issues)
    asyncio.run(controller.run([blocked, *kerberos]))
    assert calls == ["k0"]  # the first kerberos host met the fault; the others were spared
    for name in ("c0", "k1", "k3"):
        data = json.loads((tmp_path / "hosts" / name / "result.json").read_text())
        assert data["category"] == "client_config_error"
    assert "requests-credssp" in json.loads(
        (tmp_path / "hosts" / "c0" / "result.json").read_text())["error"]


def test_rate_below_one_per_second(tmp_path):
    starts = []

    def scan(host, password, settings, budget, run_dir):
        starts.append(time.monotonic())
        return fake_result(host)

    settings = ScanSettings(concurrency=5, rate=2.5, deadline=10)
    asyncio.run(Controller(settings, tmp_path, lambda h: None, scan=scan).run(
        [spec(i) for i in range(4)]))
    assert len(starts) == 4


def test_full_disk_stops_new_hosts_and_keeps_written_results(tmp_path, monkeypatch):
    import pytest

    from fleet_ecs import rundir
    from fleet_ecs.errors import OutputError

    real_write = rundir.write_result
    writes = []

    def write_or_fail(run_dir, result):
        if len(writes) >= 3:
            raise OutputError(f"cannot write {run_dir}: No space left on device")
        writes.append(result.host)
        return real_write(run_dir, result)

    monkeypatch.setattr(rundir, "write_result", write_or_fail)
    started = []

    def scan(host, password, settings, budget, run_dir):
        started.append(host.name)
        return fake_result(host)

    settings = ScanSettings(concurrency=1, rate=1000, deadline=10)
    controller = Controller(settings, tmp_path, lambda h: None, scan=scan)
    with pytest.raises(OutputError, match="No space left"):
        asyncio.run(controller.run([spec(i) for i in range(10)]))
    assert len(started) == 4  # the 4th result could not be written: nothing after it started
    kept = sorted(p.parent.name for p in (tmp_path / "hosts").glob("*/result.json"))
    assert kept == ["h000", "h001", "h002"]
    for name in kept:
        json.loads((tmp_path / "hosts" / name / "result.json").read_text())  # intact


def test_stop_does_not_wait_for_the_rate_limit(tmp_path):
    def scan(host, password, settings, budget, run_dir):
        controller.request_stop()
        return fake_result(host)

    settings = ScanSettings(concurrency=50, rate=0.2, deadline=10)  # one start per 5 s
    controller = Controller(settings, tmp_path, lambda h: None, scan=scan)
    t0 = time.monotonic()
    outcome = asyncio.run(controller.run([spec(i) for i in range(50)]))
    assert time.monotonic() - t0 < 3
    assert outcome.counters.done == 50
    cancelled = [p for p in (tmp_path / "hosts").glob("*/result.json")
                 if json.loads(p.read_text())["category"] == "cancelled"]
    assert len(cancelled) == 49
