"""The native YAML shape: inheritance order, port/transport inference and the Inventory API."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_ecs.inventory import Inventory, load_inventory
from fleet_ecs.models import Transport

DATA = Path(__file__).parent / "data"
CA = str((DATA / "ca.pem").resolve())


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(DATA / "native_full.yaml")


def test_format_path_and_file_order(inventory: Inventory) -> None:
    assert inventory.format == "native"
    assert inventory.path == DATA / "native_full.yaml"
    # Order of first mention: the branch group lists br01 and web01 before hosts: begins.
    assert [h.name for h in inventory.hosts] == [
        "br01",
        "web01",
        "sim01",
        "web02",
        "dc01",
        "ws01",
        "ws02",
        "ws03",
        "lab",
    ]
    assert len(inventory) == 9


def test_host_then_groups_in_order_then_defaults(inventory: Inventory) -> None:
    web01 = inventory.host("web01")
    assert web01.address == "192.0.2.10"
    assert web01.groups == ("web", "jea", "branch")
    assert web01.port == 5986 and web01.transport is Transport.HTTPS  # web: port only
    assert web01.auth == "kerberos"  # jea beats defaults' ntlm
    assert web01.configuration_name == "ECS.Readonly"
    assert web01.cert_validation == CA  # relative to the inventory's folder
    assert web01.username == "CORP\\scan"
    assert web01.credential == "env:FLEET_TEST_PW"
    assert web01.vars == {"scenario": "healthy", "site": "dmz"}


def test_host_setting_wins_over_defaults(inventory: Inventory) -> None:
    web02 = inventory.host("web02")
    assert web02.auth == "negotiate"
    assert web02.groups == ("web",)
    assert web02.vars == {"scenario": "proxy_auth", "site": "dmz"}


def test_builtin_defaults(inventory: Inventory) -> None:
    dc01 = inventory.host("dc01")
    assert (dc01.address, dc01.port, dc01.transport) == ("dc01", 5985, Transport.HTTP)
    assert dc01.cert_validation is True
    assert dc01.configuration_name == "Microsoft.PowerShell"
    assert dc01.message_encryption == "auto"
    assert dc01.auth == "ntlm"
    assert dc01.groups == ()
    assert dc01.vars == {"scenario": "healthy", "site": "hq"}


@pytest.mark.parametrize(
    ("name", "port", "transport"),
    [
        ("ws01", 5985, Transport.HTTP),
        ("ws02", 8443, Transport.HTTPS),
        ("ws03", 5986, Transport.HTTPS),
    ],
)
def test_port_transport_inference(
    inventory: Inventory, name: str, port: int, transport: Transport
) -> None:
    host = inventory.host(name)
    assert (host.port, host.transport) == (port, transport)
    assert host.endpoint == f"{transport.value}://{name}:{port}/wsman"


def test_group_host_mapping_defines_host(inventory: Inventory) -> None:
    sim01 = inventory.host("sim01")
    assert (sim01.address, sim01.port, sim01.transport) == ("127.0.0.1", 15985, Transport.HTTP)
    assert (sim01.auth, sim01.message_encryption, sim01.credential) == (
        "basic",
        "never",
        "simulator",
    )
    assert sim01.groups == ("sim",)


def test_group_listing_only(inventory: Inventory) -> None:
    br01 = inventory.host("br01")
    assert br01.groups == ("branch",)
    assert br01.cert_validation == CA


def test_ipv6_address_unbracketed(inventory: Inventory) -> None:
    lab = inventory.host("lab")
    assert lab.address == "2001:db8::5"  # pypsrp adds the brackets itself
    assert lab.cert_validation is False
    assert (lab.username, lab.credential, lab.message_encryption) == (
        "lab-admin",
        "prompt",
        "always",
    )


def test_groups_index(inventory: Inventory) -> None:
    assert inventory.groups["web"] == ["web01", "web02"]
    assert inventory.groups["branch"] == ["br01", "web01"]
    assert "jea" in inventory.groups


def test_unknown_host_lookup(inventory: Inventory) -> None:
    with pytest.raises(KeyError):
        inventory.host("nope")


def test_mapping_form_and_numeric_name() -> None:
    inventory = load_inventory(str(DATA / "native_mapping.yml"))
    assert [h.name for h in inventory] == ["alpha", "beta", "12345"]
    beta = inventory.host("beta")
    assert (beta.address, beta.cert_validation) == ("beta.example.com", False)
    number = inventory.host("12345")
    assert (number.port, number.cert_validation) == (5986, True)


def test_example_inventory_loads() -> None:
    example = Path(__file__).parents[2] / "inventories" / "example.yaml"
    inventory = load_inventory(example)
    assert inventory.format == "native"
    assert len(inventory) >= 4
    assert all(h.credential for h in inventory)


def test_yaml_merge_keys_allowed(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "hosts:\n  - &base {name: a1, auth: ntlm, port: 5986}\n  - <<: *base\n    name: a2\n",
        encoding="utf-8",
    )
    hosts = load_inventory(path).hosts
    assert [(h.name, h.auth, h.port) for h in hosts] == [("a1", "ntlm", 5986), ("a2", "ntlm", 5986)]


def test_timeouts_and_pypsrp_options_inherit_from_groups(tmp_path):
    from fleet_ecs.inventory import load_inventory

    (tmp_path / "client.pem").write_text("x")
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "defaults:\n  read_timeout: 40\n"
        "groups:\n  far:\n    deadline: 900\n    connect_timeout: 20\n"
        "    negotiate_hostname_override: srv1.corp.example.com\n"
        "    negotiate_send_cbt: false\n    certificate_pem: client.pem\n"
        "hosts:\n  - name: srv1\n    groups: [far]\n  - name: srv2\n"
    )
    srv1, srv2 = load_inventory(inv).hosts
    assert (srv1.deadline, srv1.connect_timeout, srv1.read_timeout) == (900, 20, 40)
    assert srv1.wsman_options == {
        "negotiate_hostname_override": "srv1.corp.example.com",
        "negotiate_send_cbt": False,
        "certificate_pem": str(tmp_path / "client.pem"),
    }
    assert (srv2.deadline, srv2.read_timeout, srv2.wsman_options) == (None, 40, {})


def test_bad_timeout_names_the_line(tmp_path):
    import pytest

    from fleet_ecs.errors import InventoryError
    from fleet_ecs.inventory import load_inventory

    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  - name: srv1\n    deadline: soon\n")
    with pytest.raises(InventoryError, match=r"line 3.*'soon' is not a number of seconds"):
        load_inventory(inv)
