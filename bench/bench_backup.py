"""Backup and restore of a large keyring, timed through the real command line.

Builds a keyring of --keys keys (each with an alias), in-process and in one
transaction, then times `kmsctl backup FILE` and `kmsctl restore FILE` (into
a new home) as whole processes, start-up and the passphrase's key derivation
included (the test suite's cheap Argon2id parameters unless --real-kdf).

    .venv/bin/python bench/bench_backup.py                 # 10,000 keys
    .venv/bin/python bench/bench_backup.py --keys 1000 --runs 3

Prints one line per step and exits 1 if backup or restore took longer than
--budget seconds (default 10).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FAST_KDF = {"iterations": 1, "memory_kib": 8192, "lanes": 1}
PASSPHRASE = "bench passphrase, not a secret"


def build(home: Path, keys: int, real_kdf: bool) -> float:
    from kmsctl import model
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

    t0 = time.perf_counter()
    extra: dict[str, Any] = {} if real_kdf else {"kdf": FAST_KDF}
    kr.create(
        str(home),
        PASSPHRASE.encode(),
        region=model.DEFAULT_REGION,
        account=model.DEFAULT_ACCOUNT,
        created=datetime.now(UTC).isoformat(),
        **extra,
    )
    keyring = Keyring(str(home))
    try:
        keyring.unlock_with_passphrase(PASSPHRASE.encode())
        kms = LocalKMS(keyring)
        with kms.transaction():
            for i in range(keys):
                key_id = kms.create_key(Description=f"bench key {i}")["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=f"alias/k{i}", TargetKeyId=key_id)
    finally:
        keyring.close()
    return time.perf_counter() - t0


def kmsctl(home: Path, *args: str) -> float:
    exe = Path(sys.executable).with_name("kmsctl")
    env = {**os.environ, "KMSCTL_HOME": str(home), "KMSCTL_PASSPHRASE": PASSPHRASE}
    t0 = time.perf_counter()
    subprocess.run([str(exe), "-q", *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--real-kdf", action="store_true", help="the production Argon2id cost (64 MiB, 3 passes)")
    args = parser.parse_args()
    os.umask(0o077)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        print(f"build: {args.keys} keys with aliases in {build(home, args.keys, args.real_kdf):.1f} s")
        file = Path(tmp) / "keyring.backup"
        worst = 0.0
        for run in range(args.runs):
            b = kmsctl(home, "backup", "--force", str(file))
            target = Path(tmp) / f"restored{run}"
            r = kmsctl(target, "restore", str(file))
            size = file.stat().st_size
            print(f"run {run + 1}: backup {b:.2f} s, restore {r:.2f} s, file {size / 1e6:.1f} MB")
            worst = max(worst, b, r)
    print(f"slowest: {worst:.2f} s (budget {args.budget:.0f} s)")
    return 0 if worst <= args.budget else 1


if __name__ == "__main__":
    raise SystemExit(main())
