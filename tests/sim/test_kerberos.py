"""Real pypsrp logging in with Kerberos to simulated hosts, against an MIT KDC on loopback.

Every test gets the realm's private ``krb5.conf``, keytab and ticket cache through
``monkeypatch``-set environment variables (``kdc.KdcRealm.env``), and an empty ticket cache.
``negotiate_hostname_override`` names the host as the KDC knows it, so no DNS or hosts file is
involved. The failure tests pin down the exception types and messages the controller sees.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Iterator

import pytest
from pypsrp.exceptions import AuthenticationError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

import kdc
from fleet_ecs.sim import encryption
from fleet_ecs.sim.fleet import FleetHandle, SimHost, SimulatedFleet, demo_addresses
from fleet_ecs.sim.fleet import find_free_block
from test_fleet import script

try:
    import krb5
    import spnego
    import spnego.exceptions
    from spnego.exceptions import BadMechanismError, SpnegoError

    from fleet_ecs.sim import kerberos
except ImportError as exc:  # pyspnego without its [kerberos] extra (gssapi, krb5)
    GSSAPI_MISSING: str | None = f"Kerberos support for pyspnego is not installed: {exc}"
else:
    GSSAPI_MISSING = None

MISSING_TOOLS = kdc.missing_tools()
pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(bool(MISSING_TOOLS),
                       reason=f"MIT Kerberos KDC tools missing: {', '.join(MISSING_TOOLS)}"),
    pytest.mark.skipif(GSSAPI_MISSING is not None, reason=GSSAPI_MISSING or ""),
]

BOTH = "ws-krb1"  # offers Negotiate and Kerberos, as a domain-joined Windows host does
KERBEROS_ONLY = "ws-krb2.fleet.test"  # offers only the Kerberos scheme
ELSEWHERE = "ws-krb3"  # known to the KDC, but no simulated host of that name
PORT = 21000 + os.getpid() % 20000
DEFAULT_USER_UPPER = kdc.DEFAULT_USER.upper()  # names match in any case


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kdc.KdcRealm]:
    realm = kdc.KdcRealm.create(tmp_path_factory.mktemp("realm"),
                                hosts=[BOTH, KERBEROS_ONLY, ELSEWHERE])
    yield realm
    realm.stop()


@pytest.fixture
def krb_env(realm: kdc.KdcRealm, monkeypatch: pytest.MonkeyPatch) -> Iterator[kdc.KdcRealm]:
    for name, value in realm.env().items():
        monkeypatch.setenv(name, value)
    realm.kdestroy()
    yield realm
    realm.kdestroy()


@pytest.fixture
def fleet(krb_env: kdc.KdcRealm) -> Iterator[tuple[FleetHandle, dict[str, SimHost]]]:
    both, kerberos_only = demo_addresses(2, find_free_block(2, port=PORT))
    hosts = [
        SimHost(name=BOTH, address=both, port=PORT, auth_methods=("negotiate", "kerberos")),
        SimHost(name=KERBEROS_ONLY, address=kerberos_only, port=PORT,
                auth_methods=("kerberos",)),
    ]
    handle = SimulatedFleet(hosts).start_in_thread()
    yield handle, {h.name: h for h in hosts}
    handle.stop()


def wsman(host: SimHost, auth: str, username: str | None = None, password: str | None = None,
          override: str | None = None, **kwargs: object) -> WSMan:
    return WSMan(host.address, port=host.port, ssl=False, auth=auth, encryption="auto",
                 username=username, password=password, no_proxy=True,
                 negotiate_hostname_override=override or host.name, **kwargs)


def facts_over(client: WSMan) -> dict:
    with RunspacePool(client) as pool:
        ps = PowerShell(pool)
        ps.add_script(script("facts", RunId="krb"))
        return json.loads(ps.invoke()[0])


def kinit(realm: kdc.KdcRealm) -> None:
    result = realm.kinit()
    assert result.returncode == 0, result.stderr
    assert realm.ccache.exists()


# -- logins that work ---------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "host_name", "protocol"), [
    ("kerberos", BOTH, encryption.SPNEGO),
    ("negotiate", BOTH, encryption.SPNEGO),
    ("kerberos", KERBEROS_ONLY, encryption.KERBEROS),
])
def test_ticket_from_kinit_opens_an_encrypted_pool(fleet, krb_env, auth, host_name, protocol):
    handle, hosts = fleet
    kinit(krb_env)
    client = wsman(hosts[host_name], auth)
    doc = facts_over(client)
    assert doc["computer_name"] == host_name.split(".")[0].upper()
    assert doc["user"].endswith("\\" + krb_env.user)
    # pypsrp picks Negotiate when both are offered (even for auth="kerberos", sending the raw
    # Kerberos token under it), so only a Kerberos-only host gets the Kerberos MIME protocol.
    assert client.transport.encryption is not None
    assert client.transport.encryption.protocol == protocol
    state = handle.state(host_name)
    assert state.requests["Create"] == 1 and state.requests["Delete"] == 1
    assert state.auth_failures == 0 and state.shells_open == 0


def test_password_gets_a_ticket_without_any_cache(fleet, krb_env):
    _, hosts = fleet
    client = wsman(hosts[BOTH], "kerberos", username=krb_env.principal,
                   password=krb_env.password)
    assert facts_over(client)["user"].endswith("\\" + krb_env.user)
    assert not krb_env.ccache.exists()  # pyspnego keeps that ticket in memory


def test_http_service_principal_is_accepted_too(fleet, krb_env):
    _, hosts = fleet
    kinit(krb_env)
    assert facts_over(wsman(hosts[BOTH], "kerberos", negotiate_service="HTTP"))["step"] == "facts"


def test_mutual_auth_token_and_challenges_on_the_wire(fleet, krb_env):
    _, hosts = fleet
    host = hosts[BOTH]
    kinit(krb_env)
    conn = http.client.HTTPConnection(host.address, host.port, timeout=5)
    conn.request("POST", "/wsman", body=b"")
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 401
    assert reply.msg.get_all("WWW-Authenticate") == ["Negotiate", "Kerberos"]

    context = spnego.client(hostname=host.name, service="host", protocol="kerberos",
                            options=spnego.NegotiateOptions.wrapping_winrm)
    token = base64.b64encode(context.step()).decode()
    conn.request("POST", "/wsman", body=b"", headers={"Authorization": f"Kerberos {token}"})
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 200
    scheme, _, answer = reply.getheader("WWW-Authenticate").partition(" ")
    assert scheme == "Kerberos"
    assert context.step(base64.b64decode(answer)) is None and context.complete  # AP-REP ok

    # Sealed both ways, under the MIME protocol the client chose (not a SOAP envelope: the
    # host answers with a sealed fault).
    def seal(message: bytes) -> tuple[bytes, bytes]:
        result = context.wrap_winrm(message)
        return result.header, result.data

    body = encryption.wrap(b"<not-soap/>", seal, encryption.KERBEROS)
    conn.request("POST", "/wsman", body=body,
                 headers={"Content-Type": encryption.content_type(encryption.KERBEROS)})
    reply = conn.getresponse()
    sealed = reply.read()
    assert reply.status == 500
    assert encryption.protocol_of(reply.getheader("Content-Type")) == encryption.KERBEROS
    assert b"<s:Fault" in encryption.unwrap(sealed, context.unwrap_winrm)

    conn.request("POST", "/wsman", body=b"", headers={"Authorization": "Negotiate YIIBAAAA"})
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 401  # a garbled ticket: the plain challenges again
    assert reply.msg.get_all("WWW-Authenticate") == ["Negotiate", "Kerberos"]
    conn.close()


def test_host_keytab_holds_only_its_own_keys(tmp_path, krb_env):
    path, count = kerberos.host_keytab(BOTH, tmp_path)
    assert count == 4  # host/ and HTTP/, two AES enctypes each
    context = krb5.init_context()
    names = {b"/".join(e.principal.components).decode()
             for e in krb5.kt_resolve(context, f"FILE:{path}".encode())}
    assert names == {f"host/{BOTH}", f"HTTP/{BOTH}"}
    assert kerberos.host_keytab("not-in-the-kdc", tmp_path)[1] == 0


# -- failures, as the controller sees them -------------------------------------------------


def test_unknown_user_cannot_kinit(krb_env):
    result = krb_env.kinit(principal=f"nobody@{krb_env.realm}", password="irrelevant")
    assert result.returncode == 1
    assert f"Client 'nobody@{krb_env.realm}' not found in Kerberos database" in result.stderr


def test_wrong_password_cannot_kinit(krb_env):
    result = krb_env.kinit(password="not-the-password")
    assert result.returncode == 1 and "Password incorrect" in result.stderr


@pytest.mark.parametrize(("auth", "error", "message"), [
    ("kerberos", "NoCredentialError", "No Kerberos credentials available"),
    ("negotiate", "BadMechanismError", "Unable to negotiate common mechanism"),
])
def test_no_ticket_cache(fleet, krb_env, auth, error, message):
    handle, hosts = fleet
    with pytest.raises(getattr(spnego.exceptions, error), match=message) as info:
        RunspacePool(wsman(hosts[BOTH], auth)).open()
    assert isinstance(info.value, SpnegoError)
    assert handle.state(BOTH).auth_failures == 0  # it never got as far as the host


@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
def test_service_principal_unknown_to_the_kdc(fleet, krb_env, auth):
    handle, hosts = fleet
    kinit(krb_env)
    expected = f"Server host/ws-nope@{krb_env.realm} not found in Kerberos database"
    with pytest.raises(SpnegoError, match=expected) as info:
        RunspacePool(wsman(hosts[BOTH], auth, override="ws-nope")).open()
    # Negotiate wraps the Kerberos failure once more, having no other mechanism to offer.
    assert isinstance(info.value, BadMechanismError) == (auth == "negotiate")
    assert handle.state(BOTH).auth_failures == 0


def test_wrong_password_with_kerberos_fails_in_the_client(fleet, krb_env):
    handle, hosts = fleet
    client = wsman(hosts[BOTH], "kerberos", username=krb_env.principal, password="wrong-one")
    with pytest.raises(krb5.Krb5Error, match="Preauthentication failed"):
        RunspacePool(client).open()
    assert handle.state(BOTH).auth_failures == 0


def test_wrong_password_with_negotiate_falls_back_to_ntlm_and_is_refused(fleet, krb_env):
    handle, hosts = fleet
    client = wsman(hosts[BOTH], "negotiate", username=krb_env.principal, password="wrong-one")
    with pytest.raises(AuthenticationError, match="Failed to authenticate the user"):
        RunspacePool(client).open()
    assert handle.state(BOTH).auth_failures == 1


def test_unknown_user_with_password_fails_in_the_client(fleet, krb_env):
    _, hosts = fleet
    client = wsman(hosts[BOTH], "kerberos", username=f"nobody@{krb_env.realm}",
                   password="irrelevant")
    with pytest.raises(krb5.Krb5Error, match="not found in Kerberos database"):
        RunspacePool(client).open()


@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
def test_ticket_for_another_host_is_refused_with_401(fleet, krb_env, auth):
    handle, hosts = fleet
    kinit(krb_env)
    with pytest.raises(AuthenticationError, match=f"with {auth}"):
        RunspacePool(wsman(hosts[BOTH], auth, override=ELSEWHERE)).open()
    assert handle.state(BOTH).auth_failures == 1


@pytest.mark.parametrize(("allowed", "admitted"), [(None, True), ([DEFAULT_USER_UPPER], True),
                                                   (["someone-else"], False)])
def test_allowed_users_limit_who_may_log_in(tmp_path, krb_env, allowed, admitted):
    keytab, _ = kerberos.host_keytab(BOTH, tmp_path)
    method = kerberos.KerberosAuth(BOTH, keytab, allowed_users=allowed)
    kinit(krb_env)
    client = spnego.client(hostname=BOTH, service="host", protocol="kerberos")
    token = base64.b64encode(client.step()).decode()
    assert method.accepts(token)
    outcome = method.connection().authenticate(token)
    assert (outcome.login == krb_env.user) is admitted
    assert bool(outcome.headers) is admitted  # the AP-REP only for an admitted login


# -- through the scanner: the categories an admin sees ----------------------------------------


def _scan(host: SimHost, tmp_path, username=None, password=None, override=None):
    from fleet_ecs.hostscan import scan_host
    from fleet_ecs.models import HostSpec, ScanSettings
    from fleet_ecs.transport.session import Budget

    spec = HostSpec(name=host.name.split(".")[0], address=host.address, port=host.port,
                    auth="kerberos", username=username,
                    wsman_options={"negotiate_hostname_override": override or host.name})
    settings = ScanSettings(run_id="krb", deadline=20, probe_timeout=3, read_timeout=10)
    return scan_host(spec, password, settings, Budget(20), tmp_path)


def test_scanner_over_kerberos_reaches_a_verdict(fleet, krb_env, tmp_path):
    _, hosts = fleet
    kinit(krb_env)
    result = _scan(hosts[BOTH], tmp_path)
    assert (result.category.value, result.status.value) == ("ok", "ok")
    assert result.auth == "kerberos"


def test_scanner_names_each_kerberos_failure(fleet, krb_env, tmp_path):
    _, hosts = fleet
    no_ticket = _scan(hosts[BOTH], tmp_path)
    assert no_ticket.category.value == "client_config_error"
    wrong = _scan(hosts[BOTH], tmp_path, username=krb_env.principal, password="not-it")
    assert wrong.category.value == "winrm_auth_failed"
    assert "Preauthentication" in wrong.error or "KDC" in wrong.error
    kinit(krb_env)
    unknown_spn = _scan(hosts[BOTH], tmp_path, override="ws-nope")
    assert unknown_spn.category.value == "winrm_auth_failed"
    assert "not found in Kerberos database" in unknown_spn.error
