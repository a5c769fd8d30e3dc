"""Rendering of the PowerShell probe steps from ``templates/probe/<step>.ps1.j2``.

A rendered script is: the step marker line, then one ``$FE_<Name> = '<value>'`` line per input
(quoted by ``contract.psquote``, in the order of ``STEP_INPUTS``), then the template body. Input
values are never handed to Jinja: the template only receives the finished marker line, the
finished input block and a few trusted constants, so no value can reach PowerShell except as one
of those single-quoted literals.

The logic lives in fragments, ``templates/probe/_<name>.ps1.j2``, each defining PowerShell
functions that take their values as parameters; a step template includes the fragments it needs
and calls them with its ``$FE_`` inputs, so the rendered step is still one self-contained script.
The standalone script (``fleet_ecs.probe.standalone``) includes the same fragments.

Templates are looked up in the installed package first (the wheel ships them as
``fleet_ecs/templates``), then in the source checkout's top-level ``templates/`` folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.abc import Traversable

import jinja2

from fleet_ecs.probe import contract

logger = logging.getLogger(__name__)

# The inputs of each step, in the order they are written. Must match the contract docstring.
STEP_INPUTS: dict[str, tuple[str, ...]] = {
    "facts": ("RunId",),
    "ecs": ("MpCmdRun", "TrustedPublisher"),
    "probe": (
        "Url",
        "Host",
        "WorkDir",
        "Capture",
        "CaptureMaxMb",
        "TimeoutSec",
        "TraceSession",
        "BodyLimit",
        "DefenderProxy",
        "MachineProxy",
        "SystemPath",
    ),
    "alternates": ("Urls", "TimeoutSec", "BodyLimit", "DefenderProxy"),
    "fetch": ("Path", "ChunkSize"),
    "cleanup": ("WorkDir", "TraceSession"),
}

# Opt-in inputs added after a step's first release, with the value a caller that does not pass
# them gets: always the conservative one, so that an old caller never opts in by accident. The
# rendered script still holds every input line.
STEP_DEFAULTS: dict[str, dict[str, object]] = {
    "probe": {"SystemPath": False},
}


def _templates_dir() -> Traversable | Path:
    """The ``templates`` folder: the installed package's copy, else the source checkout's."""
    try:
        packaged = importlib.resources.files("fleet_ecs") / "templates"
        if packaged.joinpath("probe").is_dir():
            return packaged
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    return Path(__file__).resolve().parents[2] / "templates"


def _load(name: str) -> str:
    """The source of template ``name`` (``probe/facts.ps1.j2``), refused unless it is ASCII."""
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise jinja2.TemplateNotFound(name)
    node = _templates_dir()
    for part in parts:
        node = node / part
    try:
        source = node.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise jinja2.TemplateNotFound(name) from exc
    if not source.isascii():
        # Anything non-ASCII in code is a template bug (typographic quotes and dashes pasted
        # from a document change how PowerShell reads the line).
        line = next(n for n, text in enumerate(source.splitlines(), 1) if not text.isascii())
        raise ValueError(f"template {name} line {line}: non-ASCII character")
    return source


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Autoescape stays off: the output is PowerShell, not HTML. StrictUndefined turns a typo in
    # a template into an error instead of an empty string. The loader serves both the source
    # checkout and the installed package, and checks every file it hands out, includes too.
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def load_template(name: str) -> jinja2.Template:
    """The compiled template ``name``, relative to ``templates/`` (``standalone/x.ps1.j2``)."""
    return _environment().get_template(name)


@functools.lru_cache(maxsize=None)
def _template(step: str) -> jinja2.Template:
    return load_template(f"probe/{step}.ps1.j2")


def template_source(step: str) -> str:
    """The raw Jinja source of ``step``'s template (for tests and allow-list reviews)."""
    _check_step(step)
    return _load(f"probe/{step}.ps1.j2")


def fragment_names() -> tuple[str, ...]:
    """The shared fragments (``probe/_<name>.ps1.j2``) the step templates include."""
    folder = _templates_dir() / "probe"
    names = sorted(
        entry.name for entry in folder.iterdir()
        if entry.name.startswith("_") and entry.name.endswith(".ps1.j2")
    )
    return tuple(f"probe/{name}" for name in names)


def fragment_source(name: str) -> str:
    """The raw Jinja source of one fragment listed by ``fragment_names``."""
    if name not in fragment_names():
        raise ValueError(f"unknown probe fragment {name!r}")
    return _load(name)


def template_context() -> dict[str, object]:
    """The trusted constants every probe template and fragment may use."""
    return {
        "schema": int(contract.SCHEMA),
        "work_dir_prefix": contract.psquote(contract.WORK_DIR_PREFIX),
    }


def _check_step(step: str) -> None:
    if step not in STEP_INPUTS or step not in contract.STEPS:
        expected = ", ".join(contract.STEPS)
        raise ValueError(f"unknown probe step {step!r}; expected one of {expected}")


def _check_inputs(step: str, inputs: dict[str, object]) -> None:
    expected = STEP_INPUTS[step]
    missing = [name for name in expected if name not in inputs]
    extra = sorted(name for name in inputs if name not in expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if extra:
            parts.append("unexpected " + ", ".join(extra))
        raise ValueError(f"step {step!r}: {'; '.join(parts)}")
    nones = [name for name in expected if inputs[name] is None]
    if nones:
        raise ValueError(f"step {step!r}: input(s) {', '.join(nones)} are None")


def input_block(step: str, **inputs: object) -> str:
    """The ``$FE_<Name> = '<value>'`` lines of ``step``, in ``STEP_INPUTS`` order."""
    _check_step(step)
    inputs = STEP_DEFAULTS.get(step, {}) | inputs
    _check_inputs(step, inputs)
    return "\n".join(f"$FE_{name} = {contract.psquote(inputs[name])}" for name in STEP_INPUTS[step])


def render_step(step: str, **inputs: object) -> str:
    """Render ``step``'s script with exactly the inputs the contract lists for it.

    An input listed in ``STEP_DEFAULTS`` may be left out; it is then rendered with its default.

    Raises ``ValueError`` for an unknown step, a missing, unexpected or ``None`` input, or a
    template that is not ASCII.
    """
    block = input_block(step, **inputs)
    marker = contract.STEP_MARKER.format(step=step, schema=contract.SCHEMA)
    text = _template(step).render(marker=marker, inputs=block, **template_context())
    if not text.startswith(marker + "\n"):
        raise ValueError(f"template {step}.ps1.j2 must start with the marker line")
    logger.debug("rendered probe step %s (%d chars)", step, len(text))
    return text


def script_sha256(text: str) -> str:
    """Lower-case hex SHA-256 of ``text`` encoded as UTF-8 (for allow-listing scripts)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def script_body(text: str) -> str:
    """A rendered step script without its marker and ``$FE_`` input lines.

    The inputs differ per host and run; the body is the same everywhere for one release, so
    its hash is what a SOC can allow-list against script block logging (event 4104).
    """
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (
        lines[start].startswith("# fleet-ecs step:") or lines[start].startswith("$FE_")
    ):
        start += 1
    return "".join(lines[start:])


def body_hashes() -> dict[str, str]:
    """SHA-256 of each step's body, rendered with placeholder inputs (they do not affect it)."""
    return {
        step: script_sha256(script_body(render_step(step, **{name: "x" for name in names})))
        for step, names in STEP_INPUTS.items()
    }
