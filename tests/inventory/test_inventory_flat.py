"""CSV and plain-list inventories, shape detection and host-name safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_ecs.inventory import host_name_problem, load_inventory, sniff
from fleet_ecs.models import Transport

DATA = Path(__file__).parent / "data"


def test_csv() -> None:
    inventory = load_inventory(DATA / "hosts.csv")
    assert inventory.format == "csv"
    assert [h.name for h in inventory] == ["web01", "web02", "sim01"]
    web01 = inventory.host("web01")
    assert (web01.address, web01.auth, web01.username) == ("192.0.2.21", "ntlm", "CORP\\scan")
    assert web01.credential == "env:CSV_PW"
    assert web01.groups == ("web", "dmz")
    assert web01.vars == {"scenario": "healthy"}
    web02 = inventory.host("web02")
    assert (web02.address, web02.port, web02.transport) == ("web02", 5986, Transport.HTTPS)
    assert web02.cert_validation is False and web02.vars == {}
    sim01 = inventory.host("sim01")
    assert (sim01.port, sim01.transport, sim01.auth) == (15985, Transport.HTTP, "basic")
    assert (sim01.credential, sim01.message_encryption) == ("simulator", "never")
    assert inventory.groups == {"web": ["web01", "web02"], "dmz": ["web01"]}


def test_csv_host_column_is_the_name() -> None:
    inventory = load_inventory(DATA / "hosts_host_column.csv")
    host = inventory.host("db01.example.com")
    assert (host.port, host.transport) == (5986, Transport.HTTPS)


def test_csv_host_column_with_name_is_the_address(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("name,host\nweb01,192.0.2.9\n", encoding="utf-8")
    assert load_inventory(path).host("web01").address == "192.0.2.9"


def test_csv_with_excel_bom(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffName,Port\r\nweb01,5986\r\n".encode())
    assert load_inventory(path).host("web01").port == 5986


def test_plain() -> None:
    inventory = load_inventory(DATA / "hosts.txt")
    assert inventory.format == "plain"
    assert [h.name for h in inventory] == ["web01", "web02.corp.example.com", "ws_03"]
    host = inventory.host("web02.corp.example.com")
    assert (host.address, host.port, host.transport, host.auth) == (
        "web02.corp.example.com",
        5985,
        Transport.HTTP,
        "negotiate",
    )
    assert host.credential is None and host.username is None


def test_sniffed_without_extension() -> None:
    assert load_inventory(DATA / "plain_hosts").format == "plain"
    assert load_inventory(DATA / "yaml_no_ext").format == "native"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[windows]\nweb01\n", "ini"),
        ("# c\n---\nhosts: []\n", "yaml"),
        ("all:\n  hosts:\n", "yaml"),
        ("name,port\nweb01,1\n", "csv"),
        ("web01 ansible_port=5986\n", "ini"),
        ("web01\nweb02\n", "plain"),
        ("web01:5986\n", "plain"),
        ("", "plain"),
    ],
)
def test_sniff(text: str, kind: str) -> None:
    assert sniff(text) == kind


@pytest.mark.parametrize(
    "name",
    ["web01", "WEB-01", "web01.corp.example.com", "ws_03", "192.0.2.1", "a"],
)
def test_safe_names(name: str) -> None:
    assert host_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "non-empty"),
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("..", "'..'"),
        (".hidden", "start or end"),
        ("trailing.", "start or end"),
        ("web 01", "may only contain"),
        ("wéb", "may only contain"),
        ("a:b", "may only contain"),
        ("nul", "reserved"),
        ("COM1.example", "reserved"),
        ("x" * 254, "longer than 253"),
        (42, "non-empty text"),
    ],
)
def test_unsafe_names(name: object, problem: str) -> None:
    found = host_name_problem(name)
    assert found is not None and problem in found
