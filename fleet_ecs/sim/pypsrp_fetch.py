"""pypsrp's own ``Client.fetch`` script on a simulated host, answered as Windows answers it.

The benchmark compares fleet-ecs's chunked fetch with ``pypsrp.client.Client.fetch`` on the
same simulated file, so the simulator must recognise pypsrp's ``fetch.ps1`` (sent as a script
with the positional arguments ``[src, expand_variables]``) as well as fleet-ecs's own steps.

What Windows does with that script (winrm-facts.md §1.3): it reads the whole file into one
``byte[]``, writes **one** output string, ``[Convert]::ToBase64String`` of the whole file, and
then the file's SHA-1 as lower-case hex. This module answers exactly that, whole-file string
included, because holding and re-joining that one string is the cost being measured. A path
that does not exist makes the script throw on Windows (a Failed pipeline, so ``Client.fetch``
raises ``WinRMError``); here the step is only refused (``UnknownScript``: an error record and a
Completed pipeline), after which ``Client.fetch`` fails with an ``IndexError`` instead. The
benchmark never fetches a missing file.

``%VAR%`` expansion (the second argument) is not simulated: simulated captures live at the
literal paths the probe step reported.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from typing import Any

from fleet_ecs.sim.steps import HostContext, Step, UnknownScript

logger = logging.getLogger(__name__)

# Text of pypsrp 0.9.1's fetch.ps1 (comments stripped as pypsrp sends it) that together tells
# it from any other script, its sibling copy.ps1 included (which hashes but never encodes).
_MARKERS = ("TransformFinalBlock", "$MyInvocation.UnboundArguments[0]", "ToBase64String")


def is_pypsrp_fetch(script: str) -> bool:
    """True for the script ``pypsrp.client.Client.fetch`` sends."""
    return all(marker in script for marker in _MARKERS)


class PypsrpFetchStep(Step):
    """Whole-file base64 string, then the lower-case SHA-1 hex, as ``fetch.ps1`` writes them."""

    name = "pypsrp-fetch"

    def __init__(self, ctx: HostContext, src: str) -> None:
        super().__init__(ctx, {"Path": src})
        self.src = src

    def outputs(self) -> Iterator[str]:
        capture = self.ctx.state.file(self.src)
        if capture is None:  # checked when the step started; the file may be gone since
            return
        data = b"".join(capture.blocks())
        sha1 = hashlib.sha1(data).hexdigest()
        encoded = base64.b64encode(data).decode("ascii")
        del data
        yield encoded
        del encoded
        yield sha1


def pypsrp_fetch_step(ctx: HostContext, command: Any) -> Step | None:
    """The step for a psrpcore ``Command`` that is pypsrp's fetch script; None otherwise.

    Raises ``UnknownScript`` when it is that script but the file does not exist, so that the
    pipeline ends with an error as the script's ``throw`` would make it on Windows.
    """
    text = getattr(command, "command_text", "") or ""
    if not getattr(command, "is_script", False) or not is_pypsrp_fetch(text):
        return None
    positional = [value for name, value in getattr(command, "parameters", []) if name is None]
    src = str(positional[0]) if positional else ""
    if ctx.state.file(src) is None:
        raise UnknownScript(f"pypsrp fetch: the path at '{src}' does not exist")
    logger.debug("%s: pypsrp fetch of %s", ctx.profile.host_name, src)
    return PypsrpFetchStep(ctx, src)
