#!/usr/bin/env python3
"""Many secrets: N encrypt+decrypt round trips through line mode, through N
separate kmsctl calls, and through N age calls, in the same run; single-call
encrypt against a baseline install; keyring growth per operation.

Run from the repository root with a venv that has kmsctl installed as a
regular package (not editable; see bench/README.md):

    /tmp/benchvenv/bin/python bench/bench_lines.py [--n 200] [--baseline-kmsctl /tmp/basevenv/bin/kmsctl]

Standard library only (plus kmsctl itself to build the keyring); age and
age-keygen are used when they are on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KMSCTL = str(Path(sys.executable).with_name("kmsctl"))  # next to this interpreter; not resolved (venv symlinks)
DROP_ENV = ("NO_COLOR", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME", "PYTHONINSPECT")
KEY = "alias/bench"


def die(message: str) -> None:
    sys.stderr.write(f"bench_lines: {message}\n")
    sys.exit(2)


def build_keyring(home: Path) -> str:
    """A keyring with the production KDF, one key, and a 24 h session token."""
    from kmsctl import model
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

    passphrase = secrets.token_urlsafe(24).encode()  # never written down
    umask = os.umask(0o077)
    os.umask(umask)
    try:
        kr.create(
            str(home),
            passphrase,
            region=model.DEFAULT_REGION,
            account=model.DEFAULT_ACCOUNT,
            created=datetime.now(UTC).isoformat(),
        )
        keyring = Keyring(str(home))
        try:
            keyring.unlock_with_passphrase(passphrase)
            kms = LocalKMS(keyring)
            with kms.transaction():
                key_id = kms.create_key(Description="bench")["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=KEY, TargetKeyId=key_id)
            token, _ = keyring.new_session(time.time(), 24 * 3600)
        finally:
            keyring.close()
    finally:
        os.umask(umask)
    return str(token)


def db_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("keyring.db*"))


def pipeline(first: list[str], second: list[str], data: bytes, env: dict[str, str], cwd: Path) -> bytes:
    """``first < data | second``; both must exit 0."""
    a = subprocess.Popen(first, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    b = subprocess.Popen(second, stdin=a.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert a.stdout is not None and a.stdin is not None
    a.stdout.close()  # b holds the read end now
    a.stdin.write(data)
    a.stdin.close()
    out, err_b = b.communicate()
    err_a = a.stderr.read() if a.stderr else b""
    if a.wait() or b.returncode:
        detail = (err_a + err_b).decode(errors="replace")
        die(f"{first[0]} | {second[0]} failed ({a.returncode}, {b.returncode}): {detail}")
    return out


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def line_mode(n_lines: list[bytes], env: dict[str, str], cwd: Path) -> tuple[float, float, bool]:
    """(wall s, CPU s of both processes, output == input)."""
    data = b"".join(p + b"\n" for p in n_lines)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, out = timed(
        lambda: pipeline([KMSCTL, "encrypt", "-k", KEY, "--lines"], [KMSCTL, "decrypt", "--lines"], data, env, cwd)
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, out == data


def separate(plains: list[bytes], kmsctl: str, env: dict[str, str], cwd: Path) -> tuple[float, bool]:
    def run() -> bool:
        ok = True
        for p in plains:
            ok &= pipeline([kmsctl, "encrypt", "-k", KEY], [kmsctl, "decrypt"], p, env, cwd) == p
        return ok

    return timed(run)


def age_calls(plains: list[bytes], folder: Path, env: dict[str, str]) -> tuple[float, bool] | None:
    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    if not age or not keygen:
        return None
    identity = folder / "age-identity.txt"
    subprocess.run([keygen, "-o", str(identity)], capture_output=True, check=True)
    recipient = subprocess.run([keygen, "-y", str(identity)], capture_output=True, check=True).stdout.decode().strip()

    def run() -> bool:
        ok = True
        for p in plains:
            ok &= pipeline([age, "-r", recipient], [age, "-d", "-i", str(identity)], p, env, folder) == p
        return ok

    return timed(run)


def single_encrypt(kmsctls: dict[str, str], runs: int, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Interleaved runs of ``kmsctl encrypt -k KEY plain.bin > /dev/null``, one per install, so
    that the machine's load falls on all of them alike. Wall time, and the CPU time (user +
    system) each process used, which a busy machine disturbs much less."""
    plain = cwd / "plain.bin"
    plain.write_bytes(os.urandom(32))
    wall: dict[str, list[float]] = {name: [] for name in kmsctls}
    cpu: dict[str, list[float]] = {name: [] for name in kmsctls}
    order = list(kmsctls.items())
    for i in range(runs + 2):
        for name, exe in order if i % 2 else order[::-1]:  # neither always goes first
            argv = [exe, "encrypt", "-k", KEY, str(plain)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, proc = timed(
                lambda argv=argv: subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode:
                die(f"{name} encrypt failed: {proc.stderr.decode(errors='replace')}")
            if i >= 2:  # two warm-up rounds
                wall[name].append(seconds)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {
        name: {
            "median": statistics.median(wall[name]) * 1000,
            "min": min(wall[name]) * 1000,
            "cpu_median": statistics.median(cpu[name]) * 1000,
        }
        for name in kmsctls
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="round trips per method (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="line-mode runs; the median is reported (default 3)")
    ap.add_argument("--single-runs", type=int, default=20, help="timed single encrypt calls per install (default 20)")
    ap.add_argument("--baseline-kmsctl", help="another install's kmsctl, e.g. the main branch's, for the single call")
    ap.add_argument("--skip-separate", action="store_true", help="skip the N separate kmsctl calls (the slow part)")
    ap.add_argument("--out", default="bench/results", help="folder for lines.md and lines.json (default bench/results)")
    args = ap.parse_args(argv)
    if not os.access(KMSCTL, os.X_OK):
        die(f"no kmsctl next to {sys.executable}: run this with the venv's python")

    plains = [secrets.token_urlsafe(24).encode() for _ in range(args.n)]
    results: dict[str, Any] = {"n": args.n, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="kmsctl-bench-lines-") as tmp:
        folder = Path(tmp)
        home = folder / "home"
        token = build_keyring(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k not in DROP_ENV}
        env.update(KMSCTL_HOME=str(home), KMSCTL_SESSION=token)

        size0 = db_bytes(home)
        runs = [line_mode(plains, env, folder) for _ in range(args.repeat)]
        if not all(ok for _, _, ok in runs):
            die("line mode did not give the plaintexts back")
        results["line_mode_s"] = statistics.median(s for s, _, _ in runs)
        results["line_mode_runs_s"] = [s for s, _, _ in runs]
        results["line_mode_cpu_s"] = statistics.median(c for _, c, _ in runs)
        ops = 2 * args.n * args.repeat
        results["growth_bytes_per_op"] = (db_bytes(home) - size0) / ops

        if not args.skip_separate:
            seconds, ok = separate(plains, KMSCTL, env, folder)
            if not ok:
                die("separate calls did not give the plaintexts back")
            results["separate_s"] = seconds
        aged = age_calls(plains, folder, env)
        if aged is not None:
            if not aged[1]:
                die("age did not give the plaintexts back")
            results["age_s"] = aged[0]
            results["age_version"] = subprocess.run(["age", "--version"], capture_output=True, text=True).stdout.strip()

        installs = {"this": KMSCTL}
        if args.baseline_kmsctl:
            installs["baseline"] = args.baseline_kmsctl
        results["single_encrypt_ms"] = single_encrypt(installs, args.single_runs, env, folder)

    report = markdown(results)
    sys.stdout.write(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lines.md").write_text(report)
    (out / "lines.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def markdown(r: dict[str, Any]) -> str:
    n, line = r["n"], r["line_mode_s"]
    rows = [("line mode: `encrypt --lines \\| decrypt --lines`", line)]
    if "separate_s" in r:
        rows.append((f"{n} separate `encrypt \\| decrypt` calls", r["separate_s"]))
    if "age_s" in r:
        rows.append((f"{n} separate `age -r \\| age -d` calls ({r['age_version']})", r["age_s"]))
    out = [f"# {n} encrypt+decrypt round trips ({r['cpus']} CPUs, Python {r['python']})", ""]
    out += ["| method | total s | per round trip ms | / line mode |", "|---|---:|---:|---:|"]
    out += [f"| {name} | {s:.2f} | {s / n * 1000:.1f} | {s / line:.1f} |" for name, s in rows]
    out += ["", f"Line mode: median of {len(r['line_mode_runs_s'])} runs "]
    out[-1] += "(" + ", ".join(f"{s:.2f}" for s in r["line_mode_runs_s"]) + f" s); goal: under 3 s for {n}. "
    out[-1] += f"CPU time of its two processes: {r['line_mode_cpu_s']:.2f} s (median)."
    out += ["", "| single `kmsctl encrypt` | median ms | min ms | CPU median ms |", "|---|---:|---:|---:|"]
    single = r["single_encrypt_ms"]
    out += [f"| {name} | {t['median']:.1f} | {t['min']:.1f} | {t['cpu_median']:.1f} |" for name, t in single.items()]
    if "baseline" in single:
        this, base = single["this"], single["baseline"]
        out += ["", f"This install / baseline: {this['median'] / base['median']:.2f} (wall medians), "]
        out[-1] += f"{this['cpu_median'] / base['cpu_median']:.2f} (CPU medians)."
    out += ["", f"Keyring growth: {r['growth_bytes_per_op']:.0f} bytes per operation (keyring.db and its WAL)."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
