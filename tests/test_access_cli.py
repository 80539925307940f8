"""Access control through the real binary: principals, key policies, grants,
simulate and --dry-run, with their output shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _root() -> dict[str, Any]:
    return {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


def _ok(proc: Any) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    return str(proc.stdout.decode("utf-8", "replace"))


def _fails(proc: Any, code: int, name: str) -> str:
    err = str(proc.stderr.decode())
    assert proc.returncode == code, (proc.returncode, err)
    assert err.startswith(f"kmsctl: {name}: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_root_deny_and_delegation_through_the_binary(sub: Any, tmp_path: Path) -> None:
    key = _ok(sub("-o", "text", "create")).strip()
    assert _ok(sub("-o", "text", "principal", "create", "alice")).startswith(f"arn:aws:iam::{ACCOUNT}:user/alice\t")
    assert json.loads(_ok(sub("policy", "get", key)))["Statement"][0]["Sid"] == "Enable IAM User Permissions"
    blob = sub("encrypt", "-k", key, input=b"secret")
    assert blob.returncode == 0
    assert sub("decrypt", input=blob.stdout).stdout == b"secret"  # root, default policy
    # alice: no identity policy, so the default policy's delegation gives her nothing
    _fails(sub("--principal", "alice", "encrypt", "-k", key, input=b"s"), 5, "AccessDeniedException")
    ident = tmp_path / "alice.json"
    ident.write_text(_doc({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}))
    _ok(sub("principal", "policy", "put", "alice", str(ident)))
    _ok(sub("--principal", "alice", "encrypt", "-k", key, input=b"s"))
    env = {"KMSCTL_PRINCIPAL": "user/alice"}
    _ok(sub("encrypt", "-k", key, input=b"s", env=env))
    # a key policy that does not delegate to the account: her identity policy no longer suffices
    _ok(sub("principal", "create", "role/admin"))
    admin = tmp_path / "admin.json"
    admin.write_text(
        _doc(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/admin"},
                "Action": "kms:*",
                "Resource": "*",
            }
        )
    )
    _fails(sub("policy", "put", key, str(admin)), 2, "MalformedPolicyDocumentException")  # lockout check
    _ok(sub("policy", "put", key, str(admin), "--bypass-policy-lockout-safety-check"))
    err = _fails(sub("--principal", "alice", "encrypt", "-k", key, input=b"s"), 5, "AccessDeniedException")
    assert "no resource-based policy allows the kms:Encrypt action" in err
    _ok(sub("--principal", "role/admin", "encrypt", "-k", key, input=b"s"))
    # the owner's way back
    _fails(sub("--principal", "role/admin", "policy", "reset", key), 5, "AccessDeniedException")
    _ok(sub("policy", "reset", key))
    # a policy that denies the root Encrypt
    deny = tmp_path / "deny.json"
    deny.write_text(_doc(_root(), {"Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}))
    _ok(sub("policy", "put", key, str(deny)))
    err = _fails(sub("encrypt", "-k", key, input=b"s"), 5, "AccessDeniedException")
    assert f"User: {ROOT} is not authorized to perform: kms:Encrypt" in err and "explicit deny" in err
    records = json.loads(_ok(sub("-o", "json", "audit", "list", "--errors")))["Events"]
    denied = records[0]
    assert denied["eventName"] == "Encrypt" and denied["additionalEventData"] == {"deniedAction": "kms:Encrypt"}
    assert denied["userIdentity"]["arn"] == ROOT


def test_bad_policies_keep_the_old_one(sub: Any, tmp_path: Path) -> None:
    key = _ok(sub("-o", "text", "create")).strip()
    before = _ok(sub("policy", "get", key))
    cases = {
        "json": ("{", 2, "MalformedPolicyDocumentException", "not valid JSON"),
        "operator": (
            _doc({**_root(), "Condition": {"StringEqualz": {"a": "b"}}}),
            2,
            "MalformedPolicyDocumentException",
            "StringEqualz",
        ),
        "type": (
            _doc({**_root(), "Condition": {"NumericEquals": {"kms:RotationPeriodInDays": "x"}}}),
            2,
            "MalformedPolicyDocumentException",
            "Statement[0]",
        ),
        "principal": (
            _doc({**_root(), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/ghost"}}),
            2,
            "MalformedPolicyDocumentException",
            "user/ghost",
        ),
        "size": (_doc(_root(), {**_root(), "Sid": "x" * 33 * 1024}), 7, "LimitExceededException", "32768"),
    }
    for name, (text, code, error, words) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        assert words in _fails(sub("policy", "put", key, str(path)), code, error), name
        assert _ok(sub("policy", "get", key)) == before
    _fails(sub("create", "--policy", str(tmp_path / "json.json")), 2, "MalformedPolicyDocumentException")


def test_abac_grants_and_cross_account(sub: Any, tmp_path: Path) -> None:
    key = _ok(sub("-o", "text", "create", "--tag", "team=web")).strip()
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key}"
    abac = tmp_path / "abac.json"
    abac.write_text(
        _doc(
            {
                "Effect": "Allow",
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}},
            }
        )
    )
    _ok(sub("principal", "create", "role/ci", "--tag", "team=web", "--policy", str(abac)))
    _ok(sub("--principal", "role/ci", "encrypt", "-k", key, input=b"s"))
    _ok(sub("tag", "add", key, "team=db"))
    _fails(sub("--principal", "role/ci", "encrypt", "-k", key, input=b"s"), 5, "AccessDeniedException")
    # a grant limited by encryption context
    _ok(sub("principal", "create", "app"))
    line = _ok(
        sub(
            "-o",
            "text",
            "grant",
            "create",
            key,
            "--grantee",
            "app",
            "--operation",
            "Encrypt,Decrypt",
            "--context-subset",
            "env=prod",
        )
    )
    grant_id, token = line.rstrip("\n").split("\t")
    assert len(grant_id) == 64 and token
    app = ["--principal", "app", "--grant-token", token]
    _ok(sub(*app, "encrypt", "-k", key, "-c", "env=prod", "-c", "x=1", input=b"s"))
    _fails(sub(*app, "encrypt", "-k", key, "-c", "env=dev", input=b"s"), 5, "AccessDeniedException")
    _fails(
        sub("--principal", "app", "--grant-token", "bogus", "encrypt", "-k", key, input=b"s"),
        5,
        "InvalidGrantTokenException",
    )
    listed = json.loads(_ok(sub("-o", "json", "grant", "list", key)))["Grants"]
    assert listed[0]["GrantId"] == grant_id and listed[0]["Constraints"] == {"EncryptionContextSubset": {"env": "prod"}}
    _fails(sub("grant", "revoke", key, "0" * 64), 3, "InvalidGrantIdException")
    assert "would succeed" in _fails(sub("grant", "revoke", key, grant_id, "--dry-run"), 0, "DryRunOperation")
    _ok(sub("grant", "revoke", key, grant_id))
    # another account's role: both policies, and the key ARN
    _ok(sub("principal", "create", "role/deploy", "--account", "444455556666"))
    deploy = ["--principal", "arn:aws:iam::444455556666:role/deploy"]
    cross = tmp_path / "cross.json"
    cross.write_text(
        _doc(
            _root(), {"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "kms:Encrypt", "Resource": "*"}
        )
    )
    _ok(sub("policy", "put", key, str(cross)))
    _fails(sub(*deploy, "encrypt", "-k", arn, input=b"s"), 5, "AccessDeniedException")  # no identity policy yet
    ident = tmp_path / "deploy.json"
    ident.write_text(_doc({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": arn}))
    _ok(sub("principal", "policy", "put", "arn:aws:iam::444455556666:role/deploy", str(ident)))
    _ok(sub(*deploy, "encrypt", "-k", arn, input=b"s"))
    _fails(sub(*deploy, "encrypt", "-k", key, input=b"s"), 3, "NotFoundException")


def test_simulate_dry_run_and_principal_shapes(sub: Any) -> None:
    key = _ok(sub("-o", "text", "create")).strip()
    _ok(sub("principal", "create", "alice", "--tag", "team=web"))
    got = json.loads(_ok(sub("-o", "json", "policy", "simulate", key, "--action", "kms:Encrypt")))
    assert got == {
        "Decision": "Allowed",
        "Reasons": [
            {"Source": "KeyPolicy", "Sid": "Enable IAM User Permissions", "Effect": "Allow", "StatementIndex": 0}
        ],
    }
    denied = sub(
        "-o", "json", "policy", "simulate", key, "--action", "kms:Decrypt", "--principal", "alice", "-c", "a=b"
    )
    assert denied.returncode == 1 and json.loads(denied.stdout) == {"Decision": "ImplicitDeny", "Reasons": []}
    assert _ok(sub("-o", "text", "policy", "list", key)) == "default\n"
    assert "would succeed" in _fails(sub("encrypt", "-k", key, "--dry-run", input=b"s"), 0, "DryRunOperation")
    dry = sub("--principal", "alice", "encrypt", "-k", key, "--dry-run", input=b"s")
    _fails(dry, 5, "AccessDeniedException")
    assert dry.stdout == b""
    made = json.loads(_ok(sub("-o", "json", "principal", "access-key", "create", "alice")))["AccessKey"]
    assert made["AccessKeyId"].startswith("AKIA") and len(made["SecretAccessKey"]) == 40 and made["UserName"] == "alice"
    shell = _ok(sub("principal", "access-key", "create", "alice", "--shell"))
    assert shell.startswith("export AWS_ACCESS_KEY_ID=AKIA") and " AWS_SECRET_ACCESS_KEY=" in shell
    rows = _ok(sub("-o", "text", "principal", "access-key", "list", "alice")).splitlines()
    assert rows[0].split("\t")[0] == made["AccessKeyId"] and made["SecretAccessKey"] not in "".join(rows)
    _fails(sub("principal", "access-key", "create", "alice"), 7, "LimitExceededException")
    described = json.loads(_ok(sub("-o", "json", "principal", "describe", "alice")))["User"]
    assert described["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice" and described["Tags"] == [
        {"Key": "team", "Value": "web"}
    ]
    _fails(sub("principal", "create", "alice"), 7, "AlreadyExistsException")
    _fails(sub("--principal", "nobody", "list"), 3, "NotFoundException")
    _ok(sub("principal", "delete", "alice"))
    assert _ok(sub("-o", "text", "principal", "list")) == ""


def test_seal_without_a_key_uses_the_aws_managed_key(sub: Any) -> None:
    sealed = sub("seal", input=b"hello")
    assert sealed.returncode == 0, sealed.stderr
    assert sub("unseal", input=sealed.stdout).stdout == b"hello"
    meta = json.loads(_ok(sub("-o", "json", "describe", "alias/aws/kmsctl")))["KeyMetadata"]
    assert meta["KeyManager"] == "AWS"
    _fails(sub("disable", "alias/aws/kmsctl"), 5, "AccessDeniedException")
    _fails(sub("policy", "reset", "alias/aws/kmsctl"), 4, "UnsupportedOperationException")


def test_grant_commands_in_process(cli: Any) -> None:
    key = cli("-o", "text", "create").stdout.strip()
    assert cli("principal", "create", "app").exit_code == 0
    dry = cli("grant", "create", key, "--grantee", "app", "--operation", "Decrypt", "--dry-run")
    assert dry.exit_code == 0 and "would succeed" in dry.stderr and dry.stdout == ""
    assert json.loads(cli("-o", "json", "grant", "list", key).stdout)["Grants"] == []
    made = cli("-o", "json", "grant", "create", key, "--grantee", "app", "--operation", "Decrypt", "--retiring", "app")
    grant = json.loads(made.stdout)
    assert set(grant) == {"GrantId", "GrantToken"}
    retirable = cli("-o", "text", "grant", "list-retirable", "--retiring", "app")
    assert retirable.stdout.startswith(grant["GrantId"] + "\t")
    as_app = cli("--principal", "app", "grant", "list-retirable", "--retiring", "app")  # account-level: IAM only
    assert as_app.exit_code == 5 and "kms:ListRetirableGrants because no identity-based policy" in as_app.stderr
    assert cli("-o", "text", "grant", "list", key, "--grantee", "app").stdout.startswith(grant["GrantId"] + "\t")
    assert cli("grant", "retire", key, grant["GrantId"]).exit_code == 0
    assert cli("grant", "retire", key, grant["GrantId"]).exit_code == 3
    both = cli(
        "grant",
        "create",
        key,
        "--grantee",
        "app",
        "--operation",
        "Decrypt",
        "--context-equals",
        "a=b",
        "--context-subset",
        "a=b",
    )
    assert both.exit_code == 2
