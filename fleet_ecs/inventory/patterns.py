"""Ansible host ranges: ``web[01:03].example.com`` -> web01, web02, web03.

Numeric ranges keep the zero padding of their start, letter ranges go a..z, and an optional third
part is the stride, as in Ansible. The expansion is capped so a typo cannot exhaust memory.
"""

from __future__ import annotations

import re

MAX_EXPANSION = 100_000
_RANGE = re.compile(r"\[([^\[\]:]+):([^\[\]:]+)(?::([^\[\]:]+))?\]")


def expand_host_pattern(pattern: str, limit: int = MAX_EXPANSION) -> list[str]:
    """Every host name ``pattern`` stands for; ValueError for a malformed or oversized range."""
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    values = _range_values(*match.groups(), limit=limit)
    names: list[str] = []
    for value in values:
        names.extend(expand_host_pattern(f"{head}{value}{tail}", limit - len(names)))
        if len(names) > limit:
            raise ValueError(f"host range {pattern!r} expands to more than {limit} hosts")
    return names


def _range_values(start: str, end: str, stride_text: str | None, *, limit: int) -> list[str]:
    if stride_text is not None and not stride_text.isdigit():
        raise ValueError(f"range stride {stride_text!r} is not a number")
    stride = int(stride_text or 1)
    if stride < 1:
        raise ValueError("range stride must be at least 1")
    if start.isdigit() and end.isdigit():
        first, last = int(start), int(end)
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        if first > last:
            raise ValueError(f"range [{start}:{end}] runs backwards")
        if (last - first) // stride + 1 > limit:
            raise ValueError(f"range [{start}:{end}] expands to more than {limit} hosts")
        return [str(number).zfill(width) for number in range(first, last + 1, stride)]
    if len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
        if start > end:
            raise ValueError(f"range [{start}:{end}] runs backwards")
        return [chr(code) for code in range(ord(start), ord(end) + 1, stride)]
    raise ValueError(f"range [{start}:{end}] must be two numbers or two letters")
