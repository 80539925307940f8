"""The request context of a KMS call, and the default key policy.

``kms_request_context`` turns what a KMS operation knows (the key's metadata,
tags and aliases, the request's parameters and encryption context, the
transport) into the condition keys AWS documents for that operation, so the
dispatch point makes one call. Key-property keys (``kms:KeySpec``,
``aws:ResourceTag/*``, ``kms:ResourceAliases`` ...) exist only on operations
that act on a key; request keys only on the operations that take the
parameter. A parameter left to its default counts as present with the default
value, as AWS documents for ``kms:KeySpec`` and ``kms:EncryptionAlgorithm``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kmsctl.policy.evaluate import EC_OPERATIONS, IAM_ONLY_ACTIONS

DEFAULT_KEY_POLICY = (
    '{\n  "Version" : "2012-10-17",\n  "Id" : "key-default-1",\n  "Statement" : [ {\n'
    '    "Sid" : "Enable IAM User Permissions",\n    "Effect" : "Allow",\n    "Principal" : {\n'
    '      "AWS" : "arn:aws:iam::{account}:root"\n    },\n    "Action" : "kms:*",\n'
    '    "Resource" : "*"\n  } ]\n}'
)


def default_key_policy(account: str) -> str:
    """The policy AWS gives a key created without one, byte for byte as GetKeyPolicy returns it."""
    return DEFAULT_KEY_POLICY.replace("{account}", account)


_EC_OPS = EC_OPERATIONS | {"CreateGrant", "RetireGrant"}
_ENC_ALG_OPS = EC_OPERATIONS
_ALIAS_OPS = EC_OPERATIONS | {
    "Sign",
    "Verify",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "Encapsulate",
    "Decapsulate",
    "DescribeKey",
    "GetPublicKey",
}
# parameter -> (condition key, operations, default when the request omits it)
_PARAMETERS: tuple[tuple[str, str, frozenset[str], Any], ...] = (
    ("EncryptionAlgorithm", "kms:EncryptionAlgorithm", _ENC_ALG_OPS, None),
    ("SigningAlgorithm", "kms:SigningAlgorithm", frozenset({"Sign", "Verify"}), None),
    ("MessageType", "kms:MessageType", frozenset({"Sign", "Verify"}), "RAW"),
    ("MacAlgorithm", "kms:MacAlgorithm", frozenset({"GenerateMac", "VerifyMac"}), None),
    ("KeyAgreementAlgorithm", "kms:KeyAgreementAlgorithm", frozenset({"DeriveSharedSecret"}), "ECDH"),
    (
        "KeyPairSpec",
        "kms:DataKeyPairSpec",
        frozenset({"GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"}),
        None,
    ),
    ("KeySpec", "kms:KeySpec", frozenset({"CreateKey"}), "SYMMETRIC_DEFAULT"),
    ("KeyUsage", "kms:KeyUsage", frozenset({"CreateKey"}), "ENCRYPT_DECRYPT"),
    ("Origin", "kms:KeyOrigin", frozenset({"CreateKey"}), "AWS_KMS"),
    ("MultiRegion", "kms:MultiRegion", frozenset({"CreateKey"}), False),
    (
        "BypassPolicyLockoutSafetyCheck",
        "kms:BypassPolicyLockoutSafetyCheck",
        frozenset({"CreateKey", "PutKeyPolicy"}),
        None,
    ),
    (
        "PendingWindowInDays",
        "kms:ScheduleKeyDeletionPendingWindowInDays",
        frozenset({"ScheduleKeyDeletion"}),
        30,
    ),
    ("RotationPeriodInDays", "kms:RotationPeriodInDays", frozenset({"EnableKeyRotation"}), 365),
    ("Operations", "kms:GrantOperations", frozenset({"CreateGrant"}), None),
    ("GranteePrincipal", "kms:GranteePrincipal", frozenset({"CreateGrant"}), None),
    ("RetiringPrincipal", "kms:RetiringPrincipal", frozenset({"CreateGrant"}), None),
    ("WrappingAlgorithm", "kms:WrappingAlgorithm", frozenset({"GetParametersForImport"}), None),
    ("WrappingKeySpec", "kms:WrappingKeySpec", frozenset({"GetParametersForImport"}), None),
    ("ExpirationModel", "kms:ExpirationModel", frozenset({"ImportKeyMaterial"}), "KEY_MATERIAL_EXPIRES"),
)
_KEY_PROPERTIES = (
    ("KeySpec", "kms:KeySpec"),
    ("KeyUsage", "kms:KeyUsage"),
    ("Origin", "kms:KeyOrigin"),
    ("MultiRegion", "kms:MultiRegion"),
)


def _op(operation: str) -> str:
    return operation.split(":", 1)[-1]


def kms_request_context(
    operation: str,
    *,
    key: Mapping[str, Any] | None = None,
    key_tags: Mapping[str, str] | None = None,
    key_aliases: Sequence[str] | None = None,
    request_alias: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    request_tags: Mapping[str, str] | None = None,
    tag_keys: Sequence[str] | None = None,
    via_service: str | None = None,
    source_ip: str | None = None,
    secure_transport: bool | None = None,
    now: datetime | None = None,
    user_agent: str | None = None,
    region: str | None = None,
    grant_is_for_aws_resource: bool = False,
    reencrypt_on_same_key: bool | None = None,
) -> dict[str, Any]:
    """The condition keys of one KMS request (principal keys come from ``Request`` itself).

    ``key`` is the key's metadata (``KeySpec``, ``KeyUsage``, ``Origin``,
    ``MultiRegion``), ``parameters`` the request's parameters by their AWS
    names (``EncryptionAlgorithm``, ``Operations``, ``Constraints`` ...),
    ``request_alias`` the alias name the caller used (``alias/x``; an alias ARN
    is reduced to its name), ``request_tags``/``tag_keys`` the tags a
    CreateKey, TagResource or UntagResource request carries.
    """
    op = _op(operation)
    params = dict(parameters or {})
    ctx: dict[str, Any] = {}
    if key is not None and f"kms:{op}" not in IAM_ONLY_ACTIONS:
        for prop, name in _KEY_PROPERTIES:
            if key.get(prop) is not None:
                ctx[name] = key[prop]
        for k, v in (key_tags or {}).items():
            ctx[f"aws:ResourceTag/{k}"] = v
        aliases = list(key_aliases or [])
        if 0 < len(aliases) <= 50:  # AWS: ineffective past the 50-aliases quota
            ctx["kms:ResourceAliases"] = aliases
        if via_service:
            ctx["kms:ViaService"] = via_service
    if request_alias and op in _ALIAS_OPS:
        ctx["kms:RequestAlias"] = "alias/" + request_alias.split(":alias/", 1)[-1].removeprefix("alias/")
    for param, name, ops, default in _PARAMETERS:
        if op in ops:
            value = params.get(param, default)
            if value is not None:
                ctx[name] = list(value) if isinstance(value, (list, tuple)) else value
    symmetric = key is None or key.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    if op in _ENC_ALG_OPS and "kms:EncryptionAlgorithm" not in ctx and symmetric:
        ctx["kms:EncryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
    ec = encryption_context
    if op == "CreateGrant" and ec is None:  # CreateGrant's keys come from its constraints
        constraints = params.get("Constraints") or {}
        ec = constraints.get("EncryptionContextEquals") or constraints.get("EncryptionContextSubset")
        kinds = [c for c in ("EncryptionContextEquals", "EncryptionContextSubset") if constraints.get(c) is not None]
        if kinds:
            ctx["kms:GrantConstraintType"] = kinds[0]
    if op in _EC_OPS and ec:
        for k, v in ec.items():
            ctx[f"kms:EncryptionContext:{k}"] = v
        ctx["kms:EncryptionContextKeys"] = list(ec)
    if op in ("CreateGrant", "ListGrants", "RevokeGrant"):
        ctx["kms:GrantIsForAWSResource"] = grant_is_for_aws_resource
    if op in ("ReEncryptFrom", "ReEncryptTo") and reencrypt_on_same_key is not None:
        ctx["kms:ReEncryptOnSameKey"] = reencrypt_on_same_key
    if op in ("CreateKey", "TagResource", "UntagResource"):
        for k, v in (request_tags or {}).items():
            ctx[f"aws:RequestTag/{k}"] = v
        keys = list(tag_keys) if tag_keys is not None else list(request_tags or {})
        if keys:
            ctx["aws:TagKeys"] = keys
    if source_ip:
        ctx["aws:SourceIp"] = source_ip
    if secure_transport is not None:
        ctx["aws:SecureTransport"] = secure_transport
    when = (now or datetime.now(UTC)).astimezone(UTC)
    ctx["aws:CurrentTime"] = when
    ctx["aws:EpochTime"] = int(when.timestamp())
    if user_agent:
        ctx["aws:UserAgent"] = user_agent
    if region:
        ctx["aws:RequestedRegion"] = region
    return ctx
