"""LocalKMS, the boto3-shaped client, checked against AWS KMS behaviour
(its operations, errors, limits and key state rules; README's exit code table)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kmsctl import errors as E

REGION, ACCOUNT = "us-east-1", "111122223333"
START = datetime.fromtimestamp(1_800_000_000, UTC)  # conftest's FakeClock start
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
OVERHEAD = 110  # blob = header 82 (with the salt) + nonce 12 + plaintext + GCM tag 16
NOT_FOUND_OR_ARN = (E.NotFoundException, E.InvalidArnException)


def key_arn(key_id: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:kms:{region}:{account}:{name}"


def tag(key: str, value: str = "") -> dict[str, str]:
    return {"TagKey": key, "TagValue": value}


def raises(exc: type[E.KMSError], fn: Any, **kwargs: Any) -> E.KMSError:
    """Call ``fn`` and require exactly ``exc`` (not a subclass, not a bare Python error)."""
    with pytest.raises(exc) as info:
        fn(**kwargs)
    assert type(info.value) is exc
    return info.value


def new_key(kms: Any, **kwargs: Any) -> str:
    return kms.create_key(**kwargs)["KeyMetadata"]["KeyId"]


def meta(kms: Any, ref: str) -> dict[str, Any]:
    return kms.describe_key(KeyId=ref)["KeyMetadata"]


def alias_names(kms: Any, **kwargs: Any) -> list[str]:
    return [a["AliasName"] for a in kms.list_aliases(Limit=100, **kwargs)["Aliases"]]


def walk(list_fn: Any, field: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Follow NextMarker to the end, checking Truncated/NextMarker on every page."""
    items: list[dict[str, Any]] = []
    page = list_fn(**kwargs)
    while True:
        items += page[field]
        assert page["Truncated"] == bool(page.get("NextMarker"))
        if not page["Truncated"]:
            return items
        assert len(items) < 10_000, "pagination never ends"
        page = list_fn(**kwargs, Marker=page["NextMarker"])


def forge_marker(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


@pytest.fixture
def key(kms: Any) -> str:
    return new_key(kms)


# ----- errors and exit codes -----
EXIT_CODES = {  # README's exit code table
    1: "KMSInvalidSignatureException KMSInvalidMacException",
    2: "ValidationException InvalidAliasNameException InvalidArnException InvalidMarkerException "
    "MalformedPolicyDocumentException TagException InvalidKeyUsageException",
    3: "NotFoundException",
    4: "DisabledException KMSInvalidStateException UnsupportedOperationException",
    5: "AccessDeniedException InvalidGrantTokenException",
    6: "InvalidCiphertextException IncorrectKeyException",
    7: "AlreadyExistsException LimitExceededException",
}


@pytest.mark.parametrize(("name", "code"), [(n, c) for c, names in EXIT_CODES.items() for n in names.split()])
def test_error_exit_codes(name: str, code: int) -> None:
    cls = E.by_name(name)
    assert (cls.__name__, cls.exit_code, cls("m").code) == (name, code, name)


# ----- CreateKey -----
def test_create_key_default_metadata(kms: Any) -> None:
    md = kms.create_key()["KeyMetadata"]
    assert re.fullmatch(UUID_RE, md["KeyId"])
    assert re.fullmatch(r"[0-9a-f]{64}", md["CurrentKeyMaterialId"])
    assert md == {
        "AWSAccountId": ACCOUNT, "KeyId": md["KeyId"], "Arn": key_arn(md["KeyId"]), "CreationDate": START,
        "Enabled": True, "Description": "", "KeyUsage": "ENCRYPT_DECRYPT", "KeyState": "Enabled",
        "Origin": "AWS_KMS", "KeyManager": "CUSTOMER", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT", "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False,
        "CurrentKeyMaterialId": md["CurrentKeyMaterialId"],
    }  # fmt: skip
    assert md["Enabled"] is True and md["MultiRegion"] is False
    assert meta(kms, md["KeyId"]) == md
    other = kms.create_key(CustomerMasterKeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    assert other["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert other["KeyId"] != md["KeyId"] and other["CurrentKeyMaterialId"] != md["CurrentKeyMaterialId"]


def test_create_key_limits_at_the_edge_and_external_origin(kms: Any) -> None:
    key_id = new_key(kms, Description="d" * 8192, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT",
                     Tags=[tag("k" * 128, "v" * 256), tag("empty")] + [tag(f"t{i}") for i in range(48)])  # fmt: skip
    assert meta(kms, key_id)["Description"] == "d" * 8192
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
    assert len(tags) == 50 and tags["k" * 128] == "v" * 256 and tags["empty"] == ""
    md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert (md["Origin"], md["KeyState"], md["Enabled"]) == ("EXTERNAL", "PendingImport", False)
    err = raises(E.KMSInvalidStateException, kms.encrypt, KeyId=md["KeyId"], Plaintext=b"x")
    assert "pending import" in err.message
    raises(E.KMSInvalidStateException, kms.enable_key, KeyId=md["KeyId"])


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"KeySpec": "AES_256"}, E.ValidationException), ({"KeySpec": "symmetric_default"}, E.ValidationException),
        ({"CustomerMasterKeySpec": "NOPE"}, E.ValidationException), ({"KeyUsage": "ENCRYPT"}, E.ValidationException),
        ({"KeyUsage": "SIGN_VERIFY"}, E.ValidationException), ({"KeySpec": "RSA_2048"}, E.ValidationException),
        ({"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "GENERATE_VERIFY_MAC"}, E.ValidationException),
        ({"KeySpec": "HMAC_256", "KeyUsage": "ENCRYPT_DECRYPT"}, E.ValidationException),
        ({"Origin": "NOWHERE"}, E.ValidationException), ({"Description": "d" * 8193}, E.ValidationException),
        ({"KeySpec": "SM2", "KeyUsage": "ENCRYPT_DECRYPT"}, E.UnsupportedOperationException),
        ({"MultiRegion": True}, E.UnsupportedOperationException),
        ({"Tags": [tag("aws:owner", "v")]}, E.TagException), ({"Tags": [tag("k" * 129, "v")]}, E.TagException),
        ({"Tags": [tag("", "v")]}, E.TagException), ({"Tags": [tag("k", "v" * 257)]}, E.TagException),
        ({"Tags": [tag(f"t{i}") for i in range(51)]}, E.LimitExceededException),
    ],
)  # fmt: skip
def test_create_key_rejects(kms: Any, kwargs: dict[str, Any], exc: type[E.KMSError]) -> None:
    raises(exc, kms.create_key, **kwargs)
    assert kms.list_keys()["Keys"] == []  # nothing half-made


# ----- key references -----
@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias_arn"])
def test_key_reference_forms(kms: Any, form: str) -> None:
    key_id = new_key(kms)
    new_key(kms)  # a second key, so that "the only key" cannot be an accident
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    ref = {"id": key_id, "arn": key_arn(key_id), "alias": "alias/app", "alias_arn": alias_arn("alias/app")}[form]
    assert meta(kms, ref)["KeyId"] == key_id
    enc = kms.encrypt(KeyId=ref, Plaintext=b"secret")
    assert enc["KeyId"] == key_arn(key_id)
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], KeyId=ref)
    assert (dec["KeyId"], dec["Plaintext"]) == (key_arn(key_id), b"secret")


@pytest.mark.parametrize("op", ["describe_key", "encrypt"])
@pytest.mark.parametrize(
    ("ref", "exc"),
    [
        (key_arn("{id}", region="eu-west-1"), E.NotFoundException),
        (key_arn("{id}", account="999999999999"), E.NotFoundException),
        (alias_arn("alias/app", region="eu-west-1"), E.NotFoundException),
        (alias_arn("alias/app", account="999999999999"), E.NotFoundException),
        ("arn:aws:kms:us-east-1:111122223333", E.InvalidArnException),
        ("arn:aws:kms:us-east-1:111122223333:key/", E.InvalidArnException),
        ("arn:aws:s3:::bucket/{id}", E.InvalidArnException), ("arn:nonsense", E.InvalidArnException),
        (str(uuid.UUID(int=1)), E.NotFoundException), ("not-a-key-id", E.NotFoundException),
        ("{ID}", E.NotFoundException), ("alias/missing", E.NotFoundException),
        (alias_arn("alias/missing"), E.NotFoundException), (key_arn(str(uuid.UUID(int=2))), E.NotFoundException),
        ("", E.ValidationException), ("k" * 2049, E.ValidationException),
        # near misses: another partition, a trailing newline (AWS: no such key or a bad ARN)
        (key_arn("{id}") + "\n", NOT_FOUND_OR_ARN), (alias_arn("alias/app") + "\n", NOT_FOUND_OR_ARN),
        ("arn:aws-cn:kms:us-east-1:111122223333:key/{id}", NOT_FOUND_OR_ARN),
        ("arn:aws-us-gov:kms:us-east-1:111122223333:alias/app", NOT_FOUND_OR_ARN),
    ],
)  # fmt: skip
def test_bad_key_references(kms: Any, op: str, ref: str, exc: Any) -> None:
    key_id = new_key(kms)
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    ref = ref.replace("{id}", key_id).replace("{ID}", key_id.upper())  # key IDs are lowercase
    kwargs: dict[str, Any] = {"KeyId": ref} if op == "describe_key" else {"KeyId": ref, "Plaintext": b"x"}
    with pytest.raises(exc) as info:
        getattr(kms, op)(**kwargs)
    assert info.value.exit_code == (3 if isinstance(info.value, E.NotFoundException) else 2)


@pytest.mark.parametrize(
    ("op", "extra"),
    [
        ("enable_key", {}), ("disable_key", {}), ("schedule_key_deletion", {"PendingWindowInDays": 7}),
        ("cancel_key_deletion", {}), ("update_key_description", {"Description": "new"}),
        ("tag_resource", {"Tags": [tag("a", "b")]}), ("untag_resource", {"TagKeys": ["a"]}),
        ("list_resource_tags", {}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("ref", ["alias/app", alias_arn("alias/app")])
def test_management_ops_refuse_aliases(kms: Any, op: str, extra: dict[str, Any], ref: str) -> None:
    key_id = new_key(kms, Description="old")
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    raises(E.NotFoundException, getattr(kms, op), KeyId=ref, **extra)
    md = meta(kms, key_id)
    assert (md["KeyState"], md["Description"]) == ("Enabled", "old")


# ----- lifecycle -----
def test_disable_and_enable(kms: Any, key: str) -> None:
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    other = new_key(kms)
    other_blob = kms.encrypt(KeyId=other, Plaintext=b"p")["CiphertextBlob"]
    assert kms.disable_key(KeyId=key) == {}
    kms.disable_key(KeyId=key)  # idempotent
    assert (meta(kms, key)["KeyState"], meta(kms, key)["Enabled"]) == ("Disabled", False)
    err = raises(E.DisabledException, kms.encrypt, KeyId=key, Plaintext=b"p")
    assert err.message == f"{key_arn(key)} is disabled."
    raises(E.DisabledException, kms.decrypt, CiphertextBlob=blob)
    raises(E.DisabledException, kms.generate_data_key, KeyId=key, KeySpec="AES_256")
    raises(E.DisabledException, kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other)
    raises(E.DisabledException, kms.re_encrypt, CiphertextBlob=other_blob, DestinationKeyId=key)
    assert kms.enable_key(KeyId=key) == {}
    assert (meta(kms, key)["KeyState"], meta(kms, key)["Enabled"]) == ("Enabled", True)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"


@pytest.mark.parametrize(("days", "expected"), [
    (None, 30), (7, 7), (30, 30), (6, "greater than or equal to 7"), (0, "greater than or equal to 7"),
    (31, "less than or equal to 30"), (365, "less than or equal to 30"),
])  # fmt: skip
def test_schedule_key_deletion(kms: Any, key: str, days: int | None, expected: Any) -> None:
    if isinstance(expected, str):
        err = raises(E.ValidationException, kms.schedule_key_deletion, KeyId=key, PendingWindowInDays=days)
        assert err.message == (
            f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: "
            f"Member must have value {expected}"
        )
        assert (err.exit_code, meta(kms, key)["KeyState"]) == (2, "Enabled")
        return
    out = kms.schedule_key_deletion(KeyId=key, **({} if days is None else {"PendingWindowInDays": days}))
    deletion = START + timedelta(days=expected)
    assert out == {"KeyId": key_arn(key), "DeletionDate": deletion, "KeyState": "PendingDeletion",
                   "PendingWindowInDays": expected}  # fmt: skip
    md = meta(kms, key)
    assert (md["KeyState"], md["Enabled"], md["DeletionDate"]) == ("PendingDeletion", False, deletion)
    assert "PendingDeletionWindowInDays" not in md  # only for PendingReplicaDeletion
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key]  # still listed


def test_pending_deletion_forbids(kms: Any, key: str) -> None:
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    err = raises(E.KMSInvalidStateException, kms.encrypt, KeyId=key, Plaintext=b"p")
    assert err.message == f"{key_arn(key)} is pending deletion."
    for op, kwargs in [
        (kms.decrypt, {"CiphertextBlob": blob}), (kms.generate_data_key, {"KeyId": key, "NumberOfBytes": 8}),
        (kms.schedule_key_deletion, {"KeyId": key}), (kms.enable_key, {"KeyId": key}),
        (kms.disable_key, {"KeyId": key}), (kms.update_key_description, {"KeyId": key, "Description": "x"}),
        (kms.tag_resource, {"KeyId": key, "Tags": [tag("a")]}), (kms.untag_resource, {"KeyId": key, "TagKeys": ["a"]}),
        (kms.create_alias, {"AliasName": "alias/late", "TargetKeyId": key}),
    ]:  # fmt: skip
        raises(E.KMSInvalidStateException, op, **kwargs)
    assert (alias_names(kms), meta(kms, key)["KeyState"]) == ([], "PendingDeletion")


def test_cancel_key_deletion(kms: Any, key: str) -> None:
    err = raises(E.KMSInvalidStateException, kms.cancel_key_deletion, KeyId=key)
    assert "is not pending deletion" in err.message
    kms.disable_key(KeyId=key)
    raises(E.KMSInvalidStateException, kms.cancel_key_deletion, KeyId=key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert kms.cancel_key_deletion(KeyId=key) == {"KeyId": key_arn(key)}
    md = meta(kms, key)
    assert (md["KeyState"], md["Enabled"], "DeletionDate" in md) == ("Disabled", False, False)
    raises(E.KMSInvalidStateException, kms.cancel_key_deletion, KeyId=key)
    kms.enable_key(KeyId=key)
    assert kms.encrypt(KeyId=key, Plaintext=b"ok")["KeyId"] == key_arn(key)


def test_cancelled_deletion_of_key_without_material_stays_unusable(kms: Any) -> None:
    ext = new_key(kms, Origin="EXTERNAL")
    kms.schedule_key_deletion(KeyId=ext, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=ext)
    with contextlib.suppress(E.KMSInvalidStateException):
        kms.enable_key(KeyId=ext)
    with pytest.raises((E.DisabledException, E.KMSInvalidStateException)):
        kms.encrypt(KeyId=ext, Plaintext=b"x")
    with pytest.raises((E.DisabledException, E.KMSInvalidStateException)):
        kms.generate_data_key(KeyId=ext, KeySpec="AES_256")
    assert meta(kms, ext)["KeyState"] != "Enabled"  # it has no key material to use


def test_deletion_window_time_travel(kms: Any, clock: Any) -> None:
    doomed, keep = new_key(kms), new_key(kms)
    for name, target in [("alias/doomed", doomed), ("alias/doomed-2", doomed), ("alias/keep", keep)]:
        kms.create_alias(AliasName=name, TargetKeyId=target)
    blob = kms.encrypt(KeyId=doomed, Plaintext=b"p")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    clock.advance(days=6)
    assert meta(kms, doomed)["KeyState"] == "PendingDeletion"
    assert alias_names(kms) == ["alias/doomed", "alias/doomed-2", "alias/keep"]
    clock.advance(days=2)
    raises(E.NotFoundException, kms.describe_key, KeyId=doomed)
    raises(E.NotFoundException, kms.describe_key, KeyId="alias/doomed")
    raises(E.NotFoundException, kms.cancel_key_deletion, KeyId=doomed)
    assert alias_names(kms) == ["alias/keep"]
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=blob)
    raises(E.InvalidCiphertextException, kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=keep)
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [keep]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=keep)  # the name is free again
    assert meta(kms, "alias/doomed")["KeyState"] == "Enabled"


def test_update_key_description(kms: Any, key: str) -> None:
    assert kms.update_key_description(KeyId=key, Description="payments") == {}
    assert meta(kms, key)["Description"] == "payments"
    kms.update_key_description(KeyId=key_arn(key), Description="")
    assert meta(kms, key)["Description"] == ""
    raises(E.ValidationException, kms.update_key_description, KeyId=key, Description="d" * 8193)
    raises(E.NotFoundException, kms.update_key_description, KeyId=str(uuid.uuid4()), Description="x")
    kms.disable_key(KeyId=key)
    kms.update_key_description(KeyId=key, Description="still")
    assert meta(kms, key)["Description"] == "still"


# ----- ListKeys -----
def test_list_keys_pagination(kms: Any) -> None:
    keys = [new_key(kms) for _ in range(5)]
    first = kms.list_keys(Limit=2)
    assert (len(first["Keys"]), first["Truncated"]) == (2, True)
    items = walk(kms.list_keys, "Keys", Limit=2)
    assert len(items) == 5 and sorted(k["KeyId"] for k in items) == sorted(keys)
    assert all(k == {"KeyId": k["KeyId"], "KeyArn": key_arn(k["KeyId"])} for k in items)
    for kwargs in ({}, {"Limit": 5}, {"Limit": 1000}):
        page = kms.list_keys(**kwargs)
        assert (len(page["Keys"]), page["Truncated"], "NextMarker" in page) == (5, False, False)
    for limit in (0, -1, 1001, "2", True):
        raises(E.ValidationException, kms.list_keys, Limit=limit)


def test_list_keys_many(kms: Any) -> None:
    keys = {new_key(kms, Tags=[tag("odd", str(i % 2))]) for i in range(205)}
    page = kms.list_keys()
    assert (len(page["Keys"]), page["Truncated"]) == (100, True)  # default Limit
    assert {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]} == keys
    listed = [k["KeyId"] for k in walk(kms.list_keys, "Keys", Limit=70)]
    assert len(listed) == 205 and set(listed) == keys
    assert len(kms.list_keys(Limit=1000, FilterTag=tag("odd", "1"))["Keys"]) == 102


def test_markers_from_elsewhere_are_invalid(kms: Any) -> None:
    key_id = new_key(kms, Tags=[tag("a"), tag("b")])
    new_key(kms)
    for name in ("alias/a", "alias/b"):
        kms.create_alias(AliasName=name, TargetKeyId=key_id)
    alias_marker = kms.list_aliases(Limit=1)["NextMarker"]
    keys_marker = kms.list_keys(Limit=1)["NextMarker"]
    tags_marker = kms.list_resource_tags(KeyId=key_id, Limit=1)["NextMarker"]
    for marker in ("garbage", "!!!not-base64!!!", "eyJ4IjoxfQ", alias_marker, tags_marker):
        raises(E.InvalidMarkerException, kms.list_keys, Marker=marker)
    raises(E.InvalidMarkerException, kms.list_aliases, Marker=keys_marker)
    raises(E.InvalidMarkerException, kms.list_aliases, Marker="bogus")
    raises(E.InvalidMarkerException, kms.list_resource_tags, KeyId=key_id, Marker=keys_marker)


@pytest.mark.parametrize(("op", "doc"), [
    ("list_keys", {"op": "ListKeys", "after": [1]}), ("list_keys", {"op": "ListKeys", "after": {"a": 1}}),
    ("list_keys", {"op": "ListKeys", "after": 10**30}), ("list_keys", {"op": "ListKeys", "after": "x"}),
    ("list_keys", {"op": "ListKeys"}), ("list_keys", [1, 2]),
    ("list_aliases", {"op": "ListAliases", "after": [1]}), ("list_aliases", {"op": "ListAliases", "after": 5}),
    ("list_resource_tags", {"op": "ListResourceTags", "after": [1]}),
    ("list_resource_tags", {"op": "ListResourceTags", "after": 5}),
])  # fmt: skip
def test_forged_markers_are_invalid(kms: Any, op: str, doc: Any) -> None:
    """A marker kmsctl never handed out is InvalidMarkerException, never a crash or an IntegrityError."""
    key_id = new_key(kms, Tags=[tag("a", "b")])
    kms.create_alias(AliasName="alias/a", TargetKeyId=key_id)
    kwargs = {"KeyId": key_id} if op == "list_resource_tags" else {}
    raises(E.InvalidMarkerException, getattr(kms, op), Marker=forge_marker(doc), **kwargs)


def test_list_keys_filters(kms: Any) -> None:
    a, b, c = new_key(kms, Tags=[tag("env", "prod")]), new_key(kms, Tags=[tag("env", "dev")]), new_key(kms)
    kms.disable_key(KeyId=b)
    kms.schedule_key_deletion(KeyId=c, PendingWindowInDays=7)
    kms.create_alias(AliasName="alias/team-a/app", TargetKeyId=a)
    kms.create_alias(AliasName="alias/team-b/app", TargetKeyId=b)

    def ids(**kwargs: Any) -> set[str]:
        return {k["KeyId"] for k in kms.list_keys(**kwargs)["Keys"]}

    assert ids() == {a, b, c}
    assert (ids(FilterKeyState="Enabled"), ids(FilterKeyState="Disabled")) == ({a}, {b})
    assert ids(FilterKeyState="PendingDeletion") == {c}
    assert (ids(FilterKeySpec="SYMMETRIC_DEFAULT"), ids(FilterKeySpec="RSA_2048")) == ({a, b, c}, set())
    assert (ids(FilterTag=tag("env", "prod")), ids(FilterTag=tag("env", "test"))) == ({a}, set())
    assert (ids(FilterAliasPrefix="alias/team-a/"), ids(FilterAliasPrefix="alias/team-")) == ({a}, {a, b})
    assert ids(FilterAliasPrefix="alias/team-a/", FilterKeyState="Disabled") == set()
    assert {k["KeyId"] for k in walk(kms.list_keys, "Keys", Limit=1, FilterKeyState="Enabled")} == {a}
    raises(E.ValidationException, kms.list_keys, FilterKeyState="enabled")
    raises(E.ValidationException, kms.list_keys, FilterKeySpec="AES_256")


# ----- aliases -----
def test_alias_lifecycle(kms: Any, clock: Any) -> None:
    k1, k2 = new_key(kms), new_key(kms)
    assert kms.create_alias(AliasName="alias/app", TargetKeyId=k1) == {}
    entry = {"AliasName": "alias/app", "AliasArn": alias_arn("alias/app"), "TargetKeyId": k1,
             "CreationDate": START, "LastUpdatedDate": START}  # fmt: skip
    assert kms.list_aliases()["Aliases"] == [entry]
    err = raises(E.AlreadyExistsException, kms.create_alias, AliasName="alias/app", TargetKeyId=k2)
    assert alias_arn("alias/app") in err.message
    clock.advance(seconds=60)
    assert kms.update_alias(AliasName="alias/app", TargetKeyId=key_arn(k2)) == {}
    (entry,) = kms.list_aliases()["Aliases"]
    assert (entry["TargetKeyId"], entry["CreationDate"]) == (k2, START)
    assert entry["LastUpdatedDate"] == START + timedelta(seconds=60)
    assert kms.encrypt(KeyId="alias/app", Plaintext=b"x")["KeyId"] == key_arn(k2)
    kms.create_alias(AliasName="alias/App", TargetKeyId=k1)  # names are case-sensitive
    assert (meta(kms, "alias/app")["KeyId"], meta(kms, "alias/App")["KeyId"]) == (k2, k1)
    assert kms.delete_alias(AliasName="alias/app") == {}
    assert alias_names(kms) == ["alias/App"]
    raises(E.NotFoundException, kms.delete_alias, AliasName="alias/app")
    raises(E.NotFoundException, kms.describe_key, KeyId="alias/app")
    raises(E.NotFoundException, kms.update_alias, AliasName="alias/app", TargetKeyId=k1)
    assert [meta(kms, k)["KeyState"] for k in (k1, k2)] == ["Enabled", "Enabled"]  # alias ops leave keys alone


@pytest.mark.parametrize(("name", "exc"), [
    ("app", E.ValidationException), ("key/app", E.ValidationException),
    ("Alias/app", E.ValidationException), ("alias/aws/x", E.InvalidAliasNameException),
    ("alias/my:alias", E.ValidationException), ("alias/", E.InvalidAliasNameException),
    ("alias/has space", E.ValidationException), ("alias/a*b", E.ValidationException),
    ("alias/ünï", E.ValidationException), ("alias/x.y", E.ValidationException),
    ("alias/app\n", E.ValidationException), ("", E.ValidationException),
    ("alias/" + "a" * 251, E.ValidationException),  # 257 characters
    ("alias/" + "a" * 250, None), ("alias/Mixed_Case-1_2/x", None), ("alias/awsome", None),
])  # fmt: skip
def test_alias_name_rules(kms: Any, key: str, name: str, exc: type[E.KMSError] | None) -> None:
    if exc is None:
        kms.create_alias(AliasName=name, TargetKeyId=key)
        assert (alias_names(kms), meta(kms, name)["KeyId"]) == ([name], key)
    else:
        raises(exc, kms.create_alias, AliasName=name, TargetKeyId=key)
        assert alias_names(kms) == []


def test_fifty_aliases_per_key(kms: Any) -> None:
    key_id, other = new_key(kms), new_key(kms)
    for i in range(50):
        kms.create_alias(AliasName=f"alias/a{i:02d}", TargetKeyId=key_id)
    raises(E.LimitExceededException, kms.create_alias, AliasName="alias/a50", TargetKeyId=key_id)
    assert len(alias_names(kms, KeyId=key_id)) == 50
    kms.create_alias(AliasName="alias/a50", TargetKeyId=other)
    assert alias_names(kms, KeyId=other) == ["alias/a50"]


def test_alias_targets(kms: Any, key: str) -> None:
    doomed = new_key(kms)
    kms.create_alias(AliasName="alias/app", TargetKeyId=key)
    kms.create_alias(AliasName="alias/old", TargetKeyId=doomed)
    for target in ("alias/app", alias_arn("alias/app")):  # aliases must refer to keys
        raises(E.ValidationException, kms.create_alias, AliasName="alias/second", TargetKeyId=target)
        raises(E.ValidationException, kms.update_alias, AliasName="alias/old", TargetKeyId=target)
    raises(E.NotFoundException, kms.create_alias, AliasName="alias/x", TargetKeyId=str(uuid.uuid4()))
    kms.schedule_key_deletion(KeyId=doomed)
    raises(E.KMSInvalidStateException, kms.create_alias, AliasName="alias/x", TargetKeyId=doomed)
    raises(E.KMSInvalidStateException, kms.update_alias, AliasName="alias/app", TargetKeyId=doomed)
    assert (alias_names(kms), meta(kms, "alias/app")["KeyId"]) == (["alias/app", "alias/old"], key)
    kms.update_alias(AliasName="alias/old", TargetKeyId=key)  # moving away from a doomed key is fine
    assert meta(kms, "alias/old")["KeyId"] == key


def test_list_aliases_limit_pagination_and_key_filter(kms: Any) -> None:
    k1, k2 = new_key(kms), new_key(kms)
    for name, target in [("alias/c", k1), ("alias/a", k1), ("alias/b", k1), ("alias/z", k2)]:
        kms.create_alias(AliasName=name, TargetKeyId=target)
    for limit in (0, 101, -5):
        raises(E.ValidationException, kms.list_aliases, Limit=limit)
    assert len(kms.list_aliases(Limit=100)["Aliases"]) == 4
    page = kms.list_aliases(Limit=1)
    assert (len(page["Aliases"]), page["Truncated"]) == (1, True)
    items = walk(kms.list_aliases, "Aliases", Limit=1)
    assert sorted(a["AliasName"] for a in items) == ["alias/a", "alias/b", "alias/c", "alias/z"]
    assert alias_names(kms, KeyId=key_arn(k2)) == ["alias/z"]
    by_key = walk(kms.list_aliases, "Aliases", KeyId=k1, Limit=2)
    assert sorted(a["AliasName"] for a in by_key) == ["alias/a", "alias/b", "alias/c"]
    assert {a["TargetKeyId"] for a in by_key} == {k1}
    raises(E.NotFoundException, kms.list_aliases, KeyId=str(uuid.uuid4()))


# ----- tags -----
def test_tag_untag_and_overwrite(kms: Any, key: str) -> None:
    def tags() -> dict[str, str]:
        return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key)["Tags"]}

    assert kms.list_resource_tags(KeyId=key) == {"Tags": [], "Truncated": False}
    assert kms.tag_resource(KeyId=key, Tags=[tag("env", "dev"), tag("Env", "x")]) == {}
    assert tags() == {"env": "dev", "Env": "x"}  # case-sensitive keys
    kms.tag_resource(KeyId=key_arn(key), Tags=[tag("env", "prod")])
    assert tags() == {"env": "prod", "Env": "x"}
    assert kms.untag_resource(KeyId=key, TagKeys=["Env", "never-set"]) == {}
    assert tags() == {"env": "prod"}
    for bad in (tag("aws:x", "v"), tag("k" * 129, "v"), tag("k", "v" * 257)):
        raises(E.TagException, kms.tag_resource, KeyId=key, Tags=[bad])
    assert tags() == {"env": "prod"}
    raises(E.NotFoundException, kms.tag_resource, KeyId=str(uuid.uuid4()), Tags=[tag("a")])
    kms.disable_key(KeyId=key)
    kms.tag_resource(KeyId=key, Tags=[tag("off", "1")])
    assert tags() == {"env": "prod", "off": "1"}


def test_tag_quota_and_pagination(kms: Any, key: str) -> None:
    kms.tag_resource(KeyId=key, Tags=[tag(f"t{i:02d}", f"v{i}") for i in range(50)])  # 50: the quota
    raises(E.LimitExceededException, kms.tag_resource, KeyId=key, Tags=[tag("t50")])
    kms.tag_resource(KeyId=key, Tags=[tag("t00", "overwritten")])  # no new key: allowed at the quota
    for limit in (0, 51):
        raises(E.ValidationException, kms.list_resource_tags, KeyId=key, Limit=limit)
    page = kms.list_resource_tags(KeyId=key, Limit=7)
    assert (len(page["Tags"]), page["Truncated"]) == (7, True)
    tags = walk(kms.list_resource_tags, "Tags", KeyId=key, Limit=7)
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags) == [("t00", "overwritten")] + [
        (f"t{i:02d}", f"v{i}") for i in range(1, 50)
    ]
    assert len(kms.list_resource_tags(KeyId=key, Limit=50)["Tags"]) == 50


# ----- Encrypt / Decrypt / ReEncrypt -----
def test_encrypt_decrypt_round_trip(kms: Any, key: str) -> None:
    enc = kms.encrypt(KeyId=key, Plaintext=b"hello")
    assert {k: v for k, v in enc.items() if k != "CiphertextBlob"} == {
        "KeyId": key_arn(key), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}  # fmt: skip
    assert b"hello" not in enc["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"]) == {
        "KeyId": key_arn(key), "Plaintext": b"hello", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "KeyMaterialId": meta(kms, key)["CurrentKeyMaterialId"],
    }  # fmt: skip
    again = kms.encrypt(KeyId=key, Plaintext=b"hello")["CiphertextBlob"]
    assert again != enc["CiphertextBlob"]  # randomized
    assert kms.decrypt(CiphertextBlob=again, EncryptionAlgorithm="SYMMETRIC_DEFAULT")["Plaintext"] == b"hello"


@pytest.mark.parametrize("plaintext", [b"x", os.urandom(100), os.urandom(4096), b"", b"x" * 4097, "text", None])
def test_plaintext_sizes(kms: Any, key: str, plaintext: Any) -> None:
    if not isinstance(plaintext, bytes) or not 1 <= len(plaintext) <= 4096:
        raises(E.ValidationException, kms.encrypt, KeyId=key, Plaintext=plaintext)
        return
    blob = kms.encrypt(KeyId=key, Plaintext=plaintext)["CiphertextBlob"]
    assert len(blob) == len(plaintext) + OVERHEAD
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext


def test_encryption_context_is_bound(kms: Any, key: str) -> None:
    ctx = {"purpose": "test", "tenant": "42"}
    blob = kms.encrypt(KeyId=key, Plaintext=b"p", EncryptionContext=ctx)["CiphertextBlob"]
    reordered = {"tenant": "42", "purpose": "test"}
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=reordered)["Plaintext"] == b"p"
    for wrong in (None, {}, {"purpose": "test"}, {"purpose": "test", "tenant": "43"}, {**ctx, "extra": "1"},
                  {"Purpose": "test", "tenant": "42"}):  # fmt: skip
        kwargs = {} if wrong is None else {"EncryptionContext": wrong}
        raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=blob, **kwargs)
    plain = kms.encrypt(KeyId=key, Plaintext=b"q")["CiphertextBlob"]
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=plain, EncryptionContext={"a": "b"})
    assert kms.decrypt(CiphertextBlob=plain, EncryptionContext={})["Plaintext"] == b"q"
    split = kms.encrypt(KeyId=key, Plaintext=b"r", EncryptionContext={"a": "bc"})["CiphertextBlob"]
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=split, EncryptionContext={"ab": "c"})


@pytest.mark.parametrize(("op", "field", "value", "exc"), [
    ("encrypt", "EncryptionAlgorithm", "NOT_AN_ALGORITHM", E.ValidationException),
    ("decrypt", "EncryptionAlgorithm", "NOT_AN_ALGORITHM", E.ValidationException),
    ("re_encrypt", "SourceEncryptionAlgorithm", "NOT_AN_ALGORITHM", E.ValidationException),
    ("re_encrypt", "DestinationEncryptionAlgorithm", "NOT_AN_ALGORITHM", E.ValidationException),
    ("encrypt", "EncryptionAlgorithm", "RSAES_OAEP_SHA_256", E.InvalidKeyUsageException),
    ("re_encrypt", "DestinationEncryptionAlgorithm", "RSAES_OAEP_SHA_1", E.InvalidKeyUsageException),
])  # fmt: skip
def test_encryption_algorithm(kms: Any, key: str, op: str, field: str, value: str, exc: type[E.KMSError]) -> None:
    """Outside the EncryptionAlgorithmSpec enum -> ValidationException (AWS input validation);
    a real algorithm the symmetric key does not support -> InvalidKeyUsageException."""
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    kwargs: dict[str, Any] = {"encrypt": {"KeyId": key, "Plaintext": b"p"}, "decrypt": {"CiphertextBlob": blob},
                              "re_encrypt": {"CiphertextBlob": blob, "DestinationKeyId": key}}[op]  # fmt: skip
    raises(exc, getattr(kms, op), **kwargs, **{field: value})


def test_decrypt_with_another_keys_id(kms: Any, key: str) -> None:
    other = new_key(kms)
    kms.create_alias(AliasName="alias/other", TargetKeyId=other)
    kms.create_alias(AliasName="alias/mine", TargetKeyId=key)
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    for ref in (other, key_arn(other), "alias/other", alias_arn("alias/other")):
        assert raises(E.IncorrectKeyException, kms.decrypt, CiphertextBlob=blob, KeyId=ref).exit_code == 6
    for ref in (key, key_arn(key), "alias/mine", alias_arn("alias/mine")):
        assert kms.decrypt(CiphertextBlob=blob, KeyId=ref)["Plaintext"] == b"p"


def test_every_flipped_byte_is_rejected(kms: Any, key: str) -> None:
    new_key(kms)
    ctx = {"a": "b"}
    blob = kms.encrypt(KeyId=key, Plaintext=b"sixteen byte msg", EncryptionContext=ctx)["CiphertextBlob"]
    for i in range(len(blob)):
        for mask in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= mask
            with pytest.raises(E.InvalidCiphertextException):
                kms.decrypt(CiphertextBlob=bytes(bad), EncryptionContext=ctx)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"sixteen byte msg"


@pytest.mark.parametrize("cut", [1, 2, 18, 50, 62, 77, 78, 79, -1, -16])
def test_truncated_blob_is_rejected(kms: Any, key: str, cut: int) -> None:
    blob = kms.encrypt(KeyId=key, Plaintext=b"some plaintext")["CiphertextBlob"]
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=blob[:cut])


@pytest.mark.parametrize(
    "garbage", [b"garbage", b"\x00" * 200, b"\xa9\x01" + b"\x00" * 100, b"\xa9\x02" + b"\x11" * 100, os.urandom(120)]
)
def test_garbage_ciphertext_is_rejected(kms: Any, key: str, garbage: bytes) -> None:
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=garbage)
    raises(E.ValidationException, kms.decrypt, CiphertextBlob=b"")
    raises(E.ValidationException, kms.decrypt, CiphertextBlob=b"x" * 6145)


def test_re_encrypt(kms: Any) -> None:
    src, dst = new_key(kms), new_key(kms)
    kms.create_alias(AliasName="alias/dst", TargetKeyId=dst)
    blob = kms.encrypt(KeyId=src, Plaintext=b"move me", EncryptionContext={"v": "1"})["CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"v": "1"}, DestinationKeyId="alias/dst",
                         DestinationEncryptionContext={"v": "2"})  # fmt: skip
    assert {k: v for k, v in out.items() if k != "CiphertextBlob"} == {
        "SourceKeyId": key_arn(src), "KeyId": key_arn(dst),
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "SourceKeyMaterialId": meta(kms, src)["CurrentKeyMaterialId"],
        "DestinationKeyMaterialId": meta(kms, dst)["CurrentKeyMaterialId"],
    }  # fmt: skip
    new = out["CiphertextBlob"]
    assert len(new) == len(b"move me") + OVERHEAD
    dec = kms.decrypt(CiphertextBlob=new, EncryptionContext={"v": "2"})
    assert (dec["KeyId"], dec["Plaintext"]) == (key_arn(dst), b"move me")
    for exc, fn, kwargs in [
        (E.InvalidCiphertextException, kms.decrypt, {"CiphertextBlob": new, "EncryptionContext": {"v": "1"}}),
        (E.IncorrectKeyException, kms.decrypt, {"CiphertextBlob": new, "KeyId": src}),
        (E.InvalidCiphertextException, kms.re_encrypt, {"CiphertextBlob": blob, "DestinationKeyId": dst}),
        (E.IncorrectKeyException, kms.re_encrypt, {"CiphertextBlob": blob, "SourceKeyId": dst,
                                                   "SourceEncryptionContext": {"v": "1"}, "DestinationKeyId": dst}),
        (E.NotFoundException, kms.re_encrypt, {"CiphertextBlob": new, "SourceEncryptionContext": {"v": "2"},
                                               "DestinationKeyId": "alias/none"}),
    ]:  # fmt: skip
        raises(exc, fn, **kwargs)
    same = kms.re_encrypt(CiphertextBlob=new, SourceEncryptionContext={"v": "2"}, DestinationKeyId=dst)
    assert kms.decrypt(CiphertextBlob=same["CiphertextBlob"])["Plaintext"] == b"move me"


# ----- data keys and random -----
@pytest.mark.parametrize(("kwargs", "size"), [
    ({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 1}, 1),
    ({"NumberOfBytes": 64}, 64), ({"NumberOfBytes": 1024}, 1024),
])  # fmt: skip
def test_generate_data_key(kms: Any, key: str, kwargs: dict[str, Any], size: int) -> None:
    ctx = {"file": "a.txt"}
    out = kms.generate_data_key(KeyId=key, EncryptionContext=ctx, **kwargs)
    assert set(out) == {"CiphertextBlob", "Plaintext", "KeyId", "KeyMaterialId"}
    assert (len(out["Plaintext"]), len(out["CiphertextBlob"])) == (size, size + OVERHEAD)
    assert (out["KeyId"], out["KeyMaterialId"]) == (key_arn(key), meta(kms, key)["CurrentKeyMaterialId"])
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == out["Plaintext"]
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=out["CiphertextBlob"])
    if size >= 16:
        assert kms.generate_data_key(KeyId=key, **kwargs)["Plaintext"] != out["Plaintext"]
    bare = kms.generate_data_key_without_plaintext(KeyId=key, **kwargs)
    assert set(bare) == {"CiphertextBlob", "KeyId", "KeyMaterialId"}  # no Plaintext
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == size


@pytest.mark.parametrize("op", ["generate_data_key", "generate_data_key_without_plaintext"])
@pytest.mark.parametrize("kwargs", [
    {}, {"KeySpec": "AES_256", "NumberOfBytes": 32}, {"NumberOfBytes": 0}, {"NumberOfBytes": 1025},
    {"NumberOfBytes": -1}, {"KeySpec": "AES_512"}, {"KeySpec": "aes_256"},
])  # fmt: skip
def test_generate_data_key_rejects(kms: Any, key: str, op: str, kwargs: dict[str, Any]) -> None:
    raises(E.ValidationException, getattr(kms, op), KeyId=key, **kwargs)


@pytest.mark.parametrize("kwargs", [{"NumberOfBytes": 1}, {"NumberOfBytes": 32}, {"NumberOfBytes": 1024}, {},
                                    {"NumberOfBytes": 0}, {"NumberOfBytes": 1025}, {"NumberOfBytes": "8"}])  # fmt: skip
def test_generate_random(kms: Any, kwargs: dict[str, Any]) -> None:
    n = kwargs.get("NumberOfBytes")
    if not isinstance(n, int) or not 1 <= n <= 1024:
        raises(E.ValidationException, kms.generate_random, **kwargs)
        return
    out = kms.generate_random(**kwargs)
    assert set(out) == {"Plaintext"} and isinstance(out["Plaintext"], bytes) and len(out["Plaintext"]) == n
    if n >= 16:
        assert kms.generate_random(**kwargs)["Plaintext"] != out["Plaintext"]


# ----- the dispatch contract -----
@pytest.mark.parametrize(("op", "kwargs"), [
    ("create_key", {"Bogus": 1}), ("describe_key", {}), ("describe_key", {"KeyId": "{key}", "keyId": "{key}"}),
    ("encrypt", {"KeyId": "{key}"}), ("encrypt", {"KeyId": "{key}", "Plaintext": b"x", "Context": {}}),
    ("decrypt", {"CiphertextBlob": b"x", "Key": "{key}"}), ("list_keys", {"limit": 5}),
    ("create_alias", {"AliasName": "alias/x"}), ("generate_random", {"Bytes": 5}),
])  # fmt: skip
def test_bad_keyword_arguments(kms: Any, key: str, op: str, kwargs: dict[str, Any]) -> None:
    kwargs = {k: key if v == "{key}" else v for k, v in kwargs.items()}
    assert raises(E.ValidationException, getattr(kms, op), **kwargs).exit_code == 2
    assert (alias_names(kms), len(kms.list_keys()["Keys"])) == ([], 1)


def test_positional_arguments_are_a_type_error(kms: Any, key: str) -> None:
    with pytest.raises(TypeError):
        kms.describe_key(key)
    with pytest.raises(TypeError):
        kms.encrypt(key, b"x")


def test_observers_see_every_operation(kms: Any, key: str) -> None:
    seen: list[tuple[str, dict[str, Any], Any, Any]] = []
    kms.observers.append(lambda name, kwargs, response, error: seen.append((name, kwargs, response, error)))
    enc = kms.encrypt(KeyId=key, Plaintext=b"p")
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=b"garbage")
    with pytest.raises(E.ValidationException):
        kms.describe_key(Nope=1)
    kms.describe_key(KeyId=key)
    assert [s[0] for s in seen] == ["Encrypt", "Decrypt", "DescribeKey", "DescribeKey"]
    assert seen[0][1:] == ({"KeyId": key, "Plaintext": b"p"}, enc, None)
    _, kwargs, response, error = seen[1]
    assert (kwargs, response) == ({"CiphertextBlob": b"garbage"}, None)
    assert isinstance(error, E.InvalidCiphertextException)
    assert isinstance(seen[2][3], E.ValidationException) and seen[2][2] is None
    assert seen[3][2]["KeyMetadata"]["KeyId"] == key and seen[3][3] is None
