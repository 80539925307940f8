"""The policy engine's contract: validation errors that point at the problem, and properties of evaluation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsctl.errors import LimitExceededException, MalformedPolicyDocumentException
from kmsctl.policy import (
    MAX_POLICY_BYTES,
    Grant,
    Request,
    default_key_policy,
    evaluate,
    kms_request_context,
    parse_policy,
)

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _doc(*statements: dict[str, Any], version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def _stmt(**extra: Any) -> dict[str, Any]:
    return {"Sid": "S", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*", **extra}


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ("", "empty"),
        (json.dumps({"Version": "2012-10-17"}), "no Statement"),
        (json.dumps({"Version": "2012-10-17", "Statement": []}), "Statement list is empty"),
        (_doc(_stmt(), version="2013-01-01"), "Version must be"),
        (
            json.dumps({"Version": "2012-10-17", "Statement": [_stmt()], "Extra": 1}),
            "unknown top-level element 'Extra'",
        ),
        (_doc(_stmt(Effect="allow")), "Statement[0] (Sid 'S'): Effect must be"),
        (_doc(_stmt(), _stmt(Sid="Two", Actions="kms:*")), "Statement[1] (Sid 'Two'): unknown element 'Actions'"),
        (
            _doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}),
            "Statement[0]: a key policy statement needs a Principal",
        ),
        (_doc(_stmt(Principal={"AWS": "arn:aws:iam::111122223333:user/*"})), "invalid principals"),
        (_doc(_stmt(Principal={"AWS": "alice"})), "Principal.AWS 'alice'"),
        (_doc(_stmt(Principal={"Group": "x"})), "unknown principal type 'Group'"),
        (_doc(_stmt(Principal=["*"])), "Principal must be"),
        (_doc(_stmt(Action=5)), "Action must be a non-empty string or list of strings"),
        (_doc(_stmt(Action="Encrypt")), "Action 'Encrypt' must be \"service:action\""),
        (_doc(_stmt(NotAction="kms:Encrypt")), "Action and NotAction cannot both appear"),
        (_doc(_stmt(Resource=[])), "Resource must be"),
        (
            _doc(_stmt(Condition={"StringEqualz": {"kms:CallerAccount": ACCOUNT}})),
            "unknown condition operator 'StringEqualz'",
        ),
        (_doc(_stmt(Condition={"NullIfExists": {"a": "true"}})), "unknown condition operator 'NullIfExists'"),
        (_doc(_stmt(Condition={"ForSomeValues:StringEquals": {"a": "b"}})), "unknown condition operator"),
        (_doc(_stmt(Condition={"NumericLessThan": {"kms:RotationPeriodInDays": "ten"}})), "'ten' is not a number"),
        (_doc(_stmt(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})), "not an ISO 8601 date"),
        (_doc(_stmt(Condition={"Bool": {"aws:SecureTransport": "yes"}})), "'yes' is not a boolean"),
        (_doc(_stmt(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}})), "not an IP address or CIDR"),
        (_doc(_stmt(Condition={"BinaryEquals": {"k": "not base64!"}})), "is not base64"),
        (_doc(_stmt(Condition={"Null": {"k": "maybe"}})), "Null takes true or false"),
        (_doc(_stmt(Condition={"StringEquals": {"k": {"a": 1}}})), "must be a string, a number or a boolean"),
        (_doc(_stmt(Condition={"StringEquals": {"k": []}})), "list of values is empty"),
        (_doc(_stmt(Condition={"StringEquals": "x"})), "an operator takes an object"),
        (_doc(_stmt(Condition=[])), "Condition must be an object"),
        (_doc(_stmt(Condition={"StringEquals": {"k": "${aws:username"}})), "malformed policy variable"),
        (
            _doc(_stmt(Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:Dept": "IT"}})),
            "OverlyPermissiveCondition",
        ),
        ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}', "repeats the element 'Version'"),
        (
            json.dumps({"Version": "2012-10-17", "Statement": [_stmt(Sid="caf\u00e9 \u2603")]}, ensure_ascii=False),
            "outside",
        ),
    ],
)
def test_malformed_policies_name_the_problem(text: str, expected: str) -> None:
    with pytest.raises(MalformedPolicyDocumentException) as err:
        parse_policy(text)
    assert expected in str(err.value)
    assert err.value.exit_code == 2


def test_identity_policies_take_no_principal() -> None:
    with pytest.raises(MalformedPolicyDocumentException, match=r"Statement\[0\].*cannot have a Principal"):
        parse_policy(_doc(_stmt()), "identity")


def test_a_policy_over_32_kb_is_a_limit_error() -> None:
    padding = " " * (MAX_POLICY_BYTES - len(default_key_policy(ACCOUNT)))
    assert parse_policy(default_key_policy(ACCOUNT) + padding)  # exactly 32 KB is fine
    with pytest.raises(LimitExceededException, match="32768") as err:
        parse_policy(default_key_policy(ACCOUNT) + padding + " ")
    assert err.value.exit_code == 7


def test_default_key_policy_is_awss_text() -> None:
    text = default_key_policy("444455556666")
    assert json.loads(text) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    assert text.startswith('{\n  "Version" : "2012-10-17",\n  "Id" : "key-default-1",')
    assert parse_policy(text).principals() == ["arn:aws:iam::444455556666:root"]


def test_principals_lists_every_named_principal_for_an_existence_check() -> None:
    policy = parse_policy(
        _doc(
            _stmt(Principal={"AWS": [ALICE, "444455556666"], "Service": "ec2.amazonaws.com"}),
            {"Effect": "Deny", "NotPrincipal": {"AWS": ALICE}, "Action": "kms:*", "Resource": "*"},
        )
    )
    assert policy.principals() == [ALICE, "arn:aws:iam::444455556666:root", "ec2.amazonaws.com"]


def test_statement_without_action_or_resource_is_accepted_but_has_no_effect() -> None:
    text = _doc(
        {"Effect": "Allow", "Principal": "*", "Resource": "*"}, {"Effect": "Allow", "Principal": "*", "Action": "*"}
    )
    decision = evaluate(Request("kms:Encrypt", KEY, ROOT), parse_policy(text), [])
    assert decision.effect == "ImplicitDeny"


# --- context builder ----------------------------------------------------------------------------------------------


def test_context_for_an_encrypt_request() -> None:
    now = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    ctx = kms_request_context(
        "Encrypt",
        key={"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS", "MultiRegion": False},
        key_tags={"team": "web"},
        key_aliases=["alias/app"],
        request_alias="arn:aws:kms:us-west-2:111122223333:alias/app",
        encryption_context={"app": "web"},
        source_ip="203.0.113.1",
        secure_transport=True,
        now=now,
    )
    assert ctx == {
        "kms:KeySpec": "SYMMETRIC_DEFAULT",
        "kms:KeyUsage": "ENCRYPT_DECRYPT",
        "kms:KeyOrigin": "AWS_KMS",
        "kms:MultiRegion": False,
        "aws:ResourceTag/team": "web",
        "kms:ResourceAliases": ["alias/app"],
        "kms:RequestAlias": "alias/app",
        "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "kms:EncryptionContext:app": "web",
        "kms:EncryptionContextKeys": ["app"],
        "aws:SourceIp": "203.0.113.1",
        "aws:SecureTransport": True,
        "aws:CurrentTime": now,
        "aws:EpochTime": 1800000000,
    }


def test_context_has_no_key_properties_on_account_level_operations() -> None:
    ctx = kms_request_context(
        "CreateKey", key={"KeySpec": "RSA_2048"}, key_tags={"a": "b"}, request_tags={"team": "web"}
    )
    assert ctx["kms:KeySpec"] == "SYMMETRIC_DEFAULT"  # the request's default, not the passed key's
    assert "aws:ResourceTag/a" not in ctx
    assert ctx["aws:RequestTag/team"] == "web" and ctx["aws:TagKeys"] == ["team"]


def test_request_derives_the_principal_keys() -> None:
    request = Request(
        "kms:Decrypt", KEY, "arn:aws:sts::444455556666:assumed-role/App/s1", principal_tags={"team": "web"}
    )
    assert request.account == "444455556666"
    assert request.ctx["aws:principalarn"] == ("arn:aws:iam::444455556666:role/App",)
    assert request.ctx["aws:principaltype"] == ("AssumedRole",)
    assert request.ctx["kms:calleraccount"] == ("444455556666",)
    assert request.ctx["aws:principaltag/team"] == ("web",)
    assert "aws:username" not in request.ctx
    assert Request("kms:Decrypt", KEY, ALICE).ctx["aws:username"] == ("alice",)


def test_decision_json_shape() -> None:
    grant = Grant("g1", ALICE, ["Decrypt"])
    decision = evaluate(Request("kms:Decrypt", KEY, ALICE), parse_policy(default_key_policy(ACCOUNT)), [], [grant])
    assert decision.to_dict() == {
        "Decision": "Allowed",
        "Reasons": [{"Source": "Grant", "GrantId": "g1", "Effect": "Allow"}],
    }
    with pytest.raises(ValueError):
        decision.access_denied_message()


# --- properties -----------------------------------------------------------------------------------------------------

ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:PutKeyPolicy", "kms:GenerateDataKey"]
PRINCIPALS = [ROOT, ALICE, f"arn:aws:iam::{ACCOUNT}:role/app", "arn:aws:iam::444455556666:user/eve"]
CONDITIONS = [
    None,
    {"StringEquals": {"kms:EncryptionContext:app": "web"}},
    {"StringNotEquals": {"aws:ResourceTag/env": "prod"}},
    {"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "a*"}},
    {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app", "env"]}},
    {"Null": {"kms:EncryptionContextKeys": "true"}},
    {"BoolIfExists": {"aws:SecureTransport": "true"}},
]


@st.composite
def statements(draw: st.DrawFn, principal: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Effect": draw(st.sampled_from(["Allow", "Deny"])),
        "Action": draw(
            st.lists(st.sampled_from([*ACTIONS, "kms:*", "kms:Gen*", "kms:*crypt"]), min_size=1, max_size=3)
        ),
        "Resource": draw(
            st.sampled_from(["*", KEY, "arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:*:444455556666:key/*"])
        ),
    }
    if principal:
        out["Principal"] = {"AWS": draw(st.sampled_from([*PRINCIPALS, ACCOUNT, "*", "444455556666"]))}
    condition = draw(st.sampled_from(CONDITIONS))
    if condition is not None:
        out["Condition"] = condition
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Request]:
    key_statements = draw(st.lists(statements(True), min_size=1, max_size=5))
    identity_statements = draw(st.lists(statements(False), min_size=0, max_size=4))
    ec = draw(st.dictionaries(st.sampled_from(["app", "env", "abc"]), st.sampled_from(["web", "prod"]), max_size=2))
    context = kms_request_context(
        "Encrypt", key={}, key_tags=draw(st.sampled_from([{}, {"env": "prod"}])), encryption_context=ec
    )
    request = Request(draw(st.sampled_from(ACTIONS)), KEY, draw(st.sampled_from(PRINCIPALS)), context=context)
    return key_statements, identity_statements, request


def _decide(key: list[dict[str, Any]], identity: list[dict[str, Any]], request: Request) -> str:
    ids = [parse_policy(_doc(*identity), "identity")] if identity else []
    return evaluate(request, parse_policy(_doc(*key)), ids).effect


@settings(max_examples=60, deadline=None)
@given(scenarios(), statements(True), st.booleans())
def test_adding_a_deny_never_turns_a_denial_into_an_allow(
    scenario: tuple[list[dict[str, Any]], list[dict[str, Any]], Request], extra: dict[str, Any], to_key: bool
) -> None:
    key, identity, request = scenario
    before = _decide(key, identity, request)
    deny = {**extra, "Effect": "Deny"}
    if not to_key:
        deny.pop("Principal")
    after = _decide([*key, deny] if to_key else key, identity if to_key else [*identity, deny], request)
    if before != "Allowed":
        assert after != "Allowed"
    if before == "ExplicitDeny":
        assert after == "ExplicitDeny"


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_statement_order_never_changes_the_decision(
    scenario: tuple[list[dict[str, Any]], list[dict[str, Any]], Request], rnd: Any
) -> None:
    key, identity, request = scenario
    before = _decide(key, identity, request)
    rnd.shuffle(key)
    rnd.shuffle(identity)
    assert _decide(key, identity, request) == before


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.data())
def test_removing_an_allow_never_turns_a_denial_into_an_allow(
    scenario: tuple[list[dict[str, Any]], list[dict[str, Any]], Request], data: st.DataObject
) -> None:
    key, identity, request = scenario
    before = _decide(key, identity, request)
    allows = [i for i, s in enumerate(key) if s["Effect"] == "Allow"]
    if before == "Allowed" or len(key) < 2 or not allows:
        return
    del key[data.draw(st.sampled_from(allows))]
    assert _decide(key, identity, request) != "Allowed"


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ACTIONS), st.lists(st.booleans(), min_size=20, max_size=20))
def test_action_matching_ignores_case(action: str, flips: list[bool]) -> None:
    mangled = "".join(c.swapcase() if f else c for c, f in zip(action, flips * 3, strict=False))
    policy = parse_policy(_doc(_stmt(Action=mangled)))
    assert evaluate(Request(action, KEY, ROOT), policy, []).allowed


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(
        ["StringEquals", "StringNotLike", "NumericLessThan", "DateGreaterThan", "Bool", "IpAddress", "ArnLike"]
    )
)
def test_ifexists_on_an_absent_key_is_true(operator: str) -> None:
    value = {
        "NumericLessThan": "5",
        "DateGreaterThan": "2020-01-01T00:00:00Z",
        "Bool": "true",
        "IpAddress": "10.0.0.0/8",
    }
    policy = parse_policy(_doc(_stmt(Condition={operator + "IfExists": {"aws:absent": value.get(operator, "x")}})))
    assert evaluate(Request("kms:Encrypt", KEY, ROOT), policy, []).allowed
