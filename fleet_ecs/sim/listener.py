"""One simulated host's WinRM HTTP listener: a minimal HTTP/1.1 server on asyncio streams.

Only what WinRM over HTTP needs: persistent connections, ``Content-Length`` bodies, POST to
``/wsman``. Everything else is answered the way HTTP.sys answers it on Windows: 404 with its
small HTML page for paths nobody registered, 405 for other methods on ``/wsman``, 401 with an
empty body and one ``WWW-Authenticate`` header per offered scheme for a refused login. Every
reply names ``Server: Microsoft-HTTPAPI/2.0``.

A Receive with nothing to return is held open until data is ready or the request's
OperationTimeout passes, then answered with the Windows fault 2150858793, which pypsrp's poll
loop retries (winrm-facts.md §1.4).

A listener may serve HTTPS (an ``ssl.SSLContext`` from ``fleet_ecs.sim.tls``) and may show one
network-level misbehaviour (``NETWORK_FAULTS``): accepting connections and never answering,
cutting a reply half-way with a TCP RST, rejecting every message with a bare 500, or letting
an HTTP proxy's error page answer in WinRM's place. ``response_delay`` holds every reply back
until that many seconds after its request arrived (a long-polled Receive that waits longer
is not held further).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from email.utils import formatdate

from fleet_ecs.errors import SimulatorError
from fleet_ecs.sim import wsman
from fleet_ecs.sim.auth import ConnectionAuthenticator, HostAuth
from fleet_ecs.sim.shells import Wait, WinRMService
from fleet_ecs.sim.state import HostState
from fleet_ecs.sim.wsman import WsmanFault

logger = logging.getLogger(__name__)

SERVER = "Microsoft-HTTPAPI/2.0"
SOAP_TYPE = "application/soap+xml;charset=UTF-8"
MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Request Entity Too Large", 500: "",
            502: "Bad Gateway"}
# Misbehaviours of the listener or the path to it (scenario ``fault`` names).
NETWORK_FAULTS = ("never-answer", "reset-mid-response", "http-500-plain", "proxy-page")
PROXY_SERVER = "squid/5.7"
PROXY_HOST = "proxy.contoso.com"
_PROXY_PAGE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">\n'
    '<html><head>\n<meta type="copyright" content="Copyright (C) 1996-2023 The Squid Software '
    'Foundation and contributors">\n'
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
    "<title>ERROR: The requested URL could not be retrieved</title>\n"
    '</head><body id="ERR_CONNECT_FAIL">\n'
    '<div id="titles"><h1>ERROR</h1><h2>The requested URL could not be retrieved</h2></div>\n'
    '<hr>\n<div id="content">\n'
    "<p>The following error was encountered while trying to retrieve the URL: "
    '<a href="{url}">{url}</a></p>\n'
    '<blockquote id="error"><p><b>Connection to {address} failed.</b></p></blockquote>\n'
    '<p id="sysmsg">The system returned: <i>(111) Connection refused</i></p>\n'
    "<p>The remote host or network may be down. Please try the request again.</p>\n"
    '<p>Your cache administrator is <a href="mailto:webmaster">webmaster</a>.<br>\n'
    "</p><br>\n</div>\n<hr>\n"
    '<div id="footer"><p>Generated {date} by {proxy} ({server})</p></div>\n'
    "</body></html>\n"
)
_HTTPSYS_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">'
    "\r\n<HTML><HEAD><TITLE>{title}</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" "
    'Content="text/html; charset=us-ascii"></HEAD>\r\n<BODY><h2>{title}</h2>\r\n<hr><p>'
    "HTTP Error {code}. {text}</p>\r\n</BODY></HTML>\r\n"
)


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status)


def parse_head(data: bytes) -> RequestHead:
    """Parse a request line and headers (``data`` ends with the blank line)."""
    try:
        lines = data.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(400) from None
    if not version.startswith("HTTP/1."):
        raise HttpError(400)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400)
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return RequestHead(method, target, version, headers)


def build_response(
    status: int, headers: list[tuple[str, str]], body: bytes = b"", server: str = SERVER
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += ["Server: " + server, "Date: " + _http_date(), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _httpsys_page(status: int, title: str, text: str) -> bytes:
    return _HTTPSYS_PAGE.format(title=title, code=status, text=text).encode("ascii")


def proxy_error_response(address: str, port: int, target: str) -> bytes:
    """A Squid-like 502 for a connection the proxy could not make to the WinRM listener."""
    url = f"http://{address}:{port}{target}"
    page = _PROXY_PAGE.format(url=url, address=address, date=_http_date(), proxy=PROXY_HOST,
                              server=PROXY_SERVER).encode("utf-8")
    headers = [
        ("Mime-Version", "1.0"),
        ("Content-Type", "text/html;charset=utf-8"),
        ("X-Squid-Error", "ERR_CONNECT_FAIL 111"),
        ("Vary", "Accept-Language"),
        ("Content-Language", "en"),
        ("X-Cache", f"MISS from {PROXY_HOST}"),
        ("X-Cache-Lookup", f"MISS from {PROXY_HOST}:3128"),
        ("Via", f"1.1 {PROXY_HOST} ({PROXY_SERVER})"),
        ("Connection", "keep-alive"),
    ]
    return build_response(502, headers, page, server=PROXY_SERVER)


class HostListener:
    """Serves one simulated host at ``address:port``."""

    def __init__(
        self,
        name: str,
        address: str,
        port: int,
        auth: HostAuth,
        service: WinRMService,
        state: HostState,
        *,
        ssl_context: ssl.SSLContext | None = None,
        fault: str | None = None,
        response_delay: float = 0.0,
    ) -> None:
        if fault is not None and fault not in NETWORK_FAULTS:
            raise SimulatorError(f"unknown listener fault {fault!r}")
        self.name = name
        self.address = address
        self.port = port
        self._auth = auth
        self._service = service
        self._state = state
        self._ssl = ssl_context
        self._fault = fault
        self._delay = response_delay
        self._cut_shells: set[str] = set()  # shells whose first Command reply was cut
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        handler = self._swallow if self._fault == "never-answer" else self._serve
        try:
            self._server = await asyncio.start_server(
                handler, host=self.address, port=self.port, limit=MAX_HEAD, ssl=self._ssl,
                backlog=512,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SimulatorError(
                f"simulated host {self.name} cannot listen on {self.address}:{self.port}: {reason}"
            ) from exc
        logger.debug("%s listening on %s:%d", self.name, self.address, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read and drop whatever arrives, never answer; ends when the client gives up."""
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if peer else "127.0.0.1"
        auth = self._auth.connection()
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(build_response(400, [("Connection", "close")]))
                    return
                try:
                    head = parse_head(raw)
                    body = await self._read_body(reader, head)
                except HttpError as exc:
                    writer.write(build_response(exc.status, [("Connection", "close")]))
                    return
                loop = asyncio.get_running_loop()
                arrived = loop.time()
                reply, cut = await self._respond(head, body, auth, client_ip)
                if self._delay > 0:
                    await asyncio.sleep(max(0.0, arrived + self._delay - loop.time()))
                if cut:
                    await self._reset_half_way(writer, reply)
                    return
                writer.write(reply)
                await writer.drain()
                if not head.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Only ``stop`` cancels these tasks; ending quietly keeps asyncio's stream callback
            # from reporting the cancellation as an error.
            return
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _reset_half_way(self, writer: asyncio.StreamWriter, reply: bytes) -> None:
        """Send half the reply's head, then abort the connection with a TCP RST."""
        head_end = reply.find(b"\r\n\r\n")
        writer.write(reply[: max(1, head_end // 2)])
        await writer.drain()
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER on with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        logger.debug("%s: connection reset half-way through a reply", self.name)

    async def _read_body(self, reader: asyncio.StreamReader, head: RequestHead) -> bytes:
        if "chunked" in head.headers.get("transfer-encoding", "").lower():
            raise HttpError(411)  # WinRM clients always send Content-Length
        try:
            length = int(head.headers.get("content-length", "0"))
        except ValueError:
            raise HttpError(400) from None
        if length < 0:
            raise HttpError(400)
        if length > MAX_BODY:
            raise HttpError(413)
        return await reader.readexactly(length) if length else b""

    async def _respond(
        self, head: RequestHead, body: bytes, auth: ConnectionAuthenticator, client_ip: str
    ) -> tuple[bytes, bool]:
        """The reply to one request, and whether to cut it with a reset."""
        if self._fault == "proxy-page":
            return proxy_error_response(self.address, self.port, head.target), False
        path = head.target.split("?", 1)[0].lower()
        if path not in ("/wsman", "/wsman/"):
            page = _httpsys_page(404, "Not Found", "The requested resource is not found.")
            return build_response(404, [("Content-Type", "text/html; charset=us-ascii")],
                                  page), False
        if head.method != "POST":
            return build_response(405, [("Allow", "POST")]), False
        authorization = head.headers.get("authorization")
        outcome = auth.authenticate(authorization)
        if outcome.login is None:
            if outcome.headers:  # one leg of a multi-leg handshake (NTLM's challenge)
                return build_response(401, list(outcome.headers)), False
            if authorization:
                self._state.auth_failed()
            logger.debug("%s: login refused", self.name)
            challenges = [("WWW-Authenticate", c) for c in self._auth.challenges]
            return build_response(401, challenges), False
        assert auth.current is not None  # set by a successful authenticate()
        if not body:
            # The empty POST a client sends to finish the handshake before sealing anything.
            return build_response(200, list(outcome.headers)), False
        if self._fault == "http-500-plain":
            # What Windows answers a message it refuses to read (an unencrypted one when
            # AllowUnencrypted is false): 500 and no body at all (winrm-facts.md §3 #10).
            return build_response(500, list(outcome.headers)), False
        relates_to = ""
        cut = False
        try:
            plain = auth.current.unwrap(head.headers.get("content-type", ""), body)
        except Exception as exc:  # noqa: BLE001 - framing or a bad seal: the client's fault
            logger.debug("%s: cannot unseal a request: %s", self.name, exc)
            return build_response(500, list(outcome.headers)), False
        try:
            req = wsman.parse_request(plain)
            relates_to = req.message_id
            self._state.count(req.action)
            logger.debug("%s: %s shell=%s", self.name, req.action, req.shell_id)
            payload = await self._dispatch(req, outcome.login, client_ip)
            status = 200
            if self._fault == "reset-mid-response" and req.action == "Command":
                # After each pool opens, its first command's reply is cut: a retry with a
                # new pool meets the same middlebox.
                shell = (req.shell_id or "").upper()
                cut = shell not in self._cut_shells
                self._cut_shells.add(shell)
        except WsmanFault as fault:
            logger.debug("%s: fault %s", self.name, fault)
            payload = wsman.fault_response(relates_to, fault, self.address)
            status = 500
        except Exception:
            logger.exception("%s: simulator failure", self.name)
            fault = WsmanFault(2147943645, "w:InternalError", "The simulator failed. ")
            payload = wsman.fault_response(relates_to, fault, self.address)
            status = 500
        content_type, payload = auth.current.wrap(payload)
        headers = list(outcome.headers) + [("Content-Type", content_type)]
        return build_response(status, headers, payload), cut

    async def _dispatch(self, req: wsman.WsmanRequest, login: str, client_ip: str) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.operation_timeout
        while True:
            result = self._service.handle(req, login, client_ip, loop.time())
            if not isinstance(result, Wait):
                if req.action != "Receive":
                    self._notify()
                return result
            now = loop.time()
            if now >= deadline:
                raise wsman.timed_out_fault()
            until = deadline if result.until is None else min(deadline, result.until)
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), max(0.0, until - now))
            except asyncio.TimeoutError:
                pass

    def _notify(self) -> None:
        """Wake Receives held open: a Command, Signal or Delete may have given them data."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
