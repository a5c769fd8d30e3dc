"""The simulator's WS-Management layer in memory, compared with recorded Windows replies."""

from __future__ import annotations

import base64
import json
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from psrpcore import ClientPowerShell, ClientRunspacePool, Command, PipelineOutputEvent
from psrpcore import PSRPPayload, StreamType
from psrpcore.types import PSInvocationState, RunspacePoolState

from fleet_ecs.sim import scenarios, wsman
from fleet_ecs.sim.shells import Wait, WinRMService
from fleet_ecs.sim.state import HostState
from fleet_ecs.sim.steps import HostContext
from fleet_ecs.sim.windows_text import profile_for
from fleet_ecs.sim.wsman import WsmanFault

RECORDED = Path("/work/shared/reference/winrm-recorded")
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
PS_URI = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"


def _request(action: str, body: str = "", shell_id: str | None = None, timeout: str = "PT20S",
             message_id: str | None = None) -> bytes:
    selector = ""
    if shell_id:
        selector = (f'<wsman:SelectorSet><wsman:Selector Name="ShellId">{shell_id}'
                    "</wsman:Selector></wsman:SelectorSet>")
    message_id = message_id or "uuid:" + str(uuid.uuid4()).upper()
    return (
        f'<s:Envelope xmlns:s="{wsman.NS["s"]}" xmlns:wsa="{wsman.NS["wsa"]}" '
        f'xmlns:wsman="{wsman.NS["wsman"]}" xmlns:rsp="{wsman.NS["rsp"]}"><s:Header>'
        f'<wsa:Action s:mustUnderstand="true">{action}</wsa:Action>'
        "<wsman:MaxEnvelopeSize>153600</wsman:MaxEnvelopeSize>"
        f"<wsa:MessageID>{message_id}</wsa:MessageID>"
        f"<wsman:OperationTimeout>{timeout}</wsman:OperationTimeout>"
        f"<wsman:ResourceURI>{PS_URI}</wsman:ResourceURI>"
        f"<wsa:To>http://127.0.0.1:5985/wsman</wsa:To>{selector}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _service(scenario: str = "healthy") -> tuple[WinRMService, HostState]:
    state = HostState("ws-0001")
    profile = profile_for("ws-0001")

    def context(login: str) -> HostContext:
        return HostContext(profile, scenarios.get(scenario), state, login)

    return WinRMService("127.0.0.1", context), state


def test_parse_request_reads_header_fields() -> None:
    req = wsman.parse_request(_request(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
        shell_id="ABC", timeout="PT1M2.5S", message_id="uuid:1234",
    ))
    assert (req.action, req.shell_id, req.message_id) == ("Receive", "ABC", "uuid:1234")
    assert req.operation_timeout == 62.5
    assert req.max_envelope_size == 153600


@pytest.mark.parametrize("text, expected", [("PT20S", 20.0), ("PT0.5S", 0.5), ("bogus", 7.0),
                                            (None, 7.0), ("PT2M", 120.0)])
def test_parse_duration(text: str | None, expected: float) -> None:
    assert wsman.parse_duration(text, 7.0) == expected


def test_malformed_xml_is_a_sender_fault() -> None:
    with pytest.raises(WsmanFault) as info:
        wsman.parse_request(b"<not-soap")
    assert info.value.sender and info.value.subcode == "w:SchemaValidationError"


def test_unknown_shell_is_fault_2150858843() -> None:
    service, _ = _service()
    req = wsman.parse_request(_request("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
                                       shell_id="0DDBA11E-0000-0000-0000-000000000000"))
    with pytest.raises(WsmanFault) as info:
        service.handle(req, "fleet-ecs-demo", "127.0.0.1", 0.0)
    assert info.value.code == wsman.UNEXPECTED_SELECTORS
    assert "0DDBA11E-0000-0000-0000-000000000000" in info.value.message


def test_fault_body_shape_matches_what_pypsrp_parses() -> None:
    body = wsman.fault_response("uuid:X", wsman.timed_out_fault(), "127.1.2.3")
    root = ET.fromstring(body)
    ns = {"s": wsman.NS["s"], "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
          "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing"}
    assert root.findtext("s:Header/a:RelatesTo", namespaces=ns) == "uuid:X"
    detail = root.find("s:Body/s:Fault/s:Detail/f:WSManFault", ns)
    assert detail is not None and detail.get("Code") == "2150858793"
    assert detail.get("Machine") == "127.1.2.3"
    assert root.findtext("s:Body/s:Fault/s:Code/s:Subcode/s:Value", namespaces=ns) == "w:TimedOut"


def test_pool_receive_with_nothing_queued_waits() -> None:
    """After the open handshake is drained, a pool Receive has nothing and must wait."""
    recorded = _recorded("test_client_execute_ps.yml")  # real pypsrp requests
    service, state = _service()
    create = wsman.parse_request(recorded[0]["request"].encode())
    service.handle(create, "fleet-ecs-demo", "127.0.0.1", 0.0)
    receive = wsman.parse_request(recorded[1]["request"].encode())
    first = service.handle(receive, "fleet-ecs-demo", "127.0.0.1", 0.0)
    assert isinstance(first, bytes) and b"rsp:Stream" in first
    assert service.handle(receive, "fleet-ecs-demo", "127.0.0.1", 0.0) == Wait(None)
    assert state.snapshot().shells_open == 1


# --- structural comparison with real Windows -----------------------------------------------

def _recorded(name: str) -> list[dict[str, str]]:
    yaml = pytest.importorskip("yaml")
    path = RECORDED / name
    if not path.is_file():
        pytest.skip(f"recorded Windows exchanges not available ({path})")
    return yaml.safe_load(path.read_text())["messages"]


def _prefixes(xml: str) -> set[str]:
    start = xml[: xml.index(">")]
    return set(re.findall(r"xmlns:(\w+)=", start))


def _shape(xml: str | bytes) -> set[tuple[str, tuple[str, ...]]]:
    """Every element path with its attribute names; repeated siblings collapse."""
    out: set[tuple[str, tuple[str, ...]]] = set()

    def walk(node: ET.Element, prefix: str) -> None:
        path = f"{prefix}/{node.tag}"
        out.add((path, tuple(sorted(node.attrib))))
        for child in node:
            walk(child, path)

    walk(ET.fromstring(xml), "")
    return out


def _header_order(xml: str | bytes) -> list[str]:
    header = ET.fromstring(xml).find("{%s}Header" % wsman.NS["s"])
    assert header is not None
    return [child.tag for child in header]


def _action(xml: str | bytes) -> str:
    text = ET.fromstring(xml).findtext("{%s}Header/{%s}Action" % (wsman.NS["s"], wsman.NS["wsa"]))
    return (text or "").rsplit("/", 1)[1]


def _streams(reply: bytes) -> bytes:
    root = ET.fromstring(reply)
    return b"".join(base64.b64decode(s.text or "")
                    for s in root.iter("{%s}Stream" % wsman.NS["rsp"]))


def _pair_exchange() -> dict[str, bytes]:
    """Drive the service with psrpcore's client side, in memory; replies by action."""
    client = ClientRunspacePool()
    client.open()
    shell_id = str(client.runspace_pool_id).upper()
    creation = base64.b64encode(client.data_to_send().data).decode()
    service, _ = _service()
    replies: dict[str, bytes] = {}

    def call(action: str, body: str) -> bytes:
        reply = service.handle(wsman.parse_request(_request(action, body, shell_id)),
                               "fleet-ecs-demo", "127.0.0.1", 0.0)
        assert isinstance(reply, bytes)
        replies[_action(reply)] = reply
        return reply

    call(TRANSFER + "Create",
         f'<rsp:Shell ShellId="{shell_id}"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
         "<rsp:OutputStreams>stdout</rsp:OutputStreams>"
         f'<creationXml xmlns="{wsman.NS["pwsh"]}">{creation}</creationXml></rsp:Shell>')
    reply = call(SHELL + "Receive", "<rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream>"
                 "</rsp:Receive>")
    client.receive_data(PSRPPayload(_streams(reply), StreamType.default, None))
    while client.next_event() is not None:
        pass
    assert client.state == RunspacePoolState.Opened

    ps = ClientPowerShell(client)
    ps.add_command(Command("# fleet-ecs step: facts v2\n$FE_RunId = 'r1'\n", is_script=True))
    ps.start()
    command_id = str(ps.pipeline_id).upper()
    arguments = base64.b64encode(client.data_to_send().data).decode()
    call(SHELL + "Command", f'<rsp:CommandLine CommandId="{command_id}"><rsp:Command />'
         f"<rsp:Arguments>{arguments}</rsp:Arguments></rsp:CommandLine>")
    reply = call(SHELL + "Receive", f'<rsp:Receive><rsp:DesiredStream CommandId="{command_id}">'
                 "stdout</rsp:DesiredStream></rsp:Receive>")
    client.receive_data(PSRPPayload(_streams(reply), StreamType.default, ps.pipeline_id))
    outputs = []
    while (event := client.next_event()) is not None:
        if isinstance(event, PipelineOutputEvent):
            outputs.append(event.data)
    assert ps.state == PSInvocationState.Completed
    assert json.loads(outputs[0])["computer_name"] == "WS-0001"
    return replies


def test_in_memory_pair_runs_a_step() -> None:
    replies = _pair_exchange()
    assert b"CommandState/Done" in replies["ReceiveResponse"]


def test_create_and_receive_replies_are_shaped_like_windows() -> None:
    recorded = _recorded("test_client_execute_ps.yml")
    windows = {}
    for exchange in recorded:
        windows.setdefault(_action(exchange["response"]), []).append(exchange["response"])
    ours = _pair_exchange()

    for action, pick in (("CreateResponse", 0), ("ReceiveResponse", -1), ("CommandResponse", 0),
                         ("DeleteResponse", 0)):
        if action == "DeleteResponse":
            mine = wsman.delete_response(wsman.parse_request(_request(TRANSFER + "Delete")))
        else:
            mine = ours[action]
        theirs = windows[action][pick]  # the last Receive is the pipeline's, carrying Done
        assert _prefixes(mine.decode()) == _prefixes(theirs), action
        assert _shape(mine) == _shape(theirs), action
        assert _header_order(mine) == _header_order(theirs), action


def test_fault_reply_is_shaped_like_windows() -> None:
    recorded = _recorded("test_psrp_receive_failure.yml")
    windows = next(m["response"] for m in recorded if "s:Fault" in m["response"])
    mine = wsman.fault_response("uuid:1", wsman.command_not_found_fault(), "127.0.0.1").decode()
    assert _prefixes(mine) == _prefixes(windows)
    assert _shape(mine) == _shape(windows)


def _body_shape(xml: str | bytes) -> set[tuple[str, tuple[str, ...]]]:
    return {item for item in _shape(xml) if "}Body" in item[0]}


@pytest.mark.parametrize("fault", [
    wsman.shell_not_found_fault("0DDBA11E-0000-0000-0000-000000000000"),
    wsman.access_denied_fault(),
    wsman.resource_uri_fault(PS_URI),
], ids=["shell-lost", "access-denied", "configuration-missing"])
def test_faults_with_detail_are_shaped_like_windows(fault: WsmanFault) -> None:
    recorded = _recorded("test_psrp_receive_failure.yml")
    windows = next(m["response"] for m in recorded if "s:Fault" in m["response"])
    mine = wsman.fault_response("uuid:1", fault, "127.0.0.1").decode()
    assert _prefixes(mine) == _prefixes(windows)
    assert _shape(mine) == _shape(windows)
    assert _header_order(mine) == _header_order(windows)
    assert ET.fromstring(mine).findtext(".//{%s}Value" % wsman.NS["s"]) == "s:Sender"


@pytest.mark.parametrize("fault", [wsman.shell_quota_fault(), wsman.operations_quota_fault()],
                         ids=["shells", "operations"])
def test_quota_faults_are_shaped_like_windows(fault: WsmanFault) -> None:
    # The recorded Sender fault without a FaultDetail; that recording's header has no
    # ActivityId (older build), so only the body and the namespaces are compared.
    recorded = _recorded("test_psrp_is_alive_other_wsman_error.yml")
    windows = next(m["response"] for m in recorded if "s:Fault" in m["response"])
    mine = wsman.fault_response("uuid:1", fault, "127.0.0.1").decode()
    assert _prefixes(mine) == _prefixes(windows)
    assert _body_shape(mine) == _body_shape(windows)
    root = ET.fromstring(mine)
    assert root.findtext(".//{%s}Subcode/{%s}Value" % (wsman.NS["s"], wsman.NS["s"])) == (
        "w:QuotaLimit")
    assert fault.message.endswith("raise the quota for this user. ")


def test_oversized_receive_is_shaped_like_a_windows_receive() -> None:
    recorded = _recorded("test_client_fetch_file.yml")
    windows = [m["response"] for m in recorded if "ReceiveResponse" in m["response"]
               and m["response"].count('<rsp:Stream Name="stdout" CommandId=') > 1][0]
    req = wsman.parse_request(_request(SHELL + "Receive"))
    mine = wsman.oversized_receive_response(req, 1024 * 1024, uuid.uuid4(), uuid.uuid4())
    assert len(mine) > 1024 * 1024
    assert _prefixes(mine.decode()) == _prefixes(windows)
    # Windows' reply may also carry CommandState; every element of ours is one Windows sends.
    assert _body_shape(mine) <= _body_shape(windows)
