"""What each operation is authorized against: its key (or keys), its action, its request keys.

A key is found here as the operation will find it; when it cannot be found
the check is skipped and the operation fails with its own error
(NotFoundException, InvalidCiphertextException), so nothing that the check
did not see can ever be acted on. A caller from another account must name a
key by ARN: a bare key ID or alias resolves in the caller's own account,
which holds no keys here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl.service.access import ACCOUNT_OPS, ALIAS_OPS, KEY_OPS

if TYPE_CHECKING:
    from kmsctl.service.access import AccessBase

# request parameters that are condition keys (kms_request_context picks what applies)
_PARAMETERS = (
    "EncryptionAlgorithm",
    "SigningAlgorithm",
    "MessageType",
    "MacAlgorithm",
    "KeyAgreementAlgorithm",
    "KeyPairSpec",
    "KeySpec",
    "KeyUsage",
    "Origin",
    "MultiRegion",
    "BypassPolicyLockoutSafetyCheck",
    "PendingWindowInDays",
    "RotationPeriodInDays",
    "Operations",
    "GranteePrincipal",
    "RetiringPrincipal",
    "Constraints",
    "WrappingAlgorithm",
    "WrappingKeySpec",
    "ExpirationModel",
)
# import of key material: operations on one key, named by key ID or ARN only
IMPORT_OPS = frozenset({"GetParametersForImport", "ImportKeyMaterial", "DeleteImportedKeyMaterial"})
# kmsctl's own operations on principals, as the IAM actions they stand for
IAM_ACTIONS = {
    "CreatePrincipal": "Create{Kind}",
    "GetPrincipal": "Get{Kind}",
    "ListPrincipals": "List{Kind}s",
    "DeletePrincipal": "Delete{Kind}",
    "TagPrincipal": "Tag{Kind}",
    "UntagPrincipal": "Untag{Kind}",
    "PutPrincipalPolicy": "Put{Kind}Policy",
    "GetPrincipalPolicy": "Get{Kind}Policy",
    "DeletePrincipalPolicy": "Delete{Kind}Policy",
    "CreateAccessKey": "CreateAccessKey",
    "ListAccessKeys": "ListAccessKeys",
    "DeleteAccessKey": "DeleteAccessKey",
}


def _key(kms: AccessBase, ref: Any, aliases: bool) -> dict[str, Any] | None:
    """The key ``ref`` names, or None when the operation will fail to find it."""
    if not isinstance(ref, str):
        return None
    if kms.caller.account != kms.account and not ref.startswith("arn:"):
        raise E.NotFoundException(
            f"Key '{ref}' does not exist in account {kms.caller.account}",
            hint="name another account's key by its ARN",
        )
    try:
        return kms._key_for_access(ref, aliases)
    except E.KMSError:
        return None


def _alias_name(ref: Any) -> str | None:
    if isinstance(ref, str) and (ref.startswith("alias/") or ":alias/" in ref):
        return "alias/" + ref.split(":alias/", 1)[-1].removeprefix("alias/")
    return None


def _blob_key(kms: AccessBase, blob: Any, algorithm: Any, key_ref: Any) -> dict[str, Any] | None:
    """The key a Decrypt (or ReEncrypt's source) uses: KeyId for RSA, else the ciphertext's own."""
    if algorithm not in (None, "SYMMETRIC_DEFAULT"):
        return _key(kms, key_ref, True)
    from kmsctl.crypto import blob as B

    try:
        key_id = B.parse(bytes(blob)).key_id
    except (B.MalformedBlob, TypeError, ValueError):
        return None
    if key_ref is not None:
        _key(kms, key_ref, True)  # a foreign caller's bare key ID is refused as for any key
    return kms._key_for_access(key_id)


def _params(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {p: kwargs[p] for p in _PARAMETERS if p in kwargs}


def _tags(kwargs: dict[str, Any]) -> dict[str, str]:
    tags = kwargs.get("Tags")
    if not isinstance(tags, list):
        return {}
    return {
        t["TagKey"]: t.get("TagValue", "") for t in tags if isinstance(t, dict) and isinstance(t.get("TagKey"), str)
    }


def authorize(kms: AccessBase, name: str, kwargs: dict[str, Any]) -> None:
    caller = kms.caller
    action = f"kms:{name}"
    if name in ALIAS_OPS or name in KEY_OPS or name in IMPORT_OPS:
        ref = kwargs.get("KeyId")
        key = _key(kms, ref, name in ALIAS_OPS)
        if key is None:
            return
        ec = kwargs.get("EncryptionContext")
        kms._require(
            action,
            key,
            request_alias=_alias_name(ref) if name in ALIAS_OPS else None,
            encryption_context=ec if isinstance(ec, dict) else None,
            parameters=_params(kwargs),
            request_tags=_tags(kwargs) if name == "TagResource" else None,
            tag_keys=kwargs.get("TagKeys") if name == "UntagResource" else None,
        )
        return
    if name == "Decrypt":
        key = _blob_key(kms, kwargs.get("CiphertextBlob"), kwargs.get("EncryptionAlgorithm"), kwargs.get("KeyId"))
        if key is not None:
            ec = kwargs.get("EncryptionContext")
            kms._require(
                action,
                key,
                request_alias=_alias_name(kwargs.get("KeyId")),
                encryption_context=ec if isinstance(ec, dict) else None,
                parameters=_params(kwargs),
            )
        return
    if name == "ReEncrypt":
        source = _blob_key(
            kms, kwargs.get("CiphertextBlob"), kwargs.get("SourceEncryptionAlgorithm"), kwargs.get("SourceKeyId")
        )
        dest = _key(kms, kwargs.get("DestinationKeyId"), True)
        same = source is not None and dest is not None and source["KeyId"] == dest["KeyId"]
        for which, key, ec, alg, ref in (
            ("From", source, "SourceEncryptionContext", "SourceEncryptionAlgorithm", "SourceKeyId"),
            ("To", dest, "DestinationEncryptionContext", "DestinationEncryptionAlgorithm", "DestinationKeyId"),
        ):
            if key is None:
                continue
            context = kwargs.get(ec)
            params = {"EncryptionAlgorithm": kwargs[alg]} if kwargs.get(alg) else {}
            kms._require(
                f"kms:ReEncrypt{which}",
                key,
                request_alias=_alias_name(kwargs.get(ref)),
                encryption_context=context if isinstance(context, dict) else None,
                parameters=params,
                reencrypt_on_same_key=same,
            )
        return
    if name in ("CreateAlias", "UpdateAlias", "DeleteAlias"):
        _authorize_alias(kms, name, kwargs)
        return
    if name in ACCOUNT_OPS:
        if caller.account != kms.account:
            raise _denied(kms, action, f"account {kms.account}'s keyring, not {caller.account}'s")
        kms._require(action, None, parameters=_params(kwargs), request_tags=_tags(kwargs))
        return
    if name in IAM_ACTIONS:
        from kmsctl.service.principals import iam_resource

        kind, resource = iam_resource(kms, name, kwargs)
        kms._require("iam:" + IAM_ACTIONS[name].format(Kind=kind), None, resource=resource)
        return
    # kmsctl's own operations (Maintain, SimulatePolicy, ResetKeyPolicy ...): the
    # identity policy decides, as for an account-level action; the root may
    if caller.account != kms.account:
        raise _denied(kms, f"kmsctl:{name}", f"account {kms.account}'s keyring")
    kms._require(f"kmsctl:{name}", None)


def _authorize_alias(kms: AccessBase, name: str, kwargs: dict[str, Any]) -> None:
    """Alias operations need the action on the alias (identity policy) and on each key involved."""
    alias = kwargs.get("AliasName")
    if not isinstance(alias, str) or not alias.startswith("alias/"):
        return
    action = f"kms:{name}"
    if kms.caller.account != kms.account:
        raise _denied(kms, action, "an alias of another account")
    kms._require(action, None, resource=kms.alias_arn(alias))
    keys = []
    if name != "CreateAlias":
        keys.append(kms._key_for_access(alias))
    if name != "DeleteAlias":
        keys.append(_key(kms, kwargs.get("TargetKeyId"), False))
    for key in keys:
        if key is not None:
            kms._require(action, key)


def _denied(kms: AccessBase, action: str, what: str) -> E.KMSError:
    exc = E.AccessDeniedException(f"User: {kms.caller.arn} is not authorized to perform: {action} on {what}")
    exc.denied_action = action  # type: ignore[attr-defined]
    return exc
