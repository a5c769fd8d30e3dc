"""Making endpoint-derived values safe to print in plain text.

Everything in a result came from, or through, an endpoint we do not trust. A terminal that
shows ``report.txt`` would obey escape sequences, and bidirectional override characters can
make a line read differently from what it holds ("Trojan Source"). Such characters are shown
as ``<U+XXXX>`` instead. Ordinary letters of any script, right-to-left ones included, stay.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

# Embeddings, overrides and isolates: the characters that reorder text they do not belong to.
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _visible(char: str) -> str:
    if char in "\n\t":
        return char
    if char in _BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
        return f"<U+{ord(char):04X}>"
    return char


def clean_text(value: Any) -> str:
    """``value`` as printable text: CRLF/CR become LF, control characters become ``<U+XXXX>``."""
    text = as_text(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isprintable():
        return text
    return "".join(_visible(c) for c in text)


def as_text(value: Any) -> str:
    """A JSON value as the text a Windows admin would expect (PowerShell-style booleans)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)
