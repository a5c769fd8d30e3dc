"""``load_inventory``: read a file, work out its shape, and hand it to the matching parser.

The shape comes from the extension when it is telling (.yaml/.yml, .ini/.cfg, .csv,
.txt/.list), otherwise from the first meaningful line: ``[`` is INI, ``key:`` or ``---`` is
YAML, a comma is CSV, ``=`` anywhere is INI, and anything else is a plain host list.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fleet_ecs.inventory.ansible_ini import parse_ansible_ini
from fleet_ecs.inventory.ansible_yaml import looks_ansible, parse_ansible_yaml
from fleet_ecs.inventory.csv_format import parse_csv
from fleet_ecs.inventory.model import Inventory, Source, groups_of
from fleet_ecs.inventory.native import looks_native, parse_native
from fleet_ecs.inventory.plain import parse_plain
from fleet_ecs.inventory.yaml_lines import LineMap, load_yaml
from fleet_ecs.models import HostSpec

logger = logging.getLogger(__name__)

FORMATS = ("native", "ansible-yaml", "ansible-ini", "csv", "plain")
_BY_SUFFIX = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".ini": "ini",
    ".cfg": "ini",
    ".csv": "csv",
    ".txt": "plain",
    ".list": "plain",
}
_YAML_START = re.compile(r"(---|[\w.-]+:(\s|\Z))")


def load_inventory(path: str | Path) -> Inventory:
    """Load the inventory at ``path`` (any supported shape) into HostSpecs.

    Raises:
        InventoryError: the file is missing, unreadable or malformed; the message names the
            file and, where known, the line and host.
    """
    path = Path(path)
    src = Source.for_path(path)
    text = _read(src, path)
    kind = _BY_SUFFIX.get(path.suffix.lower()) or sniff(text)
    if kind == "yaml":
        fmt, hosts = _parse_yaml(src, text)
    elif kind == "ini":
        fmt, hosts = "ansible-ini", parse_ansible_ini(src, text)
    elif kind == "csv":
        fmt, hosts = "csv", parse_csv(src, text)
    else:
        fmt, hosts = "plain", parse_plain(src, text)
    logger.info("inventory %s: %d hosts (%s)", path, len(hosts), fmt)
    return Inventory(path=path, hosts=hosts, groups=groups_of(hosts), format=fmt)


def sniff(text: str) -> str:
    """Guess ``yaml``, ``ini``, ``csv`` or ``plain`` from content alone."""
    lines = [line.strip() for line in text.splitlines()]
    meaningful = [line for line in lines if line and not line.startswith(("#", ";"))]
    if not meaningful:
        return "plain"
    first = meaningful[0]
    if first.startswith("["):
        return "ini"
    if _YAML_START.match(first):
        return "yaml"
    if "," in first:
        return "csv"
    if any("=" in line.split("#", 1)[0] for line in meaningful):
        return "ini"
    return "plain"


def _read(src: Source, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise src.error("inventory file not found") from None
    except IsADirectoryError:
        raise src.error("is a directory, not an inventory file") from None
    except PermissionError:
        raise src.error("permission denied reading the inventory") from None
    except UnicodeDecodeError as exc:
        raise src.error(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise src.error(f"cannot read the inventory: {exc.strerror or exc}") from None


def _parse_yaml(src: Source, text: str) -> tuple[str, list[HostSpec]]:
    data = load_yaml(src, text)
    if data is None:
        raise src.error("no hosts defined (the file is empty)")
    if not isinstance(data, LineMap):
        raise src.error(
            "expected a mapping at the top: defaults/groups/hosts (fleet-ecs) or all: (Ansible)",
            line=getattr(data, "line", None) or 1,
        )
    if looks_native(data):
        return "native", parse_native(src, data)
    if looks_ansible(data):
        return "ansible-yaml", parse_ansible_yaml(src, data)
    return "native", parse_native(src, data)
