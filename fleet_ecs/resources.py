"""Locate the data folders fleet-ecs ships: ``templates/`` and ``inventories/``.

In an installed wheel hatch force-includes both top-level folders inside the package, as
``fleet_ecs/templates`` and ``fleet_ecs/inventories``. In a source checkout they sit at the
repository root, next to ``fleet_ecs/``. Every caller goes through this module so that neither
layout leaks elsewhere.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

_PACKAGE = "fleet_ecs"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def _check_relpath(relpath: str) -> PurePosixPath:
    # Template names come from code, but a name that climbs out of the folder is always a bug.
    path = PurePosixPath(relpath.replace("\\", "/"))
    if not relpath or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"not a relative path inside the data folder: {relpath!r}")
    return path


def _data_dir(name: str) -> Path:
    packaged = resources.files(_PACKAGE).joinpath(name)
    # A zipped install yields a Traversable that is not a real folder; only accept real paths.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    fallback = _REPO_ROOT / name
    if fallback.is_dir():
        return fallback
    raise FileNotFoundError(
        f"fleet-ecs data folder {name!r} not found (looked in the package and in {_REPO_ROOT})"
    )


def templates_dir() -> Path:
    """The folder holding ``report.html.j2`` and ``probe/*.ps1.j2``."""
    return _data_dir("templates")


def inventories_dir() -> Path:
    """The folder holding the example inventories."""
    return _data_dir("inventories")


def template_text(relpath: str) -> str:
    """The UTF-8 text of ``templates/<relpath>`` (forward slashes), wherever it is installed."""
    rel = _check_relpath(relpath)
    packaged = resources.files(_PACKAGE).joinpath("/".join(("templates", *rel.parts)))
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    fallback = _REPO_ROOT.joinpath("templates", *rel.parts)
    if fallback.is_file():
        return fallback.read_text(encoding="utf-8")
    raise FileNotFoundError(f"template {relpath!r} not found in the package or in {_REPO_ROOT}")
