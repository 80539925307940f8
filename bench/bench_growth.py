#!/usr/bin/env python3
"""How much the keyring grows per operation, as the command line uses it.

Run from the repository root with the venv's interpreter (an editable install
is fine: nothing here is timed):

    .venv/bin/python bench/bench_growth.py [--ops 100] [--keys 9] [--json]

In a temporary folder (deleted at the end) it makes a keyring (the
production KDF, once), --keys symmetric keys with an alias each, and a
session token; then, for each of encrypt, decrypt, describe and list, it
runs the command --ops times through ``kmsctl.cli.run`` exactly as the
console script does (the keyring is closed after every command, which
checkpoints the WAL into keyring.db), and prints the growth of keyring.db
plus its WAL per command, and the audit records each command added. The
sizes are the files' sizes on disk after the checkpoint, so the WAL is
empty between commands and nothing is counted twice.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmsctl import model
from kmsctl.cli import run
from kmsctl.keyring import keyring as kr
from kmsctl.keyring import store
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS


def files_size(home: Path) -> int:
    store.close_all()  # what the console script does after each command: the WAL folds into keyring.db
    return sum((home / f"keyring.db{s}").stat().st_size for s in ("", "-wal") if (home / f"keyring.db{s}").exists())


def records(home: Path) -> int:
    conn = sqlite3.connect(home / "keyring.db")
    try:
        return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
    finally:
        conn.close()


def kmsctl(*args: str) -> bytes:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw)
    with contextlib.redirect_stdout(out):
        code = run(list(args))
        out.flush()
    value = raw.getvalue()
    out.detach()
    if code != 0:
        raise SystemExit(f"kmsctl {' '.join(args)} failed with exit {code}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=100, help="commands of each kind (default 100)")
    parser.add_argument("--keys", type=int, default=9, help="keys in the keyring, which list shows (default 9)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kmsctl-growth-"))
    saved = {k: os.environ.get(k) for k in ("KMSCTL_HOME", "KMSCTL_SESSION", "KMSCTL_PASSPHRASE", "NO_COLOR")}
    try:
        home = tmp / "home"
        passphrase = secrets.token_urlsafe(24).encode()
        kr.create(
            str(home),
            passphrase,
            region=model.DEFAULT_REGION,
            account=model.DEFAULT_ACCOUNT,
            created=datetime.now(UTC).isoformat(),
        )
        keyring = Keyring(str(home))
        keyring.unlock_with_passphrase(passphrase)
        kms = LocalKMS(keyring)
        with kms.transaction():
            for i in range(args.keys):
                key = kms.create_key(Description=f"bench key {i}")["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=f"alias/k{i}", TargetKeyId=key)
        token, _ = keyring.new_session(time.time(), 86400)
        keyring.close()
        os.environ.update(KMSCTL_HOME=str(home), KMSCTL_SESSION=token)
        os.environ.pop("KMSCTL_PASSPHRASE", None)
        plaintext = tmp / "plain.bin"
        plaintext.write_bytes(os.urandom(32))
        ciphertext = tmp / "ct.bin"
        ciphertext.write_bytes(kmsctl("encrypt", "-k", "alias/k0", str(plaintext)))
        commands = {
            "encrypt": ["encrypt", "-k", "alias/k0", str(plaintext)],
            "decrypt": ["decrypt", str(ciphertext)],
            "describe": ["-o", "text", "describe", "alias/k0"],
            "list": ["-o", "text", "list"],
        }
        results = {}
        for name, argv in commands.items():
            size0, records0 = files_size(home), records(home)
            for _ in range(args.ops):
                kmsctl(*argv)
            size1, records1 = files_size(home), records(home)
            results[name] = {
                "bytes_per_op": round((size1 - size0) / args.ops),
                "records_per_op": (records1 - records0) / args.ops,
                "keyring_bytes": size1,
            }
        if args.json:
            print(json.dumps({"ops": args.ops, "keys": args.keys, "results": results}, indent=2))
        else:
            print(f"keyring growth per command ({args.ops} of each, {args.keys} keys; keyring.db + WAL, checkpointed)")
            print()
            print("| command | bytes per command | audit records per command | keyring size after |")
            print("|---|---:|---:|---:|")
            for name, r in results.items():
                print(f"| {name} | {r['bytes_per_op']} | {r['records_per_op']:g} | {r['keyring_bytes']} |")
        return 0
    finally:
        store.close_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
