#!/usr/bin/env python3
"""What access control costs: one check at the dispatch point, and `kmsctl encrypt`.

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_access.py [--budget 1.0] [--runs 30] [--before REV]

1. In-process, the whole check an operation pays (finding the key, the
   caller's identity policy, the request context, evaluation), for: the
   account root under the default key policy (the short path), the same
   evaluated in full, and an IAM user under a 20-statement key policy with
   conditions, an identity policy and grants (bench/bench_policy.py's
   documents). Median and minimum of as many checks as fit in --budget.
2. `kmsctl encrypt` with a session, as whole processes, interleaved between
   this tree and the tree at --before (a git revision, default the commit
   before access control: the parent of the first commit touching
   kmsctl/service/access.py), each run with `python -S` and only its own tree
   and the venv's site-packages on the path, so neither sees the other.

The exit status is 1 when a check's median is over 0.3 ms or encrypt is more
than 10% slower than before.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT_DIR = Path(__file__).resolve().parent.parent


def _bench_policy() -> Any:
    spec = importlib.util.spec_from_file_location("bench_policy", ROOT_DIR / "bench" / "bench_policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(fn: Any, budget: float) -> tuple[float, float, int]:
    samples: list[float] = []
    end = time.perf_counter() + budget
    while time.perf_counter() < end or len(samples) < 50:
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000, min(samples) * 1000, len(samples)


def in_process(budget: float) -> dict[str, tuple[float, float, int]]:
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS
    from kmsctl.service.access_rules import authorize

    bp = _bench_policy()
    home = tempfile.mkdtemp(prefix="kmsctl-bench-")
    kr.create(home, None, region="us-west-2", account=bp.ACCOUNT, created="bench")
    keyring = Keyring(home)
    keyring.unlock_unprotected()
    kms = LocalKMS(keyring)
    plain = kms.create_key()["KeyMetadata"]["KeyId"]
    tags = [{"TagKey": "team", "TagValue": "web"}, {"TagKey": "env", "TagValue": "dev"}]
    busy = kms.create_key(Tags=tags)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/team-web", TargetKeyId=busy)
    kms.create_principal(Name="bench", Policy=bp.identity_policy(), Tags=[{"Key": "team", "Value": "web"}])
    from kmsctl.policy import parse_policy

    for arn in parse_policy(bp.key_policy()).principals():  # a key policy names only existing principals
        if ":user/" in arn or ":role/" in arn:
            kms.create_principal(Name=arn.split(":", 5)[5], Account=arn.split(":")[4])
    kms.put_key_policy(KeyId=busy, Policy=bp.key_policy(), BypassPolicyLockoutSafetyCheck=True)
    for i in range(3):
        kms.create_grant(
            KeyId=busy, GranteePrincipal=f"arn:aws:iam::{bp.ACCOUNT}:user/other{i}", Operations=["Decrypt"]
        )
    request = {"Plaintext": b"x", "EncryptionContext": {"app": "web", "user": "bench", "stage": "dev"}}
    out: dict[str, tuple[float, float, int]] = {}

    def check(key: str, exact: bool = False) -> Any:
        def run() -> None:
            with kms.db.read():
                if exact:
                    kms.require(
                        "kms:Encrypt", kms._key(key), exact=True, encryption_context=request["EncryptionContext"]
                    )
                else:
                    authorize(kms, "Encrypt", {"KeyId": key, **request})

        return run

    out["root, default policy (short path)"] = _time(check(plain), budget)
    out["root, default policy (full evaluation)"] = _time(check(plain, exact=True), budget)
    kms.act_as("bench", source_ip="10.1.2.3", secure_transport=True)
    assert kms.encrypt(KeyId=busy, **request)  # allowed: every statement of both policies is examined
    out["IAM user, 20-statement policy + identity policy + 3 grants"] = _time(check(busy), budget)
    keyring.close()
    return out


def _first_access_commit() -> str:
    log = subprocess.run(
        ["git", "log", "--format=%H", "--reverse", "--", "kmsctl/service/access.py"],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return log[0] + "^"


def encrypt_before_after(runs: int, before: str) -> dict[str, float]:
    site = sysconfig.get_paths()["purelib"]
    work = Path(tempfile.mkdtemp(prefix="kmsctl-bench-"))
    base = work / "before"
    base.mkdir()
    archive = subprocess.run(["git", "archive", before, "kmsctl"], cwd=ROOT_DIR, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    trees = {"before": base, "after": ROOT_DIR}
    envs: dict[str, dict[str, str]] = {}
    for name, tree in trees.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
        env.update(PYTHONPATH=f"{tree}{os.pathsep}{site}", KMSCTL_HOME=str(work / f"home-{name}"))
        env["KMSCTL_PASSPHRASE"] = "bench passphrase"
        kms = [sys.executable, "-S", "-m", "kmsctl"]
        subprocess.run([*kms, "-q", "init"], env=env, check=True, capture_output=True)
        key = subprocess.run([*kms, "-o", "text", "create"], env=env, check=True, capture_output=True, text=True)
        token = subprocess.run([*kms, "unlock"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        env.pop("KMSCTL_PASSPHRASE")
        env["KMSCTL_SESSION"] = token.split("=", 1)[-1] if "=" in token else token
        env["BENCH_KEY"] = key.stdout.strip()
        envs[name] = env
    times: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(runs + 3):
        for name, env in envs.items():
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-S", "-m", "kmsctl", "encrypt", "-k", env["BENCH_KEY"]],
                env=env,
                input=b"secret",
                capture_output=True,
                check=True,
            )
            if i >= 3:  # warm-up
                times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per in-process figure")
    parser.add_argument("--runs", type=int, default=30, help="timed kmsctl encrypt processes per tree")
    parser.add_argument("--before", default=None, help="git revision to compare against")
    args = parser.parse_args()
    ok = True
    print("In-process access check (ms): median, min, calls")
    for name, (median, low, n) in in_process(args.budget).items():
        print(f"  {name:62} {median:7.4f} {low:7.4f} {n:7d}")
        ok = ok and median <= 0.3
    before = args.before or _first_access_commit()
    figures = encrypt_before_after(args.runs, before)
    ratio = figures["after"] / figures["before"]
    print(
        f"kmsctl encrypt with a session (median ms of {args.runs}): before ({before}) {figures['before']:.1f}, "
        f"after {figures['after']:.1f}, ratio {ratio:.3f}"
    )
    ok = ok and ratio <= 1.10
    print(json.dumps({"ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
