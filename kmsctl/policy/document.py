"""Policy documents: parsing, validation and the compiled form.

``parse_policy`` checks a document the way KMS checks a key policy (and IAM an
identity policy) and compiles it: wildcards become regular expressions,
condition values are parsed once, condition key names are lower-cased. Every
error is a ``MalformedPolicyDocumentException`` whose message names the
statement (index and Sid) and the element; a document over 32 KB is a
``LimitExceededException``. An unknown condition operator is an error (fail
closed); an unknown condition key is simply absent at evaluation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kmsctl.errors import LimitExceededException, MalformedPolicyDocumentException
from kmsctl.policy.conditions import Condition, ConditionError, parse_conditions
from kmsctl.policy.variables import ArnPattern, Context, Glob, VariableError

MAX_POLICY_BYTES = 32 * 1024  # KMS's key policy quota: 32 KB, not adjustable
VERSIONS = ("2012-10-17", "2008-10-17")
_ALLOWED_CHARS = re.compile(r"[\t\n\r\u0020-\u00ff]*")
_ACCOUNT = re.compile(r"\d{12}")
_ELEMENTS = frozenset(
    ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"]
)


class PolicyKind(Enum):
    KEY = "key"  # a resource-based policy: Principal required
    IDENTITY = "identity"  # attached to a principal: no Principal


class Match(Enum):
    DIRECT = "direct"  # the statement names this principal (or everyone)
    ACCOUNT = "account"  # the statement names the principal's account: delegation to its IAM


def account_of(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 and parts[4] else None


def role_of_session(arn: str) -> str | None:
    """``arn:aws:sts::A:assumed-role/R/S`` -> ``arn:aws:iam::A:role/R`` (a role principal covers its sessions)."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        pieces = parts[5].split("/")
        if len(pieces) >= 3:
            return f"{parts[0]}:{parts[1]}:iam::{parts[4]}:role/{pieces[1]}"
    return None


def _role_name(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/"):
        return f"{parts[4]}/{parts[5].rsplit('/', 1)[-1]}"
    return None


@dataclass(frozen=True, slots=True)
class Principals:
    """A ``Principal`` / ``NotPrincipal`` value."""

    everyone: bool  # "*" or {"AWS": "*"}
    accounts: frozenset[str]  # account IDs (from "ACCT" or "arn:aws:iam::ACCT:root")
    arns: frozenset[str]  # users, roles, sessions, services, federated, canonical users
    roles: frozenset[str]  # "ACCT/role-name" of role ARNs, to cover their sessions

    def match(self, principal: str) -> Match | None:
        if self.everyone or principal in self.arns:
            return Match.DIRECT
        role = role_of_session(principal)
        if role is not None and _role_name(role) in self.roles:
            return Match.DIRECT
        account = account_of(principal)
        if account is not None and account in self.accounts:
            return Match.ACCOUNT
        return None

    def excludes(self, principal: str) -> bool:
        """NotPrincipal: is ``principal`` exempt? Fail closed: its account, its role and itself must all be listed."""
        if self.everyone:
            return True
        account = account_of(principal)
        if account is None or not principal.startswith("arn:"):
            return principal in self.arns  # a service or other non-ARN principal
        if account not in self.accounts:
            return False
        if principal == f"arn:aws:iam::{account}:root":
            return True
        role = role_of_session(principal)
        if role is not None and _role_name(role) not in self.roles:
            return False
        return principal in self.arns

    def names(self) -> Iterator[str]:
        yield from sorted(self.arns)
        yield from (f"arn:aws:iam::{a}:root" for a in sorted(self.accounts))


@dataclass(frozen=True, slots=True)
class Statement:
    index: int
    sid: str | None
    effect: str  # "Allow" | "Deny"
    principals: Principals | None
    not_principal: bool
    actions: Glob | None  # one alternation, case-insensitive
    not_action: bool
    resources: tuple[ArnPattern, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    def principal_match(self, principal: str) -> Match | None:
        """How this statement's Principal covers ``principal`` (identity policies cover their owner)."""
        if self.principals is None:
            return Match.DIRECT
        if self.not_principal:
            return None if self.principals.excludes(principal) else Match.DIRECT
        return self.principals.match(principal)

    def applies(self, action: str, resource: str, ctx: Context, multi: frozenset[str]) -> bool:
        """Action, Resource and Condition all match (the Principal is checked apart)."""
        if self.actions is None or not self.resources:
            return False  # no Action or no Resource: accepted, no effect
        m = self.actions.matcher(ctx, multi)
        if (m is not None and m.fullmatch(action) is not None) == self.not_action:
            return False
        found = False
        for pattern in self.resources:
            r = pattern.matcher(ctx, multi)
            if r is not None and r.fullmatch(resource) is not None:
                found = True
                break
        if found == self.not_resource:
            return False
        for condition in self.conditions:  # noqa: SIM110 (a plain loop: this is the hot path)
            if not condition.matches(ctx, multi):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Policy:
    version: str | None
    id: str | None
    statements: tuple[Statement, ...]
    kind: PolicyKind
    text: str
    name: str | None = None  # an identity policy's name, for the reasons

    def principals(self) -> list[str]:
        """Every principal the policy names (for an existence check), sorted, without duplicates."""
        seen: set[str] = set()
        for st in self.statements:
            if st.principals is not None:
                seen.update(st.principals.names())
        return sorted(seen)


def _where(index: int, sid: str | None) -> str:
    return f"Statement[{index}]" + (f" (Sid {sid!r})" if sid is not None else "")


def _strings(value: Any, where: str, element: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise MalformedPolicyDocumentException(f"{where}: {element} must be a non-empty string or list of strings")
    return items


def _principals(value: Any, where: str, element: str) -> Principals:
    if value == "*":
        return Principals(True, frozenset(), frozenset(), frozenset())
    if not isinstance(value, dict) or not value:
        raise MalformedPolicyDocumentException(f'{where}: {element} must be "*" or an object such as {{"AWS": ...}}')
    everyone = False
    accounts: set[str] = set()
    arns: set[str] = set()
    roles: set[str] = set()
    for kind, raw in value.items():
        if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
            raise MalformedPolicyDocumentException(f"{where}: {element} has an unknown principal type {kind!r}")
        for item in _strings(raw, where, f"{element}.{kind}"):
            bad = f"Policy contains a statement with one or more invalid principals: {where}, {element}.{kind} {item!r}"
            if item == "*" and kind == "AWS":
                everyone = True
            elif kind != "AWS":
                if "*" in item or "?" in item:
                    raise MalformedPolicyDocumentException(bad + " (a principal cannot contain a wildcard)")
                arns.add(item)
            elif _ACCOUNT.fullmatch(item):
                accounts.add(item)
            elif "*" in item or "?" in item:
                raise MalformedPolicyDocumentException(bad + " (a principal cannot contain a wildcard)")
            else:
                parts = item.split(":", 5)
                valid = len(parts) == 6 and parts[0] == "arn" and parts[2] in ("iam", "sts")
                if not valid or not _ACCOUNT.fullmatch(parts[4]):
                    raise MalformedPolicyDocumentException(bad + " (expected an account ID or an IAM ARN)")
                if parts[2] == "iam" and parts[5] == "root":
                    accounts.add(parts[4])
                else:
                    arns.add(item)
                    if (name := _role_name(item)) is not None:
                        roles.add(name)
    return Principals(everyone, frozenset(accounts), frozenset(arns), frozenset(roles))


def _statement(index: int, raw: Any, kind: PolicyKind, variables: bool) -> Statement:
    if not isinstance(raw, dict):
        raise MalformedPolicyDocumentException(f"Statement[{index}]: a statement must be an object")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicyDocumentException(f"Statement[{index}]: Sid must be a string")
    where = _where(index, sid)
    unknown = sorted(set(raw) - _ELEMENTS)
    if unknown:
        raise MalformedPolicyDocumentException(f"{where}: unknown element {unknown[0]!r}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocumentException(f'{where}: Effect must be "Allow" or "Deny", not {effect!r}')
    for a, b in (("Principal", "NotPrincipal"), ("Action", "NotAction"), ("Resource", "NotResource")):
        if a in raw and b in raw:
            raise MalformedPolicyDocumentException(f"{where}: {a} and {b} cannot both appear")
    has_principal = "Principal" in raw or "NotPrincipal" in raw
    if kind is PolicyKind.KEY and not has_principal:
        raise MalformedPolicyDocumentException(f"{where}: a key policy statement needs a Principal")
    if kind is PolicyKind.IDENTITY and has_principal:
        raise MalformedPolicyDocumentException(f"{where}: an identity policy cannot have a Principal")
    principals = None
    if has_principal:
        element = "Principal" if "Principal" in raw else "NotPrincipal"
        principals = _principals(raw[element], where, element)
    actions = None
    if "Action" in raw or "NotAction" in raw:
        element = "Action" if "Action" in raw else "NotAction"
        patterns = _strings(raw[element], where, element)
        for p in patterns:
            if p != "*" and ":" not in p:
                raise MalformedPolicyDocumentException(f'{where}: {element} {p!r} must be "service:action"')
        actions = Glob.any_of(patterns)
    resources: tuple[ArnPattern, ...] = ()
    if "Resource" in raw or "NotResource" in raw:
        element = "Resource" if "Resource" in raw else "NotResource"
        try:
            resources = tuple(ArnPattern(p, variables) for p in _strings(raw[element], where, element))
        except VariableError as exc:
            raise MalformedPolicyDocumentException(f"{where}: {element}: {exc}") from None
    conditions: tuple[Condition, ...] = ()
    if "Condition" in raw:
        try:
            conditions = parse_conditions(raw["Condition"], variables, f"{where}: Condition")
        except ConditionError as exc:
            raise MalformedPolicyDocumentException(str(exc)) from None
    return Statement(
        index=index,
        sid=sid,
        effect=effect,
        principals=principals,
        not_principal="NotPrincipal" in raw,
        actions=actions,
        not_action="NotAction" in raw,
        resources=resources,
        not_resource="NotResource" in raw,
        conditions=conditions,
    )


def _load(text: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise MalformedPolicyDocumentException(f"the policy repeats the element {k!r}")
            out[k] = v
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise MalformedPolicyDocumentException(
            f"The policy is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def parse_policy(text: str, kind: PolicyKind | str = PolicyKind.KEY, *, name: str | None = None) -> Policy:
    """Validate and compile a policy document (a key policy unless ``kind`` says identity)."""
    kind = PolicyKind(kind)
    if not isinstance(text, str):
        raise MalformedPolicyDocumentException("The policy must be a JSON string")
    size = len(text.encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        raise LimitExceededException(f"The policy is {size} bytes; the limit is {MAX_POLICY_BYTES} bytes (32 KB)")
    if not text.strip():
        raise MalformedPolicyDocumentException("The policy is empty")
    bad = _ALLOWED_CHARS.fullmatch(text)
    if bad is None:
        pos = next(i for i, ch in enumerate(text) if not _ALLOWED_CHARS.fullmatch(ch))
        raise MalformedPolicyDocumentException(
            f"The policy has a character outside U+0009, U+000A, U+000D and U+0020-U+00FF at offset {pos}"
        )
    doc = _load(text)
    if not isinstance(doc, dict):
        raise MalformedPolicyDocumentException("The policy must be a JSON object")
    unknown = sorted(set(doc) - {"Version", "Id", "Statement"})
    if unknown:
        raise MalformedPolicyDocumentException(f"The policy has an unknown top-level element {unknown[0]!r}")
    version = doc.get("Version")
    if version is not None and version not in VERSIONS:
        raise MalformedPolicyDocumentException(f'Version must be "2012-10-17" or "2008-10-17", not {version!r}')
    policy_id = doc.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyDocumentException("Id must be a string")
    if "Statement" not in doc:
        raise MalformedPolicyDocumentException("The policy has no Statement")
    raw = doc["Statement"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicyDocumentException("The policy's Statement list is empty")
    variables = version == "2012-10-17"  # earlier versions (or none) keep ${...} literal
    statements = tuple(_statement(i, s, kind, variables) for i, s in enumerate(items))
    return Policy(version, policy_id, statements, kind, text, name)
