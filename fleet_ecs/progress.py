"""Progress of a running scan: a live line on a terminal, plain lines anywhere else."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from fleet_ecs.controller import ScanCounters
from fleet_ecs.models import HostResult


class Progress:
    """Receives each finished host; shows done, not ok (warn or fail), in flight and rate."""

    def __init__(self, total: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._t0 = time.monotonic()
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("scan", total=self.total, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, result: HostResult, counters: ScanCounters) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        rate = counters.done / elapsed
        detail = (f"not ok {counters.failing}  in flight {counters.in_flight}  "
                  f"{rate:.1f} hosts/s")
        if self._bar is not None:
            self._bar.update(self._task, completed=counters.done, detail=detail)
            return
        self.stream.write(
            f"[{counters.done}/{self.total}] {result.host}: {result.status.value} "
            f"{result.category.value} ({detail})\n"
        )
        self.stream.flush()
