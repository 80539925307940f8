#!/usr/bin/env python3
"""Per key spec: the cost of CreateKey, Sign and Verify (Encrypt and Decrypt
for RSA, GenerateMac and VerifyMac for HMAC, DeriveSharedSecret for ECDH),
in-process through LocalKMS.

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_keys.py [--budget 1.0] [--min-runs 5] [--spec RSA_4096 ...]

The keyring is a throwaway one in a temporary folder with the tests' cheap
Argon2id parameters: unlocking is not what is measured. Each figure is the
median (and minimum) wall time of one call, in milliseconds, over as many
calls as fit in --budget seconds (at least --min-runs), timeit-style: a
warm-up call first, then time.perf_counter around each call. Messages are 32
bytes; RSA encryption uses RSAES_OAEP_SHA_256.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kmsctl import model
from kmsctl.keyring import keyring as kr
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

CHEAP_KDF = {"iterations": 1, "memory_kib": 1024, "lanes": 1}  # as tests/conftest.py: unlock is not measured
PASSPHRASE = b"benchmark only"
MESSAGE = bytes(range(32))
COLUMNS = ["CreateKey", "Sign", "Verify", "Encrypt", "Decrypt", "GenerateMac", "VerifyMac", "DeriveSharedSecret"]


def measure(fn: Callable[[], Any], budget: float, min_runs: int) -> tuple[float, float, int]:
    """-> (median ms, min ms, runs)."""
    fn()  # warm-up: first-call imports and caches
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times), len(times)


def bench_spec(kms: LocalKMS, spec: str, budget: float, min_runs: int) -> dict[str, tuple[float, float, int]]:
    usages = model.SPEC_USAGES[spec]
    first = next(iter(usages))
    out: dict[str, tuple[float, float, int]] = {}

    def create(usage: str = first) -> str:
        return str(kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"])

    out["CreateKey"] = measure(create, budget, min_runs)
    if "SIGN_VERIFY" in usages:
        key = create("SIGN_VERIFY")
        alg = usages["SIGN_VERIFY"][0]
        sig = kms.sign(KeyId=key, Message=MESSAGE, SigningAlgorithm=alg)["Signature"]
        out["Sign"] = measure(lambda: kms.sign(KeyId=key, Message=MESSAGE, SigningAlgorithm=alg), budget, min_runs)
        out["Verify"] = measure(
            lambda: kms.verify(KeyId=key, Message=MESSAGE, Signature=sig, SigningAlgorithm=alg), budget, min_runs
        )
    if "ENCRYPT_DECRYPT" in usages:
        key = create("ENCRYPT_DECRYPT")
        alg = "SYMMETRIC_DEFAULT" if spec == "SYMMETRIC_DEFAULT" else "RSAES_OAEP_SHA_256"
        blob = kms.encrypt(KeyId=key, Plaintext=MESSAGE, EncryptionAlgorithm=alg)["CiphertextBlob"]
        out["Encrypt"] = measure(
            lambda: kms.encrypt(KeyId=key, Plaintext=MESSAGE, EncryptionAlgorithm=alg), budget, min_runs
        )
        out["Decrypt"] = measure(
            lambda: kms.decrypt(KeyId=key, CiphertextBlob=blob, EncryptionAlgorithm=alg), budget, min_runs
        )
    if "GENERATE_VERIFY_MAC" in usages:
        key = create("GENERATE_VERIFY_MAC")
        alg = usages["GENERATE_VERIFY_MAC"][0]
        mac = kms.generate_mac(KeyId=key, Message=MESSAGE, MacAlgorithm=alg)["Mac"]
        out["GenerateMac"] = measure(
            lambda: kms.generate_mac(KeyId=key, Message=MESSAGE, MacAlgorithm=alg), budget, min_runs
        )
        out["VerifyMac"] = measure(
            lambda: kms.verify_mac(KeyId=key, Message=MESSAGE, Mac=mac, MacAlgorithm=alg), budget, min_runs
        )
    if "KEY_AGREEMENT" in usages:
        key, peer_key = create("KEY_AGREEMENT"), create("KEY_AGREEMENT")
        peer = kms.get_public_key(KeyId=peer_key)["PublicKey"]
        out["DeriveSharedSecret"] = measure(
            lambda: kms.derive_shared_secret(KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=peer),
            budget,
            min_runs,
        )
    return out


def table(results: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    lines = [
        "| KeySpec | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for spec, row in results.items():
        cells = [f"{row[c][0]:.2f} ({row[c][1]:.2f})" if c in row else "–" for c in COLUMNS]
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of calls per figure (default 1.0)")
    parser.add_argument("--min-runs", type=int, default=5, help="calls per figure at least (default 5)")
    parser.add_argument("--spec", action="append", help="only this key spec; repeat for more (default: all)")
    args = parser.parse_args()
    specs = args.spec or [s for s in model.SPEC_USAGES if s in model.SUPPORTED_SPECS]

    with tempfile.TemporaryDirectory() as tmp:
        home = str(Path(tmp) / "home")
        kr.create(home, PASSPHRASE, region="us-east-1", account="111122223333", created="2027-01-15T08:00:00+00:00",
                  kdf=CHEAP_KDF)  # fmt: skip
        keyring = Keyring(home)
        keyring.unlock_with_passphrase(PASSPHRASE)
        kms = LocalKMS(keyring)
        results: dict[str, dict[str, tuple[float, float, int]]] = {}
        for spec in specs:
            results[spec] = bench_spec(kms, spec, args.budget, args.min_runs)
            print(f"{spec}: done", file=sys.stderr)
        keyring.close()

    import cryptography

    print(
        f"kmsctl per-spec costs, in-process LocalKMS; median (min) ms per call; "
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, {platform.machine()}\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
