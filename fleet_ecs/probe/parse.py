"""Parsers for the raw texts and documents the probe steps bring back.

Each parser takes what Windows printed and returns plain values; none of them decides a verdict
(that is ``fleet_ecs.probe.diagnose``). They are written defensively: Microsoft documents no
format for ``MpCmdRun -DisplayECSConnection`` and ``netsh`` output is localized, so we keep the
raw text beside every parsed value and prefer structure (URLs, addresses) over English words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fleet_ecs.errors import ProbeError
from fleet_ecs.models import Category

# Folder names under ...\Windows Defender\Platform: 4.18.25050.5-0, 4.18.2304.8-0, ...
_PLATFORM_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:-(\d+))?$")
_URL_RE = re.compile(r"https?://[^\s\"'<>]+", re.I)
_ECS_LINE_RE = re.compile(r"\bECS\s*(?:Url|URI|Endpoint)\s*[:=]\s*(\S+)", re.I)
ECS_APP_PATH = "MicrosoftWindowsDefenderClient/1.0.0.0"
DEFAULT_ECS_BASE = "https://mdav.us.endpoint.security.microsoft.com/ecs/config/v1/"


def parse_step_document(objects: list[Any], step: str) -> dict[str, Any]:
    """The JSON document a step wrote as its last output object."""
    for item in reversed(objects):
        if isinstance(item, str) and item.lstrip().startswith("{"):
            try:
                doc = json.loads(item)
            except json.JSONDecodeError as exc:
                raise ProbeError(
                    Category.PROBE_ERROR, f"step {step} returned malformed JSON: {exc}", step=step
                ) from exc
            if not isinstance(doc, dict) or doc.get("step") != step:
                raise ProbeError(
                    Category.PROBE_ERROR, f"step {step} returned another step's document", step=step
                )
            return doc
    raise ProbeError(Category.PROBE_ERROR, f"step {step} returned no result document", step=step)


def platform_version(name: str) -> tuple[int, ...] | None:
    """Version key of a platform folder name, or None if the name is not a version."""
    match = _PLATFORM_RE.match(name.strip().rstrip("\\/"))
    if match is None:
        return None
    return tuple(int(part) for part in match.groups(default="0"))


@dataclass(frozen=True)
class PlatformChoice:
    folder: str | None  # full path of the platform folder MpCmdRun is taken from
    source: str  # "registry" or "newest-folder" or "none"
    version: str | None
    string_sort_pick: str | None  # what a string sort (the old script) would have picked


def choose_platform(facts: dict[str, Any]) -> PlatformChoice:
    """The running Defender platform: registry ``InstallLocation``, else the newest folder.

    Folders are compared as versions, never as strings: ``4.18.23110.2009-0`` is newer than
    ``4.18.23110.3-0`` although it sorts lower as text.
    """
    root = (facts.get("platform_root") or "").rstrip("\\")
    names = [n for n in facts.get("platform_folders") or [] if platform_version(n) is not None]
    string_pick = max(names) if names else None
    location = (facts.get("defender_install_location") or "").strip()
    if location:
        leaf = location.rstrip("\\").rsplit("\\", 1)[-1]
        return PlatformChoice(location.rstrip("\\"), "registry", _version_text(leaf), string_pick)
    if not names:
        return PlatformChoice(None, "none", None, None)
    newest = max(names, key=lambda n: platform_version(n) or ())
    return PlatformChoice(f"{root}\\{newest}", "newest-folder", _version_text(newest), string_pick)


def _version_text(folder_name: str) -> str | None:
    key = platform_version(folder_name)
    return ".".join(str(p) for p in key[:4]) if key else None


def version_tuple(text: str | None) -> tuple[int, ...]:
    """Leading numeric components of a version string ('5.1.17763.6189' -> (5, 1, 17763, 6189))."""
    parts = []
    for piece in str(text or "").split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def parse_ecs_urls(output: str | None) -> list[str]:
    """Every ECS URL in ``MpCmdRun -DisplayECSConnection`` output, in order, without duplicates.

    Lines labelled ``ECS Url:`` (the only shape seen in public) come first; any other https URL
    in the text is kept after them, since Microsoft describes the switch as printing "URLs".
    """
    if not output:
        return []
    labelled: list[str] = []
    others: list[str] = []
    for line in output.splitlines():
        match = _ECS_LINE_RE.search(line)
        if match and _URL_RE.match(match.group(1)):
            labelled.append(_clean_url(match.group(1)))
            continue
        others.extend(_clean_url(u) for u in _URL_RE.findall(line))
    seen: dict[str, None] = {}
    for url in labelled + others:
        if url.lower().startswith("https://"):
            seen.setdefault(url, None)
    return list(seen)


def _clean_url(url: str) -> str:
    return url.rstrip(".,;)]")


def probe_url(ecs_url: str) -> str:
    """The request URL for an ECS base URL: the Defender client's configuration document.

    No query string: a plain GET of the configuration path answers, and the old script's
    hard-coded query contradicted itself (``IsServer=1`` with a client OS build).
    """
    parts = urlsplit(ecs_url)
    path = parts.path or "/"
    if ECS_APP_PATH.lower() in path.lower():
        new_path = path
    elif path.rstrip("/").lower().endswith("/config/v1"):
        new_path = path.rstrip("/") + "/" + ECS_APP_PATH
    elif path.rstrip("/").lower().endswith("/ecs"):
        new_path = path.rstrip("/") + "/config/v1/" + ECS_APP_PATH
    else:
        new_path = path
    return urlunsplit((parts.scheme, parts.netloc, new_path, "", ""))


@dataclass(frozen=True)
class WinHttpProxy:
    direct: bool
    server: str | None
    bypass: str | None
    raw: str


def parse_winhttp_proxy(output: str | None) -> WinHttpProxy:
    """Parse ``netsh winhttp show proxy``.

    The labels are localized, so we do not look for "Direct access": a configured proxy is
    recognised by the shape ``<label> :  host:port`` on a line, the first such value being the
    server and the second the bypass list.
    """
    raw = output or ""
    values = []
    for line in raw.splitlines():
        if ":" not in line:
            continue
        label, _, value = line.partition(" :")
        value = value.strip()
        if label.strip() and value and not label.strip().endswith(":"):
            values.append(value)
    if not values:
        return WinHttpProxy(True, None, None, raw)
    server = values[0]
    bypass = values[1] if len(values) > 1 else None
    return WinHttpProxy(False, server, bypass, raw)


def dns_addresses(dns: dict[str, Any] | None) -> list[str]:
    records = (dns or {}).get("records") or []
    return [r["IPAddress"] for r in records
            if r.get("IPAddress") and r.get("Type") in ("A", "AAAA")]
