"""NTLM, HTTPS and the WinRM fault scenarios, each driven by real pypsrp over loopback.

Every test asserts the exception pypsrp (or requests beneath it) raises, since that is what
the controller classifies, and that the host is left without open shells where the client
closed its pool.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, FragmentError, WinRMTransportError
from pypsrp.exceptions import WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from xml.etree.ElementTree import ParseError

from fleet_ecs.models import HostSpec, Transport
from fleet_ecs.probe.contract import SCHEMA, STEP_MARKER
from fleet_ecs.sim import scenarios
from fleet_ecs.sim.credentials import DEMO_PASSWORD, DEMO_USERNAME
from fleet_ecs.sim.fleet import FleetHandle, SimulatedFleet, build_hosts, find_free_block
from fleet_ecs.sim.fleet import scenario_spec
from fleet_ecs.sim.listener import PROXY_SERVER

pytestmark = pytest.mark.timeout(30)

# Per-process ports keep parallel runs and a running demo (5985/5986) apart.
PORT = 21000 + os.getpid() % 20000
HTTPS_PORT = PORT + 1
FACTS = STEP_MARKER.format(step="facts", schema=SCHEMA) + "\n$FE_RunId = 't'\n"


@pytest.fixture
def host() -> Iterator:
    """Start one simulated host in a scenario; yields a starter returning (spec, handle)."""
    handles: list[FleetHandle] = []

    def start(scenario: str, **extra: object) -> tuple[HostSpec, FleetHandle]:
        base = find_free_block(1, port=PORT, https_port=HTTPS_PORT)
        spec = scenario_spec(scenario, "ws-0001", base[:-1] + "1", port=PORT,
                             https_port=HTTPS_PORT)
        spec.vars.update(extra)
        handle = SimulatedFleet(build_hosts([spec])).start_in_thread()
        handles.append(handle)
        return spec, handle

    yield start
    for handle in handles:
        handle.stop()


def client(spec: HostSpec, password: str = DEMO_PASSWORD, **kwargs: object) -> WSMan:
    """A pypsrp client configured exactly from the spec, as the controller builds one."""
    options: dict[str, object] = {
        "port": spec.port, "ssl": spec.transport == Transport.HTTPS, "auth": spec.auth,
        "encryption": spec.message_encryption, "cert_validation": spec.cert_validation,
        "connection_timeout": 2, "read_timeout": 5, "operation_timeout": 3,
    }
    options.update(kwargs)
    return WSMan(spec.address, username=DEMO_USERNAME, password=password, no_proxy=True,
                 **options)


def facts(pool: RunspacePool) -> dict:
    ps = PowerShell(pool)
    ps.add_script(FACTS)
    return json.loads(ps.invoke()[0])


def run_facts(spec: HostSpec, **kwargs: object) -> dict:
    with RunspacePool(client(spec, **kwargs)) as pool:
        return facts(pool)


def test_every_scenario_tells_the_client_how_to_connect() -> None:
    for name in scenarios.DEMO_ORDER:
        spec = scenario_spec(name, "h", "127.0.0.1")
        if spec.transport == Transport.HTTPS:
            assert spec.port == 5986 and str(spec.cert_validation).endswith("ca.pem"), name
        else:
            assert spec.port == 5985 and spec.cert_validation is True, name
        if spec.auth == "basic":
            assert spec.message_encryption == "never", name
    assert scenario_spec("ntlm-healthy", "h", "127.0.0.1").auth == "ntlm"


# --- NTLM with message encryption ------------------------------------------------------


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_ntlm_with_message_encryption(host, auth: str) -> None:
    spec, fleet = host("ntlm-healthy")
    wsman = client(spec, auth=auth)
    seen: list[str] = []
    with RunspacePool(wsman) as pool:
        wsman.transport.session.hooks["response"].append(
            lambda r, **_: seen.append(r.headers.get("Content-Type", "")))
        assert facts(pool)["computer_name"] == "WS-0001"
    assert seen and all(t.startswith("multipart/encrypted;protocol=\"application/HTTP-SPNEGO-"
                                      "session-encrypted\"") for t in seen)
    state = fleet.state(spec.name)
    assert state.shells_open == 0 and state.auth_failures == 0 and state.requests["Delete"] == 1
    assert "NTLM_USER_FILE" not in os.environ  # pointed at a host's file only during a step


def test_ntlm_wrong_password_is_refused(host) -> None:
    spec, fleet = host("ntlm-healthy")
    with pytest.raises(AuthenticationError):
        RunspacePool(client(spec, password="not-the-password")).open()
    assert fleet.state(spec.name).auth_failures == 1
    assert fleet.state(spec.name).shells_open == 0


def test_ntlm_host_refuses_basic_and_says_what_it_offers(host) -> None:
    spec, _ = host("auth-method-not-offered")
    with pytest.raises(AuthenticationError):
        run_facts(spec)  # the scenario's own hints: Basic over HTTP
    conn = http.client.HTTPConnection(spec.address, spec.port, timeout=5)
    conn.request("POST", "/wsman", body=b"<x/>", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    reply = conn.getresponse()
    assert reply.status == 401 and reply.read() == b""
    assert reply.msg.get_all("WWW-Authenticate") == ["Negotiate", "Kerberos"]
    assert reply.getheader("Server") == "Microsoft-HTTPAPI/2.0"
    conn.close()
    # NTLM still works on that host: only the method was wrong.
    ntlm = HostSpec(spec.name, spec.address, spec.port, auth="ntlm", message_encryption="auto")
    assert run_facts(ntlm)["step"] == "facts"


def test_unsealed_reply_for_unsealed_ntlm_request(host) -> None:
    """A client that does not seal (encryption="never") gets plain replies."""
    spec, fleet = host("ntlm-healthy")
    assert run_facts(spec, encryption="never")["step"] == "facts"
    assert fleet.state(spec.name).shells_open == 0


# --- HTTPS ---------------------------------------------------------------------------


def test_https_basic_with_the_fleet_ca(host) -> None:
    spec, fleet = host("https-healthy")
    assert run_facts(spec)["computer_name"] == "WS-0001"
    assert fleet.state(spec.name).shells_open == 0
    # The same listener is not trusted without the CA bundle.
    with pytest.raises(requests.exceptions.SSLError):
        run_facts(spec, cert_validation=True)


@pytest.mark.parametrize("scenario, why", [
    ("https-untrusted-certificate", "self-signed certificate"),
    ("https-expired-certificate", "certificate has expired"),
    ("https-wrong-name-certificate", "IP address mismatch"),
])
def test_bad_certificates_fail_verification(host, scenario: str, why: str) -> None:
    spec, fleet = host(scenario)
    with pytest.raises(requests.exceptions.SSLError) as info:
        run_facts(spec)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and why in str(info.value)
    assert fleet.state(spec.name).requests == {}


def test_wrong_name_certificate_names_another_host(host) -> None:
    spec, _ = host("https-wrong-name-certificate")
    context = ssl.create_default_context(cafile=str(spec.cert_validation))
    context.check_hostname = False
    with socket.create_connection((spec.address, spec.port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            cert = tls.getpeercert()
    assert cert["subjectAltName"] == (("DNS", "other-host.contoso.com"),)


# --- WS-Management faults --------------------------------------------------------------


@pytest.mark.parametrize("scenario, code, text", [
    ("shell-quota-exceeded", 2150859173, "maximum number of 5 concurrent shells"),
    ("access-denied", 5, "Access is denied."),
    ("session-configuration-missing", 2150858811,
     "(http://schemas.microsoft.com/powershell/Microsoft.PowerShell) was not found in the "
     "WS-Management catalog"),
])
def test_create_faults(host, scenario: str, code: int, text: str) -> None:
    spec, fleet = host(scenario)
    with pytest.raises(WSManFaultError) as info:
        RunspacePool(client(spec)).open()
    assert info.value.code == code and text in info.value.reason
    assert info.value.machine == spec.address
    assert fleet.state(spec.name).shells_open == 0


def test_operations_quota_refuses_the_command(host) -> None:
    spec, fleet = host("operations-quota-exceeded")
    with RunspacePool(client(spec)) as pool:
        with pytest.raises(WSManFaultError) as info:
            facts(pool)
    assert info.value.code == 2150859174 and "1500 concurrent operations" in info.value.reason
    assert fleet.state(spec.name).shells_open == 0


def test_shell_lost_once_then_a_new_pool_works(host) -> None:
    spec, fleet = host("shell-lost-once")
    pool = RunspacePool(client(spec))
    pool.open()
    shell_id = pool.shell.id
    with pytest.raises(WSManFaultError) as info:
        facts(pool)
    assert info.value.code == 2150858843
    assert f"ShellId {shell_id.upper()} failed because the shell was not found" in (
        info.value.reason)
    assert fleet.state(spec.name).shells_open == 0  # the server lost it
    with pytest.raises(WSManFaultError):
        pool.close()  # Delete of a shell that no longer exists: the same fault
    assert run_facts(spec)["step"] == "facts"  # the retry with a new pool
    assert fleet.state(spec.name).shells_open == 0


def test_malformed_receive_reply_does_not_parse(host) -> None:
    spec, fleet = host("malformed-xml")
    with RunspacePool(client(spec)) as pool:
        with pytest.raises(ParseError):
            facts(pool)
    assert fleet.state(spec.name).shells_open == 0


def test_oversized_receive_reply_is_refused(host) -> None:
    spec, fleet = host("oversized-response")
    sizes: list[int] = []
    wsman = client(spec)
    with RunspacePool(wsman) as pool:
        wsman.transport.session.hooks["response"].append(
            lambda r, **_: sizes.append(len(r.content)))
        with pytest.raises(FragmentError, match="Expected Fragment Id: 0"):
            facts(pool)
    assert max(sizes) > 8 * 1024 * 1024 > 10 * wsman.max_envelope_size
    assert fleet.state(spec.name).shells_open == 0


def test_plain_500_is_a_transport_error(host) -> None:
    spec, _ = host("http-500-plain")
    with pytest.raises(WinRMTransportError) as info:
        RunspacePool(client(spec)).open()
    assert info.value.code == 500 and info.value.response_text == ""


def test_proxy_error_page(host) -> None:
    spec, _ = host("proxy-error-page")
    with pytest.raises(WinRMTransportError) as info:
        RunspacePool(client(spec)).open()
    assert info.value.code == 502 and "ERR_CONNECT_FAIL" in info.value.response_text
    conn = http.client.HTTPConnection(spec.address, spec.port, timeout=5)
    conn.request("POST", "/wsman", body=b"")
    reply = conn.getresponse()
    reply.read()
    assert reply.getheader("Server") == PROXY_SERVER
    assert reply.getheader("X-Squid-Error") == "ERR_CONNECT_FAIL 111"
    assert "squid" in reply.getheader("Via")
    conn.close()


# --- the network ----------------------------------------------------------------------


def test_listener_never_answers_is_a_read_timeout(host) -> None:
    spec, fleet = host("listener-never-answers")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        RunspacePool(client(spec, read_timeout=1)).open()
    assert 0.9 < time.monotonic() - started < 3
    fleet.stop()  # releases the connection the client left hanging
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex((spec.address, spec.port)) != 0


def test_syn_dropped_is_a_connect_timeout(host) -> None:
    spec, fleet = host("syn-dropped")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectTimeout):
        RunspacePool(client(spec, connection_timeout=1)).open()
    assert 0.9 < time.monotonic() - started < 3
    fleet.stop()
    with socket.socket() as probe:  # the address is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((spec.address, spec.port))


def test_connection_reset_mid_response(host) -> None:
    spec, fleet = host("connection-reset-mid-response")
    for _attempt in range(2):  # a retry with a new pool meets the same reset
        with RunspacePool(client(spec)) as pool:
            with pytest.raises(requests.exceptions.ConnectionError) as info:
                facts(pool)
        assert any(isinstance(e, ConnectionResetError) for e in _causes(info.value))
        assert fleet.state(spec.name).shells_open == 0  # Delete went over a new connection
    assert fleet.state(spec.name).requests["Command"] == 2


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (requests and urllib3 nest them in args)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        seen.append(current)
        todo += [a for a in current.args if isinstance(a, BaseException)]
        todo += [c for c in (current.__cause__, current.__context__) if c is not None]
    return seen


def test_very_slow_responses_are_slow_but_work(host) -> None:
    assert build_hosts([scenario_spec("very-slow-responses", "h", "127.0.0.1")])[0] \
        .reply_delay == 2.0
    spec, fleet = host("very-slow-responses", sim_delay=0.3)
    started = time.monotonic()
    assert run_facts(spec)["step"] == "facts"
    requests_made = sum(fleet.state(spec.name).requests.values())
    assert time.monotonic() - started >= 0.3 * requests_made >= 0.3 * 5


def test_tls_material_lives_in_its_own_directory_until_closed() -> None:
    from fleet_ecs.sim.tls import TlsMaterial

    material = TlsMaterial()
    try:
        context = material.server_context("ws-0001", "127.0.0.1", "expired")
        assert isinstance(context, ssl.SSLContext)
        cert = material.certificate("ws-0001", "127.0.0.1", "expired")
        assert cert.not_valid_after_utc.timestamp() < time.time()
        assert material.ca_bundle_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    finally:
        material.close()
    assert not material.directory.exists()
