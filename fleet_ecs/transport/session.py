"""One host's PSRP session: a pypsrp ``WSMan`` and one ``RunspacePool``, used from one thread.

pypsrp is synchronous and keeps per-connection state (auth contexts, encryption sequence
numbers) without locks, so a ``HostSession`` belongs to exactly one worker thread from open to
close. Every pypsrp call goes through ``_call``, which translates foreign exceptions at this
single boundary (``fleet_ecs.transport.faults``).

Time budget. pypsrp retries a Receive up to five times on a read timeout, sleeping
``reconnection_backoff * (2**n - 1)`` between tries, so one Receive can last about
``6 * (timeout + 2) + backoff`` seconds. We therefore derive every pypsrp timeout from the
host's deadline and poll pipelines with short operation timeouts, so that the worst case of a
worker stays inside its deadline (plus a small cleanup grace).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_ecs.atomic import atomic_path
from fleet_ecs.errors import TransportError
from fleet_ecs.models import Category, HostSpec, ScanSettings
from fleet_ecs.transport.faults import one_line, translate
from fleet_ecs.transport.pypsrp_compat import make_pypsrp_thread_safe

logger = logging.getLogger(__name__)

# pypsrp's Receive retry count is fixed at 5 (wsman.py); we budget for it rather than patch it.
_RECEIVE_ATTEMPTS = 6
_BACKOFF = 0.2
_MIN_POLL = 1
CLEANUP_GRACE = 10.0


class DeadlineExceeded(TransportError):
    def __init__(self, step: str | None) -> None:
        super().__init__(Category.DEADLINE_EXCEEDED, "host deadline reached", step=step)


class Cancelled(TransportError):
    def __init__(self, step: str | None) -> None:
        super().__init__(Category.CANCELLED, "scan stopped before this host finished", step=step)


@dataclass
class StepOutput:
    objects: list[Any]
    errors: list[str]


class Budget:
    """A host's deadline and stop flag, shared between the asyncio side and the worker."""

    def __init__(self, seconds: float, stop: threading.Event | None = None) -> None:
        self.deadline = time.monotonic() + seconds
        self.stop = stop or threading.Event()
        self.cleaning = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def enter_cleanup(self, grace: float) -> None:
        """Let cleanup run after a stop or past the deadline, for at most ``grace`` seconds.

        Stopping our capture and removing our files matters more than the deadline: a capture
        left running fills the endpoint's disk up to its bound.
        """
        self.cleaning = True
        self.deadline = max(self.deadline, time.monotonic() + grace)

    def check(self, step: str | None) -> None:
        if self.stop.is_set() and not self.cleaning:
            raise Cancelled(step)
        if self.remaining() <= 0:
            raise DeadlineExceeded(step)

    def poll_timeout(self) -> int:
        """An operation timeout for one Receive whose worst case (with retries) still fits."""
        fits = int(self.remaining() / _RECEIVE_ATTEMPTS) - 3
        return max(_MIN_POLL, min(5, fits))


class HostSession:
    """Open, run step scripts, fetch files, close: the PSRP work for one host."""

    def __init__(
        self, spec: HostSpec, password: str | None, settings: ScanSettings, budget: Budget
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.budget = budget
        self._password = password
        self._wsman = None
        self._pool = None

    def __repr__(self) -> str:
        return f"HostSession({self.spec.name!r}, open={self._pool is not None})"

    def open(self) -> None:
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        self.budget.check("connect")
        make_pypsrp_thread_safe()
        kwargs = self._wsman_kwargs()
        self._wsman = self._call("connect", lambda: WSMan(self.spec.address, **kwargs))
        pool = RunspacePool(self._wsman, configuration_name=self.spec.configuration_name)
        try:
            self._call("connect", pool.open)
        except TransportError as exc:
            if exc.category is Category.WINRM_AUTH_FAILED:
                self._check_method_offered(exc)
            raise
        self._pool = pool
        logger.debug("%s: runspace pool open", self.spec.name)

    def _wsman_kwargs(self) -> dict[str, Any]:
        spec, settings = self.spec, self.settings
        read_timeout = self._read_timeout()
        connect = spec.connect_timeout or settings.connect_timeout
        operation = spec.operation_timeout or settings.operation_timeout
        options = dict(spec.wsman_options)
        proxy = options.pop("proxy", None)
        return {
            "port": spec.port,
            "ssl": spec.transport.value == "https",
            "auth": spec.auth,
            "username": spec.username,
            "password": self._password,
            "cert_validation": spec.cert_validation,
            "encryption": spec.message_encryption,
            "connection_timeout": max(1, int(min(connect, read_timeout))),
            "read_timeout": read_timeout,
            # Windows must answer an empty Receive before our read timeout fires, or every
            # quiet poll would look like a dead host.
            "operation_timeout": max(1, min(int(operation), read_timeout - 2)),
            "reconnection_backoff": _BACKOFF,
            # An admin's HTTP(S)_PROXY is for the web, not for WinRM: it must not silently
            # reroute the scan. A proxy for WinRM is set explicitly in the inventory.
            "proxy": proxy,
            "no_proxy": proxy is None,
            **options,
        }

    def _check_method_offered(self, error: TransportError) -> None:
        """Tell a wrong password from an auth method the host does not offer at all.

        pypsrp raises the same error for both with Basic auth, so ask the host once, without
        credentials, which methods its 401 advertises.
        """
        offered = offered_auth_schemes(self.spec, timeout=min(5.0, self.budget.remaining()))
        if offered is None:
            return
        wanted = _SCHEMES_FOR.get(self.spec.auth, set())
        if wanted and not wanted & {scheme.lower() for scheme in offered}:
            raise TransportError(
                Category.WINRM_AUTH_METHOD_UNAVAILABLE,
                f"the host does not offer {self.spec.auth} (it offers "
                f"{', '.join(offered) or 'nothing'})",
                step=error.step,
            ) from error

    def run_step(self, step: str, script: str) -> StepOutput:
        """Run one rendered step script to completion, polling within the budget."""
        from pypsrp.powershell import PowerShell

        self._require_pool(step)
        ps = PowerShell(self._pool)
        ps.add_script(script)
        self._call(step, ps.begin_invoke)
        try:
            objects = list(self._drain(step, ps))
        except TransportError:
            self._stop_pipeline(ps)
            raise
        errors = [one_line(err) for err in ps.streams.error]
        return StepOutput(objects, errors)

    def fetch(self, step: str, script: str, dest: Path, max_bytes: int) -> tuple[int, str]:
        """Stream a remote file written by the fetch step into ``dest``; return size and SHA-256.

        The fetch script writes one base64 string per chunk and finally one JSON summary. Chunks
        are decoded and written the moment each Receive brings them, so memory holds a few
        chunks at most, unlike pypsrp's ``Client.fetch``, which joins the whole file in memory.
        """
        from pypsrp.powershell import PowerShell

        self._require_pool(step)
        ps = PowerShell(self._pool)
        ps.add_script(script)
        digest = hashlib.sha256()
        size = 0
        summary: dict[str, Any] | None = None
        try:
            with atomic_path(dest) as tmp, open(tmp, "wb") as out:
                self._call(step, ps.begin_invoke)
                for item in self._drain(step, ps):
                    if isinstance(item, str) and item.startswith("{"):
                        summary = json.loads(item)
                        continue
                    chunk = _b64(item, step)
                    size += len(chunk)
                    if size > max_bytes:
                        # A reply that never ends, or a file far over its bound, must not
                        # fill the controller's disk: give up on this host's capture.
                        raise TransportError(
                            Category.PROBE_ERROR,
                            f"the capture grew past its bound of {max_bytes} bytes", step=step)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                # Checked inside the block: a mismatch must leave no capture.etl behind.
                _check_summary(summary, size, digest.hexdigest(), step)
        except BaseException:
            self._stop_pipeline(ps)
            raise
        return size, digest.hexdigest().upper()

    def begin_cleanup(self, grace: float = CLEANUP_GRACE) -> None:
        self.budget.enter_cleanup(grace)

    def close(self) -> None:
        """Close the pool (deletes the remote shell). Never raises: it runs in ``finally``."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort, failure is logged
                gone = translate(exc).category is Category.WINRM_CONNECTION_RESET
                # A shell the host already dropped needs no closing; any other failure may
                # leave a shell counting against the account's quota until it idles out.
                logger.log(logging.DEBUG if gone else logging.WARNING,
                           "%s: closing the shell failed: %s", self.spec.name, one_line(exc))
        wsman, self._wsman = self._wsman, None
        if wsman is not None:
            try:
                wsman.close()
            except Exception:  # noqa: BLE001
                logger.debug("%s: closing the HTTP session failed", self.spec.name, exc_info=True)

    # -- helpers -------------------------------------------------------------------------

    def _drain(self, step: str, ps) -> Iterator[Any]:  # noqa: ANN001
        """Yield output objects as they arrive, until the pipeline leaves the Running state."""
        from pypsrp.complex_objects import PSInvocationState

        while True:
            self.budget.check(step)
            self._call(step, lambda: ps.poll_invoke(timeout=self.budget.poll_timeout()))
            while ps.output:
                yield ps.output.pop(0)
            if ps.state != PSInvocationState.RUNNING:
                if ps.state == PSInvocationState.FAILED:
                    detail = "; ".join(one_line(e) for e in ps.streams.error[:3]) or "no detail"
                    raise TransportError(
                        Category.PROBE_ERROR, f"step {step} failed on the host: {detail}", step=step
                    )
                return

    def _stop_pipeline(self, ps) -> None:  # noqa: ANN001
        from pypsrp.complex_objects import PSInvocationState

        if ps.state == PSInvocationState.RUNNING:
            try:
                ps.stop()
            except Exception:  # noqa: BLE001 - the pool is closed next anyway
                logger.debug("%s: stopping the pipeline failed", self.spec.name, exc_info=True)

    def _require_pool(self, step: str) -> None:
        if self._pool is None:
            raise TransportError(Category.WINRM_ERROR, "session is not open", step=step)

    def _call(self, step: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except TransportError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the translation boundary
            raise translate(exc, step=step) from exc

    def _read_timeout(self) -> int:
        fits = int(self.budget.remaining() / _RECEIVE_ATTEMPTS) - 1
        wanted = self.spec.read_timeout or self.settings.read_timeout
        return max(3, min(int(wanted), fits))

# Which WWW-Authenticate schemes can serve each pypsrp auth method.
_SCHEMES_FOR = {
    "basic": {"basic"},
    "ntlm": {"negotiate", "ntlm"},
    "negotiate": {"negotiate", "ntlm", "kerberos"},
    "kerberos": {"kerberos", "negotiate"},
    "credssp": {"credssp"},
}


def offered_auth_schemes(spec: HostSpec, timeout: float) -> list[str] | None:
    """The auth schemes a host's unauthenticated 401 lists, or None if it cannot be asked."""
    import requests

    host = f"[{spec.address}]" if ":" in spec.address else spec.address
    url = f"{spec.transport.value}://{host}:{spec.port}/wsman"
    proxy = spec.wsman_options.get("proxy")
    try:
        with requests.Session() as session:
            session.trust_env = False  # environment proxies are not for WinRM (see open)
            response = session.post(
                url, data=b"", timeout=max(1.0, timeout), verify=spec.cert_validation,
                headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
                proxies={"http": proxy, "https": proxy} if proxy else {},
            )
    except requests.RequestException:
        return None
    if response.status_code != 401:
        return None
    header = response.headers.get("WWW-Authenticate", "")
    return [part.split()[0] for part in header.split(",") if part.strip()]


def _b64(item: Any, step: str) -> bytes:
    try:
        return base64.b64decode(str(item), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TransportError(
            Category.PROBE_ERROR, "fetch returned data that is not base64", step=step
        ) from exc


def _check_summary(summary: dict[str, Any] | None, size: int, sha256: str, step: str) -> None:
    if summary is None:
        raise TransportError(Category.PROBE_ERROR, "fetch ended without its summary", step=step)
    if summary.get("error"):
        raise TransportError(
            Category.PROBE_ERROR, one_line(f"fetch failed: {summary['error']}"), step=step
        )
    if summary.get("size") != size or str(summary.get("sha256", "")).lower() != sha256.lower():
        raise TransportError(
            Category.PROBE_ERROR,
            f"fetched file does not match the host's size/hash ({size} bytes received)",
            step=step,
        )
