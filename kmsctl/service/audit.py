"""Audit events in CloudTrail's shape, and the audit operations.

Every operation that passes the dispatch point becomes one record (see
``LocalKMSBase._dispatch``). A record names the operation, who ran it, which
key, the parameters and response elements that are safe to log, and the
error for a failure. What is never logged: plaintext, ciphertext bodies,
signatures, MACs, data keys, shared secrets, passphrases. Blobs are replaced
by their length, so a record still says how much was processed; so are the
values of the fields that carry such data whatever their type (a str
Plaintext is refused by the operation, but its failure is recorded), and,
in a failure record, the text of any parameter no operation takes (a
misspelt ``PlainText=``).
"""

from __future__ import annotations

import functools
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from kmsctl import errors as E
from kmsctl.keyring.audit import event_time_text
from kmsctl.text import without_surrogates

EVENT_VERSION = "1.08"
EVENT_SOURCE = "kms.amazonaws.com"
# operations that change nothing (CloudTrail's readOnly)
READ_ONLY = frozenset(
    {
        "DescribeKey", "ListKeys", "ListAliases", "ListResourceTags", "GetKeyRotationStatus", "ListKeyRotations",
        "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom",
        "Sign", "Verify", "GenerateMac", "VerifyMac", "GetPublicKey", "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext", "DeriveSharedSecret", "Encapsulate", "Decapsulate",
    }
)  # fmt: skip
_KEY_FIELDS = ("KeyId", "TargetKeyId", "DestinationKeyId", "SourceKeyId")
_MAX_VALUE = 512  # longer strings (descriptions, policies) are cut: a log is not a store
# request and response fields that carry secret or bulk data: only their length is logged
_OPAQUE = frozenset(
    {
        "plaintext", "ciphertextblob", "message", "signature", "mac", "sharedsecret", "privatekeyplaintext",
        "privatekeyciphertextblob", "ciphertextforrecipient", "encryptedkeymaterial", "importtoken", "publickey",
        "passphrase", "sessiontoken", "sharedsecretciphertextblob", "secretaccesskey", "granttoken",
        "keystorepassword", "pin",
    }
)  # fmt: skip


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _safe(value: Any) -> Any:
    """A value as it may appear in a record: bytes become their length."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"length": len(bytes(value))}
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):  # nested secrets too (AccessKey.SecretAccessKey)
        return {
            without_surrogates(str(k)): _length(v) if str(k).lower() in _OPAQUE else _safe(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value[:100]]
    if isinstance(value, str):  # text that was not UTF-8 is kept escaped: the record must encode
        return without_surrogates(value[:_MAX_VALUE] + "…" if len(value) > _MAX_VALUE else value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return without_surrogates(str(value))


def _length(value: Any) -> dict[str, Any]:
    """What a record keeps of a value that must not be logged."""
    if isinstance(value, str):
        return {"length": len(value.encode("utf-8", "replace"))}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"length": len(bytes(value))}
    return {"omitted": type(value).__name__}


@functools.cache
def _parameters() -> frozenset[str]:
    """Every parameter name some operation takes (looked up only for a failed
    call's record, the one kind whose request may hold other names)."""
    import inspect

    from kmsctl.service import LocalKMS

    names: set[str] = set()
    for attr in dir(LocalKMS):
        fn = getattr(LocalKMS, attr)
        if hasattr(fn, "operation_name"):
            names.update(inspect.signature(fn).parameters)
    return frozenset(names)


def _elements(data: dict[str, Any] | None, *, unknown_opaque: bool = False) -> dict[str, Any] | None:
    if not data:
        return None
    out = {}
    for k, v in data.items():
        if k in ("GrantTokens", "DryRun"):
            continue
        hidden = str(k).lower() in _OPAQUE or (
            unknown_opaque and k not in _parameters() and not isinstance(v, (bool, int, float, datetime, type(None)))
        )
        out[without_surrogates(_camel(str(k)))] = _length(v) if hidden else _safe(v)
    return out


def _identity() -> dict[str, Any]:
    """The local user's identity for a record: looked up once a process (three system
    calls and /etc/passwd otherwise, for every record), again in a forked child."""
    global _LOCAL
    if _LOCAL is None:
        uid = os.getuid()
        try:
            import pwd

            user = pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):
            user = str(uid)
        _LOCAL = {
            "type": "LocalUser",
            "principalId": str(uid),
            "userName": user,
            "hostName": os.uname().nodename,
            "processId": os.getpid(),
        }
    return dict(_LOCAL)  # the record's own: served_identity changes it


def _forget_local() -> None:
    global _LOCAL
    _LOCAL = None


_LOCAL: dict[str, Any] | None = None
os.register_at_fork(after_in_child=_forget_local)  # the child's processId (kmsctl serve's workers)


def build_event(
    name: str,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    error: E.KMSError | None,
    *,
    when: float,
    region: str,
    account: str,
    key_arn: str | None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": _identity(),
        "eventTime": event_time_text(when),
        "eventSource": EVENT_SOURCE,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "localhost",
        "userAgent": "kmsctl",
        "requestParameters": _elements(request, unknown_opaque=isinstance(error, E.ValidationException)),
        "responseElements": _elements(response),
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": name in READ_ONLY,
        "resources": [{"accountId": account, "type": "AWS::KMS::Key", "ARN": without_surrogates(key_arn)}]
        if key_arn
        else [],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error is not None:
        event["errorCode"] = error.code
        event["errorMessage"] = without_surrogates(error.message)
    return event


def served_identity(event: dict[str, Any], caller: Any) -> None:
    """A served request's record (``kmsctl serve``; ``caller`` an access ``Caller``): who
    signed it, or type "Unknown" when its signature was refused, from which address,
    with which client, under which request ID; the local user's fields do not apply.
    Nothing for a local caller."""
    if caller.local:
        return
    identity = event["userIdentity"]
    for local_only in ("userName", "hostName", "processId", "principalId"):
        identity.pop(local_only, None)
    if caller.authenticated:
        identity["type"] = {"IAMUser": "IAMUser", "Role": "AssumedRole"}.get(caller.kind, "Root")
    else:
        identity.clear()
        identity["type"] = "Unknown"
    if caller.access_key_id:
        identity["accessKeyId"] = caller.access_key_id
    if caller.source_ip:
        event["sourceIPAddress"] = caller.source_ip
    if caller.user_agent:
        event["userAgent"] = without_surrogates(caller.user_agent[:256])
    if caller.request_id:
        event["requestID"] = caller.request_id
    if caller.secure_transport is not None:
        event["tlsDetails"] = {"secureTransport": caller.secure_transport}


def key_of(kms: Any, request: dict[str, Any], response: dict[str, Any] | None) -> str | None:
    """The key an event is about, best effort and never failing: from the
    response, else the request's key reference, else the ciphertext's header."""
    try:
        if response:
            if isinstance(response.get("KeyMetadata"), dict):
                return str(response["KeyMetadata"]["Arn"])
            if isinstance(response.get("KeyId"), str) and response["KeyId"].startswith("arn:"):
                return str(response["KeyId"])
        for field in _KEY_FIELDS:
            ref = request.get(field)
            if isinstance(ref, str):
                kind, value = kms._parse_ref(ref)
                if kind == "alias":
                    rows = kms.db.query("SELECT key_id FROM aliases WHERE name = ?", (value,))
                    value = rows[0][0] if rows else None
                if value:
                    return str(kms.key_arn(value))
        blob = request.get("CiphertextBlob")
        if isinstance(blob, (bytes, bytearray)):
            from kmsctl.crypto.blob import parse

            return str(kms.key_arn(parse(bytes(blob)).key_id))
    except Exception:  # noqa: S110 - an event without a key beats no event
        pass
    return None
