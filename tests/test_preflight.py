from fleet_ecs import preflight
from fleet_ecs.models import HostSpec, Transport


def host(name, **kw):
    kw.setdefault("username", "CORP\\svc")
    return HostSpec(name=name, address=kw.pop("address", "srv.corp.example.com"), port=5986,
                    transport=kw.pop("transport", Transport.HTTPS), **kw)


def test_missing_libraries_and_settings_are_one_issue_each(monkeypatch):
    monkeypatch.setattr(preflight, "_importable", lambda module: False)
    hosts = [host("a", auth="credssp"), host("b", auth="credssp"), host("c", auth="kerberos"),
             host("d", auth="certificate"), host("e", auth="ntlm"),
             host("f", auth="basic", transport=Transport.HTTP)]
    issues = preflight.check_client(hosts, {h.name: True for h in hosts})
    by_hosts = {tuple(i.hosts): i.message for i in issues.values()}
    assert set(by_hosts) == {("a", "b"), ("c",), ("d",), ("f",)}
    assert "requests-credssp" in by_hosts[("a", "b")]
    assert "GSSAPI" in by_hosts[("c",)]
    assert "certificate_pem" in by_hosts[("d",)]
    assert "cannot encrypt" in by_hosts[("f",)]


def test_kerberos_without_password_needs_a_ticket(monkeypatch):
    monkeypatch.setattr(preflight, "_importable", lambda module: True)
    monkeypatch.setattr(preflight, "_kerberos_credential", lambda: False)
    hosts = [host("a", auth="kerberos"), host("b", auth="kerberos")]
    issues = preflight.check_client(hosts, {"a": False, "b": True})
    (issue,) = issues.values()
    assert issue.hosts == ["a"] and "kinit" in issue.message
    monkeypatch.setattr(preflight, "_kerberos_credential", lambda: True)
    assert preflight.check_client(hosts, {"a": False, "b": True}) == {}


def test_addressed_by_ip():
    assert preflight.addressed_by_ip(host("a", address="127.0.0.5", auth="negotiate"))
    assert not preflight.addressed_by_ip(host("a", address="127.0.0.5", auth="ntlm"))
    assert not preflight.addressed_by_ip(host("a", auth="kerberos"))
    assert not preflight.addressed_by_ip(
        host("a", address="::1", auth="kerberos",
             wsman_options={"negotiate_hostname_override": "srv1"}))


def test_password_methods_need_a_username():
    hosts = [host("a", auth="basic", username=None), host("b", auth="ntlm"),
             host("c", auth="kerberos")]
    issues = preflight.check_client(hosts[:2], {"a": True, "b": True})
    (issue,) = issues.values()
    assert issue.hosts == ["a"] and "username" in issue.message
