"""Wildcards and policy variables, compiled once at parse time.

IAM has two wildcard characters, ``*`` (any run of characters) and ``?`` (one
character), and no escape syntax: a literal ``*``, ``?`` or ``$`` is written
``${*}``, ``${?}``, ``${$}`` (policy language 2012-10-17 only). A policy variable
``${key}`` or ``${key, 'default'}`` is replaced at evaluation by the request's
value for that (case-insensitive) condition key; a multivalued key, or an
absent key without a default, leaves the whole value unresolved, and an
unresolved value matches nothing.

A pattern is compiled to one regular expression. For ARNs (the ``Resource``
element and the ``Arn*`` operators) the first five colon-separated segments
are matched separately: there a wildcard never crosses a colon.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

# ${name} or ${name, 'default'}; '' inside the default is one quote
_VAR = re.compile(r"\$\{\s*([^,}']+?)\s*(?:,\s*'((?:[^']|'')*)'\s*)?\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}

Context = Mapping[str, tuple[str, ...]]
"""A request context: lower-cased condition key -> its values (one for a single-valued key)."""


class VariableError(ValueError):
    """A ``${`` that does not form a variable."""


@dataclass(frozen=True, slots=True)
class _Var:
    key: str  # lower-cased
    default: str | None


# a template part: literal text (wildcards live), an escaped special character, or a variable
_Part = str | tuple[str] | _Var


def _split(text: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    pos = 0
    for m in _VAR.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        name = m.group(1)
        if name in _SPECIAL and m.group(2) is None:
            parts.append((name,))
        else:
            default = None if m.group(2) is None else m.group(2).replace("''", "'")
            parts.append(_Var(name.lower(), default))
        pos = m.end()
    rest = text[pos:]
    if "${" in rest:
        raise VariableError(f"malformed policy variable in {text!r}")
    if rest:
        parts.append(rest)
    return tuple(parts)


def _glob_regex(text: str, star: str, one: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(one)
        else:
            out.append(re.escape(ch))
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _compile(regex: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def resolve_var(var: _Var, ctx: Context, multi: frozenset[str]) -> str | None:
    values = ctx.get(var.key)
    if values is None or var.key in multi or len(values) != 1:
        return var.default
    return values[0]


class Template:
    """A string value that may hold policy variables (resolved per request)."""

    __slots__ = ("_parts", "has_vars", "text")

    def __init__(self, text: str, variables: bool) -> None:
        self.text = text
        self._parts: tuple[_Part, ...] = _split(text) if variables and "${" in text else (text,)
        self.has_vars = any(isinstance(p, _Var) for p in self._parts)

    def literal(self, ctx: Context, multi: frozenset[str]) -> str | None:
        """The value with variables substituted and ``${*}`` etc. as plain characters."""
        out: list[str] = []
        for p in self._parts:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, tuple):
                out.append(p[0])
            else:
                value = resolve_var(p, ctx, multi)
                if value is None:
                    return None
                out.append(value)
        return "".join(out)

    def regex(self, ctx: Context, multi: frozenset[str], star: str = ".*", one: str = ".") -> str | None:
        """The value as a regex body: wildcards live in the literal text only."""
        out: list[str] = []
        for p in self._parts:
            if isinstance(p, str):
                out.append(_glob_regex(p, star, one))
            elif isinstance(p, tuple):
                out.append(re.escape(p[0]))
            else:
                value = resolve_var(p, ctx, multi)
                if value is None:
                    return None
                out.append(re.escape(value))
        return "".join(out)


class Glob:
    """A whole-string wildcard pattern (``Action``, ``StringLike``), compiled once if static."""

    __slots__ = ("_static", "ignore_case", "template")

    def __init__(self, text: str, variables: bool, ignore_case: bool = False) -> None:
        self.template = Template(text, variables)
        self.ignore_case = ignore_case
        self._static: re.Pattern[str] | None = None
        if not self.template.has_vars:
            body = self.template.regex({}, frozenset())
            assert body is not None
            self._static = _compile(body, ignore_case)

    @classmethod
    def any_of(cls, patterns: list[str]) -> Glob:
        """Several static patterns as one case-insensitive alternation (an ``Action`` list)."""
        glob = cls(patterns[0], False, ignore_case=True)
        if len(patterns) > 1:
            glob._static = _compile("|".join(f"(?:{_glob_regex(p, '.*', '.')})" for p in patterns), True)
        return glob

    def matcher(self, ctx: Context, multi: frozenset[str]) -> re.Pattern[str] | None:
        if self._static is not None:
            return self._static
        body = self.template.regex(ctx, multi)
        return None if body is None else _compile(body, self.ignore_case)


class ArnPattern:
    """An ARN pattern: wildcards stay inside the first five segments; variables only after them."""

    __slots__ = ("_prefix", "_static", "_tail", "is_arn")

    def __init__(self, text: str, variables: bool) -> None:
        parts = text.split(":", 5)
        self.is_arn = len(parts) == 6
        if self.is_arn:
            self._prefix = ":".join(_glob_regex(p, "[^:]*", "[^:]") for p in parts[:5]) + ":"
            self._tail = Template(parts[5], variables)
        else:  # "*" and other non-ARN patterns match the whole string
            self._prefix = ""
            self._tail = Template(text, variables)
        self._static: re.Pattern[str] | None = None
        if not self._tail.has_vars:
            tail = self._tail.regex({}, frozenset())
            assert tail is not None
            self._static = _compile(self._prefix + tail, False)

    def matcher(self, ctx: Context, multi: frozenset[str]) -> re.Pattern[str] | None:
        if self._static is not None:
            return self._static
        tail = self._tail.regex(ctx, multi)
        return None if tail is None else _compile(self._prefix + tail, False)
