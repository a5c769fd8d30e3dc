"""Host settings: their names, their validation, and the step that turns layers into a HostSpec.

Every format parser reduces a host to an ordered list of layers (most specific first), each a
mapping of setting name to ``Located`` value. ``build_host`` takes the first layer that sets each
key, validates it, fills in built-in defaults and infers transport from port (or the reverse) the
way Ansible's psrp plugin does: only a port given means https unless it is 5985. With neither,
the format's default applies: http/5985 for fleet-ecs formats (what ``winrm quickconfig`` sets
up), https/5986 for Ansible inventories (what Ansible itself would use).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet_ecs.credentials import CREDENTIAL_ENV, reference_problem
from fleet_ecs.inventory.model import Located, Source
from fleet_ecs.models import AUTH_METHODS, HostSpec, Transport

SETTING_KEYS = (
    "address",
    "port",
    "transport",
    "auth",
    "cert_validation",
    "username",
    "credential",
    "configuration_name",
    "message_encryption",
    "connect_timeout",
    "read_timeout",
    "operation_timeout",
    "deadline",
    *(
        "negotiate_hostname_override",
        "negotiate_service",
        "negotiate_delegate",
        "negotiate_send_cbt",
        "certificate_pem",
        "certificate_key_pem",
        "credssp_auth_mechanism",
        "credssp_disable_tlsv1_2",
        "credssp_minimum_version",
        "proxy",
    ),
)
# Passed to pypsrp's WSMan as they are (after a type check): name -> converter.
WSMAN_OPTION_KEYS = SETTING_KEYS[-10:]
TIMEOUT_KEYS = ("connect_timeout", "read_timeout", "operation_timeout", "deadline")
ENCRYPTION_MODES = ("auto", "always", "never")
DEFAULT_PORTS = {Transport.HTTP: 5985, Transport.HTTPS: 5986}

_BUILTIN = HostSpec(name="-", address="-", port=5985)
_TRUE_WORDS = {"true", "yes", "on", "validate", "1"}
_FALSE_WORDS = {"false", "no", "off", "ignore", "0"}
_NAME_CHARS = re.compile(r"[A-Za-z0-9._-]+\Z")
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\Z")
_CONFIG_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Folder names Windows refuses whatever the extension (CON, CON.txt, ...).
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{n}" for p in ("com", "lpt") for n in range(10)}
_REFUSED_KEYS = {
    "password",
    "pass",
    "ansible_password",
    "ansible_pass",
    "ansible_winrm_password",
    "ansible_winrm_pass",
    "ansible_psrp_password",
    "ansible_psrp_pass",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_ssh_pass",
    "ansible_sudo_pass",
}


def is_refused_key(key: object) -> bool:
    """True for keys that would put a password in the inventory."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in _REFUSED_KEYS or lowered.endswith("_password")


def refused_key_problem(key: str, *, ansible: bool, vault: bool = False) -> str:
    """The message for a password (or Vault value) found in an inventory."""
    what = "holds an Ansible Vault value" if vault else "would put a password in the inventory"
    instead = (
        "set fleet_ecs_credential=env:NAME for the host or group"
        if ansible
        else "set credential: env:NAME (or prompt) for the host, a group or defaults"
    )
    return (
        f"'{key}' {what}, which fleet-ecs refuses; {instead}, or leave the credential out "
        f"and supply the password at run time through the {CREDENTIAL_ENV} environment "
        "variable or the interactive prompt"
    )


def host_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a host name (it becomes a folder name), or None."""
    if not isinstance(name, str) or not name:
        return "host name must be non-empty text"
    if _CONTROL.search(name) or "/" in name or "\\" in name:
        return f"host name {name!r} contains a path separator or control character"
    if ".." in name or name.startswith(".") or name.endswith("."):
        return f"host name {name!r} must not start or end with '.' or contain '..'"
    if not name[0].isascii() or not name[0].isalnum():
        # A leading '-' reads as an option to every tool that later handles the folder.
        return f"host name {name!r} must start with a letter or a digit"
    if not _NAME_CHARS.match(name):
        return (
            f"host name {name!r} may only contain letters, digits, '.', '_' and '-' "
            "(set address: for anything else)"
        )
    if len(name) > 253:
        return f"host name {name[:20]}... is longer than 253 characters"
    if name.split(".")[0].lower() in _RESERVED:
        return f"host name {name!r} is a reserved device name on Windows"
    return None


def check_host_name(src: Source, name: object, line: int | None) -> str:
    problem = host_name_problem(name)
    if problem:
        raise src.error(problem, line=line)
    return str(name)


def build_host(
    src: Source,
    name: str,
    *,
    line: int | None,
    layers: Sequence[Mapping[str, Located]],
    groups: Sequence[str] = (),
    host_vars: Mapping[str, Any] | None = None,
    default_transport: Transport = Transport.HTTP,
) -> HostSpec:
    """Validate and merge ``layers`` (most specific first) into the HostSpec for ``name``."""
    check_host_name(src, name, line)

    def pick(key: str) -> Located | None:
        for layer in layers:
            found = layer.get(key)
            if found is not None and found.value is not None:
                return found
        return None

    def check(key: str, convert: Any, default: Any) -> Any:
        found = pick(key)
        if found is None:
            return default
        try:
            return convert(found.value)
        except ValueError as exc:
            raise src.error(str(exc), line=found.line or line, host=name) from None

    address = check("address", _address, name)
    if pick("address") is None:
        try:
            _address(name)
        except ValueError as exc:
            raise src.error(str(exc), line=line, host=name) from None
    port = check("port", _port, None)
    transport = check("transport", _transport, None)
    if transport is None:
        if port is None:
            transport = default_transport
        else:
            transport = Transport.HTTP if port == 5985 else Transport.HTTPS
    if port is None:
        port = DEFAULT_PORTS[transport]

    auth = check("auth", _auth, _BUILTIN.auth)
    encryption = check("message_encryption", _encryption, _BUILTIN.message_encryption)
    if auth in ("basic", "certificate") and transport is Transport.HTTP and encryption != "never":
        raise src.error(
            f"auth '{auth}' over http cannot encrypt messages: use transport https, or set "
            "message_encryption to never (the traffic is then readable on the network)",
            line=line,
            host=name,
        )
    username = check("username", _username, None)
    return HostSpec(
        name=name,
        address=address,
        port=port,
        transport=transport,
        auth=auth,
        cert_validation=check("cert_validation", lambda v: _cert(v, src.directory), True),
        username=username,
        credential=check("credential", _credential, None),
        groups=tuple(groups),
        configuration_name=check(
            "configuration_name", _configuration_name, _BUILTIN.configuration_name
        ),
        message_encryption=encryption,
        vars=dict(host_vars or {}),
        **{key: check(key, _seconds, None) for key in TIMEOUT_KEYS},
        wsman_options=_wsman_options(pick, check, src.directory),
    )


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seconds")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 86400:
        raise ValueError(f"{seconds:g} seconds is out of range (0 to 86400)")
    return seconds


def _wsman_options(pick: Any, check: Any, directory: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in WSMAN_OPTION_KEYS:
        if pick(key) is None:
            continue
        if key in ("negotiate_delegate", "negotiate_send_cbt", "credssp_disable_tlsv1_2"):
            options[key] = check(key, _flag, None)
        elif key in ("certificate_pem", "certificate_key_pem"):
            options[key] = check(key, lambda v: _file(v, directory, key), None)
        elif key == "credssp_minimum_version":
            options[key] = int(check(key, _seconds, None))
        else:
            options[key] = check(key, lambda v, k=key: _text(v, k), None)
    return options


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not true or false")


def _file(value: object, directory: Path, what: str) -> str:
    text = _text(value, what)
    path = (directory / Path(text).expanduser()).resolve()
    if not path.is_file():
        raise ValueError(f"{what} {text!r} is not an existing file (looked for {path})")
    return str(path)


def _text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{what} must be text, not {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    if _CONTROL.search(text):
        raise ValueError(f"{what} contains a control character")
    return text


def _address(value: object) -> str:
    text = _text(value, "address")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if len(text) > 253 or not all(_LABEL.match(label) for label in text.split(".")):
        raise ValueError(
            f"invalid address {text!r}: expected a host name, FQDN or IP address "
            "(letters, digits, '-', '_' and dots between labels)"
        )
    return text


def _port(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"invalid port {value!r} (expected a number from 1 to 65535)")
    return value


def _transport(value: object) -> Transport:
    text = _text(value, "transport").lower()
    try:
        return Transport(text)
    except ValueError:
        raise ValueError(f"unknown transport {text!r} (expected http or https)") from None


def _auth(value: object) -> str:
    text = _text(value, "auth").lower()
    if text not in AUTH_METHODS:
        raise ValueError(
            f"unknown auth method {text!r} (expected one of {', '.join(AUTH_METHODS)})"
        )
    return text


def _encryption(value: object) -> str:
    text = _text(value, "message_encryption").lower()
    if text not in ENCRYPTION_MODES:
        raise ValueError(
            f"unknown message_encryption {text!r} (expected one of {', '.join(ENCRYPTION_MODES)})"
        )
    return text


def _cert(value: object, directory: Path) -> bool | str:
    if isinstance(value, bool):
        return value
    text = _text(value, "cert_validation")
    if text.lower() in _TRUE_WORDS:
        return True
    if text.lower() in _FALSE_WORDS:
        return False
    # Anything else is a CA bundle; relative paths are read from the inventory's folder.
    path = (directory / Path(text).expanduser()).resolve()
    if not path.is_file():
        raise ValueError(
            f"cert_validation {text!r} is neither true/false/validate/ignore nor an existing "
            f"CA bundle file (looked for {path})"
        )
    return str(path)


def _username(value: object) -> str:
    return _text(value, "username")


def _credential(value: object) -> str:
    problem = reference_problem(value)
    if problem:
        raise ValueError(problem)
    return str(value)


def _configuration_name(value: object) -> str:
    text = _text(value, "configuration_name")
    if not _CONFIG_NAME.match(text):
        raise ValueError(
            f"invalid configuration_name {text!r} (letters, digits, '.', '_' and '-' only)"
        )
    return text


class UniqueNames:
    """Refuses two hosts whose names differ at most by case (they would share a folder)."""

    def __init__(self, src: Source) -> None:
        self._src = src
        self._seen: dict[str, tuple[str, int | None]] = {}

    def add(self, name: str, line: int | None) -> None:
        first = self._seen.setdefault(name.lower(), (name, line))
        if first == (name, line):
            return
        at = f" (first at line {first[1]})" if first[1] else ""
        same = "defined twice" if first[0] == name else f"clashes with {first[0]!r} (case only)"
        raise self._src.error(f"duplicate host {name!r}: {same}{at}", line=line, host=name)


def check_unique(src: Source, entries: Sequence[tuple[str, int | None]]) -> None:
    names = UniqueNames(src)
    for name, line in entries:
        names.add(name, line)
