"""Ansible YAML and INI inventories: group precedence and every mapped variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_ecs.inventory import Inventory, expand_host_pattern, load_inventory
from fleet_ecs.models import Transport

DATA = Path(__file__).parent / "data"
CA = str((DATA / "ca.pem").resolve())


@pytest.fixture(scope="module")
def yaml_inv() -> Inventory:
    return load_inventory(DATA / "ansible.yaml")


@pytest.fixture(scope="module")
def ini_inv() -> Inventory:
    return load_inventory(DATA / "ansible.ini")


def test_yaml_shape_and_order(yaml_inv: Inventory) -> None:
    assert yaml_inv.format == "ansible-yaml"
    assert [h.name for h in yaml_inv] == [
        "standalone",
        "win01",
        "win02",
        "dc01.corp.example.com",
        "dc02.corp.example.com",
        "old01",
        "tls01",
        "tls02",
    ]


def test_defaults_to_https_5986_like_ansible(yaml_inv: Inventory) -> None:
    host = yaml_inv.host("standalone")
    assert (host.address, host.port, host.transport) == ("192.0.2.50", 5986, Transport.HTTPS)
    assert host.auth == "negotiate"
    assert host.username == "CORP\\scan"  # ansible_user from all:vars
    assert host.credential is None
    assert host.groups == ()
    # Unmapped ansible_* and free variables stay in vars; mapped ones do not.
    assert host.vars == {"site": "hq"}
    assert host.read_timeout == 60  # ansible_psrp_read_timeout is understood


def test_port_5985_alone_means_http(yaml_inv: Inventory) -> None:
    dc = yaml_inv.host("dc01.corp.example.com")
    assert (dc.port, dc.transport) == (5985, Transport.HTTP)


def test_child_group_beats_parent_and_host_beats_group(yaml_inv: Inventory) -> None:
    dc = yaml_inv.host("dc02.corp.example.com")
    assert dc.auth == "kerberos"  # dcs (child) over windows (parent)
    assert dc.vars["site"] == "dc"
    assert dc.groups == ("windows", "dcs")
    win02 = yaml_inv.host("win02")
    assert (win02.port, win02.transport, win02.auth) == (5986, Transport.HTTPS, "ntlm")
    assert win02.cert_validation is False  # ansible_psrp_cert_validation: ignore


def test_winrm_connection_uses_winrm_variables(yaml_inv: Inventory) -> None:
    old = yaml_inv.host("old01")
    assert old.auth == "basic"  # plaintext,ntlm -> first entry, pywinrm's name for basic
    assert (old.transport, old.port) == (Transport.HTTP, 5985)
    assert old.message_encryption == "never"
    assert old.cert_validation is True
    assert old.username == "legacy-admin"  # ansible_winrm_user over ansible_user
    assert old.credential == "env:LEGACY_PW"  # fleet_ecs_credential
    assert "ansible_user" not in old.vars and "ansible_connection" not in old.vars


def test_host_in_two_groups_merges(yaml_inv: Inventory) -> None:
    win01 = yaml_inv.host("win01")
    assert win01.address == "192.0.2.11"
    assert win01.groups == ("windows", "legacy")
    assert win01.auth == "basic"  # legacy is deeper than windows


def test_psrp_tls_variables(yaml_inv: Inventory) -> None:
    tls = yaml_inv.host("tls01")
    assert tls.transport is Transport.HTTPS and tls.port == 5986
    assert tls.cert_validation == CA  # ansible_psrp_ca_cert
    assert tls.message_encryption == "always"
    assert tls.configuration_name == "ECS.Readonly"
    assert tls.vars["notes"] == "{{ not templated }}"  # !unsafe read as text


def test_winrm_ignore_beats_ca(yaml_inv: Inventory) -> None:
    assert yaml_inv.host("tls02").cert_validation is False


def test_yaml_groups_index(yaml_inv: Inventory) -> None:
    assert yaml_inv.groups["legacy"] == ["win01", "old01"]
    assert "all" not in yaml_inv.groups and "ungrouped" not in yaml_inv.groups


def test_ini_shape(ini_inv: Inventory) -> None:
    assert ini_inv.format == "ansible-ini"
    assert [h.name for h in ini_inv] == [
        "jump01",
        "win1",
        "win2",
        "win3",
        "win4",
        "win5",
        "dc1",
        "pr1",
        "wr1",
    ]


def test_ini_ungrouped_host(ini_inv: Inventory) -> None:
    jump = ini_inv.host("jump01")
    assert (jump.address, jump.port, jump.transport) == ("192.0.2.99", 5986, Transport.HTTPS)
    assert jump.username == "CORP\\scan"
    assert jump.groups == ()


def test_ini_range_and_group_vars(ini_inv: Inventory) -> None:
    for name in ("win1", "win2", "win3"):
        host = ini_inv.host(name)
        assert host.auth == "negotiate"
        # windows (depth 2) says http, prod (depth 1) says https: the child wins.
        assert (host.transport, host.port) == (Transport.HTTP, 5985)
        assert host.message_encryption == "always"
        assert host.vars == {"site": "prod", "owner": "ops team"}
        assert host.groups == ("prod", "windows")


def test_ini_host_port_and_psrp_variables(ini_inv: Inventory) -> None:
    win4 = ini_inv.host("win4")
    assert (win4.port, win4.transport) == (5986, Transport.HTTP)  # both explicit
    assert win4.cert_validation == CA
    assert win4.configuration_name == "ECS.Readonly"


def test_ini_quoting_and_comments(ini_inv: Inventory) -> None:
    win5 = ini_inv.host("win5")
    assert win5.username == "svc scan"
    assert win5.vars["note"] == "two words"


def test_ini_depth_beats_declaration(ini_inv: Inventory) -> None:
    dc1 = ini_inv.host("dc1")
    assert dc1.auth == "kerberos"  # dcs (under prod) is deeper than servers
    assert dc1.groups == ("prod", "servers", "dcs")
    assert dc1.transport is Transport.HTTPS


def test_ini_group_priority(ini_inv: Inventory) -> None:
    # Same depth: by name beta would win; alpha's ansible_group_priority=10 applies it last.
    pr1 = ini_inv.host("pr1")
    assert pr1.auth == "kerberos"
    assert "ansible_group_priority" not in pr1.vars


def test_ini_winrm_variables(ini_inv: Inventory) -> None:
    wr1 = ini_inv.host("wr1")
    assert (wr1.auth, wr1.transport, wr1.port) == ("kerberos", Transport.HTTPS, 5986)
    assert wr1.cert_validation is False
    assert wr1.message_encryption == "always"
    assert wr1.username == "wr-admin"


def test_sniffed_ini_without_extension() -> None:
    inventory = load_inventory(DATA / "ansible_hosts")
    assert inventory.format == "ansible-ini"
    assert inventory.host("sniff01").transport is Transport.HTTP


def test_top_level_group_without_all(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "windows:\n  hosts:\n    w1:\n  vars:\n    ansible_psrp_auth: credssp\n",
        encoding="utf-8",
    )
    inventory = load_inventory(path)
    assert inventory.format == "ansible-yaml"
    assert inventory.host("w1").auth == "credssp"


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("web01", ["web01"]),
        ("web[1:3]", ["web1", "web2", "web3"]),
        ("web[01:03].x", ["web01.x", "web02.x", "web03.x"]),
        ("db[a:c]", ["dba", "dbb", "dbc"]),
        ("n[0:10:5]", ["n0", "n5", "n10"]),
        ("r[1:2]c[1:2]", ["r1c1", "r1c2", "r2c1", "r2c2"]),
    ],
)
def test_expand_host_pattern(pattern: str, names: list[str]) -> None:
    assert expand_host_pattern(pattern) == names


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("web[3:1]", "backwards"),
        ("web[1:x]", "two numbers or two letters"),
        ("web[1:5:0]", "at least 1"),
        ("web[1:200000]", "more than"),
        ("a[1:400]b[1:400]", "more than"),
    ],
)
def test_expand_host_pattern_errors(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        expand_host_pattern(pattern)
