#!/usr/bin/env python3
"""Encrypt and decrypt with a key in a custom key store (a SoftHSM2 token)
against a local key: per call (a whole ``kmsctl encrypt`` / ``kmsctl decrypt``
process each) and per operation in line mode (``encrypt --lines | decrypt
--lines``), with the ratios.

    .venv/bin/python bench/bench_keystore.py [--calls 20] [--lines 500]

Needs softhsm2-util and python-pkcs11; makes a throwaway token and keyring in
a temporary folder (the test KDF, a session token so unlocking is not
measured).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

KMSCTL = str(Path(sys.executable).with_name("kmsctl"))
MODULE = os.environ.get("KMSCTL_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
PIN = "bench-pin-1234"


def setup(tmp: Path) -> tuple[dict[str, str], str, str]:
    """(environment for kmsctl, local key ID, store key ID)."""
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

    tokens = tmp / "tokens"
    tokens.mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "12345678", "--pin", PIN],
        env=env,
        check=True,
        capture_output=True,
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    home = tmp / "home"
    kr.create(str(home), b"bench", region="us-east-1", account="111122223333", created=datetime.now(UTC).isoformat(),
              kdf={"iterations": 1, "memory_kib": 1024, "lanes": 1})  # fmt: skip
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(b"bench")
    kms = LocalKMS(keyring)
    local = kms.create_key()["KeyMetadata"]["KeyId"]
    sid = kms.create_custom_key_store(
        CustomKeyStoreName="bench", Pkcs11Uri=f"pkcs11:token=bench?module-path={MODULE}", KeyStorePassword=PIN
    )["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    store = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=sid)["KeyMetadata"]["KeyId"]
    token, _ = keyring.new_session(time.time(), 3600)
    keyring.close()
    env = {k: v for k, v in env.items() if not k.startswith("KMSCTL_")}
    env.update(KMSCTL_HOME=str(home), KMSCTL_SESSION=token)
    return env, local, store


def per_call(env: dict[str, str], key: str, n: int) -> tuple[float, float]:
    """Median seconds of one `kmsctl encrypt` and one `kmsctl decrypt` process."""
    enc, dec = [], []
    for _ in range(n):
        t = time.perf_counter()
        ct = subprocess.run(
            [KMSCTL, "encrypt", "-k", key], input=b"benchmark", env=env, capture_output=True, check=True
        )
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([KMSCTL, "decrypt"], input=ct.stdout, env=env, capture_output=True, check=True)
        dec.append(time.perf_counter() - t)
    return statistics.median(enc), statistics.median(dec)


def per_line(env: dict[str, str], key: str, n: int) -> tuple[float, float]:
    """Seconds per operation: (encrypt --lines of n lines) / n, (decrypt --lines) / n."""
    data = b"".join(b"secret number %d\n" % i for i in range(n))
    t = time.perf_counter()
    ct = subprocess.run([KMSCTL, "encrypt", "-k", key, "--lines"], input=data, env=env, capture_output=True, check=True)
    enc = time.perf_counter() - t
    t = time.perf_counter()
    out = subprocess.run([KMSCTL, "decrypt", "--lines"], input=ct.stdout, env=env, capture_output=True, check=True)
    dec = time.perf_counter() - t
    assert out.stdout == data, "line mode did not round-trip"
    return enc / n, dec / n


def bench_store_key(calls: int, lines: int) -> str:
    with tempfile.TemporaryDirectory(prefix="kmsctl-bench-keystore-") as tmp:
        env, local, store = setup(Path(tmp))
        rows = []
        for what, fn, n in (("per call (process)", per_call, calls), ("per operation (line mode)", per_line, lines)):
            le, ld = fn(env, local, n)
            se, sd = fn(env, store, n)
            rows.append(f"| {what} | encrypt | {le * 1e3:.2f} ms | {se * 1e3:.2f} ms | {se / le:.2f}x |")
            rows.append(f"| {what} | decrypt | {ld * 1e3:.2f} ms | {sd * 1e3:.2f} ms | {sd / ld:.2f}x |")
    head = "| measure | op | local key | store key (SoftHSM2) | ratio |\n|---|---|---|---|---|\n"
    return head + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20, help="processes per measure (median)")
    ap.add_argument("--lines", type=int, default=500, help="lines per line-mode run")
    args = ap.parse_args()
    if shutil.which("softhsm2-util") is None or not os.path.exists(MODULE):
        sys.exit("bench_keystore: SoftHSM2 not installed (softhsm2-util)")
    sys.stdout.write(bench_store_key(args.calls, args.lines))


if __name__ == "__main__":
    main()
