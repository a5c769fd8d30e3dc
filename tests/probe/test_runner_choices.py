"""What Python decides between steps: the proxy to filter the capture on, the alternates."""

from fleet_ecs.probe.runner import alternate_urls, defender_proxy, machine_proxy

PROXY = ("\r\nCurrent WinHTTP proxy settings:\r\n\r\n"
         "    Proxy Server(s) :  {server}\r\n    Bypass List     :  <local>\r\n")
DIRECT = "\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).\r\n"


def facts(winhttp=DIRECT, own=None):
    return {"winhttp_proxy": {"output": winhttp}, "defender_proxy": {"ProxyServer": own}}


def test_machine_proxy_follows_defender_then_winhttp():
    assert machine_proxy(facts()) == ""
    assert machine_proxy(facts(PROXY.format(server="proxy.contoso.com:8080"))) == \
        "proxy.contoso.com:8080"
    per_scheme = PROXY.format(server="http=p1.contoso.com:80;https=p2.contoso.com:8443")
    assert machine_proxy(facts(per_scheme)) == "p2.contoso.com:8443"
    assert machine_proxy(facts(PROXY.format(server="x:1"), own="http://def.contoso.com:3128/")) \
        == "def.contoso.com:3128"
    assert defender_proxy({}) == "" and machine_proxy({}) == ""


def test_alternates_leave_out_the_configured_endpoint():
    primary = "https://mdav.eu.endpoint.security.microsoft.com/ecs/config/v1/" \
        "MicrosoftWindowsDefenderClient/1.0.0.0"
    others = alternate_urls(primary, "eu")
    assert others == ["https://ecs.office.com/config/v1/MicrosoftWindowsDefenderClient/1.0.0.0"]
    assert len(alternate_urls(primary, "us")) == 2
