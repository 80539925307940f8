"""Access control at the one dispatch point: who calls, and whether they may.

Every operation passes ``_authorize`` inside the transaction it runs in, so the
decision and the operation see the same keyring. The caller is the account root
unless ``act_as`` names a principal of the keyring. For each operation the key
it acts on (or keys: ReEncrypt is two actions, alias operations need the alias
too) is found as the operation itself will find it, and the key's policy, the
caller's identity policy and the key's grants are evaluated by ``kmsctl.policy``.
Parsed policies are cached per process (a policy's text is its cache key). The
account root under the default key policy takes a short path with the same
outcome (that policy allows the account everything; the root has no other
policy). What is checked for each operation: docs/POLICY.md ("Enforcement").
"""

from __future__ import annotations

import base64
import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kmsctl import errors as E
from kmsctl.keyring.keyring import ALIAS_KIND, KEY_KIND
from kmsctl.keyring.store import as_blob, dumps
from kmsctl.policy import Decision, Grant, Policy, Request, default_key_policy, evaluate, kms_request_context
from kmsctl.policy import parse_policy as _parse
from kmsctl.service.audit import served_identity
from kmsctl.service.base import _UUID_RE, KEY_ROW, LocalKMSBase, _columns
from kmsctl.service.keystore_rules import STORE_OPS

PRINCIPAL_KIND = b"kmsctl principal v1\x00"
GRANT_KIND = b"kmsctl grant v1\x00"
_TOKEN_LABEL = b"grant token"
_ARN_RE = re.compile(r"arn:aws:iam::(\d{12}):(user|role)/([\w+=,.@-]{1,64})")
_ROOT_RE = re.compile(r"arn:aws:iam::(\d{12}):root")
_NAME_RE = re.compile(r"(?:(user|role)/)?([\w+=,.@-]{1,64})")

# operations on one key named by KeyId, with aliases (RequestAlias applies)
ALIAS_OPS = frozenset(
    [
        "DescribeKey",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "GetPublicKey",
        "DeriveSharedSecret",
    ]
)
# operations on one key named by key ID or ARN only
KEY_OPS = frozenset(
    [
        "EnableKey",
        "DisableKey",
        "UpdateKeyDescription",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "EnableKeyRotation",
        "DisableKeyRotation",
        "GetKeyRotationStatus",
        "RotateKeyOnDemand",
        "ListKeyRotations",
        "TagResource",
        "UntagResource",
        "ListResourceTags",
        "PutKeyPolicy",
        "GetKeyPolicy",
        "ListKeyPolicies",
        "CreateGrant",
        "ListGrants",
        "RevokeGrant",
    ]
)
ACCOUNT_OPS = frozenset(["CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants"]) | STORE_OPS
# operations that decide for themselves (RetireGrant: the grant says who may; a managed
# key is made on behalf of a kmsctl feature, whoever uses it)
SELF_CHECKED = frozenset({"RetireGrant", "CreateManagedKey"})

_POLICIES: dict[tuple[str, str, str | None], Policy] = {}
# verified documents by their exact stored bytes, shared and never mutated: a
# document is checked (MAC, JSON) once per process however often a check reads it
_VERIFIED: dict[tuple[str, bytes, bytes, bytes], dict[str, Any]] = {}


def parse_policy(text: str, kind: str = "key", name: str | None = None) -> Policy:
    """``kmsctl.policy.parse_policy``, cached per process: a policy is parsed and compiled once."""
    cache_key = (text, kind, name)
    policy = _POLICIES.get(cache_key)
    if policy is None:
        if len(_POLICIES) >= 256:
            _POLICIES.clear()
        policy = _POLICIES[cache_key] = _parse(text, kind, name=name)
    return policy


@dataclass(frozen=True)
class Caller:
    """The principal a request is made as, and its transport."""

    arn: str
    account: str
    kind: str  # "Root" | "IAMUser" | "Role"
    tags: Mapping[str, str] = field(default_factory=dict)
    source_ip: str | None = None
    user_agent: str | None = "kmsctl"
    secure_transport: bool | None = None
    local: bool = True  # the local CLI or library, not a served request (kmsctl serve:)
    request_id: str | None = None  # the request's ID, and the access key that signed it;
    access_key_id: str | None = None  # authenticated False: the signature was refused
    authenticated: bool = True

    @property
    def is_root(self) -> bool:
        return self.kind == "Root"

    @property
    def principal_type(self) -> str:
        return {"Root": "Account", "IAMUser": "User"}.get(self.kind, "AssumedRole")


def principal_arn(ref: str, account: str) -> str:
    """``alice``, ``user/alice``, ``role/ci`` or an ARN -> the ARN (``account`` for names)."""
    if not isinstance(ref, str):
        raise E.ValidationException("a principal must be a name or an ARN")
    if ref in ("root", f"{account}") or _ROOT_RE.fullmatch(ref):
        return ref if ref.startswith("arn:") else f"arn:aws:iam::{account}:root"
    if ref.startswith("arn:"):
        if not _ARN_RE.fullmatch(ref):
            raise E.ValidationException(
                f"{ref!r} is not an IAM user or role ARN (arn:aws:iam::ACCOUNT:user/NAME or role/NAME)"
            )
        return ref
    m = _NAME_RE.fullmatch(ref)
    if not m:
        raise E.ValidationException(f"{ref!r} is not a principal name (NAME, user/NAME or role/NAME)")
    return f"arn:aws:iam::{account}:{m.group(1) or 'user'}/{m.group(2)}"


class AccessBase(LocalKMSBase):
    _caller: Caller | None = None
    _principal_ref: str | None = None
    grant_tokens: list[str] | None = None  # the client's GrantTokens, for operations that take them
    dry_run: bool = False  # the client's DryRun, for operations that take it
    _last_decision: Decision | None = None  # the decision of the latest key check (CreateGrant reads it)

    # ----- the caller -----
    def act_as(self, principal: str | None, **transport: Any) -> None:
        """Make the following requests as ``principal`` (a name or ARN; None: the account root).
        It must exist in the keyring; that is checked by the first request."""
        self._principal_ref = principal
        self._caller = None
        self._transport = transport

    @property
    def caller(self) -> Caller:
        if self._caller is None:
            transport = getattr(self, "_transport", {})
            ref = self._principal_ref
            if ref is None or principal_arn(ref, self.account) == f"arn:aws:iam::{self.account}:root":
                self._caller = Caller(f"arn:aws:iam::{self.account}:root", self.account, "Root", **transport)
            else:
                self._ensure_unlocked()
                with self.db.read():
                    self._caller = self._caller_for(ref, **transport)
        return self._caller

    def _caller_for(self, ref: str, **transport: Any) -> Caller:
        """A principal of the keyring (or an account root) as a caller."""
        doc = self._find_principal(ref)
        kind = {"user": "IAMUser", "role": "Role"}.get(doc["Kind"], "Root")
        return Caller(doc["Arn"], doc["Account"], kind, doc.get("Tags", {}), **transport)

    def peek_metadata(self, ref: Any) -> dict[str, Any] | None:
        """A key's metadata for a client filling in defaults (the CLI's default algorithm,
        an alias resolved for a management operation) while acting as a principal that
        may not DescribeKey: not an operation, so neither checked nor recorded. None when
        the key is not found: the operation that follows reports that, and is recorded."""
        try:
            self._ensure_unlocked()
            with self.db.read():
                return self._metadata(self._key(ref))
        except E.KMSError:
            return None

    def _find_principal(self, ref: str) -> dict[str, Any]:
        """A principal by name or ARN: the keyring's account first, then a name unique among the others."""
        arn = principal_arn(ref, self.account)
        if _ROOT_RE.fullmatch(arn):
            return {"Arn": arn, "Account": arn.split(":")[4], "Kind": "root", "Tags": {}}
        doc = self._principal(arn)
        if doc is None and not ref.startswith("arn:"):
            tail = ":" + arn.split(":", 5)[5]
            rows = self.db.query("SELECT arn FROM principals WHERE substr(arn, -?) = ?", (len(tail), tail))
            if len(rows) == 1:
                doc = self._principal(rows[0][0])
        if doc is None:
            raise E.NotFoundException(f"The principal {arn} does not exist in this keyring")
        return doc

    # ----- stored principals and grants (MACed documents) -----
    def _shared_doc(self, kind: bytes, doc: Any, mac: Any, what: str) -> dict[str, Any]:
        """``check_doc`` for read-only use: the caller must not change the result."""
        raw, tag = as_blob(doc, what), as_blob(mac, what)
        cache_key = (self.keyring.keyring_id, kind, raw, tag)
        out = _VERIFIED.get(cache_key)
        if out is None:
            out = self.keyring.check_doc(kind, raw, tag, what)
            if len(_VERIFIED) >= 4096:
                _VERIFIED.clear()
            _VERIFIED[cache_key] = out
        return out

    def _key_for_access(self, ref: Any, aliases: bool = True) -> dict[str, Any] | None:
        """The verified key document ``ref`` names, read-only, as ``_key`` finds it; None if not found."""
        kind, value = self._parse_ref(ref)
        if kind == "alias":
            if not aliases:
                return None
            rows = self.db.cached("SELECT key_id, doc, mac FROM aliases WHERE name = ?", (value,))
            if not rows:
                return None
            alias = self._shared_doc(ALIAS_KIND, rows[0][1], rows[0][2], f"alias {value}")
            if (alias.get("AliasName"), alias.get("TargetKeyId")) != (value, rows[0][0]):
                raise E.IntegrityError(f"{self.keyring.path}: alias {value} fails its integrity check")
            value = rows[0][0]
        if not _UUID_RE.fullmatch(value):
            return None
        rows = self.db.cached(f"SELECT {KEY_ROW} FROM keys WHERE key_id = ?", (value,))
        if not rows:
            return None
        state, spec, deletion, next_rotation, doc, mac = rows[0]
        out = self._shared_doc(KEY_KIND, doc, mac, f"key {value}")
        if _columns(out) != (value, state, spec, deletion, next_rotation):
            raise E.IntegrityError(f"{self.keyring.path}: key {value} fails its integrity check")
        return out

    def _principal(self, arn: str, shared: bool = False) -> dict[str, Any] | None:
        rows = self.db.cached("SELECT doc, mac FROM principals WHERE arn = ?", (arn,))
        if not rows:
            return None
        what = f"principal {arn}"
        if shared:
            doc = self._shared_doc(PRINCIPAL_KIND, rows[0][0], rows[0][1], what)
        else:
            doc = self.keyring.check_doc(PRINCIPAL_KIND, as_blob(rows[0][0], what), as_blob(rows[0][1], what), what)
        if doc.get("Arn") != arn:
            raise E.IntegrityError(f"{self.keyring.path}: {what} fails its integrity check")
        return doc

    def _save_principal(self, doc: dict[str, Any]) -> None:
        raw = dumps(doc)
        self.db.execute(
            "INSERT OR REPLACE INTO principals(arn, doc, mac) VALUES (?, ?, ?)",
            (doc["Arn"], raw, self.keyring.mac_doc(PRINCIPAL_KIND, raw)),
        )

    def _grant_docs(self, key_id: str) -> Iterator[dict[str, Any]]:
        rows = self.db.cached(
            "SELECT grant_id, retiring, doc, mac FROM grants WHERE key_id = ? ORDER BY rowid", (key_id,)
        )
        for grant_id, retiring, doc, mac in rows:
            yield self._check_grant(grant_id, key_id, retiring, doc, mac)

    def _check_grant(self, grant_id: str, key_id: str, retiring: Any, doc: Any, mac: Any) -> dict[str, Any]:
        what = f"grant {grant_id}"
        out = self._shared_doc(GRANT_KIND, doc, mac, what)  # read-only: grants are deleted, never changed
        if (out.get("GrantId"), out.get("KeyId"), out.get("RetiringPrincipal")) != (grant_id, key_id, retiring):
            raise E.IntegrityError(f"{self.keyring.path}: {what} fails its integrity check")
        return out

    def _grants(self, key_id: str) -> Iterator[Grant]:
        for doc in self._grant_docs(key_id):
            constraints = doc.get("Constraints") or {}
            yield Grant(
                doc["GrantId"],
                doc["GranteePrincipal"],
                tuple(doc["Operations"]),
                constraints.get("EncryptionContextEquals"),
                constraints.get("EncryptionContextSubset"),
                doc.get("Name"),
            )

    # ----- grant tokens -----
    def _grant_token(self, grant_id: str) -> str:
        """A new token for a grant: its ID, a nonce and a MAC, so that a token is checked without a lookup."""
        from kmsctl.crypto.primitives import hmac_sha256, random_bytes

        body = bytes.fromhex(grant_id) + random_bytes(16)
        raw = body + hmac_sha256(self.keyring.derive(_TOKEN_LABEL), body)[:16]
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _grant_of_token(self, token: Any) -> str:
        """The GrantId a token was issued for; InvalidGrantTokenException for anything else."""
        from kmsctl.crypto.primitives import hmac_sha256

        bad = E.InvalidGrantTokenException("The grant token is not valid (malformed, or not from this keyring)")
        if not isinstance(token, str) or not 1 <= len(token) <= 8192:
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raise bad from None
        if len(raw) != 64 or hmac_sha256(self.keyring.derive(_TOKEN_LABEL), raw[:48])[:16] != raw[48:]:
            raise bad
        return raw[:32].hex()

    # ----- the dispatch point's hooks -----
    def _client_defaults(self, sig: inspect.Signature, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = sig.parameters
        if self.grant_tokens and "GrantTokens" in params and "GrantTokens" not in kwargs:
            kwargs = {**kwargs, "GrantTokens": list(self.grant_tokens)}
        if self.dry_run and "DryRun" in params and "DryRun" not in kwargs:
            kwargs = {**kwargs, "DryRun": True}
        self._last_decision = None
        _ = self.caller  # an unknown --principal fails here, before any work
        return kwargs

    def _annotate(self, event: dict[str, Any], error: E.KMSError | None) -> None:
        caller = self._caller or Caller(f"arn:aws:iam::{self.account}:root", self.account, "Root")
        identity = event.setdefault("userIdentity", {})
        identity["arn"] = caller.arn
        identity["accountId"] = caller.account
        identity["principalType"] = caller.kind
        served_identity(event, caller)  # kmsctl serve's fields, for a served request
        if isinstance(error, E.DryRunOperationException):
            event["errorCode"] = "DryRunOperation"
        denied = getattr(error, "denied_action", None)
        if denied:
            event["additionalEventData"] = {"deniedAction": denied}

    def _authorize(self, name: str, kwargs: dict[str, Any]) -> None:
        for token in kwargs.get("GrantTokens") or []:
            self._grant_of_token(token)
        if len(kwargs.get("GrantTokens") or []) > 10:
            raise E.validation_error("...", "grantTokens", "Member must have length less than or equal to 10")
        if name in SELF_CHECKED:
            return
        from kmsctl.service.access_rules import authorize

        authorize(self, name, kwargs)

    # ----- one check -----
    def _key_policy(self, key: Mapping[str, Any]) -> Policy:
        text = key.get("Policy") or default_key_policy(self.account)
        return parse_policy(text, "key")

    def _identity_policies(self, caller: Caller) -> list[Policy]:
        if caller.is_root:
            return []
        doc = self._principal(caller.arn, shared=True)
        if doc is None:  # deleted since this client started acting as it
            raise E.AccessDeniedException(f"The principal {caller.arn} no longer exists in this keyring")
        policy = doc.get("Policy")
        return [parse_policy(policy, "identity", doc.get("PolicyName") or "inline")] if policy else []

    def _decide(
        self,
        action: str,
        key: Mapping[str, Any] | None,
        *,
        caller: Caller | None = None,
        resource: str | None = None,
        grants: bool = True,
        extra: Mapping[str, Any] | None = None,
        exact: bool = False,
        **request: Any,
    ) -> Decision | None:
        """The decision for ``caller`` (default: this client's) doing ``action`` on ``key``
        (None: an account-level action, or ``resource`` alone, judged by identity policies).
        ``request`` goes to ``kms_request_context`` (encryption_context, parameters,
        request_alias ...); ``extra`` sets condition keys outright. None means allowed
        by the short path (the account root under the default key policy), which
        ``exact`` (a simulation wants the reasons) turns off."""
        caller = caller or self.caller
        own_root = caller.is_root and caller.account == self.account
        if own_root and not exact and (key is None or not key.get("Policy")):
            return None
        identity = self._identity_policies(caller)
        policy = self._key_policy(key) if key is not None else None
        if key is not None and _mentions(policy, identity, "resourcealiases"):
            request["key_aliases"] = self._aliases_of(key["KeyId"])
        context = kms_request_context(
            action,
            key=key,
            key_tags=(key or {}).get("Tags"),
            source_ip=caller.source_ip,
            secure_transport=caller.secure_transport,
            now=datetime.fromtimestamp(self.clock(), UTC),
            user_agent=caller.user_agent,
            region=self.region,
            **request,
        )
        context.update(extra or {})
        target = self.key_arn(key["KeyId"]) if key is not None else resource or "*"
        req = Request(
            action,
            target,
            caller.arn,
            account=caller.account,
            principal_type=caller.principal_type,
            principal_tags=dict(caller.tags),
            context=context,
        )
        key_grants = self._grants(key["KeyId"]) if key is not None and grants else ()
        return evaluate(req, policy, identity, key_grants)

    def _require(self, action: str, key: Mapping[str, Any] | None, **kwargs: Any) -> Decision | None:
        """``decide``, raising AccessDeniedException (naming the refused action) on a denial."""
        decision = self._decide(action, key, **kwargs)
        if decision is not None and not decision.allowed:
            exc = E.AccessDeniedException(decision.access_denied_message())
            exc.denied_action = action  # type: ignore[attr-defined]
            raise exc
        if key is not None:
            self._last_decision = decision
        return decision

    def _aliases_of(self, key_id: str) -> list[str]:
        rows = self.db.cached("SELECT name, doc, mac FROM aliases WHERE key_id = ? ORDER BY name", (key_id,))
        names = []
        for name, doc, mac in rows:  # verified, never a forged row
            alias = self._shared_doc(ALIAS_KIND, doc, mac, f"alias {name}")
            if (alias.get("AliasName"), alias.get("TargetKeyId")) != (name, key_id):
                raise E.IntegrityError(f"{self.keyring.path}: alias {name} fails its integrity check")
            names.append(name)
        return names


_MENTIONS: dict[tuple[str, str], bool] = {}


def _mentions(policy: Policy | None, identity: list[Policy], word: str) -> bool:
    """Does any of the policies name ``word`` (a condition key, lower case)? Cached per text."""
    for p in [*identity, *([policy] if policy is not None else [])]:
        found = _MENTIONS.get((p.text, word))
        if found is None:
            if len(_MENTIONS) >= 256:
                _MENTIONS.clear()
            found = _MENTIONS[(p.text, word)] = word in p.text.lower()
        if found:
            return True
    return False
