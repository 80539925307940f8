#!/usr/bin/env python3
"""The audit trail's cost, measured on a trail of a million records.

Run from the repository root with the venv's interpreter:

    .venv/bin/python bench/bench_audit.py [--records 1000000] [--keys 1000] [--runs 20] [--out DIR]

What it does, in a temporary folder (deleted at the end):

1. Builds a keyring with the production KDF and one real key (alias/bench),
   and takes a session token, so that no timed command runs Argon2id.
2. Fills the trail with --records records of one fixed Encrypt event, spread
   over --keys key IDs (the real key among them) and over a year of event
   times, in one transaction. Each record is the canonical JSON of a real
   ``build_event`` with its time, IDs and key substituted, chained with
   ``AuditTrail``'s own MAC function, and the head is written once at the end:
   the same bytes ``AuditTrail.append`` would write, without re-reading the
   head for every record, but in the record column's unpacked form (JSON as
   it is, docs/AUDIT.md 3.5): packing a million records would take minutes;
   a packed record costs ``verify`` a few microseconds more to inflate. ``kmsctl audit verify`` must then exit 0, which
   proves the chain valid.
3. Measures:
   - in-process, the median time of ``kms.describe_key`` (a read: its record
     commits without fsync) and ``kms.update_key_description`` (a change: its
     record lands in the change's fsynced transaction), with the trail on and
     with the dispatcher's ``_record`` replaced by a no-op; the difference is
     what one record adds to a command (a budget of 5 ms);
   - in --runs fresh processes (``kmsctl describe alias/bench`` through a
     small launcher), the time spent inside ``_record``, which for the first
     record of a process includes the audit key's derivation and the first
     write, plus what the record adds to closing the database (SQLite
     checkpoints the WAL the record wrote): what one record adds to a
     whole command (a budget of 5 ms);
   - whole processes with hyperfine (``/usr/bin/hyperfine`` or on PATH):
     ``kmsctl describe alias/bench`` as installed, and the same through the
     launcher with and without ``_record`` patched out (whole-process
     start-up varies by more than the record costs: read it with the
     noise shown); ``kmsctl audit list --key <the real key>``, whose key has
     one record in --keys (a budget of 1 s);
   - ``kmsctl audit verify`` over the whole trail, --verify-runs timed runs
     (the first is also the check that the build made a valid chain).
4. Prints a markdown table and writes it, with the raw numbers, under --out.

Exit status: 0 when everything ran and the budgets hold, 1 when a budget is
missed, 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

KMSCTL = str(Path(sys.executable).with_name("kmsctl"))  # the venv's console script, next to this python
PYTHON = sys.executable
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the first bench record
YEAR_S = 365 * 86400
BATCH = 50_000
RECORD_BUDGET_MS = 5.0
LIST_BUDGET_MS = 1000.0
# runs the CLI with the audit record on, or patched out ("off"); reports on stderr,
# as its last line, the time spent in DispatchBase._record and in closing the
# database (where SQLite checkpoints the WAL the record wrote)
LAUNCHER = """\
import json, sys, time
from kmsctl.keyring.store import Database
from kmsctl.service.dispatch import DispatchBase
spent = {"record_ms": 0.0, "close_ms": 0.0}
if sys.argv[1] == "off":
    DispatchBase._record = lambda *args, **kwargs: None
else:
    real = DispatchBase._record
    def timed(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return real(self, *args, **kwargs)
        finally:
            spent["record_ms"] += (time.perf_counter() - t) * 1000
    DispatchBase._record = timed
opened = []
real_init = Database.__init__
def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    opened.append(self)
Database.__init__ = init
from kmsctl.cli import run
code = run(sys.argv[2:])
t = time.perf_counter()
for db in opened:
    db.close()
spent["close_ms"] = (time.perf_counter() - t) * 1000
sys.stderr.write(json.dumps(spent) + "\\n")
sys.exit(code)
"""


def hyperfine_path() -> str | None:
    return shutil.which("hyperfine") or ("/usr/bin/hyperfine" if os.path.exists("/usr/bin/hyperfine") else None)


# ------------------------------------------------------------------ setup ---
def build(home: Path, records: int, key_count: int) -> dict[str, Any]:
    from kmsctl.keyring import keyring as kr
    from kmsctl.keyring.audit import _HEAD, _pointer, event_time_text
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.keyring.store import dumps
    from kmsctl.service import LocalKMS
    from kmsctl.service.audit import build_event

    passphrase = secrets.token_hex(16).encode()
    kr.create(str(home), passphrase, region="us-east-1", account="111122223333", created="2027-01-15T08:00:00+00:00")
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(passphrase)
    kms = LocalKMS(keyring)
    key = kms.create_key(Description="bench")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/bench", TargetKeyId=key)
    token, _ = keyring.new_session(time.time(), 24 * 3600)
    key_ids = [key] + [str(uuid.uuid4()) for _ in range(key_count - 1)]

    # one real event; its time, IDs and key become holes in the template
    holes = {"time": "@@T@@", "event": "@@E@@", "request": "@@R@@", "key": "@@K@@"}
    arn = "arn:aws:kms:us-east-1:111122223333:key/" + holes["key"]
    event = build_event(
        "Encrypt",
        {"KeyId": holes["key"], "Plaintext": b"p" * 32, "EncryptionContext": {"app": "bench"}},
        {"CiphertextBlob": b"c" * 110, "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        None,
        when=T0,
        region="us-east-1",
        account="111122223333",
        key_arn=arn,
    )
    event.update(eventTime=holes["time"], eventID=holes["event"], requestID=holes["request"])
    parts, order = split_template(dumps(event), holes)
    trail = kms.trail()
    db = keyring.db
    db.execute("PRAGMA cache_size=-262144")
    step = YEAR_S / records
    started = time.perf_counter()
    with db.write():
        seq, prev = trail._head()
        for start in range(0, records, BATCH):
            rows = []
            hexes = os.urandom(32 * BATCH).hex()
            for i in range(start, min(start + BATCH, records)):
                when = T0 + i * step
                key_id = key_ids[i % key_count]
                h = hexes[(i - start) * 64 : (i - start) * 64 + 64]
                values = {
                    "time": event_time_text(when),
                    "event": f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}",
                    "request": f"{h[32:40]}-{h[40:44]}-4{h[45:48]}-8{h[49:52]}-{h[52:64]}",
                    "key": key_id,
                }
                pieces = [parts[0]]
                for name, part in zip(order, parts[1:], strict=True):
                    pieces.append(values[name].encode())
                    pieces.append(part)
                record = b"".join(pieces)
                seq += 1
                mac = trail._record_mac(seq, prev, record)
                rows.append((seq, when, "Encrypt", key_id, None, record, prev, mac))
                prev = mac
            db.conn.executemany(
                "INSERT INTO audit(seq, event_time, event_name, key_id, error_code, record, prev, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        db.set_meta("audit_head", _pointer(trail.key, _HEAD, seq, prev))
    build_s = time.perf_counter() - started
    # the template reproduces canonical JSON: a sample re-serialises to itself
    sample = db.query("SELECT record FROM audit ORDER BY seq DESC LIMIT 1")[0][0]
    assert dumps(json.loads(sample)) == bytes(sample)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ((of_key,),) = db.query("SELECT count(*) FROM audit WHERE key_id = ?", (key,))
    return {"kms": kms, "key": key, "token": token, "build_s": build_s, "last_seq": seq, "of_key": of_key}


def split_template(template: bytes, holes: dict[str, str]) -> tuple[list[bytes], list[str]]:
    """The template's fixed parts, and which hole sits between each two."""
    found = []
    for name, hole in holes.items():
        at = template.find(hole.encode())
        while at >= 0:
            found.append((at, name, len(hole)))
            at = template.find(hole.encode(), at + 1)
    parts, order, pos = [], [], 0
    for at, name, size in sorted(found):
        parts.append(template[pos:at])
        order.append(name)
        pos = at + size
    parts.append(template[pos:])
    return parts, order


# ---------------------------------------------------------- measurements ---
def median_ms(fn: Any, runs: int) -> float:
    for _ in range(max(3, runs // 10)):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def in_process(kms: Any, key: str, runs: int) -> dict[str, float]:
    """Median ms of a read and of a change, record on and record off,
    interleaved in rounds so that drift weighs on both alike."""
    ops = {
        "describe_key": lambda: kms.describe_key(KeyId=key),
        "update_key_description": lambda: kms.update_key_description(KeyId=key, Description="bench"),
    }
    out: dict[str, list[float]] = {}
    for _round in range(3):
        for name, op in ops.items():
            out.setdefault(f"{name} on", []).append(median_ms(op, runs))
            kms._record = lambda *args, **kwargs: None
            try:
                out.setdefault(f"{name} off", []).append(median_ms(op, runs))
            finally:
                del kms._record
    return {k: statistics.median(v) for k, v in out.items()}


def hyperfine(hf: str, commands: dict[str, list[str]], env: dict[str, str], runs: int, out: Path) -> dict[str, Any]:
    import shlex

    export = out / f"hyperfine-{len(os.listdir(out))}.json"
    cmd = [hf, "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(export)]
    for name, argv in commands.items():
        cmd += ["--command-name", name, shlex.join(argv)]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    results = json.loads(export.read_text())["results"]
    return {r["command"]: r for r in results}


def run_checked(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    return time.perf_counter() - t, proc


def fresh_processes(launcher: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    """Median time inside ``_record`` (the first and only record of a fresh
    process: imports, key derivation and the first write included) and of the
    final close (the WAL checkpoint), record on and off, alternating."""
    got: dict[str, list[float]] = {"record_ms on": [], "close_ms on": [], "close_ms off": []}
    for _ in range(runs):
        for mode in ("on", "off"):
            _, proc = run_checked([PYTHON, str(launcher), mode, "describe", "alias/bench"], env)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr.decode())
            spent = json.loads(proc.stderr.decode().strip().splitlines()[-1])
            got[f"close_ms {mode}"].append(spent["close_ms"])
            if mode == "on":
                got["record_ms on"].append(spent["record_ms"])
    return {k: statistics.median(v) for k, v in got.items()}


def table(setup: dict[str, Any], args: argparse.Namespace, home: Path, rows: list[tuple[str, str, str]]) -> str:
    lines = [
        f"Trail: {setup['last_seq']:,} records over {args.keys} key IDs, built in {setup['build_s']:.1f} s; "
        f"keyring.db {os.path.getsize(home / 'keyring.db') / 2**20:.0f} MiB; "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs.",
        "",
        "| measurement | median | note |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1000, help="key IDs the records are spread over")
    parser.add_argument("--runs", type=int, default=20, help="hyperfine runs, and fresh-process probes, per command")
    parser.add_argument("--inproc-runs", type=int, default=300, help="calls per in-process median")
    parser.add_argument("--verify-runs", type=int, default=1)
    parser.add_argument("--out", default="bench/results/audit")
    parser.add_argument("--dir", help="work here instead of a new temporary folder (kept)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hf = hyperfine_path()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kmsctl-bench-audit-"))
    try:
        home = work / "home"
        print(f"building a trail of {args.records:,} records over {args.keys} key IDs ...", file=sys.stderr)
        setup = build(home, args.records, args.keys)
        kms, key = setup["kms"], setup["key"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k != "NO_COLOR"}
        env.update({"KMSCTL_HOME": str(home), "KMSCTL_SESSION": setup["token"]})

        # the trail must verify before anything is timed: the build kept the chain valid
        print("audit verify ...", file=sys.stderr)
        verify_times = []
        for _ in range(args.verify_runs):
            seconds, proc = run_checked([KMSCTL, "-o", "json", "audit", "verify"], env)
            if proc.returncode != 0:
                print(f"audit verify failed: {proc.stderr.decode()}", file=sys.stderr)
                return 2
            verify_times.append(seconds)
        verified = json.loads(proc.stdout)["RecordsVerified"]
        list_s, proc = run_checked([KMSCTL, "-o", "json", "audit", "list", "--key", key, "--max-items", "100"], env)
        events = json.loads(proc.stdout)["Events"] if proc.returncode == 0 else None
        if not events or any(e["resources"][0]["ARN"].rsplit("/", 1)[-1] != key for e in events):
            print(f"audit list --key failed: {proc.stderr.decode()}", file=sys.stderr)
            return 2

        print("in-process timings ...", file=sys.stderr)
        inproc = in_process(kms, key, args.inproc_runs)
        kms.keyring.close()

        launcher = work / "launch.py"
        launcher.write_text(LAUNCHER)
        print("fresh processes ...", file=sys.stderr)
        fresh = fresh_processes(launcher, env, args.runs)
        whole: dict[str, Any] = {}
        if hf:
            print("hyperfine ...", file=sys.stderr)
            audit_list = [KMSCTL, "-o", "json", "audit", "list", "--key", key, "--max-items", "100"]
            whole = hyperfine(
                hf,
                {
                    "describe": [KMSCTL, "describe", "alias/bench"],
                    "describe on": [PYTHON, str(launcher), "on", "describe", "alias/bench"],
                    "describe off": [PYTHON, str(launcher), "off", "describe", "alias/bench"],
                    "list": audit_list,
                    "list 1000": [*audit_list[:-2], "--max-items", "1000"],
                },
                env,
                args.runs,
                out,
            )

        rows: list[tuple[str, str, str]] = []
        for op, what in (("describe_key", "a read"), ("update_key_description", "a change")):
            on, off = inproc[f"{op} on"], inproc[f"{op} off"]
            rows.append(
                (f"in-process `kms.{op}` ({what}), record on / off", f"{on:.3f} / {off:.3f} ms", f"+{on - off:.3f} ms")
            )
        first = fresh["record_ms on"] + max(0.0, fresh["close_ms on"] - fresh["close_ms off"])
        rows.append(
            (
                "fresh `kmsctl describe`: time in `_record` + extra close (WAL checkpoint)",
                f"{fresh['record_ms on']:.2f} + {fresh['close_ms on'] - fresh['close_ms off']:.2f} ms",
                f"{first:.2f} ms per command (budget 5 ms)",
            )
        )
        ok = first <= RECORD_BUDGET_MS and inproc["describe_key on"] - inproc["describe_key off"] <= RECORD_BUDGET_MS
        list_ms = list_s * 1000
        if whole:

            def med(name: str) -> float:
                return float(whole[name]["median"]) * 1000

            def sd(name: str) -> float:
                return float(whole[name]["stddev"] or 0.0) * 1000

            on, off = med("describe on"), med("describe off")
            rows.append(("`kmsctl describe alias/bench` (whole process, session)", f"{med('describe'):.1f} ms", ""))
            rows.append(
                (
                    "the same through the launcher, record on / off",
                    f"{on:.1f} / {off:.1f} ms",
                    f"{on - off:+.1f} ms (± {max(sd('describe on'), sd('describe off')):.0f} ms noise)",
                )
            )
            list_ms = med("list")
            rows.append(
                (
                    f"`kmsctl audit list --key K --max-items 100` ({len(events)} of K's {setup['of_key']:,})",
                    f"{list_ms:.1f} ms",
                    "budget 1000 ms",
                )
            )
            rows.append(("`kmsctl audit list --key K --max-items 1000`", f"{med('list 1000'):.1f} ms", ""))
        else:
            rows.append(
                ("`kmsctl audit list --key K --max-items 100` (one run)", f"{list_ms:.1f} ms", "budget 1000 ms")
            )
        ok = ok and list_ms < LIST_BUDGET_MS
        vmed = statistics.median(verify_times)
        rows.append(
            (
                f"`kmsctl audit verify`, {verified:,} records",
                f"{vmed:.1f} s",
                f"{vmed / verified * 1e6:.1f} µs per record",
            )
        )
        text = table(setup, args, home, rows)
        print(text)
        (out / "results.md").write_text(text + "\n")
        summary = {
            "inproc_ms": inproc,
            "fresh_ms": fresh,
            "verify_s": verify_times,
            "build_s": setup["build_s"],
            "hyperfine": whole,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        return 0 if ok else 1
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
