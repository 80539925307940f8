"""AWS KMS access control: key policies, identity policies and grants, evaluated as AWS does.

A pure library (no CLI, storage or network): it takes policy documents and a
request and returns a decision with its reasons.

    policy = parse_policy(text)                      # MalformedPolicyDocumentException, LimitExceededException
    ctx = kms_request_context("Encrypt", key=meta, key_tags=tags, encryption_context=ec)
    decision = evaluate(Request("kms:Encrypt", key_arn, caller_arn, context=ctx), policy, identity_policies, grants)
    if not decision.allowed:
        raise AccessDeniedException(decision.access_denied_message())

docs/POLICY.md describes what is evaluated, in which order, and what is not.
"""

from kmsctl.policy.context import DEFAULT_KEY_POLICY, default_key_policy, kms_request_context
from kmsctl.policy.document import MAX_POLICY_BYTES, Policy, PolicyKind, Statement, parse_policy
from kmsctl.policy.evaluate import (
    EC_OPERATIONS,
    GRANT_OPERATIONS,
    IAM_ONLY_ACTIONS,
    Decision,
    Grant,
    Reason,
    Request,
    evaluate,
)

__all__ = [
    "DEFAULT_KEY_POLICY",
    "EC_OPERATIONS",
    "GRANT_OPERATIONS",
    "IAM_ONLY_ACTIONS",
    "MAX_POLICY_BYTES",
    "Decision",
    "Grant",
    "Policy",
    "PolicyKind",
    "Reason",
    "Request",
    "Statement",
    "default_key_policy",
    "evaluate",
    "kms_request_context",
    "parse_policy",
]
