"""Key policies: PutKeyPolicy, GetKeyPolicy, ListKeyPolicies, and kmsctl's own
ResetKeyPolicy (the owner's way back from a lockout) and SimulatePolicy.

A key's policy is part of its MACed document; a key without one has AWS's
default key policy. Validation is AWS's: the document must parse
(MalformedPolicyDocumentException naming the problem; over 32 KB
LimitExceededException), every IAM user and role it names must exist in the
keyring, and, unless BypassPolicyLockoutSafetyCheck is set, the new policy
must let the caller call PutKeyPolicy later. Nothing is stored unless all of
that passes, so the old policy stays in force on any error.
"""

from __future__ import annotations

from typing import Any

from kmsctl import errors as E
from kmsctl.policy import IAM_ONLY_ACTIONS, default_key_policy
from kmsctl.service.access import _ROOT_RE, AccessBase, Caller, parse_policy
from kmsctl.service.base import operation

_LOCKOUT = (
    "The new key policy will not allow you to update the key policy in the future "
    "(it must allow {arn} kms:PutKeyPolicy; BypassPolicyLockoutSafetyCheck skips this check)"
)
# SimulatePolicy's Request keys that are not condition keys but request parameters
_REQUEST_ALIAS = "requestalias"
# multivalued keys and list parameters: a --request value for them is comma-separated
_LISTS = frozenset(
    ["operations", "kms:grantoperations", "kms:encryptioncontextkeys", "kms:resourcealiases", "aws:tagkeys"]
)


class KeyPolicyOps(AccessBase):
    def _check_key_policy(self, text: Any, key: dict[str, Any], bypass: Any) -> None:
        if not isinstance(text, str):
            raise E.MalformedPolicyDocumentException("The policy must be a JSON string")
        if not isinstance(bypass, bool):
            raise E.ValidationException("BypassPolicyLockoutSafetyCheck must be a boolean")
        policy = parse_policy(text, "key")
        for arn in policy.principals():
            if not arn.startswith("arn:") or _ROOT_RE.fullmatch(arn):
                continue  # a service principal, an account: nothing to look up
            from kmsctl.policy.document import role_of_session

            stored = role_of_session(arn) or arn
            if self._principal(stored) is None:
                raise E.MalformedPolicyDocumentException(
                    f"Policy contains a statement with one or more invalid principals: {arn} does not exist "
                    f"in this keyring (create it with 'kmsctl principal create')"
                )
        if bypass:
            return
        decision = self._decide("kms:PutKeyPolicy", {**key, "Policy": text}, exact=True, grants=False, parameters={})
        if decision is not None and not decision.allowed:
            raise E.MalformedPolicyDocumentException(_LOCKOUT.format(arn=self.caller.arn))

    @staticmethod
    def _policy_name(name: Any) -> str:
        if name != "default":
            raise E.ValidationException(f"PolicyName must be 'default' (a key has one policy), not {name!r}")
        return "default"

    @operation("PutKeyPolicy", writes=True)
    def put_key_policy(
        self,
        *,
        KeyId: str,
        Policy: str,
        PolicyName: str = "default",
        BypassPolicyLockoutSafetyCheck: bool = False,
    ) -> dict[str, Any]:
        self._policy_name(PolicyName)
        key = self._key(KeyId, aliases=False)
        self._check_key_policy(Policy, key, BypassPolicyLockoutSafetyCheck)
        key["Policy"] = Policy
        self._save_key(key)
        return {}

    @operation("GetKeyPolicy")
    def get_key_policy(self, *, KeyId: str, PolicyName: str = "default") -> dict[str, Any]:
        self._policy_name(PolicyName)
        key = self._key(KeyId, aliases=False)
        return {"Policy": key.get("Policy") or default_key_policy(self.account), "PolicyName": "default"}

    @operation("ListKeyPolicies")
    def list_key_policies(self, *, KeyId: str, Limit: int | None = None, Marker: str | None = None) -> dict[str, Any]:
        self._limit("ListKeyPolicies", Limit)
        if Marker is not None:
            self._unmarker("ListKeyPolicies", Marker, str)  # there is never a second page
        self._key(KeyId, aliases=False)
        return {"PolicyNames": ["default"], "Truncated": False}

    @operation("ResetKeyPolicy", writes=True)
    def reset_key_policy(self, *, KeyId: str) -> dict[str, Any]:
        """Put the default key policy back: the account root's, locally only, whatever the policy says."""
        caller = self.caller
        if not (caller.is_root and caller.account == self.account and caller.local):
            exc = E.AccessDeniedException(
                f"User: {caller.arn} is not authorized to perform: kmsctl:ResetKeyPolicy "
                f"(only the account root, on the local keyring)"
            )
            exc.denied_action = "kmsctl:ResetKeyPolicy"  # type: ignore[attr-defined]
            raise exc
        key = self._key(KeyId, aliases=False)
        if key.get("KeyManager") == "AWS":
            raise E.UnsupportedOperationException(f"{self.key_arn(key['KeyId'])} is an AWS managed key")
        key.pop("Policy", None)
        self._save_key(key)
        return {"KeyId": self.key_arn(key["KeyId"]), "Policy": default_key_policy(self.account)}

    @operation("SimulatePolicy")
    def simulate_policy(
        self,
        *,
        KeyId: str,
        Action: str,
        Principal: str | None = None,
        EncryptionContext: dict[str, str] | None = None,
        Request: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The decision on ``Action`` by ``Principal`` (default: the caller) on ``KeyId``,
        with its reasons, without doing anything. ``Request`` holds request values:
        parameters (``EncryptionAlgorithm``), ``RequestAlias``, or condition keys (``aws:SourceIp``)."""
        if not isinstance(Action, str) or not Action.lower().startswith("kms:") or len(Action) < 5:
            raise E.ValidationException(f"Action must be kms:OPERATION, not {Action!r}")
        action = "kms:" + Action[4:]
        caller: Caller = self._caller_for(Principal) if Principal else self.caller
        params: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        request_alias = KeyId if isinstance(KeyId, str) and "alias/" in KeyId else None
        for k, raw in (Request or {}).items():
            value: Any = raw
            if k.lower() in _LISTS and isinstance(raw, str):
                value = [item for item in raw.split(",") if item]
            if ":" in k:
                extra[k] = _typed(value)
            elif k.lower() == _REQUEST_ALIAS:
                request_alias = raw
            else:
                params[k] = _typed(value)
        key = None if action in IAM_ONLY_ACTIONS else self._key(KeyId)
        decision = self._decide(
            action,
            key,
            caller=caller,
            exact=True,
            extra=extra,
            parameters=params,
            encryption_context=EncryptionContext,
            request_alias=request_alias,
        )
        assert decision is not None
        out = decision.to_dict()
        out["Principal"] = caller.arn
        out["Action"] = action
        out["Resource"] = decision.request.resource
        if not decision.allowed:
            out["Message"] = decision.access_denied_message()
        return out


def _typed(value: Any) -> Any:
    """A --request value: numbers and booleans as such, lists comma-separated stay text."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value.isdigit():
        return int(value)
    return value
