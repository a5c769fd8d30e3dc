"""Retries of transient faults, and the notes a host result carries."""

from fleet_ecs import hostscan
from fleet_ecs.errors import TransportError
from fleet_ecs.models import Category, HostSpec, ScanSettings, Status, Transport
from fleet_ecs.probe.diagnose import UAC_HINT
from fleet_ecs.probe.runner import ProbeOutcome
from fleet_ecs.transport.session import Budget


def run_with(monkeypatch, tmp_path, errors, spec=None, deadline=60.0, min_left=0.0):
    calls = []

    def attempt(spec, password, settings, budget, run_dir):
        calls.append(1)
        error = errors[len(calls) - 1] if len(calls) <= len(errors) else None
        return ProbeOutcome(), error

    monkeypatch.setattr(hostscan, "_attempt", attempt)
    monkeypatch.setattr(hostscan, "RETRY_BACKOFF", (0.01, 0.01))
    monkeypatch.setattr(hostscan, "_RETRY_MIN_LEFT", min_left)
    spec = spec or HostSpec(name="h1", address="127.0.0.1", port=5985)
    result = hostscan.scan_host(spec, None, ScanSettings(), Budget(deadline), tmp_path)
    return result, len(calls)


def quota():
    return TransportError(Category.WINRM_QUOTA, "WS-Management fault 2150859173: shells")


def test_transient_fault_is_retried_with_a_new_shell(monkeypatch, tmp_path):
    result, calls = run_with(monkeypatch, tmp_path, [quota()])
    assert calls == 2
    assert any(f.code == "retried" for f in result.findings)
    assert result.deadline_s == ScanSettings().deadline


def test_retries_are_bounded(monkeypatch, tmp_path):
    result, calls = run_with(monkeypatch, tmp_path, [quota(), quota(), quota(), quota()])
    assert calls == 3
    assert result.category is Category.WINRM_QUOTA and result.status is Status.FAIL


def test_permanent_fault_is_not_retried(monkeypatch, tmp_path):
    auth = TransportError(Category.WINRM_AUTH_FAILED, "401")
    result, calls = run_with(monkeypatch, tmp_path, [auth])
    assert calls == 1
    assert result.category is Category.WINRM_AUTH_FAILED


def test_no_retry_without_time_left(monkeypatch, tmp_path):
    _, calls = run_with(monkeypatch, tmp_path, [quota()], min_left=1000.0)
    assert calls == 1


def test_local_account_401_gets_the_uac_hint(monkeypatch, tmp_path):
    auth = TransportError(Category.WINRM_AUTH_FAILED, "401")
    local = HostSpec(name="h1", address="127.0.0.1", port=5985, username=".\\admin")
    result, _ = run_with(monkeypatch, tmp_path, [auth], spec=local)
    assert result.hint.endswith(UAC_HINT)
    domain = HostSpec(name="h1", address="127.0.0.1", port=5985, username="CORP\\svc")
    result, _ = run_with(monkeypatch, tmp_path, [auth], spec=domain)
    assert UAC_HINT not in result.hint


def test_notes_for_disabled_validation_and_ip_negotiate(monkeypatch, tmp_path):
    spec = HostSpec(name="h1", address="127.0.0.1", port=5986, transport=Transport.HTTPS,
                    cert_validation=False, auth="negotiate")
    result, _ = run_with(monkeypatch, tmp_path, [TransportError(Category.WINRM_TIMEOUT, "t")],
                         spec=spec)
    codes = {f.code for f in result.findings}
    assert {"cert_validation_off", "ntlm_fallback"} <= codes
