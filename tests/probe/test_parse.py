import json

import pytest

from fleet_ecs.errors import ProbeError
from fleet_ecs.probe import parse


def test_platform_folders_compare_as_versions_not_strings():
    facts = {
        "platform_root": "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform",
        "platform_folders": ["4.18.23110.3-0", "4.18.23110.2009-0", "4.18.2201.9-0", "junk",
                             "5.x.planted"],
        "defender_install_location": None,
    }
    choice = parse.choose_platform(facts)
    assert choice.source == "newest-folder"
    assert choice.folder.endswith("\\4.18.23110.2009-0")
    assert choice.version == "4.18.23110.2009"
    assert choice.string_sort_pick == "4.18.23110.3-0"


def test_registry_install_location_wins_over_folders():
    facts = {
        "platform_root": "C:\\P",
        "platform_folders": ["4.18.25070.5-0"],
        "defender_install_location": "C:\\P\\4.18.25050.5-0\\",
    }
    choice = parse.choose_platform(facts)
    assert (choice.source, choice.folder, choice.version) == (
        "registry", "C:\\P\\4.18.25050.5-0", "4.18.25050.5")


def test_no_platform():
    assert parse.choose_platform({"platform_folders": []}).folder is None


@pytest.mark.parametrize(
    "output, expected",
    [
        ("ECS Url: https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/\r\n",
         ["https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/"]),
        ("Defender Core service ECS connection\r\n"
         "ECS Url: https://mdav.eu.endpoint.security.microsoft.com/ecs/config/v1/\r\n"
         "ECS Url: https://ecs.office.com/config/v1/\r\n"
         "ECS Url: https://ecs.office.com/config/v1/\r\n",
         ["https://mdav.eu.endpoint.security.microsoft.com/ecs/config/v1/",
          "https://ecs.office.com/config/v1/"]),
        ("Fallback endpoint https://ecs.office.com/config/v1/.", ["https://ecs.office.com/config/v1/"]),
        ("CmdTool: Failed with hr = 0x80070057. Check C:\\Windows\\TEMP\\MpCmdRun.log", []),
        ("ECS Url: http://insecure.example/x", []),
        ("", []),
        (None, []),
    ],
)
def test_parse_ecs_urls(output, expected):
    assert parse.parse_ecs_urls(output) == expected


@pytest.mark.parametrize(
    "base, url",
    [
        ("https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/",
         "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0"),
        ("https://mdav.uk.endpoint.security.microsoft.com/ecs",
         "https://mdav.uk.endpoint.security.microsoft.com/ecs/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0"),
        ("https://ecs.office.com/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0?x=1",
         "https://ecs.office.com/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0"),
    ],
)
def test_probe_url(base, url):
    assert parse.probe_url(base) == url


def test_winhttp_direct_and_localized():
    direct = "\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).\r\n"
    assert parse.parse_winhttp_proxy(direct).direct
    german = ("\r\nAktuelle WinHTTP-Proxyeinstellungen:\r\n\r\n"
              "    Proxyserver :  proxy.contoso.com:8080\r\n    Umgehungsliste :  <local>\r\n")
    proxy = parse.parse_winhttp_proxy(german)
    assert (proxy.direct, proxy.server, proxy.bypass) == (False, "proxy.contoso.com:8080", "<local>")
    chinese = "\r\n当前的 WinHTTP 代理服务器设置:\r\n\r\n    直接访问(没有代理服务器)。\r\n"
    assert parse.parse_winhttp_proxy(chinese).direct


def test_step_document_errors():
    with pytest.raises(ProbeError, match="no result document"):
        parse.parse_step_document(["hello"], "facts")
    with pytest.raises(ProbeError, match="malformed JSON"):
        parse.parse_step_document(["{not json"], "facts")
    with pytest.raises(ProbeError, match="another step"):
        parse.parse_step_document([json.dumps({"step": "ecs"})], "facts")
    assert parse.parse_step_document(["x", json.dumps({"step": "facts", "a": 1})], "facts")["a"] == 1


def test_version_tuple():
    assert parse.version_tuple("5.1.17763.6189") == (5, 1, 17763, 6189)
    assert parse.version_tuple("4.0") < (5, 1)
    assert parse.version_tuple(None) == ()
