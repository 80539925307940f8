#!/usr/bin/env python3
"""Whole-process benchmarks of the kmsctl command line.

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_cli.py [--runs N] [--keys 10,10000] [--out bench/results]

It builds one throwaway keyring per size in a temporary folder, times start-up
and the everyday commands with hyperfine (whole processes, no shell), measures
the peak RSS of one encrypt with /usr/bin/time -v when present, checks in a
subprocess that ``kmsctl --help`` imports neither cryptography nor rich, then
prints a markdown table and writes it, with the raw JSON, under --out.
See bench/README.md.

Dependency-free: the standard library, kmsctl (for the setup only) and the
hyperfine binary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PYTHON = sys.executable
# the console script installed next to this interpreter (do not resolve: a venv's
# python is often a symlink to the base interpreter, far from the venv's bin/)
KMSCTL = str(Path(sys.executable).with_name("kmsctl"))
HEAVY = ("cryptography", "rich")
SESSION_TTL_S = 24 * 3600
PLAINTEXT_BYTES = 32
# inherited settings that would change what is measured
DROP_ENV = ("NO_COLOR", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME", "PYTHONINSPECT")

# Runs kmsctl.cli.run(argv) in a fresh interpreter, then reports which heavy
# top-level packages ended up in sys.modules. Nothing is imported before run().
IMPORT_CHECK = """\
import sys
from kmsctl.cli import run
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = run(sys.argv[1:])
import json
heavy = sorted({name.partition(".")[0] for name in sys.modules} & set(HEAVY))
print(json.dumps({"exit_code": code, "heavy": heavy, "modules": len(sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


@dataclass
class Row:
    """One benchmarked command, from hyperfine's JSON (seconds there, ms here)."""

    name: str
    mean: float
    median: float
    stddev: float
    min: float
    group: str  # "startup" or the keyring size
    op: str | None = None  # encrypt / decrypt / describe, for the size ratios
    keys: int | None = None
    ratio: float | None = None

    @classmethod
    def from_hyperfine(cls, result: dict[str, Any], group: str, op: str | None, keys: int | None) -> Row:
        times = result.get("times") or [result["mean"]]
        median = result.get("median", statistics.median(times))
        stddev = result.get("stddev") or 0.0
        return cls(
            name=result["command"],
            mean=result["mean"] * 1000,
            median=median * 1000,
            stddev=stddev * 1000,
            min=result["min"] * 1000,
            group=group,
            op=op,
            keys=keys,
        )


@dataclass
class Report:
    started: str
    runs: int
    warmup: int
    sizes: list[int]
    rows: list[Row] = field(default_factory=list)
    setup: dict[int, dict[str, Any]] = field(default_factory=dict)
    rss_kib: dict[str, int] = field(default_factory=dict)
    rss_note: str = ""
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)


# ----- helpers -----
def die(message: str) -> None:
    sys.stderr.write(f"bench_cli: {message}\n")
    sys.exit(2)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated key counts, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("key counts must be positive")
    return sizes


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any kmsctl setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k not in DROP_ENV}
    env.update(extra)
    return env


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def check_run(argv: list[str], env: dict[str, str], cwd: Path, what: str) -> bytes:
    """Run once outside hyperfine, so a broken setup fails with kmsctl's own message."""
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        die(f"{what} failed (exit {proc.returncode}): {shlex.join(argv)}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


# ----- setup -----
def build_keyring(home: Path, size: int) -> dict[str, Any]:
    """A passphrase-protected keyring with ``size`` keys, alias/k0 .. alias/k<size-1>.

    The keyring is created with the production KDF (it runs once here, and once
    more to unlock); the keys are made in-process in ONE transaction, and a
    session token lets the timed commands skip the KDF entirely.
    """
    from kmsctl import model
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

    passphrase = secrets.token_urlsafe(24).encode()  # real, random, never written down
    umask = os.umask(0o077)  # Keyring() sets a 077 umask for the whole process; put ours back after
    os.umask(umask)
    t0 = time.perf_counter()
    try:
        kr.create(
            str(home),
            passphrase,
            region=model.DEFAULT_REGION,
            account=model.DEFAULT_ACCOUNT,
            created=datetime.now(UTC).isoformat(),
        )
        t_create = time.perf_counter()
        keyring = Keyring(str(home))
        try:
            keyring.unlock_with_passphrase(passphrase)
            t_unlock = time.perf_counter()
            kms = LocalKMS(keyring)
            with kms.transaction():
                for i in range(size):
                    key_id = kms.create_key(Description=f"bench key {i}")["KeyMetadata"]["KeyId"]
                    kms.create_alias(AliasName=f"alias/k{i}", TargetKeyId=key_id)
            t_keys = time.perf_counter()
            token, _expires = keyring.new_session(time.time(), SESSION_TTL_S)
            kdf = {k: v for k, v in keyring.header["kdf"].items() if k != "salt"}
        finally:
            keyring.close()
    finally:
        os.umask(umask)
    return {
        "token": token,
        "last_key_id": key_id,
        "kdf": kdf,
        "create_s": t_create - t0,
        "unlock_s": t_unlock - t_create,
        "keys_s": t_keys - t_unlock,
        "db_bytes": sum(p.stat().st_size for p in home.iterdir() if p.is_file()),
    }


# ----- measurements -----
def hyperfine(
    hf: str,
    commands: list[tuple[str, list[str]]],
    *,
    env: dict[str, str],
    cwd: Path,
    runs: int,
    warmup: int,
    json_path: Path,
) -> list[dict[str, Any]]:
    argv = [hf, "-N", "--warmup", str(warmup), "--runs", str(runs), "--export-json", str(json_path)]
    for name, command in commands:
        argv += ["--command-name", name, shlex.join(command)]
    proc = subprocess.run(argv, env=env, cwd=cwd, check=False)
    if proc.returncode != 0:
        die(f"hyperfine failed (exit {proc.returncode}): {shlex.join(argv)}")
    results: list[dict[str, Any]] = json.loads(json_path.read_text())["results"]
    return results


def peak_rss_kib(time_bin: str, argv: list[str], env: dict[str, str], cwd: Path) -> int | None:
    proc = subprocess.run(
        [time_bin, "-v", *argv],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    m = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return int(m.group(1)) if proc.returncode == 0 and m else None


def import_check(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [PYTHON, "-c", IMPORT_CHECK, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    try:
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"exit_code": proc.returncode, "heavy": None, "error": proc.stderr.strip()[-500:]}
    return out


# ----- report -----
def fmt(x: float) -> str:
    return f"{x:.1f}"


def table(rows: list[Row], smallest: int) -> str:
    lines = [
        f"| command | mean ms | median ms | stddev ms | min ms | median vs {smallest:,} keys |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
        lines.append(f"| {r.name} | {fmt(r.mean)} | {fmt(r.median)} | {fmt(r.stddev)} | {fmt(r.min)} | {ratio} |")
    return "\n".join(lines)


def markdown(rep: Report, versions: dict[str, str]) -> str:
    smallest = rep.sizes[0]
    out = [
        "# kmsctl CLI benchmark",
        "",
        f"{rep.started} · {versions['platform']} · {versions['python']} · {versions['hyperfine']}",
        f"hyperfine -N, {rep.warmup} warm-up runs, {rep.runs} timed runs per command; "
        "keyring commands use KMSCTL_SESSION (no KDF in the timed path).",
        "",
        table(rep.rows, smallest),
        "",
        "## Keyrings",
        "",
        "| keys | KDF | create s | unlock s | keys+aliases s | files KiB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for size, s in rep.setup.items():
        kdf = ", ".join(f"{k}={v}" for k, v in s["kdf"].items())
        out.append(
            f"| {size:,} | {kdf} | {s['create_s']:.2f} | {s['unlock_s']:.2f} | {s['keys_s']:.2f} "
            f"| {s['db_bytes'] // 1024:,} |"
        )
    out += ["", "## Peak RSS (one run, /usr/bin/time -v)", ""]
    if rep.rss_kib:
        out += ["| command | max RSS MiB |", "|---|---:|"]
        out += [f"| {name} | {kib / 1024:.1f} |" for name, kib in rep.rss_kib.items()]
    if rep.rss_note:
        out.append(rep.rss_note)
    out += ["", "## Lazy imports", ""]
    for label, res in rep.imports.items():
        out.append(f"- `{label}`: {import_verdict(res)}")
    return "\n".join(out) + "\n"


def import_verdict(res: dict[str, Any]) -> str:
    if res.get("heavy") is None:
        return f"CHECK FAILED TO RUN (exit {res.get('exit_code')}): {res.get('error', '')}"
    if res["exit_code"] != 0:
        return f"FAIL: exit {res['exit_code']}"
    if res["heavy"]:
        return f"FAIL: imports {', '.join(res['heavy'])} ({res['modules']} modules loaded)"
    return f"OK: neither {' nor '.join(HEAVY)} imported ({res['modules']} modules loaded)"


# ----- main -----
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs per command (default 3)")
    parser.add_argument("--keys", type=parse_sizes, default=[10, 10_000], help="keyring sizes (default 10,10000)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results", help="output folder (bench/results)"
    )
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")

    hf = shutil.which("hyperfine") or ("/usr/bin/hyperfine" if os.path.exists("/usr/bin/hyperfine") else None)
    if hf is None:
        die("hyperfine is not installed (https://github.com/sharkdp/hyperfine)")
    if not os.path.exists(KMSCTL):
        die(f"no kmsctl console script at {KMSCTL}; run this with the venv's python (pip install -e .)")
    time_bin = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)

    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = {
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"Python {platform.python_version()}",
        "hyperfine": tool_version([hf, "--version"]),
        "kmsctl": tool_version([KMSCTL, "--version"]),
    }
    rep = Report(datetime.now(UTC).isoformat(timespec="seconds"), args.runs, args.warmup, args.keys)
    raw: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="kmsctl-bench-") as tmp_name:
        tmp = Path(tmp_name)
        plain = tmp / "plain.bin"
        plain.write_bytes(os.urandom(PLAINTEXT_BYTES))
        nowhere = str(tmp / "no-keyring")  # start-up commands must not need one

        # 1. start-up: the interpreter floor, click, and the two lightest commands
        env = clean_env(KMSCTL_HOME=nowhere)
        startup = [
            ("python -c pass (floor)", [PYTHON, "-c", "pass"]),
            ("python -c 'import click'", [PYTHON, "-c", "import click"]),
            ("kmsctl --help", [KMSCTL, "--help"]),
            ("kmsctl --version", [KMSCTL, "--version"]),
        ]
        for name, command in startup:
            check_run(command, env, tmp, name)
        print(f"== start-up ({args.runs} runs)", flush=True)
        path = out_dir / "hyperfine-startup.json"
        results = hyperfine(hf, startup, env=env, cwd=tmp, runs=args.runs, warmup=args.warmup, json_path=path)
        raw["startup"] = results
        rep.rows += [Row.from_hyperfine(r, "startup", None, None) for r in results]
        if time_bin:
            kib = peak_rss_kib(time_bin, [PYTHON, "-c", "pass"], env, tmp)
            if kib:
                rep.rss_kib["python -c pass (floor)"] = kib

        # 2. the everyday commands against each keyring size
        for size in args.keys:
            home = tmp / f"home-{size}"
            print(f"== building a keyring with {size:,} keys", flush=True)
            setup = build_keyring(home, size)
            token = setup.pop("token")
            rep.setup[size] = setup
            alias = f"alias/k{size - 1}"
            env = clean_env(KMSCTL_HOME=str(home), KMSCTL_SESSION=token)
            ct = tmp / f"ct-{size}.bin"
            ct.write_bytes(check_run([KMSCTL, "encrypt", "-k", alias, str(plain)], env, tmp, f"encrypt ({size} keys)"))
            if check_run([KMSCTL, "decrypt", str(ct)], env, tmp, f"decrypt ({size} keys)") != plain.read_bytes():
                die(f"decrypt ({size} keys) did not give back the plaintext")
            described = check_run([KMSCTL, "describe", alias], env, tmp, f"describe ({size} keys)")
            if setup["last_key_id"].encode() not in described:
                die(f"describe {alias} did not show key {setup['last_key_id']}")
            ops = [
                (
                    "encrypt",
                    f"kmsctl encrypt -k {alias} plain.bin [{size:,} keys]",
                    [KMSCTL, "encrypt", "-k", alias, str(plain)],
                ),
                ("decrypt", f"kmsctl decrypt ct.bin [{size:,} keys]", [KMSCTL, "decrypt", str(ct)]),
                ("describe", f"kmsctl describe {alias} [{size:,} keys]", [KMSCTL, "describe", alias]),
            ]
            print(f"== {size:,} keys ({args.runs} runs)", flush=True)
            path = out_dir / f"hyperfine-keys-{size}.json"
            commands = [(name, command) for _op, name, command in ops]
            results = hyperfine(hf, commands, env=env, cwd=tmp, runs=args.runs, warmup=args.warmup, json_path=path)
            raw[f"keys-{size}"] = results
            rep.rows += [
                Row.from_hyperfine(r, str(size), op, size) for r, (op, _n, _c) in zip(results, ops, strict=True)
            ]
            if time_bin:
                kib = peak_rss_kib(time_bin, ops[0][2], env, tmp)
                if kib:
                    rep.rss_kib[ops[0][1]] = kib
        if not time_bin:
            rep.rss_note = "Skipped: /usr/bin/time is not installed (Debian/Ubuntu: apt-get install time)."
        elif not rep.rss_kib:
            rep.rss_note = "Skipped: this `time` has no -v (GNU time is needed)."

        # 3. lazy imports, in fresh interpreters (kmsctl was imported here for the setup)
        env = clean_env(KMSCTL_HOME=nowhere)
        for flag in ("--help", "--version"):
            rep.imports[f"kmsctl {flag}"] = import_check([flag], env, tmp)

    # size ratios: each keyring command against the same command on the smallest keyring
    base = {r.op: r.median for r in rep.rows if r.op and r.keys == rep.sizes[0]}
    for r in rep.rows:
        if r.op and r.keys != rep.sizes[0]:
            r.ratio = r.median / base[r.op]

    text = markdown(rep, versions)
    (out_dir / "results.md").write_text(text)
    summary = {
        "started": rep.started,
        "versions": versions,
        "runs": rep.runs,
        "warmup": rep.warmup,
        "sizes": rep.sizes,
        "rows": [r.__dict__ for r in rep.rows],
        "setup": {str(k): v for k, v in rep.setup.items()},
        "peak_rss_kib": rep.rss_kib,
        "imports": rep.imports,
        "hyperfine": raw,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(text)
    print(f"written: {out_dir / 'results.md'}, {out_dir / 'summary.json'}, {out_dir}/hyperfine-*.json")
    ok = all(res.get("heavy") == [] and res.get("exit_code") == 0 for res in rep.imports.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
