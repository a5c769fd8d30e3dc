"""The standalone probe: one PowerShell 5.1 script for a machine WinRM cannot reach.

An admin copies the script to the machine and runs it there. It runs the facts, ecs, probe and
alternates logic from the same template fragments as the WinRM steps
(``templates/probe/_<name>.ps1.j2``), makes on the machine the choices Python makes between steps
(platform folder, ECS URL, Defender's proxy, alternate endpoints), and writes one UTF-8 JSON
file::

    {format: "fleet-ecs-standalone", version: 1, run_id, computer_name, generated_at,
     docs: {facts, ecs, probe, alternates}}

where each document is exactly that step's contract document (``fleet_ecs.probe.contract``).

Values reach the script only as single-quoted literals made by ``contract.psquote`` (or, for the
admin's own choices, through its ``param()`` block); the script carries no step marker, so it can
never be taken for a step script.
"""

from __future__ import annotations

import logging
import re

from fleet_ecs.probe import contract, scripts

logger = logging.getLogger(__name__)

TEMPLATE = "standalone/ecs-probe.ps1.j2"
FORMAT = "fleet-ecs-standalone"
FORMAT_VERSION = 1
TRUSTED_PUBLISHER = "Microsoft Corporation"
BODY_LIMIT = 2048
DEFAULT_CAPTURE_MAX_MB = 20  # as a scan's capture

# The run id names the script's temp folder, so it must be a plain word.
_RUN_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def render_standalone(
    *,
    run_id: str,
    capture: bool,
    timeout_sec: int,
    out_dir_hint: str = "",
    capture_max_mb: int = DEFAULT_CAPTURE_MAX_MB,
) -> str:
    """The standalone script, ASCII only.

    ``out_dir_hint`` becomes the default of the script's ``-OutDir`` parameter (empty: the
    current directory). Raises ``ValueError`` for a run id that is not a plain word (letters,
    digits, ``.``, ``_``, ``-``; no ``..``), a timeout outside 1..300 s, a capture size outside
    1..4096 MB, or a hint with control or non-ASCII characters.
    """
    if not _RUN_ID_RE.match(run_id) or ".." in run_id:
        raise ValueError(f"run id {run_id!r} must be 1-64 of A-Z a-z 0-9 . _ - (no '..')")
    if isinstance(timeout_sec, bool) or not 1 <= int(timeout_sec) <= 300:
        raise ValueError(f"timeout_sec {timeout_sec!r} must be 1..300")
    if isinstance(capture_max_mb, bool) or not 1 <= int(capture_max_mb) <= 4096:
        raise ValueError(f"capture_max_mb {capture_max_mb!r} must be 1..4096")
    if not out_dir_hint.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in out_dir_hint):
        raise ValueError("out_dir_hint must be printable ASCII")
    text = scripts.load_template(TEMPLATE).render(
        run_id=contract.psquote(run_id),
        run_id_comment=run_id,
        capture=contract.psquote(bool(capture)),
        timeout_sec=contract.psquote(int(timeout_sec)),
        capture_max_mb=int(capture_max_mb),
        capture_max_mb_literal=contract.psquote(int(capture_max_mb)),
        body_limit=contract.psquote(BODY_LIMIT),
        trace_session=contract.psquote(contract.TRACE_SESSION),
        trace_session_comment=contract.TRACE_SESSION,
        trusted_publisher=contract.psquote(TRUSTED_PUBLISHER),
        out_dir_default=contract.psquote(out_dir_hint),
        **scripts.template_context(),
    )
    if not text.isascii():  # pragma: no cover - the loader and the checks above ensure it
        raise ValueError("the standalone script is not ASCII")
    if contract.step_of(text) is not None:  # pragma: no cover - a template bug
        raise ValueError("the standalone script must not carry a step marker")
    logger.debug("rendered the standalone probe (%d chars)", len(text))
    return text
