"""The WinRM service of one simulated host: WinRS shells that host PSRP runspace pools.

How it works
------------
``WinRMService.handle`` takes a parsed ``WsmanRequest`` and returns either reply bytes or a
``Wait`` telling the caller when something may change; it raises ``WsmanFault`` for the
faults Windows would send. It does no I/O and reads the clock only through its ``now``
argument, so the HTTP layer owns all waiting.

Mapping (MS-PSRP 3.1.5.3 / psrpcore docs/transport.md): Create builds a
``psrpcore.ServerRunspacePool`` keyed by ShellId and feeds it the ``creationXml``; Command
builds a ``ServerPipeline`` keyed by CommandId and feeds it the first CreatePipeline
fragment (Send carries the rest, and pipeline input); Receive drains queued PSRP fragments;
Signal stops (``powershell/signal/ctrl_c``) or forgets (``.../signal/Terminate``) a pipeline;
Delete drops the shell.

Outgoing PSRP data is cut into 32 KiB fragments (21-byte header included), the size Windows
uses, and each fragment travels in its own ``rsp:Stream`` element, at most four full fragments
per Receive reply and never more than the client's MaxEnvelopeSize allows
(test_client_fetch_file.yml). Step output is produced lazily: the next output object is only
generated when the fragments queued for that pipeline run low, so a large fetch is never held
in memory and psrpcore never fragments one huge message (quadratic, winrm-facts.md §2.3).
"""

from __future__ import annotations

import base64
import binascii
import logging
import struct
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from psrpcore import PSRPPayload, ServerPipeline, ServerRunspacePool, StreamType
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    NETException,
    PSInvocationState,
    PSVersion,
)

from fleet_ecs.sim import wsman
from fleet_ecs.sim.pypsrp_fetch import pypsrp_fetch_step
from fleet_ecs.sim.steps import HostContext, Step, UnknownScript, start_step
from fleet_ecs.sim.wsman import WsmanFault, WsmanRequest

logger = logging.getLogger(__name__)

FRAGMENT_SIZE = 32768
FRAGMENTS_PER_RECEIVE = 4
_FRAGMENT_HEADER = struct.Struct(">QQBI")
_ENVELOPE_OVERHEAD = 4096  # SOAP header plus per-stream element text, generously
_PS_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
# Misbehaviours the service itself can show (scenario ``fault`` names).
SERVICE_FAULTS = ("shell-quota", "operations-quota", "access-denied", "configuration-missing",
                  "shell-lost-once", "malformed-receive", "oversized-receive")
OVERSIZED_BYTES = 8 * 1024 * 1024
_TERMINAL = (PSInvocationState.Completed, PSInvocationState.Stopped, PSInvocationState.Failed)


@dataclass(frozen=True)
class Wait:
    """Nothing to send yet; ``until`` is when a scheduled step becomes ready (None: unknown)."""

    until: float | None


@dataclass
class _Run:
    """One pipeline: the psrpcore object plus the step it is "executing"."""

    pipe: ServerPipeline
    step: Step | None = None
    ready_at: float = 0.0
    outputs: Iterator[str] | None = None
    exhausted: bool = False
    done_sent: bool = False


@dataclass
class _Shell:
    shell_id: str
    pool: ServerRunspacePool
    queues: dict[uuid.UUID | None, deque[bytes]] = field(default_factory=dict)
    runs: dict[str, _Run] = field(default_factory=dict)


class WinRMService:
    """The shells of one simulated host and the operations on them."""

    def __init__(
        self,
        machine: str,
        context: Callable[[str], HostContext],
        delay: float = 0.0,
        fault: str | None = None,
    ) -> None:
        self.machine = machine  # the name Windows puts in WSManFault@Machine
        self._fault = fault  # one of SERVICE_FAULTS, or None for a well-behaved host
        self._broken_replies = 0
        self._context = context  # login name -> HostContext
        self._delay = delay
        self._shells: dict[str, _Shell] = {}
        self._contexts: dict[str, HostContext] = {}
        self._created = 0

    @property
    def shell_count(self) -> int:
        return len(self._shells)

    def handle(self, req: WsmanRequest, login: str, client_ip: str, now: float) -> bytes | Wait:
        ctx = self._contexts.get(login) or self._contexts.setdefault(login, self._context(login))
        if req.action == "Create":
            return self._create(req, ctx, client_ip)
        handler = {
            "Receive": self._receive,
            "Command": self._command,
            "Send": self._send,
            "Signal": self._signal,
            "Delete": self._delete,
        }.get(req.action)
        if handler is None:
            raise WsmanFault(
                wsman.ACTION_NOT_SUPPORTED,
                "a:ActionNotSupported",
                "The action is not supported by the service. ",
                sender=True,
            )
        shell = self._shells.get((req.shell_id or "").upper())
        if shell is None:
            raise wsman.shell_not_found_fault(req.shell_id or "")
        return handler(req, shell, ctx, now)

    # --- operations -----------------------------------------------------------------------

    def _create(self, req: WsmanRequest, ctx: HostContext, client_ip: str) -> bytes:
        if not req.resource_uri.startswith(_PS_RESOURCE_PREFIX):
            raise wsman.resource_uri_fault(req.resource_uri)
        if self._fault == "configuration-missing":
            raise wsman.resource_uri_fault(req.resource_uri)
        if self._fault == "shell-quota":
            raise wsman.shell_quota_fault()
        if self._fault == "access-denied":
            raise wsman.access_denied_fault()
        shell_el = req.body_child("rsp:Shell")
        creation = req.body_child("rsp:Shell/pwsh:creationXml")
        if shell_el is None or creation is None:
            raise wsman.bad_request_fault("a PowerShell shell needs rsp:Shell with creationXml")
        shell_id = (shell_el.get("ShellId") or str(uuid.uuid4())).upper()
        pool = ServerRunspacePool(application_private_data=_private_data(ctx))
        shell = _Shell(shell_id, pool)
        self._feed(shell, _b64(creation.text), None)
        self._shells[shell_id] = shell
        self._created += 1
        ctx.state.shell_opened()
        info = wsman.ShellInfo(
            shell_id=shell_id,
            resource_uri=req.resource_uri,
            address=req.to,
            owner=ctx.profile.user_name(ctx.login),
            client_ip=client_ip,
            process_id=ctx.profile.process_id(self._created),
            input_streams=_text(req.body_child("rsp:Shell/rsp:InputStreams"), "stdin pr"),
            output_streams=_text(req.body_child("rsp:Shell/rsp:OutputStreams"), "stdout"),
        )
        logger.debug("%s: shell %s created for %s", self.machine, shell_id, info.owner)
        return wsman.create_response(req, info)

    def _command(self, req: WsmanRequest, shell: _Shell, ctx: HostContext, now: float) -> bytes:
        if self._fault == "operations-quota":
            raise wsman.operations_quota_fault()
        line = req.body_child("rsp:CommandLine")
        if line is None:
            raise wsman.bad_request_fault("Command needs rsp:CommandLine")
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        try:
            pipeline_id = uuid.UUID(command_id)
        except ValueError:
            raise wsman.bad_request_fault("CommandId is not a GUID") from None
        run = _Run(ServerPipeline(shell.pool, pipeline_id))
        shell.runs[command_id] = run
        args = line.find("rsp:Arguments", wsman.NS)
        self._feed(shell, _b64(args.text if args is not None else ""), pipeline_id)
        self._launch_if_ready(shell, run, ctx, now)
        return wsman.command_response(req, command_id)

    def _send(self, req: WsmanRequest, shell: _Shell, ctx: HostContext, now: float) -> bytes:
        streams = req.body.iterfind("rsp:Send/rsp:Stream", wsman.NS) if req.body is not None else ()
        for stream in streams:
            command_id = (stream.get("CommandId") or "").upper()
            run = shell.runs.get(command_id)
            if run is None:
                raise wsman.command_not_found_fault()
            self._feed(shell, _b64(stream.text), run.pipe.pipeline_id)
            self._launch_if_ready(shell, run, ctx, now)
        return wsman.send_response(req)

    def _signal(self, req: WsmanRequest, shell: _Shell, ctx: HostContext, now: float) -> bytes:
        signal = req.body_child("rsp:Signal")
        if signal is None:
            raise wsman.bad_request_fault("Signal needs rsp:Signal")
        command_id = (signal.get("CommandId") or "").upper()
        code = _text(signal.find("rsp:Code", wsman.NS), "")
        run = shell.runs.get(command_id)
        if run is None:
            if code == wsman.SIGNAL_TERMINATE:
                return wsman.signal_response(req)  # already gone: terminating twice is harmless
            raise wsman.command_not_found_fault()
        if run.pipe.state not in _TERMINAL and run.pipe.state != PSInvocationState.NotStarted:
            # Stopped half-way: whatever the step had not finished (a capture it started)
            # stays as it is, exactly what the honesty bookkeeping must be able to see.
            logger.debug("%s: pipeline %s stopped by %s", self.machine, command_id, code)
            shell.queues.pop(run.pipe.pipeline_id, None)
            run.pipe.stop()
            run.exhausted = True
            self._drain(shell)
        if code == wsman.SIGNAL_TERMINATE:
            run.pipe.close()
            shell.runs.pop(command_id, None)
            shell.queues.pop(run.pipe.pipeline_id, None)
        return wsman.signal_response(req)

    def _delete(self, req: WsmanRequest, shell: _Shell, ctx: HostContext, now: float) -> bytes:
        del self._shells[shell.shell_id]
        ctx.state.shell_closed()
        logger.debug("%s: shell %s deleted", self.machine, shell.shell_id)
        return wsman.delete_response(req)

    def _receive(
        self, req: WsmanRequest, shell: _Shell, ctx: HostContext, now: float
    ) -> bytes | Wait:
        desired = req.body_child("rsp:Receive/rsp:DesiredStream")
        command_id = (desired.get("CommandId") or "").upper() if desired is not None else ""
        run = None
        target: uuid.UUID | None = None
        if command_id:
            run = shell.runs.get(command_id)
            if run is None:
                raise wsman.command_not_found_fault()
            target = run.pipe.pipeline_id
            broken = self._broken_receive(req, shell, ctx, run)
            if broken is not None:
                return broken
            if run.step is not None and not run.exhausted and now < run.ready_at:
                return Wait(run.ready_at)
        budget = min(
            FRAGMENT_SIZE * FRAGMENTS_PER_RECEIVE,
            (req.max_envelope_size - _ENVELOPE_OVERHEAD) * 3 // 4,
        )
        fragments = self._take(shell, run, target, max(budget, FRAGMENT_SIZE))
        done = False
        if run is not None and run.exhausted and not shell.queues.get(target):
            done = not run.done_sent and run.pipe.state in _TERMINAL
            run.done_sent = run.done_sent or done
        if not fragments and not done:
            return Wait(None)
        return wsman.receive_response(req, fragments, command_id or None, done)

    def _broken_receive(
        self, req: WsmanRequest, shell: _Shell, ctx: HostContext, run: _Run | None
    ) -> bytes | None:
        """The first pipeline Receive of a faulty host: a lost shell or a broken reply."""
        if self._fault == "shell-lost-once" and not self._broken_replies:
            # The shell dies under the running command (wsmprovhost crashed or was recycled);
            # later shells live normally.
            self._broken_replies += 1
            del self._shells[shell.shell_id]
            ctx.state.shell_closed()
            raise wsman.shell_not_found_fault(shell.shell_id)
        if self._fault == "malformed-receive" and not self._broken_replies:
            self._broken_replies += 1
            whole = wsman.receive_response(req, [b"\0" * 64], None, False)
            return whole[: len(whole) * 2 // 3]  # ends inside an element: not well-formed
        if self._fault == "oversized-receive" and not self._broken_replies:
            self._broken_replies += 1
            command_id = run.pipe.pipeline_id if run is not None else None
            return wsman.oversized_receive_response(req, OVERSIZED_BYTES, uuid.UUID(
                shell.shell_id), command_id)
        return None

    # --- PSRP plumbing --------------------------------------------------------------------

    def _feed(self, shell: _Shell, data: bytes, pipeline_id: uuid.UUID | None) -> None:
        if not data:
            return
        try:
            shell.pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
            while shell.pool.next_event() is not None:
                pass
        except Exception as exc:  # psrpcore raises a mix of its own and ValueError/KeyError
            logger.debug("%s: bad PSRP data: %s", self.machine, exc)
            raise wsman.bad_request_fault(f"invalid PSRP data ({exc})") from None
        self._drain(shell)

    def _drain(self, shell: _Shell) -> None:
        """Move everything psrpcore has queued into per-target lists of single fragments."""
        while (payload := shell.pool.data_to_send(FRAGMENT_SIZE)) is not None:
            queue = shell.queues.setdefault(payload.pipeline_id, deque())
            data = payload.data
            offset = 0
            while offset < len(data):
                length = _FRAGMENT_HEADER.unpack_from(data, offset)[3]
                end = offset + _FRAGMENT_HEADER.size + length
                queue.append(data[offset:end])
                offset = end

    def _take(
        self, shell: _Shell, run: _Run | None, target: uuid.UUID | None, budget: int
    ) -> list[bytes]:
        queue = shell.queues.setdefault(target, deque())
        taken: list[bytes] = []
        used = 0
        while True:
            if not queue and run is not None and not run.exhausted:
                self._produce(shell, run)
                queue = shell.queues.setdefault(target, deque())
            if not queue or (taken and used + len(queue[0]) > budget):
                break
            fragment = queue.popleft()
            taken.append(fragment)
            used += len(fragment)
        if not queue:
            shell.queues.pop(target, None)
        return taken

    def _produce(self, shell: _Shell, run: _Run) -> None:
        """Let the step write its next output object (or finish)."""
        if run.outputs is None and run.step is not None:
            run.outputs = run.step.outputs()
        try:
            item = next(run.outputs) if run.outputs is not None else None
        except StopIteration:
            item = None
        if item is None:
            run.exhausted = True
            if run.step is not None:
                run.step.finish()
            if run.pipe.state == PSInvocationState.Running:
                run.pipe.complete()
        else:
            run.pipe.write_output(item)
        self._drain(shell)

    def _launch_if_ready(self, shell: _Shell, run: _Run, ctx: HostContext, now: float) -> None:
        metadata = run.pipe.metadata
        if metadata is None or run.pipe.state != PSInvocationState.NotStarted:
            return  # CreatePipeline still arriving in Send fragments, or already running
        command = metadata.commands[0] if metadata.commands else None
        run.pipe.start()
        # psrpcore announces PipelineState Running on start(); Windows never sends that state
        # (test_client_execute_ps.yml goes straight to output and Completed), so drop it.
        self._drain(shell)
        shell.queues.pop(run.pipe.pipeline_id, None)
        try:
            if command is None or not command.is_script:
                raise UnknownScript("not a script")
            # pypsrp's own Client.fetch script is answered too, for the fetch benchmark.
            run.step = pypsrp_fetch_step(ctx, command) or start_step(ctx, command.command_text)
        except UnknownScript as exc:
            logger.debug("%s: refusing pipeline: %s", self.machine, exc)
            run.pipe.write_error(
                NETException(
                    Message="The fleet-ecs simulator only runs fleet-ecs step scripts.",
                    HResult=-2146233087,
                ),
                ErrorCategoryInfo(Category=ErrorCategory.NotImplemented, Reason="NotSupported"),
                fully_qualified_error_id="FleetEcsSimulator.UnknownScript",
            )
            run.exhausted = True
            run.pipe.complete()
            self._drain(shell)
            return
        delay = self._delay
        run.ready_at = now + delay
        run.step.begin()
        logger.debug("%s: %s step started", self.machine, type(run.step).__name__)


def _private_data(ctx: HostContext) -> dict:
    # Windows sends its $PSVersionTable in ApplicationPrivateData (test_psrp_open_runspace.yml).
    version = ctx.profile.ps_version
    if ctx.scenario.facts_only is not None:
        version = str(ctx.scenario.facts.get("ps_version", version))
    parts = version.split(".")
    if len(parts) < 2:
        version = version + ".0"
    return {
        "PSVersionTable": {
            "PSVersion": PSVersion(version),
            "PSEdition": "Desktop",
            "CLRVersion": PSVersion("4.0.30319.42000"),
            "BuildVersion": PSVersion(f"10.0.{ctx.profile.os.build}.{ctx.profile.os.ubr}"),
            "WSManStackVersion": PSVersion("3.0"),
        }
    }


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise wsman.bad_request_fault("stream data is not base64") from None


def _text(node: ET.Element | None, default: str) -> str:
    return (node.text or default) if node is not None else default
