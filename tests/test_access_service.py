"""Access control enforced at the dispatch point, in-process: principals, key
policies, identity policies, grants, ABAC, dry runs, AWS managed keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, make_keyring
from helpers import sql

from kmsctl import errors as E
from kmsctl.keyring import store
from kmsctl.keyring.keyring import Keyring
from kmsctl.policy import default_key_policy
from kmsctl.service import LocalKMS

ACCOUNT = "111122223333"
OTHER = "444455556666"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def root_statement() -> dict[str, Any]:
    return {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


@pytest.fixture
def key(kms: LocalKMS) -> str:
    return str(kms.create_key()["KeyMetadata"]["KeyId"])


def as_(kms: LocalKMS, who: str | None) -> LocalKMS:
    kms.act_as(who)
    return kms


def events(kms: LocalKMS) -> list[dict[str, Any]]:
    """The trail, read as the account root (reading it is kmsctl:AuditList,
    which a principal needs a policy for), then the caller is put back."""
    who = kms._principal_ref
    kms.act_as(None)
    try:
        out: list[dict[str, Any]] = kms.audit_events(Limit=1000)["Events"]
    finally:
        kms.act_as(who)
    return out


def test_reading_the_audit_trail_needs_permission(kms: LocalKMS) -> None:
    kms.create_principal(Name="user/alice")
    with pytest.raises(E.AccessDeniedException, match="kmsctl:AuditList"):
        as_(kms, "user/alice").audit_events(Limit=10)
    assert as_(kms, None).audit_events(Limit=10)["Events"]


def test_default_policy_lets_root_do_everything(kms: LocalKMS, key: str) -> None:
    blob = kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"x"
    kms.create_alias(AliasName="alias/app", TargetKeyId=key)
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "t", "TagValue": "v"}])
    kms.disable_key(KeyId=key)
    kms.enable_key(KeyId=key)
    kms.enable_key_rotation(KeyId=key)
    grant = kms.create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Encrypt"])
    assert len(grant["GrantId"]) == 64
    kms.revoke_grant(KeyId=key, GrantId=grant["GrantId"])
    got = kms.get_key_policy(KeyId=key)
    assert got == {"Policy": default_key_policy(ACCOUNT), "PolicyName": "default"}
    assert kms.list_key_policies(KeyId=key) == {"PolicyNames": ["default"], "Truncated": False}
    kms.put_key_policy(KeyId=key, Policy=default_key_policy(ACCOUNT))
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    record = events(kms)[0]
    assert record["userIdentity"]["arn"] == ROOT and record["userIdentity"]["accountId"] == ACCOUNT


def test_a_policy_that_denies_root_encrypt(kms: LocalKMS, key: str) -> None:
    blob = kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    deny = {"Sid": "NoEncrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}
    kms.put_key_policy(KeyId=key, Policy=doc(root_statement(), deny))
    with pytest.raises(E.AccessDeniedException) as err:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert err.value.message == (
        f"User: {ROOT} is not authorized to perform: kms:Encrypt on resource: {kms.key_arn(key)} "
        "with an explicit deny in a resource-based policy"
    )
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"  # only Encrypt is denied
    denied = next(e for e in events(kms) if e["eventName"] == "Encrypt" and e.get("errorCode"))
    assert denied["errorCode"] == "AccessDeniedException"
    assert denied["additionalEventData"] == {"deniedAction": "kms:Encrypt"}


def test_identity_policy_alone_needs_the_key_policy_to_delegate(kms: LocalKMS, key: str) -> None:
    kms.create_principal(Name="alice", Policy=doc(allow(["kms:Encrypt", "kms:DescribeKey"])))
    kms.create_principal(Name="admin")
    assert as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")["KeyId"] == kms.key_arn(key)  # default: delegates
    admin_only = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"}, "Action": "kms:*"}
    as_(kms, None).put_key_policy(
        KeyId=key, Policy=doc({**admin_only, "Resource": "*"}), BypassPolicyLockoutSafetyCheck=True
    )
    with pytest.raises(E.AccessDeniedException, match="because no resource-based policy allows the kms:Encrypt"):
        as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")
    with pytest.raises(E.AccessDeniedException):  # the root too: the policy does not name the account
        as_(kms, None).encrypt(KeyId=key, Plaintext=b"x")
    as_(kms, None).reset_key_policy(KeyId=key)  # the owner's way back
    assert as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")
    bob_less = as_(kms, None).create_principal(Name="bob")
    assert bob_less["User"]["Arn"] == BOB
    with pytest.raises(E.AccessDeniedException, match="because no identity-based policy allows"):
        as_(kms, "bob").encrypt(KeyId=key, Plaintext=b"x")


def test_explicit_deny_beats_an_allow_and_a_grant(kms: LocalKMS, key: str) -> None:
    direct = {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "kms:Encrypt", "Resource": "*"}
    kms.create_principal(Name="alice")
    kms.put_key_policy(KeyId=key, Policy=doc(root_statement(), direct))
    kms.create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Encrypt"])
    assert as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")
    as_(kms, None).put_principal_policy(
        Principal="alice", PolicyDocument=doc({"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"})
    )
    with pytest.raises(E.AccessDeniedException, match="with an explicit deny in an identity-based policy"):
        as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")


def test_retagging_a_key_changes_an_abac_decision_at_once(kms: LocalKMS, key: str) -> None:
    abac = allow("kms:Encrypt", Condition={"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}})
    kms.create_principal(Name="alice", Tags=[{"Key": "team", "Value": "web"}], Policy=doc(abac))
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "web"}])
    assert as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")
    as_(kms, None).tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "db"}])
    with pytest.raises(E.AccessDeniedException):
        as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")
    as_(kms, None).tag_principal(Principal="alice", Tags=[{"Key": "team", "Value": "db"}])  # the principal's side
    assert as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")


def test_a_grant_with_a_subset_constraint_allows_exactly_the_matching_requests(kms: LocalKMS, key: str) -> None:
    kms.create_principal(Name="app")
    app = f"arn:aws:iam::{ACCOUNT}:user/app"
    made = kms.create_grant(
        KeyId=key,
        GranteePrincipal=app,
        Operations=["Encrypt", "Decrypt"],
        Constraints={"EncryptionContextSubset": {"env": "prod"}},
    )
    kms.act_as("app")
    blob = kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"env": "prod", "x": "1"})["CiphertextBlob"]
    assert kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"env": "prod"}, GrantTokens=[made["GrantToken"]])
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"env": "prod", "x": "1"})["Plaintext"] == b"x"
    for context in ({"env": "dev"}, {}, {"ENV": "Prod"}, {"other": "prod"}):
        with pytest.raises(E.AccessDeniedException):
            kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext=context)
    with pytest.raises(E.AccessDeniedException):  # GenerateDataKey is not among the grant's operations
        kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"env": "prod"})


def test_equals_constraint_and_grant_rules(kms: LocalKMS, key: str) -> None:
    kms.create_principal(Name="alice")
    kms.create_principal(Name="bob")
    parent = kms.create_grant(
        KeyId=key,
        GranteePrincipal=ALICE,
        Operations=["CreateGrant", "Encrypt"],
        Constraints={"EncryptionContextSubset": {"env": "prod"}},
    )
    kms.act_as("alice")
    narrower = {"EncryptionContextEquals": {"env": "prod", "app": "x"}}
    child = kms.create_grant(KeyId=key, GranteePrincipal=BOB, Operations=["Encrypt"], Constraints=narrower)
    for ops, constraints in (
        (["Decrypt"], narrower),
        (["Encrypt"], None),
        (["Encrypt"], {"EncryptionContextSubset": {"app": "x"}}),
    ):
        with pytest.raises(E.AccessDeniedException, match="only grants with a subset"):
            kms.create_grant(KeyId=key, GranteePrincipal=BOB, Operations=ops, Constraints=constraints)
    kms.act_as("bob")
    assert kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"env": "prod", "app": "x"})
    with pytest.raises(E.AccessDeniedException):  # Equals: not one pair more
        kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"env": "prod", "app": "x", "y": "z"})
    with pytest.raises(E.AccessDeniedException, match="only its retiring principal"):
        kms.retire_grant(GrantToken=parent["GrantToken"])  # bob is neither grantee nor retiring principal
    kms.act_as(None)
    with pytest.raises(E.InvalidGrantTokenException):
        kms.retire_grant(GrantToken=parent["GrantToken"][:-4] + "AAAA")
    with pytest.raises(E.InvalidGrantTokenException):
        kms.encrypt(KeyId=key, Plaintext=b"x", GrantTokens=["not-a-token"])
    kms.retire_grant(KeyId=key, GrantId=child["GrantId"])  # the issuing account may
    with pytest.raises(E.InvalidGrantIdException):
        kms.revoke_grant(KeyId=key, GrantId=child["GrantId"])
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key)["Grants"]] == [parent["GrantId"]]


def test_grant_validation_idempotence_retiring_and_lifetime(kms: LocalKMS, key: str, clock: Any) -> None:
    hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    with pytest.raises(E.ValidationException, match="not valid for"):
        kms.create_grant(KeyId=hmac, GranteePrincipal=ALICE, Operations=["Encrypt"])
    with pytest.raises(E.ValidationException, match="symmetric"):
        kms.create_grant(
            KeyId=hmac, GranteePrincipal=ALICE, Operations=["GenerateMac"], Constraints={"EncryptionContextSubset": {}}
        )
    with pytest.raises(E.ValidationException):
        kms.create_grant(KeyId=key, GranteePrincipal="arn:aws:s3:::bucket", Operations=["Encrypt"])
    one = kms.create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Encrypt"], Name="app", RetiringPrincipal=BOB)
    two = kms.create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Encrypt"], Name="app", RetiringPrincipal=BOB)
    assert one["GrantId"] == two["GrantId"] and one["GrantToken"] != two["GrantToken"]
    three = kms.create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Decrypt"], Name="app")
    assert three["GrantId"] != one["GrantId"]
    kms.put_principal_policy(
        Principal=kms.create_principal(Name="bob")["User"]["Arn"], PolicyDocument=doc(allow("kms:ListRetirableGrants"))
    )
    kms.act_as("bob")
    listed = kms.list_retirable_grants(RetiringPrincipal=BOB)["Grants"]
    assert [g["GrantId"] for g in listed] == [one["GrantId"]] and listed[0]["IssuingAccount"] == ROOT
    kms.retire_grant(GrantToken=two["GrantToken"])  # the retiring principal, with any of the grant's tokens
    kms.act_as(None)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    clock.advance(days=8)
    kms.list_keys()
    assert sql(Path(kms.keyring.home), "SELECT count(*) FROM grants WHERE key_id = ?", key) == [(0,)]


def test_cross_account_needs_both_policies_and_the_key_arn(kms: LocalKMS, key: str) -> None:
    role = f"arn:aws:iam::{OTHER}:role/ci"
    kms.create_principal(Name="role/ci", Account=OTHER)
    arn = kms.key_arn(key)
    with pytest.raises(E.AccessDeniedException, match="no resource-based policy"):
        as_(kms, role).encrypt(KeyId=arn, Plaintext=b"x")
    other = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
        "Action": "kms:Encrypt",
        "Resource": "*",
    }
    as_(kms, None).put_key_policy(KeyId=key, Policy=doc(root_statement(), other))
    with pytest.raises(E.AccessDeniedException, match="no identity-based policy"):
        as_(kms, role).encrypt(KeyId=arn, Plaintext=b"x")
    as_(kms, None).put_principal_policy(Principal=role, PolicyDocument=doc(allow("kms:Encrypt", arn)))
    assert as_(kms, role).encrypt(KeyId=arn, Plaintext=b"x")["KeyId"] == arn
    with pytest.raises(E.NotFoundException, match=f"in account {OTHER}"):
        kms.encrypt(KeyId=key, Plaintext=b"x")  # a bare key ID names a key of the caller's own account
    with pytest.raises(E.AccessDeniedException):
        kms.create_key()  # account-level actions are the keyring account's


@pytest.mark.parametrize(
    ("policy", "error", "words"),
    [
        ('{"Version": "2012-10-17", "Statement": [', E.MalformedPolicyDocumentException, "not valid JSON"),
        (
            doc({**root_statement(), "Condition": {"StringEquelz": {"aws:SourceIp": "x"}}}),
            E.MalformedPolicyDocumentException,
            "StringEquelz",
        ),
        (
            doc({**root_statement(), "Condition": {"NumericLessThan": {"kms:RotationPeriodInDays": "soon"}}}),
            E.MalformedPolicyDocumentException,
            "soon",
        ),
        (doc({**root_statement(), "Effect": 1}), E.MalformedPolicyDocumentException, "Effect"),
        (
            doc(
                root_statement(),
                {**root_statement(), "Sid": "Ghost", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/ghost"}},
            ),
            E.MalformedPolicyDocumentException,
            "user/ghost does not exist",
        ),
        (doc(root_statement(), {**root_statement(), "Sid": "x" * 33 * 1024}), E.LimitExceededException, "32768"),
        (
            doc({**root_statement(), "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}}),
            E.MalformedPolicyDocumentException,
            "will not allow you",
        ),
    ],
    ids=["invalid-json", "unknown-operator", "wrong-type", "bad-effect", "unknown-principal", "33KB", "lockout"],
)
def test_bad_policies_are_refused_and_the_old_one_stays(
    kms: LocalKMS, key: str, policy: str, error: type[E.KMSError], words: str
) -> None:
    before = kms.get_key_policy(KeyId=key)["Policy"]
    with pytest.raises(error) as err:
        kms.put_key_policy(KeyId=key, Policy=policy)
    assert words in err.value.message
    assert kms.get_key_policy(KeyId=key)["Policy"] == before
    with pytest.raises(error):
        kms.create_key(Policy=policy)
    assert kms.encrypt(KeyId=key, Plaintext=b"x")


def test_lockout_check_can_be_bypassed_and_policies_name_existing_principals(kms: LocalKMS, key: str) -> None:
    kms.create_principal(Name="role/admin")
    admin = f"arn:aws:iam::{ACCOUNT}:role/admin"
    only_admin = doc({"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "kms:*", "Resource": "*"})
    with pytest.raises(E.MalformedPolicyDocumentException, match="will not allow you"):
        kms.create_key(Policy=only_admin)
    new = kms.create_key(Policy=only_admin, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
    with pytest.raises(E.AccessDeniedException, match="kms:GetKeyPolicy"):
        kms.get_key_policy(KeyId=new)  # the root is locked out, as the check warned
    kms.act_as("role/admin")
    assert kms.get_key_policy(KeyId=new)["Policy"] == only_admin
    kms.put_key_policy(KeyId=new, Policy=only_admin)  # the admin passes the check itself
    assert kms.encrypt(KeyId=new, Plaintext=b"x")


def test_alias_operations_need_the_alias_too(kms: LocalKMS, key: str) -> None:
    key_only = allow(["kms:CreateAlias", "kms:DeleteAlias"], kms.key_arn(key))
    kms.create_principal(Name="alice", Policy=doc(key_only))
    with pytest.raises(E.AccessDeniedException, match="alias/app"):
        as_(kms, "alice").create_alias(AliasName="alias/app", TargetKeyId=key)
    both = allow(["kms:CreateAlias", "kms:DeleteAlias"], [kms.key_arn(key), kms.alias_arn("alias/app")])
    as_(kms, None).put_principal_policy(Principal="alice", PolicyDocument=doc(both))
    as_(kms, "alice").create_alias(AliasName="alias/app", TargetKeyId=key)
    as_(kms, "alice").delete_alias(AliasName="alias/app")


def test_account_level_actions_need_an_identity_policy(kms: LocalKMS) -> None:
    kms.create_principal(Name="alice")
    with pytest.raises(E.AccessDeniedException, match="kms:CreateKey because no identity-based policy"):
        as_(kms, "alice").create_key()
    as_(kms, None).put_principal_policy(Principal="alice", PolicyDocument=doc(allow(["kms:CreateKey", "kms:ListKeys"])))
    made = as_(kms, "alice").create_key()["KeyMetadata"]["KeyId"]
    assert made in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    with pytest.raises(E.AccessDeniedException):
        kms.generate_random(NumberOfBytes=8)


def test_dry_run_checks_and_changes_nothing(kms: LocalKMS, key: str) -> None:
    kms.create_principal(Name="alice")
    with pytest.raises(E.DryRunOperationException):
        kms.create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Encrypt"], DryRun=True)
    assert kms.list_grants(KeyId=key)["Grants"] == []
    kms.dry_run = True  # the client's --dry-run
    with pytest.raises(E.DryRunOperationException):
        kms.encrypt(KeyId=key, Plaintext=b"x")
    with pytest.raises(E.AccessDeniedException):
        as_(kms, "alice").encrypt(KeyId=key, Plaintext=b"x")
    codes = [e.get("errorCode") for e in events(kms) if e["eventName"] in ("Encrypt", "CreateGrant")]
    assert codes[:3] == ["AccessDeniedException", "DryRunOperation", "DryRunOperation"]


def test_simulate_explains_without_doing(kms: LocalKMS, key: str) -> None:
    kms.create_principal(
        Name="alice", Policy=doc(allow("kms:Decrypt", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    )
    out = kms.simulate_policy(KeyId=key, Action="kms:Decrypt", Principal="alice", Request={"aws:SourceIp": "10.1.2.3"})
    assert out["Decision"] == "Allowed"
    assert {r["Source"] for r in out["Reasons"]} == {"KeyPolicy", "IdentityPolicy"}
    out = kms.simulate_policy(KeyId=key, Action="kms:Decrypt", Principal="alice", Request={"aws:SourceIp": "192.0.2.1"})
    assert out["Decision"] == "ImplicitDeny" and "no identity-based policy" in out["Message"]
    root = kms.simulate_policy(KeyId=key, Action="kms:Encrypt")
    assert root["Decision"] == "Allowed" and root["Reasons"][0]["Sid"] == "Enable IAM User Permissions"
    assert kms.list_grants(KeyId=key)["Grants"] == []


def test_principals_and_access_keys_are_stored_safely(kms: LocalKMS) -> None:
    made = kms.create_principal(Name="alice", Tags=[{"Key": "team", "Value": "web"}])["User"]
    assert made["Arn"] == ALICE and made["UserName"] == "alice" and made["Path"] == "/"
    assert made["Tags"] == [{"Key": "team", "Value": "web"}]
    with pytest.raises(E.AlreadyExistsException):
        kms.create_principal(Name="user/alice")
    key = kms.create_access_key(Principal="alice")["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20 and key["AccessKeyId"].isupper()
    assert len(key["SecretAccessKey"]) == 40
    assert kms._access_key_secret(key["AccessKeyId"]) == (ALICE, key["SecretAccessKey"])
    assert "SecretAccessKey" not in kms.list_access_keys(Principal="alice")["AccessKeyMetadata"][0]
    home = Path(kms.keyring.home)
    raw = b"".join((home / name).read_bytes() for name in ("keyring.db", "keyring.db-wal") if (home / name).exists())
    assert key["SecretAccessKey"].encode() not in raw
    assert key["SecretAccessKey"] not in json.dumps(events(kms))
    sql(home, "UPDATE principals SET doc = replace(doc, 'web', 'ops')")
    with pytest.raises(E.IntegrityError):
        kms.get_principal(Principal="alice")


def test_aws_managed_key(kms: LocalKMS) -> None:
    made = kms.create_managed_key(Service="kmsctl")["KeyMetadata"]
    assert made["KeyManager"] == "AWS"
    assert kms.create_managed_key(Service="kmsctl")["KeyMetadata"]["KeyId"] == made["KeyId"]
    assert kms.get_key_rotation_status(KeyId=made["KeyId"])["KeyRotationEnabled"] is True
    kms.generate_data_key(KeyId="alias/aws/kmsctl", KeySpec="AES_256")
    for call in (
        lambda: kms.disable_key(KeyId=made["KeyId"]),
        lambda: kms.schedule_key_deletion(KeyId=made["KeyId"]),
        lambda: kms.put_key_policy(KeyId=made["KeyId"], Policy=default_key_policy(ACCOUNT)),
        lambda: kms.tag_resource(KeyId=made["KeyId"], Tags=[{"TagKey": "a", "TagValue": "b"}]),
        lambda: kms.disable_key_rotation(KeyId=made["KeyId"]),
    ):
        with pytest.raises(E.AccessDeniedException):
            call()
    with pytest.raises(E.UnsupportedOperationException):
        kms.reset_key_policy(KeyId=made["KeyId"])
    kms.create_principal(Name="alice")
    assert as_(kms, "alice").encrypt(KeyId="alias/aws/kmsctl", Plaintext=b"x")  # any principal of the account


def test_an_older_keyring_is_migrated(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "SCHEMA_VERSION", 3)
    make_keyring(home)
    monkeypatch.undo()
    assert sql(home, "SELECT value FROM meta WHERE name = 'schema_version'") == [(b"3",)]
    assert sql(home, "SELECT count(*) FROM sqlite_master WHERE name = 'principals'") == [(0,)]
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    kms = LocalKMS(keyring)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.get_key_policy(KeyId=key)["Policy"] == default_key_policy(ACCOUNT)
    assert kms.create_principal(Name="alice")["User"]["Arn"] == ALICE
    keyring.close()


def test_the_roots_short_path_agrees_with_full_evaluation(kms: LocalKMS, key: str) -> None:
    """Under the default key policy the root is allowed every action, whichever way it is decided."""
    from kmsctl.service.access import ACCOUNT_OPS, ALIAS_OPS, KEY_OPS
    from kmsctl.service.access_rules import IAM_ACTIONS

    assert IAM_ACTIONS
    for op in sorted(ALIAS_OPS | KEY_OPS | ACCOUNT_OPS | {"Decrypt", "ReEncryptFrom", "ReEncryptTo", "CreateAlias"}):
        out = kms.simulate_policy(KeyId=key, Action=f"kms:{op}")
        assert out["Decision"] == "Allowed", op
    grant = kms.simulate_policy(
        KeyId=key, Action="kms:CreateGrant", Request={"Operations": "Encrypt,Decrypt", "GranteePrincipal": ALICE}
    )
    assert grant["Decision"] == "Allowed"
