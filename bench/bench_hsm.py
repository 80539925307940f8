#!/usr/bin/env python3
"""What a PKCS#11 token costs kmsctl, on SoftHSM2 (a fresh token of its own).

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_hsm.py [--runs 15] [--budget 3.0] [--target 1.2]

Sections (main runs them in turn; each is a function taking the shared
context, so more can be added):

1. root: `kmsctl encrypt` through a session (KMSCTL_SESSION), whole
   processes, on a keyring whose root of trust is a token (init --pkcs11)
   against a passphrase-only one, interleaved run by run so that machine
   noise hits both alike. The token is needed at unlock only, so the two
   should cost the same: the ratio of the medians is printed, and the exit
   status is 1 when it is above --target. The unlock itself (Argon2id and
   the token's unwrap) is timed once each, for information.

Both keyrings use the test suite's cheap Argon2id parameters (config
kdf.*), which bear on unlock only. Needs softhsm2-util and python-pkcs11.
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
from collections.abc import Callable
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "bench-pin-1234"
PASSPHRASE = "bench passphrase, not a secret"
EXE = str(Path(sys.executable).with_name("kmsctl"))


class Context:
    def __init__(self, tmp: Path, runs: int, budget: float, target: float) -> None:
        self.tmp, self.runs, self.budget, self.target = tmp, runs, budget, target
        self.failed = False
        conf = tmp / "softhsm2.conf"
        (tmp / "tokens").mkdir()
        conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.softhsm = {"SOFTHSM2_CONF": str(conf)}
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "12345678", "--pin", PIN],
            env={**os.environ, **self.softhsm}, check=True, capture_output=True,
        )  # fmt: skip
        (tmp / "pin").write_text(PIN + "\n")
        (tmp / "pass").write_text(PASSPHRASE + "\n")
        for name in ("pin", "pass"):
            (tmp / name).chmod(0o600)
        self.uri = f"pkcs11:token=bench?module-path={MODULE}"

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
        return {**base, **self.softhsm, "KMSCTL_HOME": str(home), "KMSCTL_NO_INPUT": "1", **extra}

    def kmsctl(self, home: Path, *args: str, env: dict[str, str] | None = None, data: bytes | None = None) -> bytes:
        p = subprocess.run(
            [EXE, *args], input=data, env=env or self.env(home), capture_output=True, check=False, timeout=120
        )
        if p.returncode != 0:
            raise SystemExit(f"kmsctl {' '.join(args)}: exit {p.returncode}: {p.stderr.decode().strip()}")
        return p.stdout


def _keyring(ctx: Context, name: str, token: bool) -> tuple[Path, str, str]:
    """A keyring (with or without the token), a key in it, and a session token."""
    home = ctx.tmp / name
    home.mkdir()
    (home / "config.toml").write_text("[kdf]\niterations = 1\nmemory_kib = 1024\nlanes = 1\n")
    secrets = {"KMSCTL_PASSPHRASE_FILE": str(ctx.tmp / "pass"), "KMSCTL_PKCS11_PIN_FILE": str(ctx.tmp / "pin")}
    env = ctx.env(home, **secrets)
    ctx.kmsctl(home, "-q", "init", *(["--pkcs11", ctx.uri] if token else []), env=env)
    key = ctx.kmsctl(home, "-o", "text", "create", env=env).decode().strip()
    start = time.perf_counter()
    session = ctx.kmsctl(home, "-o", "text", "unlock", env=env).decode().strip()
    print(
        f"  unlock ({'passphrase + token' if token else 'passphrase'}): {1000 * (time.perf_counter() - start):.0f} ms"
    )
    return home, key, session


def section_root(ctx: Context) -> None:
    print("1. root of trust: kmsctl encrypt through a session, whole processes")
    plain = _keyring(ctx, "plain", token=False)
    hard = _keyring(ctx, "token", token=True)
    times: dict[str, list[float]] = {"passphrase only": [], "token-backed": []}
    deadline = time.perf_counter() + ctx.budget * ctx.runs
    for _ in range(ctx.runs):
        for label, (home, key, session) in (("passphrase only", plain), ("token-backed", hard)):
            env = ctx.env(home, KMSCTL_SESSION=session)
            start = time.perf_counter()
            ctx.kmsctl(home, "encrypt", "-k", key, env=env, data=b"benchmark plaintext")
            times[label].append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    medians = {label: statistics.median(ts) for label, ts in times.items()}
    for label, ts in times.items():
        print(f"  {label:16s} median {1000 * medians[label]:6.1f} ms  min {1000 * min(ts):6.1f} ms  ({len(ts)} runs)")
    ratio = medians["token-backed"] / medians["passphrase only"]
    verdict = "ok" if ratio <= ctx.target else f"OVER the {ctx.target}x target"
    print(f"  ratio token-backed / passphrase only: {ratio:.3f}x ({verdict})")
    ctx.failed |= ratio > ctx.target


SECTIONS: list[Callable[[Context], None]] = [section_root]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="runs of each measurement (default 15)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds a run may take at most, on average")
    parser.add_argument("--target", type=float, default=1.2, help="the ratio above which the exit status is 1")
    args = parser.parse_args(argv)
    if shutil.which("softhsm2-util") is None or not os.path.exists(MODULE):
        print("SoftHSM2 not installed (apt-get install softhsm2)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kmsctl-bench-hsm-") as tmp:
        ctx = Context(Path(tmp), args.runs, args.budget, args.target)
        for section in SECTIONS:
            section(ctx)
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(main())
