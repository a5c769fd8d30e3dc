"""A small lint that keeps the probe scripts runnable on Windows PowerShell 5.1.

The fleet runs Windows PowerShell 5.1 on .NET Framework 4.x, while whoever edits the templates
probably tests with PowerShell 7. Nothing here runs PowerShell, so the rendered scripts are
checked by parsing only:

* ``parse_errors`` reports the ERROR and MISSING nodes tree-sitter-powershell finds;
* ``lint_ps51`` reports PowerShell 6+/7-only syntax, commands, parameters and variables, and
  non-ASCII characters outside string literals.

How the lint stays token-aware: the source is parsed, then a copy is "masked": the content of
every comment and string literal is blanked (newlines kept, so offsets and line numbers hold),
while the ``$( ... )`` sub-expressions inside expandable strings stay visible, because they are
code. Operator checks run as regular expressions over that masked copy; commands, parameters and
variables are read from the syntax tree. A PowerShell 7 operator usually makes tree-sitter report
an error too, which is why the operator checks do not rely on the tree recognising them.

tree-sitter is a test dependency only, so it is imported on first use.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Iterator

logger = logging.getLogger(__name__)

# Node kinds whose text is string content (tree-sitter-powershell names).
_STRING_KINDS = frozenset(
    {
        "expandable_string_literal",
        "expandable_here_string_literal",
        "verbatim_string_characters",
        "verbatim_here_string_characters",
    }
)
_EXPANDABLE_KINDS = frozenset({"expandable_string_literal", "expandable_here_string_literal"})
# A '?' inside one of these is a wildcard, an alias (`?` = Where-Object) or part of a name.
_NAME_KINDS = frozenset(
    {"generic_token", "command_name", "variable", "braced_variable", "simple_name",
     "command_parameter", "type_literal", "type_name", "type_identifier"}
)

# Commands that do not exist in Windows PowerShell 5.1.
_PS7_COMMANDS = frozenset(
    {
        "get-error", "test-json", "join-string", "get-uptime", "remove-alias", "remove-service",
        "convertfrom-markdown", "show-markdown", "get-markdownoption", "set-markdownoption",
        "get-pssubsystem", "enable-experimentalfeature", "disable-experimentalfeature",
        "get-experimentalfeature",
    }
)

_IWR = ("invoke-webrequest", "invoke-restmethod", "iwr", "irm", "curl", "wget")
_IWR_PARAMS = (
    "SkipCertificateCheck", "SslProtocol", "Authentication", "Token", "NoProxy",
    "SkipHeaderValidation", "SkipHttpErrorCheck", "StatusCodeVariable",
    "ResponseHeadersVariable", "MaximumRetryCount", "RetryIntervalSec", "Resume",
    "CustomMethod", "HttpVersion", "AllowUnencryptedAuthentication",
    "PreserveAuthorizationOnRedirect", "Form", "ConnectionTimeoutSeconds",
    "OperationTimeoutSeconds", "AllowInsecureRedirect",
)

# Parameters added after 5.1, per command (names and aliases, lower case). A parameter written
# on the command line matches when it is the full name or an unambiguous-looking prefix of it
# (PowerShell accepts prefixes).
_PS7_PARAMETERS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("foreach-object", "%", "foreach"): ("Parallel", "ThrottleLimit", "TimeoutSeconds", "AsJob"),
    ("convertfrom-json",): ("Depth", "AsHashtable", "NoEnumerate", "DateKind"),
    ("convertto-json",): ("EnumsAsStrings", "AsArray", "EscapeHandling"),
    _IWR: _IWR_PARAMS,
    ("get-content", "gc", "cat", "type", "set-content", "sc", "add-content", "ac"): (
        "AsByteStream",
    ),
    ("join-path",): ("AdditionalChildPath",),
    ("split-path",): ("LeafBase", "Extension"),
    ("get-date",): ("AsUTC", "UnixTimeSeconds"),
    ("test-connection",): ("TcpPort", "TargetName", "Ping", "Traceroute", "MtuSize", "Detailed"),
    ("select-string", "sls"): ("Raw", "NoEmphasis"),
    ("sort-object", "sort"): ("Top", "Bottom"),
    ("convertto-csv", "export-csv", "epcsv"): ("UseQuotes", "QuoteFields"),
    ("start-process", "saps", "start"): ("Environment",),
}

# Windows PowerShell 5.1 parameters that share a prefix with one above: "-Max" is
# MaximumRedirection in 5.1, so it must not be taken for MaximumRetryCount.
_COMMON_PARAMETERS = (
    "ErrorAction", "ErrorVariable", "WarningAction", "WarningVariable", "InformationAction",
    "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable", "Verbose", "Debug",
)
_PS51_PARAMETERS: dict[tuple[str, ...], tuple[str, ...]] = {
    _IWR: (
        "MaximumRedirection", "Method", "Proxy", "ProxyCredential", "ProxyUseDefaultCredentials",
        "PassThru", "TimeoutSec", "Headers", "Body", "ContentType", "Credential",
        "UseBasicParsing", "UseDefaultCredentials", "CertificateThumbprint", "Certificate",
        "UserAgent", "DisableKeepAlive", "WebSession", "SessionVariable", "InFile", "OutFile",
        "TransferEncoding", "Uri",
    ),
    ("test-connection",): (
        "TimeToLive", "ThrottleLimit", "Count", "Delay", "ComputerName", "Source", "Quiet",
        "BufferSize", "AsJob", "Authentication", "Protocol", "Impersonation",
        "DcomAuthentication", "WsmanAuthentication",
    ),
    ("foreach-object", "%", "foreach"): (
        "Begin", "Process", "End", "RemainingScripts", "MemberName", "ArgumentList", "InputObject",
    ),
    ("convertfrom-json",): ("InputObject",),
    ("convertto-json",): ("InputObject", "Depth", "Compress"),
    ("split-path",): ("Path", "LiteralPath", "Leaf", "Parent", "Qualifier", "NoQualifier",
                      "IsAbsolute", "Resolve", "Credential"),
}

# Distinctive PowerShell 7 parameters flagged on any command, full name only (aliases and
# wrapper functions would hide the command name).
_PS7_ANYWHERE_PARAMETERS = {
    name.lower(): name
    for name in (
        "Parallel", "AsHashtable", "EnumsAsStrings", "AsByteStream", "AdditionalChildPath",
        "SkipCertificateCheck", "SslProtocol", "SkipHttpErrorCheck",
    )
}

_PS7_VARIABLES = frozenset(
    {"iswindows", "islinux", "ismacos", "iscoreclr", "psstyle",
     "psnativecommanduseerroractionpreference", "psnativecommandargumentpassing"}
)

# Operator checks over the masked source (bytes, offsets equal the tree's).
_OPERATORS: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb"&&"), "pipeline chain operator '&&' (PowerShell 7)"),
    (re.compile(rb"\|\|"), "pipeline chain operator '||' (PowerShell 7)"),
    (re.compile(rb"\?\?=?"), "null-coalescing operator '??' / '??=' (PowerShell 7)"),
    (re.compile(rb"\?(?=[.\[])"), "null-conditional member access '?.' / '?[' (PowerShell 7)"),
    (re.compile(rb"(?<=\s)\?(?=\s)"), "ternary operator 'a ? b : c' (PowerShell 7)"),
    (
        re.compile(rb"(?<![>&\w])&[ \t]*(?=\r?\n|;|\}|\)|$)"),
        "background operator '&' at the end of a pipeline (PowerShell 6)",
    ),
    (re.compile(rb"(?i)(?<![\w$.-])clean\s*\{"), "'clean {}' block (PowerShell 7.3)"),
    (
        re.compile(rb"(?im)^[ \t]*using[ \t]+(?:namespace|module|assembly)\b"),
        "'using' statement (valid in 5.1, but avoided in fleet-ecs probes)",
    ),
)
# `u{XXXX} escapes in expandable strings are PowerShell 6+.
_UNICODE_ESCAPE = re.compile(r"`u\{", re.I)


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fleet_ecs.probe.pslint needs the test extras: tree-sitter, tree-sitter-powershell"
        ) from exc
    language = tree_sitter.Language(tree_sitter_powershell.language())
    return tree_sitter.Parser(language)


def _parse(source: bytes) -> Any:
    return _parser().parse(source)


def _walk(node: Any) -> Iterator[Any]:
    """Every node under ``node``, depth first, without recursion (scripts can nest deeply)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _where(source: bytes, offset: int) -> str:
    """``line L, col C`` (both 1-based, column in characters) of a byte offset."""
    line_start = source.rfind(b"\n", 0, offset) + 1
    line = source.count(b"\n", 0, offset) + 1
    col = len(source[line_start:offset].decode("utf-8", "replace")) + 1
    return f"line {line}, col {col}"


def parse_errors(text: str) -> list[str]:
    """Syntax errors tree-sitter-powershell finds in ``text``, as ``line L, col C: ...``."""
    source = text.encode("utf-8")
    tree = _parse(source)
    if not tree.root_node.has_error:
        return []
    problems = []
    for node in _walk(tree.root_node):
        if node.is_missing:
            problems.append(f"{_where(source, node.start_byte)}: missing {node.type!r}")
        elif node.type == "ERROR":
            snippet = node.text.decode("utf-8", "replace").strip().splitlines()
            near = snippet[0][:40] if snippet else ""
            problems.append(f"{_where(source, node.start_byte)}: syntax error near {near!r}")
    if not problems:
        # has_error without a visible ERROR/MISSING node should not happen; say so anyway.
        problems.append("line 1, col 1: tree-sitter reports an error it does not locate")
    return problems


def _masked(source: bytes, root: Any) -> bytearray:
    """``source`` with comment and string contents blanked, sub-expressions in strings kept."""
    out = bytearray(source)

    def blank(start: int, end: int) -> None:
        for i in range(start, end):
            if out[i] not in (0x0A, 0x0D):
                out[i] = 0x20

    def restore(start: int, end: int) -> None:
        out[start:end] = source[start:end]

    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "comment":
            blank(node.start_byte, node.end_byte)
            continue
        if node.type in _STRING_KINDS:
            blank(node.start_byte, node.end_byte)
            if node.type in _EXPANDABLE_KINDS:
                for child in node.children:
                    if child.type == "sub_expression":
                        restore(child.start_byte, child.end_byte)
                        stack.append(child)
            continue
        stack.extend(node.children)
    return out


def _inside(root: Any, offset: int, kinds: frozenset[str]) -> bool:
    node = root.descendant_for_byte_range(offset, offset + 1)
    while node is not None:
        if node.type in kinds:
            return True
        node = node.parent
    return False


def _string_spans(root: Any) -> list[tuple[int, int]]:
    return [(n.start_byte, n.end_byte) for n in _walk(root) if n.type in _STRING_KINDS]


def _non_ascii(source: bytes, root: Any) -> list[str]:
    """Non-ASCII characters outside the inside of string literals.

    Input values may legitimately carry any character inside their quoted literal (PSRP carries
    the script as Unicode text), but code and comments stay ASCII, and a typographic quote used
    as a delimiter is caught because a literal's first and last characters count as outside.
    """
    spans = _string_spans(root)
    problems = []
    for match in re.finditer(rb"[\x80-\xff]+", source):
        start = match.start()
        # Continuation bytes never start a character, so `start` is a character boundary.
        if any(s < start and match.end() < e for s, e in spans):
            continue
        char = source[start:].decode("utf-8", "replace")[:1]
        problems.append(f"{_where(source, start)}: non-ASCII character U+{ord(char):04X}")
    return problems


def _command_elements(command: Any) -> list[Any]:
    elements = [c for c in command.children if c.type == "command_elements"]
    if not elements:
        return []
    return [c for c in elements[0].children if c.is_named and c.text.strip()]


def _parameter_matches(command: str, written: str, banned: str) -> bool:
    banned = banned.lower()
    if written == banned:
        return True
    if not banned.startswith(written) or len(written) < 3:
        return False
    known = list(_COMMON_PARAMETERS)
    for commands, names in _PS51_PARAMETERS.items():
        if command in commands:
            known.extend(names)
    # A prefix that 5.1 resolves to one of its own parameters is fine there.
    return not any(name.lower().startswith(written) for name in known)


def _command_problems(source: bytes, root: Any) -> list[str]:
    problems = []
    for node in _walk(root):
        if node.type != "command":
            continue
        names = [c for c in node.children if c.type == "command_name"]
        name = names[0].text.decode("utf-8", "replace").lower() if names else ""
        where = _where(source, node.start_byte)
        if name in _PS7_COMMANDS:
            problems.append(f"{where}: command {name!r} does not exist in Windows PowerShell 5.1")
        elements = _command_elements(node)
        params = [
            e.text.decode("utf-8", "replace").lstrip("-").split(":")[0].lower()
            for e in elements
            if e.type == "command_parameter"
        ]
        for written in params:
            if written in _PS7_ANYWHERE_PARAMETERS:
                canonical = _PS7_ANYWHERE_PARAMETERS[written]
                problems.append(f"{where}: parameter -{canonical} is PowerShell 6+ ({name})")
                continue
            for commands, banned_list in _PS7_PARAMETERS.items():
                if name not in commands:
                    continue
                for banned in banned_list:
                    if _parameter_matches(name, written, banned):
                        problems.append(
                            f"{where}: parameter -{banned} of {name} is PowerShell 6+"
                        )
        if name == "join-path" and _join_path_children(elements) > 2:
            problems.append(f"{where}: Join-Path with more than two path parts is PowerShell 6+")
    return problems


def _join_path_children(elements: list[Any]) -> int:
    """How many path parts a Join-Path call passes (positional, -Path and -ChildPath values)."""
    count = 0
    value_follows = None  # None: next element is free; True/False: it is a value, counted or not
    for element in elements:
        if value_follows is not None:
            count += int(value_follows)
            value_follows = None
            continue
        if element.type != "command_parameter":
            count += 0 if "redirection" in element.type else 1
            continue
        text = element.text.decode("utf-8", "replace").lstrip("-").lower()
        name, colon, inline = text.partition(":")
        is_path = bool(name) and ("path".startswith(name) or "childpath".startswith(name))
        is_credential = len(name) >= 2 and "credential".startswith(name)
        if is_path or is_credential:
            if colon and inline:
                count += int(is_path)
            else:
                value_follows = is_path
    return count


def _variable_problems(source: bytes, root: Any) -> list[str]:
    problems = []
    for node in _walk(root):
        if node.type not in ("variable", "braced_variable"):
            continue
        name = node.text.decode("utf-8", "replace").lstrip("$").strip("{}").lower()
        name = name.split(":", 1)[-1]
        if name in _PS7_VARIABLES:
            problems.append(f"{_where(source, node.start_byte)}: variable ${name} is PowerShell 6+")
    return problems


def _operator_problems(source: bytes, masked: bytes, root: Any) -> list[str]:
    problems = []
    claimed: set[int] = set()
    for pattern, message in _OPERATORS:
        for match in pattern.finditer(masked):
            start = match.start()
            if start in claimed:
                continue
            if b"?" in match.group() and _inside(root, start, _NAME_KINDS):
                continue
            claimed.update(range(match.start(), max(match.end(), start + 1)))
            problems.append(f"{_where(source, start)}: {message}")
    return problems


def _escape_problems(source: bytes, root: Any) -> list[str]:
    problems = []
    for node in _walk(root):
        if node.type in _EXPANDABLE_KINDS:
            text = node.text.decode("utf-8", "replace")
            if _UNICODE_ESCAPE.search(text):
                problems.append(
                    f"{_where(source, node.start_byte)}: `u{{}} escape in a string is PowerShell 6+"
                )
    return problems


def lint_ps51(text: str) -> list[str]:
    """Problems that would stop ``text`` from running on Windows PowerShell 5.1.

    Each problem is ``line L, col C: what``. An empty list means nothing was found; syntax
    errors are ``parse_errors``' business and are not repeated here.
    """
    source = text.encode("utf-8")
    root = _parse(source).root_node
    masked = bytes(_masked(source, root))
    problems = (
        _non_ascii(source, root)
        + _operator_problems(source, masked, root)
        + _command_problems(source, root)
        + _variable_problems(source, root)
        + _escape_problems(source, root)
    )
    logger.debug("lint_ps51: %d problem(s)", len(problems))
    return problems
