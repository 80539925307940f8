"""The ``Condition`` element: every IAM operator family, compiled at parse time.

Semantics (IAM JSON policy reference, condition operators and multivalued keys):

* operators, and keys under one operator, are ANDed; the values of one key are
  ORed, and for a negated operator (``StringNotEquals``, ``NotIpAddress`` ...)
  the values combine as NOR: the key must match none of them;
* a key absent from the request makes a positive operator false and a negated
  operator true; ``...IfExists`` makes any operator true on an absent key;
  ``Null`` tests presence itself;
* ``ForAnyValue:`` is true when at least one request value satisfies the
  operator (false on an absent or empty key); ``ForAllValues:`` when every
  request value does (true on an absent or empty key);
* a multivalued key under a plain operator: a positive operator matches when
  any request value matches, a negated one when none does;
* key names are case-insensitive, values case-sensitive unless the operator
  says ``IgnoreCase``; policy variables work in the String, Arn and Bool
  families only.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kmsctl.policy.variables import ArnPattern, Context, Glob, Template, VariableError

_Pred = Callable[[Any, Context, frozenset[str]], bool]  # (converted) request value -> matches this policy value?

FAMILIES: dict[str, tuple[str, bool]] = {  # operator -> (family, negated)
    "StringEquals": ("String", False),
    "StringNotEquals": ("String", True),
    "StringEqualsIgnoreCase": ("StringIgnoreCase", False),
    "StringNotEqualsIgnoreCase": ("StringIgnoreCase", True),
    "StringLike": ("StringLike", False),
    "StringNotLike": ("StringLike", True),
    "NumericEquals": ("Numeric", False),
    "NumericNotEquals": ("Numeric", True),
    "NumericLessThan": ("Numeric", False),
    "NumericLessThanEquals": ("Numeric", False),
    "NumericGreaterThan": ("Numeric", False),
    "NumericGreaterThanEquals": ("Numeric", False),
    "DateEquals": ("Date", False),
    "DateNotEquals": ("Date", True),
    "DateLessThan": ("Date", False),
    "DateLessThanEquals": ("Date", False),
    "DateGreaterThan": ("Date", False),
    "DateGreaterThanEquals": ("Date", False),
    "Bool": ("Bool", False),
    "BinaryEquals": ("Binary", False),
    "IpAddress": ("Ip", False),
    "NotIpAddress": ("Ip", True),
    "ArnEquals": ("Arn", False),
    "ArnLike": ("Arn", False),
    "ArnNotEquals": ("Arn", True),
    "ArnNotLike": ("Arn", True),
    "Null": ("Null", False),
}
_ORDER: dict[str, Callable[[float, float], bool]] = {
    "Equals": operator.eq,
    "NotEquals": operator.eq,  # negated afterwards, like every Not operator
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$")
# keys whose single value AWS refuses under ForAllValues (OverlyPermissiveCondition)
_SINGLE_VALUED_PREFIXES = ("kms:encryptioncontext:", "aws:requesttag/")


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message names the problem."""


def parse_number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_date(text: str) -> float | None:
    """ISO 8601 (W3C profile) or epoch seconds -> epoch seconds."""
    text = text.strip()
    number = parse_number(text)
    if number is not None and re.fullmatch(r"-?\d+(\.\d+)?", text):
        return number
    if not _ISO.match(text):
        return None
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _as_text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise ConditionError(f"{where}: a condition value must be a string, a number or a boolean")


def _compile_value(family: str, base: str, raw: str, variables: bool, where: str) -> _Pred | Any:
    """One policy value -> a predicate over one (converted) request value, or a constant to look up in a set."""
    try:
        if family in ("String", "StringIgnoreCase", "Bool"):
            t = Template(raw, variables)
            fold = _FOLD[family]
            if family == "Bool" and not t.has_vars and raw.lower() not in ("true", "false"):
                raise ConditionError(f"{where}: {raw!r} is not a boolean (true or false)")
            if not t.has_vars:
                return fold(raw)
            return lambda v, c, m: (s := t.literal(c, m)) is not None and v == fold(s)
        if family == "StringLike":
            g = Glob(raw, variables)
            return lambda v, c, m: (r := g.matcher(c, m)) is not None and r.fullmatch(v) is not None
        if family == "Arn":
            a = ArnPattern(raw, variables)
            return lambda v, c, m: (r := a.matcher(c, m)) is not None and r.fullmatch(v) is not None
    except VariableError as exc:
        raise ConditionError(f"{where}: {exc}") from None
    if family in ("Numeric", "Date"):
        bound = parse_number(raw) if family == "Numeric" else parse_date(raw)
        if bound is None:
            kind = "a number" if family == "Numeric" else "an ISO 8601 date or epoch seconds"
            raise ConditionError(f"{where}: {raw!r} is not {kind}")
        cmp = _ORDER[base[len(family) :]]
        if cmp is operator.eq:
            return bound
        return lambda v, c, m: cmp(v, bound)
    if family == "Binary":
        expected = _b64(raw)
        if expected is None:
            raise ConditionError(f"{where}: {raw!r} is not base64")
        return expected
    if family == "Ip":
        try:
            net = ipaddress.ip_network(raw.strip(), strict=False)
        except ValueError:
            raise ConditionError(f"{where}: {raw!r} is not an IP address or CIDR range") from None
        return lambda v, c, m: v.version == net.version and v in net
    raise AssertionError(family)


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


class Condition:
    """One ``Operator: {key: values}`` pair, ready to evaluate."""

    __slots__ = ("_convert", "_members", "_null", "_tests", "cost", "if_exists", "key", "negated", "operator", "set_op")

    def __init__(self, op: str, key: str, values: Any, variables: bool, where: str) -> None:
        self.operator = op
        set_op, _, base = op.rpartition(":")
        if set_op not in ("", "ForAnyValue", "ForAllValues"):
            raise ConditionError(f"{where}: unknown condition operator {op!r}")
        self.set_op = set_op
        self.if_exists = base.endswith("IfExists") and base != "IfExists"
        if self.if_exists:
            base = base[: -len("IfExists")]
        if base not in FAMILIES or (base == "Null" and (self.if_exists or set_op)):
            raise ConditionError(f"{where}: unknown condition operator {op!r}")
        family, self.negated = FAMILIES[base]
        self.key = key.lower()
        if set_op == "ForAllValues" and self.key.startswith(_SINGLE_VALUED_PREFIXES):
            raise ConditionError(
                f"{where}: OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued "
                "condition key matches requests without the specified encryption context or tag or with an "
                "unspecified one. To fix, remove ForAllValues."
            )
        raw = values if isinstance(values, list) else [values]
        texts = [_as_text(v, where) for v in raw]
        self._null: bool | None = None
        self._convert = _CONVERT.get(family)
        self._members: frozenset[Any] = frozenset()
        self._tests: tuple[_Pred, ...] = ()
        if family == "Null":
            if len(texts) != 1 or texts[0].lower() not in ("true", "false"):
                raise ConditionError(f"{where}: Null takes true or false")
            self._null = texts[0].lower() == "true"
        else:
            with_vars = variables and family in ("String", "StringIgnoreCase", "StringLike", "Arn", "Bool")
            compiled = [_compile_value(family, base, t, with_vars, where) for t in texts]
            self._members = frozenset(c for c in compiled if not callable(c))
            self._tests = tuple(c for c in compiled if callable(c))
        self.cost = _COST.get(family, 1) + len(self._tests) + (1 if set_op else 0)

    def _any(self, value: Any, ctx: Context, multi: frozenset[str]) -> bool:
        if value in self._members:
            return True
        return any(t(value, ctx, multi) for t in self._tests)

    def matches(self, ctx: Context, multi: frozenset[str]) -> bool:
        values = ctx.get(self.key)
        if self._null is not None:
            return (values is None) == self._null
        if values is None:
            if self.if_exists or self.set_op == "ForAllValues":
                return True
            if self.set_op == "ForAnyValue":
                return False
            return self.negated
        converted: Any = values
        if self._convert is not None:
            converted = [self._convert(v) for v in values]
            if None in converted:
                return False  # a request value of the wrong type matches no operator, negated or not
        if self.set_op:
            members = [v for v, raw in zip(converted, values, strict=True) if raw != ""]
            hits = (self._any(v, ctx, multi) != self.negated for v in members)
            return any(hits) if self.set_op == "ForAnyValue" else all(hits)
        hit = any(self._any(v, ctx, multi) for v in converted)
        return hit != self.negated


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


_CONVERT: dict[str, Callable[[str], Any]] = {  # request value -> comparable form (None: wrong type)
    "StringIgnoreCase": str.casefold,
    "Bool": str.lower,
    "Numeric": parse_number,
    "Date": parse_date,
    "Binary": _b64,
    "Ip": _ip,
}
_COST = {"Null": 0, "String": 1, "Bool": 1, "StringIgnoreCase": 2, "Numeric": 2, "Date": 3, "Binary": 3, "Ip": 6}
_FOLD: dict[str, Callable[[str], str]] = {"String": str, "StringIgnoreCase": str.casefold, "Bool": str.lower}


def parse_conditions(block: Any, variables: bool, where: str) -> tuple[Condition, ...]:
    if not isinstance(block, dict):
        raise ConditionError(f"{where}: Condition must be an object of operators")
    out: list[Condition] = []
    for op, keys in block.items():
        here = f"{where}.{op}"
        if not isinstance(keys, dict) or not keys:
            raise ConditionError(f"{here}: an operator takes an object of condition keys")
        for key, values in keys.items():
            if not isinstance(key, str) or not key.strip():
                raise ConditionError(f"{here}: a condition key must be a non-empty string")
            if isinstance(values, list) and not values:
                raise ConditionError(f"{here}.{key}: the list of values is empty")
            out.append(Condition(op, key, values, variables, f"{here}.{key}"))
    # all conditions are ANDed and side-effect free: test the cheap ones first
    return tuple(sorted(out, key=lambda c: c.cost))
