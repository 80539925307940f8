#!/usr/bin/env python3
"""The cost of one access check, in-process: a key policy of 20 statements with conditions.

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_policy.py [--budget 2.0] [--limit-ms 0.3]

The policy has 20 statements, each with a Principal, an Action list with
wildcards, and conditions of several families (String, StringLike with a
policy variable, ForAllValues, Null, Numeric, Date, Bool, IpAddress, Arn),
plus an identity policy of 4 statements and 3 grants. The request is an
Encrypt by an IAM user through the account delegation, so every statement of
both policies is examined and the grants are consulted last. Parsing is done
once, outside the timing, as the dispatch point caches parsed policies.

Each figure is the median (and minimum) of one ``evaluate`` call over as many
calls as fit in --budget seconds. The exit status is 1 when the median is over
--limit-ms.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime

from kmsctl.policy import Grant, Request, evaluate, kms_request_context, parse_policy

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
USER = f"arn:aws:iam::{ACCOUNT}:user/bench"

CONDITIONS = [
    {"StringEquals": {"kms:EncryptionContext:app": "web", "kms:CallerAccount": ACCOUNT}},
    {"StringLike": {"kms:EncryptionContext:user": "${aws:username}*"}},
    {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app", "user", "stage"]}},
    {"Null": {"kms:EncryptionContextKeys": "false"}, "StringNotEquals": {"aws:ResourceTag/env": ["prod", "staging"]}},
    {"NumericLessThanEquals": {"aws:EpochTime": "4102444800"}},
    {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]}},
    {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ops-*"}},
    {"ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/team-*", "alias/ops-*"]}},
]


def key_policy() -> str:
    statements = [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    for i in range(19):
        statements.append(
            {
                "Sid": f"Statement{i}",
                "Effect": "Deny" if i % 5 == 4 else "Allow",
                "Principal": {
                    "AWS": [f"arn:aws:iam::{ACCOUNT}:role/app-{i}", f"arn:aws:iam::{ACCOUNT}:user/u{i}", "*"]
                },
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": CONDITIONS[i % len(CONDITIONS)] | {"StringEquals": {f"aws:PrincipalTag/never{i}": "x"}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def identity_policy() -> str:
    statements = [
        {"Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": f"arn:aws:kms:*:{ACCOUNT}:key/*"},
        {
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey*"],
            "Resource": f"arn:aws:kms:*:{ACCOUNT}:key/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}},
        },
        {"Effect": "Deny", "NotAction": "kms:*", "Resource": "*"},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls (default 2)")
    parser.add_argument("--limit-ms", type=float, default=0.3, help="the budget for one check (default 0.3 ms)")
    args = parser.parse_args()

    kp = parse_policy(key_policy())
    ip = parse_policy(identity_policy(), "identity", name="bench")
    grants = [Grant(f"g{i}", f"arn:aws:iam::{ACCOUNT}:role/other{i}", ["Encrypt", "Decrypt"]) for i in range(3)]
    context = kms_request_context(
        "Encrypt",
        key={"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS"},
        key_tags={"team": "web", "env": "dev"},
        key_aliases=["alias/team-web"],
        encryption_context={"app": "web", "user": "bench", "stage": "dev"},
        source_ip="10.1.2.3",
        secure_transport=True,
        now=datetime(2027, 1, 15, tzinfo=UTC),
    )
    assert len(kp.statements) == 20 and sum(1 for s in kp.statements if s.conditions) == 19

    def check() -> bool:
        request = Request("kms:Encrypt", KEY, USER, principal_tags={"team": "web"}, context=context)
        return evaluate(request, kp, [ip], grants).allowed

    assert check(), "the benchmark request should be allowed"
    times: list[float] = []
    deadline = time.perf_counter() + args.budget
    while len(times) < 100 or time.perf_counter() < deadline:
        start = time.perf_counter()
        check()
        times.append((time.perf_counter() - start) * 1000)
    median, best = statistics.median(times), min(times)
    print(f"python {platform.python_version()} on {platform.machine()}, {len(times)} checks")
    print(f"one access check (Request + evaluate), 20-statement key policy: median {median:.4f} ms, min {best:.4f} ms")
    print(f"budget {args.limit_ms} ms: {'ok' if median <= args.limit_ms else 'OVER'}")
    return 0 if median <= args.limit_ms else 1


if __name__ == "__main__":
    sys.exit(main())
