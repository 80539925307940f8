"""Text safety, shared by every layer: checking that a request holds only
Unicode text (Python hands over a command-line argument or an environment
variable that is not UTF-8 with its bad bytes as lone surrogates, which no
encoder accepts), and escaping what is shown to people or written to records.

Escapes, one rule everywhere (README, "In scripts"):
  backslash      ``\\\\`` (in text output, where a value must be read back)
  tab, LF, CR    ``\\t``, ``\\n``, ``\\r``
  other controls ``\\xHH``: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F)
  not Unicode    ``\\uDCHH``: a lone surrogate, such as a byte that was not UTF-8
"""

from __future__ import annotations

import re
from typing import Any

# controls (C0, DEL, C1) and lone surrogates; with the backslash, for text output
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_OR_BACKSLASH = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\\\\]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_one(match: re.Match[str]) -> str:
    c = match.group()
    if c == "\\":
        return "\\\\"
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def escape(text: str, *, backslash: bool = True) -> str:
    """``text`` safe on a terminal and on one line. ``backslash`` False leaves
    backslashes alone (messages, which are read, not parsed)."""
    if text.isascii() and text.isprintable() and (not backslash or "\\" not in text):
        return text  # the common case, fast
    return (_UNSAFE_OR_BACKSLASH if backslash else _UNSAFE).sub(_escape_one, text)


def is_text(value: str) -> bool:
    """True if ``value`` is Unicode scalar text (it holds no lone surrogate)."""
    return value.isascii() or _SURROGATE.search(value) is None


def without_surrogates(value: str) -> str:
    """``value`` with each lone surrogate as ``\\uDCHH``: encodable, and still
    showing which bytes were wrong (for audit records and messages)."""
    if is_text(value):
        return value
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def first_non_text(value: Any, path: str) -> str | None:
    """The path of the first string (or mapping key) in ``value`` that is not
    Unicode text, e.g. ``encryptionContext``; None if every one is."""
    if isinstance(value, str):
        return None if is_text(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and not is_text(k):
                return path
            found = first_non_text(v, path)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = first_non_text(item, path)
            if found:
                return found
    return None


_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")


def json_safe(text: str) -> str:
    """JSON text with DEL, C1 controls and lone surrogates as ``\\uXXXX``
    escapes too (json.dumps escapes only C0): the same value, safe on a terminal."""
    if text.isascii() and "\x7f" not in text:
        return text
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
