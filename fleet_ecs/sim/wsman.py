"""WS-Management SOAP as the simulated hosts speak it: request parsing and reply envelopes.

No I/O here. ``parse_request`` turns a POSTed body into a ``WsmanRequest``; the ``*_response``
functions build reply bodies shaped like the replies real Windows sends (same namespace
prefixes ``s: a: x: w: rsp: p:`` and element order as the captures pypsrp recorded against
Windows Server, tests/tests_pypsrp/responses/*.yml in jborean93/pypsrp). Replies are string
templates rather than ElementTree output: they are on the hot path of every request and their
exact shape is the point.

Windows declares a different namespace set per reply kind (a Receive reply has no ``x:``, a
Delete reply neither ``x:`` nor ``rsp:``, a fault adds ``e:`` and ``n:``); the prefixes below
copy that.
"""

from __future__ import annotations

import base64
import logging
import re
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

logger = logging.getLogger(__name__)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "pwsh": "http://schemas.microsoft.com/powershell",
}

_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTIONS = {
    _TRANSFER + "Create": "Create",
    _TRANSFER + "Delete": "Delete",
    _TRANSFER + "Get": "Get",
    _SHELL + "Receive": "Receive",
    _SHELL + "Command": "Command",
    _SHELL + "Send": "Send",
    _SHELL + "Signal": "Signal",
}
COMMAND_STATE_DONE = _SHELL + "CommandState/Done"
COMMAND_STATE_RUNNING = _SHELL + "CommandState/Running"
SIGNAL_TERMINATE = _SHELL + "signal/Terminate"
SIGNAL_PS_CTRL_C = "powershell/signal/ctrl_c"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# Win32 ERROR_WSMAN_* codes (wsmerror.h) the simulator answers with.
OPERATION_TIMEDOUT = 2150858793
UNEXPECTED_SELECTORS = 2150858843
INVALID_RESOURCE_URI = 2150858811
ACTION_NOT_SUPPORTED = 2150858775
SCHEMA_VALIDATION_ERROR = 2150858817
QUOTA_MAX_SHELLS = 2150859173
QUOTA_MAX_OPERATIONS = 2150859174
ACCESS_DENIED = 5  # plain Win32 ERROR_ACCESS_DENIED, as Windows puts it in WSManFault@Code

_DURATION_RE = re.compile(r"^PT(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?$")

_NS_ATTRS = {
    "s": 'xmlns:s="http://www.w3.org/2003/05/soap-envelope"',
    "a": 'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"',
    "x": 'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer"',
    "e": 'xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing"',
    "n": 'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"',
    "w": 'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"',
    "rsp": 'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"',
    "p": 'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"',
}


class WsmanFault(Exception):
    """A fault the simulated WinRM service answers with (HTTP 500 and a SOAP ``s:Fault``)."""

    def __init__(
        self,
        code: int,
        subcode: str,
        reason: str,
        message: str | None = None,
        *,
        sender: bool = False,
        detail: str | None = None,
    ) -> None:
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.message = message if message is not None else reason
        self.sender = sender
        self.detail = detail
        super().__init__(f"{code} {subcode}: {self.message}")


def timed_out_fault() -> WsmanFault:
    # Windows pads both texts with two spaces (test_winrs_operation_timeout.yml).
    text = (
        "The WS-Management service cannot complete the operation within the time specified "
        "in OperationTimeout.  "
    )
    return WsmanFault(OPERATION_TIMEDOUT, "w:TimedOut", text)


def shell_not_found_fault(shell_id: str) -> WsmanFault:
    return WsmanFault(
        UNEXPECTED_SELECTORS,
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained "
        "invalid selectors for the resource. ",
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
        "shell was not found on the server. Possible causes are: the specified ShellId is "
        "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
        "create a new shell and retry the operation. ",
        sender=True,
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def command_not_found_fault() -> WsmanFault:
    return WsmanFault(
        UNEXPECTED_SELECTORS,
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained "
        "invalid selectors for the resource. ",
        "The Windows Remote Shell received a request to perform an operation on a command "
        "identifier that does not exist. Either the command has completed execution or the "
        "client specified an invalid command identifier. ",
        sender=True,
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


_FAULT_DETAIL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
_QUOTA_REASON = "The service is busy servicing other requests. "


def shell_quota_fault(limit: int = 5) -> WsmanFault:
    """MaxShellsPerUser exceeded (winrm-facts.md §3 #1; the GPO and plugin default is 5)."""
    text = (
        "The WS-Management service cannot process the request. This user is allowed a maximum "
        f"number of {limit} concurrent shells, which has been exceeded. Close existing shells "
        "or raise the quota for this user. "
    )
    return WsmanFault(QUOTA_MAX_SHELLS, "w:QuotaLimit", _QUOTA_REASON, text, sender=True)


def operations_quota_fault(limit: int = 1500) -> WsmanFault:
    """MaxConcurrentOperationsPerUser exceeded (winrm-facts.md §3 #3)."""
    text = (
        "The WS-Management service cannot process the request. This user is allowed a maximum "
        f"number of {limit} concurrent operations, which has been exceeded. Close existing "
        "operations for this user, or raise the quota for this user. "
    )
    return WsmanFault(QUOTA_MAX_OPERATIONS, "w:QuotaLimit", _QUOTA_REASON, text, sender=True)


def access_denied_fault() -> WsmanFault:
    """The account may log on but is not allowed to use the session configuration."""
    return WsmanFault(ACCESS_DENIED, "w:AccessDenied", "Access is denied. ", sender=True,
                      detail=_FAULT_DETAIL + "AccessDenied")


def resource_uri_fault(resource_uri: str) -> WsmanFault:
    """An unknown resource URI, e.g. an unregistered session configuration (§3 #15)."""
    text = (
        "The WS-Management service cannot process the request. The resource URI "
        f"({resource_uri}) was not found in the WS-Management catalog. The catalog contains the "
        "metadata that describes resources, or logical endpoints. "
    )
    return WsmanFault(INVALID_RESOURCE_URI, "w:DestinationUnreachable", text, sender=True,
                      detail=_FAULT_DETAIL + "InvalidResourceURI")


def bad_request_fault(what: str) -> WsmanFault:
    return WsmanFault(
        SCHEMA_VALIDATION_ERROR,
        "w:SchemaValidationError",
        "The SOAP XML in the message does not match the corresponding XML schema definition. "
        "Change the XML and retry. ",
        f"The WS-Management service cannot process the request: {what}. ",
        sender=True,
    )


@dataclass
class WsmanRequest:
    """The parts of a WS-Management request the simulator acts on."""

    action: str  # short name: Create, Receive, Command, Send, Signal, Delete, Get, or the URI
    message_id: str
    to: str
    resource_uri: str
    max_envelope_size: int
    operation_timeout: float
    shell_id: str | None
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None

    def body_child(self, path: str) -> ET.Element | None:
        return None if self.body is None else self.body.find(path, NS)


def parse_duration(text: str | None, default: float) -> float:
    """Seconds in an xs:duration of the form WinRM clients send (``PT20S``, ``PT1M30.5S``)."""
    if not text:
        return default
    match = _DURATION_RE.match(text.strip())
    if match is None or (match["m"] is None and match["s"] is None):
        return default
    return float(match["m"] or 0) * 60 + float(match["s"] or 0)


def parse_request(data: bytes) -> WsmanRequest:
    """Parse a SOAP envelope; raises ``WsmanFault`` for anything that is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise bad_request_fault(f"malformed XML ({exc})") from None
    header = root.find("s:Header", NS)
    if root.tag != "{%s}Envelope" % NS["s"] or header is None:
        raise bad_request_fault("no SOAP envelope header")

    def text(path: str) -> str:
        node = header.find(path, NS)
        return (node.text or "").strip() if node is not None else ""

    action_uri = text("wsa:Action")
    shell_id = None
    for selector in header.iterfind("wsman:SelectorSet/wsman:Selector", NS):
        if selector.get("Name") == "ShellId":
            shell_id = (selector.text or "").strip()
    options = {
        opt.get("Name", ""): (opt.text or "")
        for opt in header.iterfind("wsman:OptionSet/wsman:Option", NS)
    }
    try:
        max_envelope = int(text("wsman:MaxEnvelopeSize") or 153600)
    except ValueError:
        max_envelope = 153600
    return WsmanRequest(
        action=ACTIONS.get(action_uri, action_uri),
        message_id=text("wsa:MessageID"),
        to=text("wsa:To"),
        resource_uri=text("wsman:ResourceURI"),
        max_envelope_size=max_envelope,
        operation_timeout=parse_duration(text("wsman:OperationTimeout"), 60.0),
        shell_id=shell_id,
        options=options,
        body=root.find("s:Body", NS),
    )


def _envelope(prefixes: str, action: str, relates_to: str, body: str) -> bytes:
    ns = " ".join(_NS_ATTRS[p] for p in prefixes.split())
    message_id = "uuid:" + str(uuid.uuid4()).upper()
    activity = str(uuid.uuid4()).upper()
    return (
        f'<s:Envelope xml:lang="en-US" {ns}><s:Header><a:Action>{action}</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID><p:ActivityId>{activity}</p:ActivityId>"
        f"<a:To>{ANONYMOUS}</a:To><a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


@dataclass(frozen=True)
class ShellInfo:
    """What a Create reply tells about the new shell."""

    shell_id: str
    resource_uri: str
    address: str  # the endpoint URL the client used (echo of wsa:To)
    owner: str  # DOMAIN\user, as Windows prints the shell owner
    client_ip: str
    process_id: int
    input_streams: str = "stdin pr"
    output_streams: str = "stdout"


def create_response(req: WsmanRequest, info: ShellInfo) -> bytes:
    uri = escape(info.resource_uri)
    sid = escape(info.shell_id)
    body = (
        f"<x:ResourceCreated><a:Address>{escape(info.address)}</a:Address>"
        f"<a:ReferenceParameters><w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{sid}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
        f'</x:ResourceCreated><rsp:Shell xmlns:rsp="{NS["rsp"]}"><rsp:ShellId>{sid}</rsp:ShellId>'
        f"<rsp:ResourceUri>{uri}</rsp:ResourceUri><rsp:Owner>{escape(info.owner)}</rsp:Owner>"
        f"<rsp:ClientIP>{escape(info.client_ip)}</rsp:ClientIP>"
        f"<rsp:ProcessId>{info.process_id}</rsp:ProcessId><rsp:IdleTimeOut>PT7200.000S"
        f"</rsp:IdleTimeOut><rsp:InputStreams>{escape(info.input_streams)}</rsp:InputStreams>"
        f"<rsp:OutputStreams>{escape(info.output_streams)}</rsp:OutputStreams>"
        "<rsp:MaxIdleTimeOut>PT2147483.647S</rsp:MaxIdleTimeOut><rsp:Locale>en-US</rsp:Locale>"
        "<rsp:DataLocale>en-US</rsp:DataLocale><rsp:CompressionMode>NoCompression"
        "</rsp:CompressionMode><rsp:ProfileLoaded>Yes</rsp:ProfileLoaded>"
        "<rsp:Encoding>UTF8</rsp:Encoding><rsp:BufferMode>Block</rsp:BufferMode>"
        "<rsp:State>Connected</rsp:State><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
        "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
    )
    return _envelope("s a x w rsp p", _TRANSFER + "CreateResponse", req.message_id, body)


def receive_response(
    req: WsmanRequest,
    fragments: list[bytes],
    command_id: str | None,
    done: bool,
    exit_code: int = 0,
) -> bytes:
    """A ReceiveResponse with one ``rsp:Stream`` per PSRP fragment, as Windows sends them."""
    cid = f" CommandId={quoteattr(command_id)}" if command_id else ""
    parts = [
        f'<rsp:Stream Name="stdout"{cid}>{base64.b64encode(frag).decode("ascii")}</rsp:Stream>'
        for frag in fragments
    ]
    if done:
        parts.append(
            f'<rsp:CommandState{cid} State="{COMMAND_STATE_DONE}">'
            f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState>"
        )
    body = "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>"
    return _envelope("s a w rsp p", _SHELL + "ReceiveResponse", req.message_id, body)


def oversized_receive_response(
    req: WsmanRequest, size: int, pool_id: uuid.UUID, pipeline_id: uuid.UUID | None
) -> bytes:
    """A ReceiveResponse of about ``size`` bytes, far over any MaxEnvelopeSize a client sets.

    The SOAP is well formed and laid out as Windows lays out output (one ``rsp:Stream`` per
    32 KiB PSRP fragment), but a server that ignores the client's envelope limit has lost
    track of its fragments: the run of one output message starts at fragment id 1, so a
    client that reassembles fragments (pypsrp: ``FragmentError``) must reject it.
    """
    chunk = 32768 - 21
    count = max(1, size * 3 // 4 // 32768)
    message = struct.pack("<II", 1, 0x00041004) + pool_id.bytes_le + (
        pipeline_id or uuid.UUID(int=0)).bytes_le + b"<S>" + b"x" * (chunk * count)
    cid = f" CommandId={quoteattr(str(pipeline_id).upper())}" if pipeline_id else ""
    streams = []
    for index in range(count):
        data = message[index * chunk:(index + 1) * chunk]
        flags = 0x2 if index == count - 1 else 0x0  # no start flag anywhere: lost fragment 0
        fragment = struct.pack(">QQBI", 1 << 40, index + 1, flags, len(data)) + data
        streams.append(f'<rsp:Stream Name="stdout"{cid}>'
                       f"{base64.b64encode(fragment).decode('ascii')}</rsp:Stream>")
    body = "<rsp:ReceiveResponse>" + "".join(streams) + "</rsp:ReceiveResponse>"
    return _envelope("s a w rsp p", _SHELL + "ReceiveResponse", req.message_id, body)


def command_response(req: WsmanRequest, command_id: str) -> bytes:
    body = f"<rsp:CommandResponse><rsp:CommandId>{escape(command_id)}</rsp:CommandId>"
    body += "</rsp:CommandResponse>"
    return _envelope("s a x w rsp p", _SHELL + "CommandResponse", req.message_id, body)


def send_response(req: WsmanRequest) -> bytes:
    body = "<rsp:SendResponse/>"
    return _envelope("s a x w rsp p", _SHELL + "SendResponse", req.message_id, body)


def signal_response(req: WsmanRequest) -> bytes:
    body = "<rsp:SignalResponse/>"
    return _envelope("s a x w rsp p", _SHELL + "SignalResponse", req.message_id, body)


def delete_response(req: WsmanRequest) -> bytes:
    return _envelope("s a w p", _TRANSFER + "DeleteResponse", req.message_id, "")


def fault_response(relates_to: str, fault: WsmanFault, machine: str) -> bytes:
    """The SOAP fault body Windows sends with HTTP 500 (test_psrp_receive_failure.yml)."""
    role = "s:Sender" if fault.sender else "s:Receiver"
    detail = f"<w:FaultDetail>{fault.detail}</w:FaultDetail>" if fault.detail else ""
    body = (
        f"<s:Fault><s:Code><s:Value>{role}</s:Value><s:Subcode><s:Value>{fault.subcode}"
        f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">'
        f"{escape(fault.reason)}</s:Text></s:Reason><s:Detail>{detail}"
        '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
        f'Code="{fault.code}" Machine={quoteattr(machine)}><f:Message>{escape(fault.message)}'
        "</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    action = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
    return _envelope("s a x e n w p", action, relates_to, body)
