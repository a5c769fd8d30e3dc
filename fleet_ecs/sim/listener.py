"""One simulated host's WinRM HTTP listener: a minimal HTTP/1.1 server on asyncio streams.

Only what WinRM over HTTP needs: persistent connections, ``Content-Length`` bodies, POST to
``/wsman``. Everything else is answered the way HTTP.sys answers it on Windows: 404 with its
small HTML page for paths nobody registered, 405 for other methods on ``/wsman``, 401 with an
empty body and one ``WWW-Authenticate`` header per offered scheme for a refused login. Every
reply names ``Server: Microsoft-HTTPAPI/2.0``.

A Receive with nothing to return is held open until data is ready or the request's
OperationTimeout passes, then answered with the Windows fault 2150858793, which pypsrp's poll
loop retries (winrm-facts.md §1.4).
"""

from __future__ import annotations

import asyncio
import logging
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
            411: "Length Required", 413: "Request Entity Too Large", 500: ""}
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


def build_response(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += ["Server: " + SERVER, "Date: " + _http_date(), f"Content-Length: {len(body)}"]
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
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self._auth = auth
        self._service = service
        self._state = state
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, host=self.address, port=self.port, limit=MAX_HEAD
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
                reply = await self._respond(head, body, auth, client_ip)
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
    ) -> bytes:
        path = head.target.split("?", 1)[0].lower()
        if path not in ("/wsman", "/wsman/"):
            page = _httpsys_page(404, "Not Found", "The requested resource is not found.")
            return build_response(404, [("Content-Type", "text/html; charset=us-ascii")], page)
        if head.method != "POST":
            return build_response(405, [("Allow", "POST")])
        outcome = auth.authenticate(head.headers.get("authorization"))
        if outcome.login is None:
            self._state.auth_failed()
            logger.debug("%s: login refused", self.name)
            challenges = [("WWW-Authenticate", c) for c in self._auth.challenges]
            return build_response(401, challenges)
        content_type, payload = SOAP_TYPE, b""
        relates_to = ""
        try:
            assert auth.current is not None  # set by the successful authenticate() above
            plain = auth.current.unwrap(head.headers.get("content-type", ""), body)
            req = wsman.parse_request(plain)
            relates_to = req.message_id
            self._state.count(req.action)
            logger.debug("%s: %s shell=%s", self.name, req.action, req.shell_id)
            payload = await self._dispatch(req, outcome.login, client_ip)
            status = 200
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
        return build_response(status, list(outcome.headers) + [("Content-Type", content_type)],
                              payload)

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
