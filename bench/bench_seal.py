#!/usr/bin/env python3
"""seal and unseal of a large file, against age and against cat, in one run.

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_seal.py [--size-mib 1024] [--runs 5] [--no-files] [--check]

You need ``age`` and ``age-keygen`` (Debian: apt-get install -y age) and, for
peak memory, GNU time at /usr/bin/time (apt-get install -y time; without it
the peak RSS comes from wait4 instead).

What it does, in a temporary folder (--dir, deleted at the end):

1. Writes SIZE MiB of random bytes, builds a keyring with the production KDF
   and one key (alias/bench), and takes a session token, so that no timed
   command runs Argon2id; makes an age X25519 identity (age-keygen), so that
   age needs no passphrase either.
2. Seals the file with kmsctl and with age once, and checks that each
   unseals to the same SHA-256: a broken setup stops here, not in a table.
3. Times, in interleaved rounds (every command once per round, the order
   rotated each round, one untimed warm-up round), so that a busy machine
   weighs on every command alike:
   - file -> stdout (/dev/null): ``cat``, ``kmsctl seal|unseal``, ``age [-d]``;
     the CPU and memory cost of each tool, with the disk out of the way;
   - file -> file (unless --no-files): ``cat > out``, ``kmsctl ... --out out``
     (temporary file, fsync, rename: what a user gets), ``kmsctl ... > out``
     (no fsync, like age), ``age ... -o out``; ``sync`` runs, untimed, before
     each of these so that one run's write-back does not land in the next.
   Each command runs under ``/usr/bin/time -v``: wall time from the parent's
   clock, user+sys and peak RSS from the report.
4. Prints a markdown table (median, minimum, mean ± sd of the wall time,
   throughput, median CPU, peak RSS, and the ratio to age's median in the
   same group) and writes it with the raw numbers under --out.

Exit status: 0 when everything ran; 2 when the setup failed; with --check, 1
when a kmsctl median is slower than age's in the same group or a peak RSS
reaches 64 MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

KMSCTL = str(Path(sys.executable).with_name("kmsctl"))  # the venv's console script, next to this python
GNU_TIME = "/usr/bin/time"
RSS_LIMIT_MIB = 64
MIB = 1 << 20
DROP_ENV = ("NO_COLOR", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME", "PYTHONINSPECT")


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    stdout: str | None = None  # a file to send stdout to; None is /dev/null
    out: str | None = None  # a file the command writes, removed before each run
    input_mib: float = 0.0
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)


def die(message: str) -> None:
    print(f"bench_seal: {message}", file=sys.stderr)
    raise SystemExit(2)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k not in DROP_ENV}
    env.update(extra)
    return env


def sha256_of(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """SHA-256 of a command's stdout, streamed."""
    h = hashlib.sha256()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=cwd) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(MIB):
            h.update(block)
    if proc.returncode:
        die(f"{' '.join(argv)} exited {proc.returncode}")
    return h.hexdigest()


def build_keyring(home: Path) -> str:
    """A passphrase-protected keyring (production KDF) with alias/bench; returns a session token."""
    from kmsctl import model
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

    passphrase = secrets.token_urlsafe(24).encode()  # random, never written down
    umask = os.umask(0o077)
    os.umask(umask)
    try:
        created = datetime.now(UTC).isoformat()
        kr.create(str(home), passphrase, region=model.DEFAULT_REGION, account=model.DEFAULT_ACCOUNT, created=created)
        keyring = Keyring(str(home))
        try:
            keyring.unlock_with_passphrase(passphrase)
            kms = LocalKMS(keyring)
            key_id = kms.create_key(Description="bench_seal")["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName="alias/bench", TargetKeyId=key_id)
            token, _ = keyring.new_session(time.time(), 24 * 3600)
        finally:
            keyring.close()
    finally:
        os.umask(umask)
    return str(token)


def write_input(path: Path, size_mib: int) -> str:
    h = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(size_mib):
            block = os.urandom(MIB)
            h.update(block)
            f.write(block)
    return h.hexdigest()


def parse_time_report(text: str) -> tuple[float, int]:
    """(user + sys seconds, peak RSS KiB) from GNU time -v."""
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))  # type: ignore[union-attr]
    return user + system, rss


def run_once(case: Case, env: dict[str, str], cwd: Path, report: Path, gnu_time: bool, record: bool) -> None:
    if case.out:
        Path(case.out).unlink(missing_ok=True)
        os.sync()
    argv = [GNU_TIME, "-v", "-o", str(report), *case.argv] if gnu_time else case.argv
    with open(case.stdout or os.devnull, "wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        die(f"{case.name} exited {proc.returncode}")
    if gnu_time:
        cpu, rss = parse_time_report(report.read_text())
    else:
        cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss
    if record:
        case.walls.append(wall)
        case.cpus.append(cpu)
        case.rss_kib.append(rss)


def fmt(x: float) -> str:
    return f"{x:.2f}"


def table(cases: list[Case]) -> str:
    lines = [
        "| group | command | median s | min s | mean ± sd s | MiB/s (median) | CPU s (median) | peak RSS MiB "
        "| vs age |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ages = {c.group: statistics.median(c.walls) for c in cases if c.name.startswith("age")}
    for c in cases:
        med = statistics.median(c.walls)
        sd = statistics.stdev(c.walls) if len(c.walls) > 1 else 0.0
        ratio = f"{med / ages[c.group]:.2f}" if c.group in ages else ""
        lines.append(
            f"| {c.group} | `{c.name}` | {fmt(med)} | {fmt(min(c.walls))} | {fmt(statistics.mean(c.walls))} ± {fmt(sd)}"
            f" | {c.input_mib / med:.0f} | {fmt(statistics.median(c.cpus))} | {max(c.rss_kib) / 1024:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def verdicts(cases: list[Case]) -> list[str]:
    out = []
    ages = {c.group: statistics.median(c.walls) for c in cases if c.name.startswith("age")}
    for c in cases:
        if not c.name.startswith("kmsctl"):
            continue
        med, rss = statistics.median(c.walls), max(c.rss_kib) / 1024
        faster = c.group not in ages or med <= ages[c.group]
        small = rss < RSS_LIMIT_MIB
        out.append(
            f"- `{c.name}` ({c.group}): median {fmt(med)} s vs age {fmt(ages.get(c.group, float('nan')))} s "
            f"-> {'OK' if faster else 'SLOWER than age'}; peak RSS {rss:.1f} MiB -> {'OK' if small else 'TOO BIG'}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="input size in MiB (default 1024)")
    ap.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--no-files", action="store_true", help="skip the file -> file group")
    ap.add_argument("--dir", help="where the temporary folder goes (default: the system's)")
    ap.add_argument("--out", default="bench/results/seal", help="results folder (default bench/results/seal)")
    ap.add_argument("--check", action="store_true", help="exit 1 if kmsctl is slower than age or too big")
    args = ap.parse_args(argv)

    for tool in ("age", "age-keygen"):
        if not shutil.which(tool):
            die(f"{tool} not found: apt-get install -y age")
    if not Path(KMSCTL).exists():
        die(f"{KMSCTL} not found: run with the venv's python after pip install -e .")
    gnu_time = Path(GNU_TIME).exists()
    if not gnu_time:
        print("bench_seal: /usr/bin/time missing (apt-get install -y time); peak RSS comes from wait4", file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="kmsctl-bench-seal-", dir=args.dir))
    try:
        print(f"setup in {work}: {args.size_mib} MiB of random input, keyring, age identity", file=sys.stderr)
        plain = work / "plain.bin"
        digest = write_input(plain, args.size_mib)
        token = build_keyring(work / "home")
        env = clean_env(KMSCTL_HOME=str(work / "home"), KMSCTL_SESSION=token)
        identity = work / "age-identity.txt"
        subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
        ).stdout.strip()
        kms_box, age_box = work / "plain.sealed", work / "plain.age"
        subprocess.run([KMSCTL, "seal", "-k", "alias/bench", "--out", str(kms_box), str(plain)], env=env, check=True)
        subprocess.run(["age", "-r", recipient, "-o", str(age_box), str(plain)], check=True)
        for what, check in (
            ("kmsctl unseal", [KMSCTL, "unseal", str(kms_box)]),
            ("age -d", ["age", "-d", "-i", str(identity), str(age_box)]),
        ):
            if sha256_of(check, env, work) != digest:
                die(f"{what} did not give the input back")
        size = float(args.size_mib)
        out = str(work / "out.bin")
        seal = [KMSCTL, "seal", "-k", "alias/bench"]
        age_d = ["age", "-d", "-i", str(identity)]
        null, files = "seal, file -> /dev/null", "seal, file -> file"
        un_null, un_files = "un" + null, "un" + files
        cases = [
            Case(null, "cat plain.bin", ["cat", str(plain)]),
            Case(null, "kmsctl seal", [*seal, str(plain)]),
            Case(null, "age -r", ["age", "-r", recipient, str(plain)]),
            Case(un_null, "cat plain.sealed", ["cat", str(kms_box)]),
            Case(un_null, "kmsctl unseal", [KMSCTL, "unseal", str(kms_box)]),
            Case(un_null, "age -d", [*age_d, str(age_box)]),
        ]
        if not args.no_files:
            cases += [
                Case(files, "cat plain.bin > out", ["cat", str(plain)], stdout=out, out=out),
                Case(files, "kmsctl seal --out out", [*seal, "--out", out, str(plain)], out=out),
                Case(files, "kmsctl seal > out", [*seal, str(plain)], stdout=out, out=out),
                Case(files, "age -r -o out", ["age", "-r", recipient, "-o", out, str(plain)], out=out),
                Case(un_files, "kmsctl unseal --out out", [KMSCTL, "unseal", "--out", out, str(kms_box)], out=out),
                Case(un_files, "kmsctl unseal > out", [KMSCTL, "unseal", str(kms_box)], stdout=out, out=out),
                Case(un_files, "age -d -o out", [*age_d, "-o", out, str(age_box)], out=out),
            ]
        for case in cases:
            case.input_mib = size
        report = work / "time.txt"
        rounds = args.warmup + args.runs
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}{' (warm-up)' if r < args.warmup else ''}", file=sys.stderr)
            for case in cases[r % len(cases) :] + cases[: r % len(cases)]:
                run_once(case, env, work, report, gnu_time, record=r >= args.warmup)
        (work / "out.bin").unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    versions = {
        "kmsctl": subprocess.run([KMSCTL, "--version"], capture_output=True, text=True).stdout.strip(),
        "age": subprocess.run(["age", "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end",
    }
    checks = verdicts(cases)
    md = "\n".join(
        [
            f"# seal / unseal of {args.size_mib} MiB vs age and cat ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"{args.runs} interleaved rounds after {args.warmup} warm-up; wall time from the parent, CPU (user+sys)"
            f" and peak RSS from {'/usr/bin/time -v' if gnu_time else 'wait4'}. "
            + ", ".join(f"{k} {v}" for k, v in versions.items()),
            "",
            table(cases),
            "",
            *checks,
            "",
        ]
    )
    print(md)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.md").write_text(md)
    raw = [{k: v for k, v in vars(c).items() if k != "argv"} for c in cases]
    (dest / "summary.json").write_text(json.dumps({"versions": versions, "cases": raw}, indent=2) + "\n")
    if args.check and any("SLOWER" in line or "TOO BIG" in line for line in checks):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
