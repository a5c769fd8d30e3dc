"""Honesty bookkeeping: what each simulated host has been left with.

The controller promises to leave nothing behind on an endpoint: shells deleted, the packet
capture stopped, its files removed. A ``HostState`` records exactly those things as the
simulated host sees them, so tests can assert on them. The event loop thread writes it and test
threads read snapshots, hence the lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from fleet_ecs.sim.capture import CaptureFile


@dataclass(frozen=True)
class HostSnapshot:
    """A consistent copy of one host's bookkeeping."""

    host: str
    shells_open: int
    capture_running: bool
    files_left: tuple[str, ...]
    requests: dict[str, int]
    auth_failures: int

    @property
    def leftovers(self) -> list[str]:
        """Human-readable list of what the client left behind (empty when clean)."""
        problems = []
        if self.shells_open:
            problems.append(f"{self.shells_open} shell(s) still open")
        if self.capture_running:
            problems.append("packet capture still running")
        problems.extend(f"file left: {path}" for path in self.files_left)
        return problems


@dataclass
class HostState:
    host: str
    shells_open: int = 0
    capture_running: bool = False
    capture_path: str | None = None
    files: dict[str, CaptureFile] = field(default_factory=dict)  # keyed by lower-case path
    requests: Counter[str] = field(default_factory=Counter)
    auth_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, action: str) -> None:
        with self.lock:
            self.requests[action] += 1

    def shell_opened(self) -> None:
        with self.lock:
            self.shells_open += 1

    def shell_closed(self) -> None:
        with self.lock:
            self.shells_open -= 1

    def auth_failed(self) -> None:
        with self.lock:
            self.auth_failures += 1

    def start_capture(self, capture: CaptureFile) -> None:
        # netsh creates the .etl when the session starts, so the file exists from here on.
        with self.lock:
            self.capture_running = True
            self.capture_path = capture.path
            self.files[_normalise(capture.path)] = capture

    def stop_capture(self) -> bool:
        """Stop the running capture, if any; True when one was running."""
        with self.lock:
            was_running = self.capture_running
            self.capture_running = False
            return was_running

    def file(self, path: str) -> CaptureFile | None:
        with self.lock:
            return self.files.get(_normalise(path))

    def remove_under(self, directory: str) -> list[str]:
        """Delete every file below ``directory``; returns their paths."""
        prefix = _normalise(directory).rstrip("\\") + "\\"
        with self.lock:
            doomed = [key for key in self.files if key.startswith(prefix)]
            return [self.files.pop(key).path for key in doomed]

    def snapshot(self) -> HostSnapshot:
        with self.lock:
            return HostSnapshot(
                host=self.host,
                shells_open=self.shells_open,
                capture_running=self.capture_running,
                files_left=tuple(sorted(f.path for f in self.files.values())),
                requests=dict(self.requests),
                auth_failures=self.auth_failures,
            )


def _normalise(path: str) -> str:
    while "\\\\" in path:
        path = path.replace("\\\\", "\\")
    return path.replace("/", "\\").lower()
