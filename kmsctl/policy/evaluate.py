"""Deciding one request: key policy, identity policies and grants together, as KMS does.

Order (KMS developer guide, "Troubleshooting key access" and "Key policies"):

1. an explicit ``Deny`` that matches in the key policy or any identity policy
   wins (``ExplicitDeny``); grants never override it;
2. IAM-only operations (``CreateKey``, ``ListKeys``, ``ListAliases``,
   ``GenerateRandom``, ``ListRetirableGrants``, ...) and resources without a
   resource policy are decided by the identity policies alone;
3. for a key in the caller's account: a key-policy ``Allow`` naming the
   principal (or everyone), or one naming the account (``arn:aws:iam::A:root``
   or ``A``: delegation to IAM) together with an identity-policy ``Allow``;
4. for a key in another account: a key-policy ``Allow`` for the principal or
   its account *and* an identity-policy ``Allow`` in the caller's account;
5. a grant whose grantee is the caller, whose operations include the action
   and whose constraints hold (this also covers a cross-account caller);
6. otherwise ``ImplicitDeny``.

The account root user has every identity permission in its own account (it
has no identity policies), so rule 3's delegation suffices for it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kmsctl.policy.document import Match, Policy, account_of, role_of_session
from kmsctl.policy.variables import Context

IAM_ONLY_ACTIONS = frozenset(
    "kms:" + op
    for op in (
        "CreateKey",
        "ListKeys",
        "ListAliases",
        "GenerateRandom",
        "ListRetirableGrants",
        "CreateCustomKeyStore",
        "ConnectCustomKeyStore",
        "DeleteCustomKeyStore",
        "DescribeCustomKeyStores",
        "DisconnectCustomKeyStore",
        "UpdateCustomKeyStore",
    )
)
"""Account-level actions: no key resource, so no key policy and no grant can allow them."""

GRANT_OPERATIONS = frozenset(
    [
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        "Sign",
        "Verify",
        "GetPublicKey",
        "CreateGrant",
        "RetireGrant",
        "DescribeKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "Encapsulate",
        "Decapsulate",
    ]
)
# the operations that take an encryption context (grant constraints apply to them)
ENCRYPTION_OPERATIONS = (
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
)
EC_OPERATIONS = frozenset(ENCRYPTION_OPERATIONS)
"""Operations that carry an encryption context: the only ones grant constraints apply to."""

_EC_PREFIX = "kms:encryptioncontext:"


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def normalize(context: Mapping[str, Any]) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    """Lower-case the key names and turn every value into strings; lists are multivalued keys.

    ``None`` and empty lists mean the key is absent.
    """
    out: dict[str, tuple[str, ...]] = {}
    multi: set[str] = set()
    for key, value in context.items():
        name = key.lower()
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            items = tuple(_text(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value))
            if not items:
                continue
            out[name] = items
            multi.add(name)
        else:
            out[name] = (_text(value),)
            multi.discard(name)
    return out, frozenset(multi)


def _principal_keys(principal: str, account: str | None, ptype: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    role = role_of_session(principal)
    keys["aws:PrincipalArn"] = role or principal
    if account:
        keys["aws:PrincipalAccount"] = account
        keys["kms:CallerAccount"] = account
    parts = principal.split(":", 5)
    if ptype is None and len(parts) == 6:
        if parts[5] == "root":
            ptype = "Account"
        elif parts[2] == "iam" and parts[5].startswith("user/"):
            ptype = "User"
        elif role is not None:
            ptype = "AssumedRole"
    if ptype:
        keys["aws:PrincipalType"] = ptype
    if ptype == "User" and len(parts) == 6:
        keys["aws:username"] = parts[5].rsplit("/", 1)[-1]
    for k, v in tags.items():
        keys[f"aws:PrincipalTag/{k}"] = v
    return keys


@dataclass(frozen=True)
class Request:
    """One authorization question: may ``principal`` perform ``action`` on ``resource``?

    ``context`` holds the condition keys (see ``kms_request_context``); the
    principal's global keys (aws:PrincipalArn, aws:PrincipalAccount,
    aws:PrincipalType, aws:PrincipalTag/*, aws:username, kms:CallerAccount) are
    derived from the other fields unless ``context`` gives them.
    """

    action: str  # "kms:Encrypt"
    resource: str  # the key ARN (alias ARN for alias permissions, "*" for account-level actions)
    principal: str  # the caller's ARN
    account: str | None = None  # the caller's account; from the principal's ARN when omitted
    principal_type: str | None = None
    principal_tags: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    ctx: Context = field(init=False, repr=False, compare=False)
    multi: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        account = self.account or account_of(self.principal)
        object.__setattr__(self, "account", account)
        merged = _principal_keys(self.principal, account, self.principal_type, self.principal_tags)
        merged = {k.lower(): v for k, v in merged.items()}
        merged.update({k.lower(): v for k, v in self.context.items()})
        ctx, multi = normalize(merged)
        object.__setattr__(self, "ctx", ctx)
        object.__setattr__(self, "multi", multi)

    @property
    def operation(self) -> str:
        return self.action.split(":", 1)[-1]

    def encryption_context(self) -> dict[str, str]:
        """The request's encryption context, keys lower-cased (grant constraints ignore key case)."""
        return {k[len(_EC_PREFIX) :]: v[0] for k, v in self.ctx.items() if k.startswith(_EC_PREFIX) and v}


@dataclass(frozen=True)
class Grant:
    grant_id: str
    grantee_principal: str
    operations: Sequence[str]
    encryption_context_equals: Mapping[str, str] | None = None
    encryption_context_subset: Mapping[str, str] | None = None
    name: str | None = None

    def allows(self, request: Request) -> bool:
        op = request.operation
        if op not in GRANT_OPERATIONS or op not in self.operations:
            return False
        if request.principal != self.grantee_principal and role_of_session(request.principal) != self.grantee_principal:
            return False
        if op not in EC_OPERATIONS:
            return True  # constraints do not apply to DescribeKey, RetireGrant, signing ...
        ec = request.encryption_context()
        if self.encryption_context_equals is not None:
            want = {k.lower(): v for k, v in self.encryption_context_equals.items()}
            if ec != want:
                return False
        subset = self.encryption_context_subset
        return subset is None or all(ec.get(k.lower()) == v for k, v in subset.items())


@dataclass(frozen=True)
class Reason:
    source: str  # "KeyPolicy" | "IdentityPolicy" | "Grant"
    effect: str  # "Allow" | "Deny"
    sid: str | None = None
    statement: int | None = None
    policy_name: str | None = None
    grant_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.source == "Grant":
            return {"Source": self.source, "GrantId": self.grant_id, "Effect": self.effect}
        out: dict[str, Any] = {"Source": self.source, "Sid": self.sid, "Effect": self.effect}
        out["StatementIndex"] = self.statement
        if self.policy_name is not None:
            out["PolicyName"] = self.policy_name
        return out


@dataclass(frozen=True)
class Decision:
    effect: str  # "Allowed" | "ExplicitDeny" | "ImplicitDeny"
    reasons: tuple[Reason, ...]
    request: Request
    missing: str | None = None  # for a denial: "resource-based" or "identity-based"

    @property
    def allowed(self) -> bool:
        return self.effect == "Allowed"

    def access_denied_message(self) -> str:
        """AWS's AccessDeniedException message, naming the refused permission and the policy type."""
        if self.allowed:
            raise ValueError("the request is allowed")
        r = self.request
        on = "" if r.resource in ("*", "") else f" on resource: {r.resource}"
        head = f"User: {r.principal} is not authorized to perform: {r.action}{on}"
        if self.effect == "ExplicitDeny":
            article = "an" if self.missing == "identity-based" else "a"
            return f"{head} with an explicit deny in {article} {self.missing} policy"
        return f"{head} because no {self.missing} policy allows the {r.action} action"

    def to_dict(self) -> dict[str, Any]:
        return {"Decision": self.effect, "Reasons": [x.to_dict() for x in self.reasons]}


def _reason(source: str, policy: Policy, index: int) -> Reason:
    st = policy.statements[index]
    return Reason(source, st.effect, st.sid, st.index, policy.name)


def _scan(
    policy: Policy, source: str, request: Request, resource: str
) -> tuple[list[Reason], list[Reason], list[Reason]]:
    """-> (matching denies, allows naming the principal, allows naming its account)."""
    denies: list[Reason] = []
    direct: list[Reason] = []
    delegated: list[Reason] = []
    for i, st in enumerate(policy.statements):
        match = st.principal_match(request.principal)
        if match is None or not st.applies(request.action, resource, request.ctx, request.multi):
            continue
        if st.effect == "Deny":
            denies.append(_reason(source, policy, i))
        elif match is Match.DIRECT:
            direct.append(_reason(source, policy, i))
        else:
            delegated.append(_reason(source, policy, i))
    return denies, direct, delegated


def evaluate(
    request: Request,
    key_policy: Policy | None,
    identity_policies: Iterable[Policy] = (),
    grants: Iterable[Grant] = (),
) -> Decision:
    """Decide ``request`` against the key's policy, the caller's identity policies and the key's grants."""
    iam_only = request.action in IAM_ONLY_ACTIONS or key_policy is None
    denies: list[Reason] = []
    kp_direct: list[Reason] = []
    kp_account: list[Reason] = []
    if key_policy is not None and not iam_only:
        denies, kp_direct, kp_account = _scan(key_policy, "KeyPolicy", request, request.resource)
    id_allows: list[Reason] = []
    for policy in identity_policies:
        d, a, b = _scan(policy, "IdentityPolicy", request, request.resource)
        denies += d
        id_allows += a + b
    if denies:
        kind = "resource-based" if denies[0].source == "KeyPolicy" else "identity-based"
        return Decision("ExplicitDeny", tuple(denies), request, kind)
    is_root = request.principal == f"arn:aws:iam::{request.account}:root"
    identity_ok = bool(id_allows) or is_root
    if iam_only:
        if identity_ok:
            return Decision("Allowed", tuple(id_allows), request)
        return Decision("ImplicitDeny", (), request, "identity-based")
    key_account = account_of(request.resource) or request.account
    if key_account == request.account:
        if kp_direct:
            return Decision("Allowed", tuple(kp_direct), request)
        if kp_account and identity_ok:
            return Decision("Allowed", tuple(kp_account + id_allows), request)
    elif (kp_direct or kp_account) and identity_ok:
        return Decision("Allowed", tuple(kp_direct + kp_account + id_allows), request)
    granted = tuple(Reason("Grant", "Allow", grant_id=g.grant_id) for g in grants if g.allows(request))
    if granted:
        return Decision("Allowed", granted, request)
    missing = "identity-based" if kp_direct or kp_account else "resource-based"
    return Decision("ImplicitDeny", (), request, missing)
