"""Byte tampering of a live keyring: its write-ahead log and its index pages.

tests/test_storage.py flips bytes across a checkpointed keyring.db (the whole
file, every 97th byte). Here the keyring is caught with its committed changes
still in ``keyring.db-wal`` (a connection is held open, as a long-running
process would), and its three files are copied before any checkpoint; then
one byte is flipped, on a fresh copy each time, across the WAL (its header,
its frame headers, its pages) and across the B-tree pages of every index of
a checkpointed copy. Each case runs ``decrypt``, ``check`` and, when check
passes, ``list`` and ``describe`` through the real CLI entry point.

Every case must be detected (exit 3, 5, 6 or 8, one clean error line) or
harmless (check passes and every answer is the right one): never a wrong
plaintext, a wrong key or alias, a silently missing key, or exit 70.
``KMSCTL_TAMPER_CASES`` scales the sample (default 128: about 20 s of CPU).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import closing_new_keyrings

from kmsctl.cli import run

PLAINTEXT = b"tamper-suite plaintext 4f1c"
DETECTED = {3, 5, 6, 8}
CASES = int(os.environ.get("KMSCTL_TAMPER_CASES", "128"))
FILES = ("keyring.db", "keyring.db-wal", "keyring.epoch")


def cli(home: Path, passfile: Path, *args: str) -> tuple[int, bytes, str]:
    env = {"KMSCTL_HOME": str(home), "KMSCTL_PASSPHRASE_FILE": str(passfile)}
    with CliRunner().isolation(env=env) as (out, err, _), closing_new_keyrings():
        code = run(list(args))
    return code, out.getvalue(), err.getvalue().decode(errors="replace")


@dataclass
class Live:
    files: dict[str, bytes]  # keyring.db (as init left it), the live WAL, keyring.epoch
    checkpointed: dict[str, bytes]  # the same state folded into keyring.db
    passfile: Path
    ct: Path
    keys: dict[str, str]  # key ID -> state
    aliases: dict[str, str]  # alias -> key ID
    key_a: str

    def place(self, dest: Path, files: dict[str, bytes]) -> Path:
        dest.mkdir(mode=0o700)
        for name, data in files.items():
            (dest / name).write_bytes(data)
            (dest / name).chmod(0o600)
        return dest


@pytest.fixture
def live(keyring_home: Path, passfile: Path, tmp_path: Path) -> Live:
    holder = sqlite3.connect(keyring_home / "keyring.db")
    holder.execute("SELECT count(*) FROM meta").fetchall()  # joins the WAL: no process is the last to close

    def ok(*args: str) -> bytes:
        code, out, err = cli(keyring_home, passfile, *args)
        assert code == 0, err
        return out

    a = ok("-o", "text", "create", "--alias", "alias/app", "--description", "key a").decode().strip()
    b = ok("-o", "text", "create", "--alias", "alias/b").decode().strip()
    ok("alias", "create", "alias/o2", a)
    ct = tmp_path / "a.ct"
    env = {"KMSCTL_HOME": str(keyring_home), "KMSCTL_PASSPHRASE_FILE": str(passfile)}
    with CliRunner().isolation(input=PLAINTEXT, env=env) as (out, _err, _), closing_new_keyrings():
        assert run(["encrypt", "-k", "alias/app", "-c", "app=web", "-"]) == 0
    ct.write_bytes(out.getvalue())
    ok("disable", b)
    files = {name: (keyring_home / name).read_bytes() for name in FILES}
    assert len(files["keyring.db-wal"]) > 20 * 4096  # the committed changes live in the WAL
    copy = tmp_path / "checkpointed"
    copy.mkdir(mode=0o700)
    for name, data in files.items():
        (copy / name).write_bytes(data)
    conn = sqlite3.connect(copy / "keyring.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    checkpointed = {name: (copy / name).read_bytes() for name in ("keyring.db", "keyring.epoch")}
    shutil.rmtree(copy)
    holder.close()
    return Live(
        files,
        checkpointed,
        passfile,
        ct,
        {a: "Enabled", b: "Disabled"},
        {"alias/app": a, "alias/b": b, "alias/o2": a},
        a,
    )


def verdict(live: Live, home: Path) -> list[str]:
    """What is wrong with the answers on ``home`` (nothing, if detected or harmless)."""
    problems = []
    results: list[tuple[str, int, bytes, str]] = []

    def probe(what: str, *args: str) -> tuple[int, bytes]:
        code, out, err = cli(home, live.passfile, *args)
        results.append((what, code, out, err))
        return code, out

    dec = probe("decrypt", "decrypt", "-c", "app=web", str(live.ct))
    if dec[0] == 0 and dec[1] != PLAINTEXT:
        problems.append(f"decrypt gave a WRONG PLAINTEXT {dec[1][:40]!r}")
    chk = probe("check", "check")
    if chk[0] == 0:  # undetected: then it must be harmless
        if dec != (0, PLAINTEXT):
            problems.append(f"check passes but decrypt exits {dec[0]}")
        code, out = probe("list", "-o", "json", "list")
        if code == 0:
            listed = json.loads(out)["Keys"]
            keys = {k["KeyId"]: k["KeyState"] for k in listed}
            aliases = {a: k["KeyId"] for k in listed for a in k.get("Aliases", [])}
            if (keys, aliases) != (live.keys, live.aliases):
                problems.append(f"check passes but list shows {keys} {aliases}")
        code, out = probe("describe", "-o", "json", "describe", "alias/o2")
        if code == 0 and json.loads(out)["KeyMetadata"]["KeyId"] != live.key_a:
            problems.append("describe alias/o2 names the WRONG KEY")
    for what, code, _out, err in results:
        if code not in DETECTED | {0} or "Traceback" in err or "InternalError" in err:
            problems.append(f"{what}: exit {code}: {err.strip()[:200]}")
        elif code:
            lines = err.strip().splitlines()
            if len(lines) != 1 or not lines[0].startswith("kmsctl: "):
                problems.append(f"{what}: not one error line: {err!r}")
    return problems


def test_baseline_answers_are_right(live: Live, tmp_path: Path) -> None:
    home = live.place(tmp_path / "intact", live.files)
    assert verdict(live, home) == []
    assert cli(home, live.passfile, "check")[0] == 0
    home = live.place(tmp_path / "intact-checkpointed", live.checkpointed)
    assert verdict(live, home) == []


def _wal_offsets(wal: bytes, rng: random.Random, n: int) -> list[int]:
    """The WAL header, every frame header, and pages, in proportion."""
    page = int.from_bytes(wal[8:12], "big")
    frames = (len(wal) - 32) // (24 + page)
    starts = [32 + i * (24 + page) for i in range(frames)]
    header = list(range(0, 32, 3))
    frame_headers = [s + rng.randrange(24) for s in starts]
    rest = max(0, n - len(header) - len(frame_headers))
    pages = [rng.choice(starts) + 24 + rng.randrange(page) for _ in range(rest)]
    return (header + frame_headers + pages)[:n]


def test_wal_byte_flips_are_detected_or_harmless(live: Live, tmp_path: Path) -> None:
    rng = random.Random(20270115)
    wal = live.files["keyring.db-wal"]
    problems = []
    detected = 0
    offsets = _wal_offsets(wal, rng, CASES // 2)
    for i, pos in enumerate(offsets):
        damaged = bytearray(wal)
        damaged[pos] ^= 0x01 if i % 2 else 0xFF
        home = live.place(tmp_path / f"wal-{pos}", {**live.files, "keyring.db-wal": bytes(damaged)})
        found = verdict(live, home)
        problems += [f"WAL byte {pos}: {p}" for p in found]
        detected += cli(home, live.passfile, "check")[0] != 0
        shutil.rmtree(home)
    assert len(offsets) >= 60
    assert not problems, "\n".join(problems)
    # a flipped bit anywhere in the log drops that frame and every later one:
    # committed changes vanish, and the commit counter must say so every time
    assert detected == len(offsets)


def _index_pages(db: bytes, tmp_path: Path) -> tuple[list[tuple[str, int]], int]:
    probe = tmp_path / "probe.db"
    probe.write_bytes(db)
    conn = sqlite3.connect(probe)
    try:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        rows = conn.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'index'").fetchall()
    finally:
        conn.close()
    probe.unlink()
    return [(name, (root - 1) * page_size) for name, root in rows if root], page_size


def test_index_page_byte_flips_are_detected_or_harmless(live: Live, tmp_path: Path) -> None:
    """The indexes are what the record MACs do not cover: a flip there can hide
    a row from a lookup or let a duplicate past UNIQUE, and only SQLite's
    integrity check (in ``check``) sees it."""
    rng = random.Random(7)
    db = live.checkpointed["keyring.db"]
    pages, page_size = _index_pages(db, tmp_path)
    assert {"sqlite_autoindex_aliases_1", "sqlite_autoindex_keys_1", "aliases_key"} <= {n for n, _ in pages}
    # the bytes in use: the page header, the cell pointers and the cells (not the free middle)
    used = [start + i for _name, start in pages for i in range(page_size) if db[start + i] or i < 12]
    offsets = sorted(rng.sample(used, min(len(used), CASES - CASES // 2)))
    problems = []
    for i, pos in enumerate(offsets):
        damaged = bytearray(db)
        damaged[pos] ^= 0x01 if i % 2 else 0xFF
        home = live.place(tmp_path / f"idx-{pos}", {**live.checkpointed, "keyring.db": bytes(damaged)})
        problems += [f"index byte {pos}: {p}" for p in verdict(live, home)]
        shutil.rmtree(home)
    assert len(offsets) >= 60
    assert not problems, "\n".join(problems)


def test_a_rolled_back_wal_copy_is_detected(live: Live, tmp_path: Path) -> None:
    """The WAL and the database as they were, without the newest frames (a
    WAL truncated at a frame boundary, as a dropped tail leaves it)."""
    wal = live.files["keyring.db-wal"]
    page = int.from_bytes(wal[8:12], "big")
    for keep in (0, 1, 5):
        cut = 32 + keep * (24 + page)
        home = live.place(tmp_path / f"cut-{keep}", {**live.files, "keyring.db-wal": wal[:cut]})
        code, _out, err = cli(home, live.passfile, "list")
        assert code == 8 and "rolled back" in err, err
