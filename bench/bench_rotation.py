"""Rotation cost against the number of prior key materials.

    .venv/bin/python bench/bench_rotation.py [--versions 100] [--repeat 30]

Measures, in-process through LocalKMS on a keyring with a cheap KDF and a
fake clock: one automatic rotation (done by ``maintain``) of a fresh key and
of a key with N prior materials; Decrypt under the oldest and the newest
material of that key. Prints medians in milliseconds and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kmsctl.keyring import keyring as kr
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

DAY = 86400.0
CHEAP_KDF = {"iterations": 1, "memory_kib": 8192, "lanes": 1}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _kms(folder: str) -> tuple[LocalKMS, Clock]:
    home = str(Path(folder) / "home")
    kr.create(home, b"bench", region="us-east-1", account="111122223333", created="bench", kdf=CHEAP_KDF)
    keyring = Keyring(home)
    keyring.unlock_with_passphrase(b"bench")
    clock = Clock()
    return LocalKMS(keyring, clock=clock), clock


def _rotation_times(kms: LocalKMS, clock: Clock, key: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        clock.now += 91 * DAY
        t = time.perf_counter()
        report = kms.maintain()
        times.append((time.perf_counter() - t) * 1000)
        assert len(report["RotatedKeys"]) == 1
    return times


def _decrypt_times(kms: LocalKMS, blob: bytes, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        kms.decrypt(CiphertextBlob=blob)
        times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kms, clock = _kms(folder)
        fresh = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=fresh, RotationPeriodInDays=90)
        fresh_times = _rotation_times(kms, clock, fresh, args.repeat)
        kms.disable_key_rotation(KeyId=fresh)

        old = kms.create_key()["KeyMetadata"]["KeyId"]
        oldest_blob = kms.encrypt(KeyId=old, Plaintext=b"x" * 32)["CiphertextBlob"]
        kms.enable_key_rotation(KeyId=old, RotationPeriodInDays=90)
        for _ in range(args.versions):
            clock.now += 91 * DAY
            kms.maintain()
        newest_blob = kms.encrypt(KeyId=old, Plaintext=b"x" * 32)["CiphertextBlob"]
        many_times = _rotation_times(kms, clock, old, args.repeat)
        oldest = _decrypt_times(kms, oldest_blob, args.repeat * 10)
        newest = _decrypt_times(kms, newest_blob, args.repeat * 10)

    rows = [
        ("rotate a fresh key (1 material)", statistics.median(fresh_times)),
        (f"rotate a key with {args.versions}+ materials", statistics.median(many_times)),
        ("decrypt under the oldest material", statistics.median(oldest)),
        ("decrypt under the newest material", statistics.median(newest)),
    ]
    print("| operation | median ms |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} |")
    print(f"\nrotation ratio (many/fresh): {rows[1][1] / rows[0][1]:.2f}x (goal <= 1.5x)")
    print(f"decrypt ratio (oldest/newest): {rows[2][1] / rows[3][1]:.2f}x (goal ~1.0x)")


if __name__ == "__main__":
    main()
