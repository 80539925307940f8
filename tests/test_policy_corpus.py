"""The policy corpus: AWS's documented examples, each request with AWS's documented decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmsctl.policy import Grant, Request, default_key_policy, evaluate, kms_request_context, parse_policy

CORPUS = Path(__file__).parent / "policy_corpus"
ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


def _cases() -> list[Any]:
    out = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text()):
            assert case["source"].startswith("https://docs.aws.amazon.com/"), case["name"]
            for i, req in enumerate(case["requests"]):
                out.append(pytest.param(case, req, id=f"{path.stem}: {case['name']} [{i}]"))
    return out


def _grant(raw: dict[str, Any]) -> Grant:
    constraints = raw.get("Constraints", {})
    return Grant(
        grant_id=raw["GrantId"],
        grantee_principal=raw["GranteePrincipal"],
        operations=raw["Operations"],
        encryption_context_equals=constraints.get("EncryptionContextEquals"),
        encryption_context_subset=constraints.get("EncryptionContextSubset"),
    )


def decide(case: dict[str, Any], req: dict[str, Any]) -> Any:
    if "key_policy" not in case:
        key_policy = parse_policy(default_key_policy(ACCOUNT))
    elif case["key_policy"] is None:
        key_policy = None
    else:
        key_policy = parse_policy(json.dumps(case["key_policy"]))
    identity = [parse_policy(json.dumps(p), "identity") for p in case.get("identity_policies", [])]
    grants = [_grant(g) for g in case.get("grants", [])]
    action = req["action"]
    context = kms_request_context(action, **req.get("kms", {}))
    context.update(req.get("context", {}))
    request = Request(
        action=action,
        resource=req.get("resource", KEY),
        principal=req.get("principal", ALICE),
        principal_tags=req.get("principal_tags", {}),
        context=context,
    )
    return evaluate(request, key_policy, identity, grants)


@pytest.mark.parametrize(("case", "req"), _cases())
def test_corpus(case: dict[str, Any], req: dict[str, Any]) -> None:
    decision = decide(case, req)
    assert decision.effect == req["expect"], decision.to_dict()
    if "reasons" in req:
        got = [[r.source, r.grant_id if r.source == "Grant" else r.sid] for r in decision.reasons]
        assert got == req["reasons"]
    if "message" in req:
        assert decision.access_denied_message() == req["message"]


def test_every_expected_effect_appears() -> None:
    seen = {p.values[1]["expect"] for p in _cases()}
    assert seen == {"Allowed", "ExplicitDeny", "ImplicitDeny"}
