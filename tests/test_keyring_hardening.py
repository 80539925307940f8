"""The keyring's own defences: the Argon2id cost kept by passwd and its floor,
an unprotected header offered a credential, the audit head written at init,
the home's owner and modes, read-only homes and --read-only, SQLite's
integrity check, the commit counter in keyring.epoch, and ``kmsctl check``.
Through the real binary where a user would see it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_KDF, PASSPHRASE
from helpers import sql

from kmsctl.keyring import keyring as kr
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

EXE = Path(sys.executable).with_name("kmsctl")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "kmsctl"]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env["KMSCTL_HOME"] = str(home)
    env.update(extra)
    return env


def kmsctl(home: Path, *args: str, passfile: Path | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    extra = {"KMSCTL_PASSPHRASE_FILE": str(passfile)} if passfile else {}
    extra.update(kw.pop("env", {}))
    return subprocess.run(
        [*kw.pop("prefix", []), *CMD, *args],
        env=env_for(home, **extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
        **kw,
    )


def error_line(r: subprocess.CompletedProcess[str], name: str) -> str:
    lines = [line for line in r.stderr.splitlines() if not line.startswith("kmsctl: read-only mode")]
    assert len(lines) == 1 and lines[0].startswith(f"kmsctl: {name}: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def header(home: Path) -> dict[str, Any]:
    ((raw,),) = sql(home, "SELECT value FROM meta WHERE name = 'header'")
    return dict(json.loads(raw))


# ----- passwd keeps the Argon2id cost; the floor -----


def test_passwd_keeps_the_stored_cost(tmp_path: Path, passfile: Path) -> None:
    home = tmp_path / "home"
    stored = {"iterations": 2, "memory_kib": 16384, "lanes": 1}
    kr.create(str(home), PASSPHRASE.encode(), region="us-east-1", account="111122223333", created="x", kdf=stored)
    new = tmp_path / "new.txt"
    new.write_text("a new passphrase\n")
    r = kmsctl(home, "passwd", "--new-passphrase-file", str(new), passfile=passfile)
    assert r.returncode == 0, r.stderr
    kdf = header(home)["kdf"]
    assert {k: kdf[k] for k in stored} == stored  # not the built-in 64 MiB, 3 passes, 4 lanes
    # config.toml's kdf.* raise it where they are higher, never lower it
    (home / "config.toml").write_text("[kdf]\nmemory_kib = 32768\niterations = 1\n")
    r = kmsctl(home, "passwd", "--new-passphrase-file", str(passfile), passfile=new)
    assert r.returncode == 0, r.stderr
    kdf = header(home)["kdf"]
    assert (kdf["iterations"], kdf["memory_kib"], kdf["lanes"]) == (2, 32768, 1)
    assert kmsctl(home, "status", passfile=passfile).returncode == 0


@pytest.mark.parametrize(("field", "value"), [("memory_kib", 1023), ("memory_kib", 64), ("iterations", 0)])
def test_kdf_edited_below_the_floor_is_damage_not_a_wrong_passphrase(
    keyring_home: Path, passfile: Path, field: str, value: int
) -> None:
    h = header(keyring_home)
    h["kdf"][field] = value
    sql(keyring_home, "UPDATE meta SET value = ? WHERE name = 'header'", json.dumps(h).encode())
    r = kmsctl(keyring_home, "list", passfile=passfile)
    assert r.returncode == 8
    assert "Argon2id parameters" in error_line(r, "IntegrityError")


def test_kdf_edited_above_the_floor_is_still_a_wrong_passphrase(keyring_home: Path, passfile: Path) -> None:
    h = header(keyring_home)
    h["kdf"]["memory_kib"] = FAST_KDF["memory_kib"] * 2
    sql(keyring_home, "UPDATE meta SET value = ? WHERE name = 'header'", json.dumps(h).encode())
    r = kmsctl(keyring_home, "list", passfile=passfile)
    assert r.returncode == 5  # bound into the master key's AAD: it no longer unwraps


def test_init_and_config_refuse_a_cost_below_the_floor(tmp_path: Path) -> None:
    home = tmp_path / "cheap"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[kdf]\nmemory_kib = 1023\n")
    r = kmsctl(home, "init", env={"KMSCTL_PASSPHRASE": "pass"})
    assert r.returncode == 2, r.stderr
    assert not (home / "keyring.db").exists()
    with pytest.raises(Exception, match="memory_kib"):
        kr.create(
            str(tmp_path / "lib"),
            b"p",
            region="us-east-1",
            account="1" * 12,
            created="x",
            kdf={"iterations": 1, "memory_kib": 64, "lanes": 1},
        )


def test_passphrase_limit_applies_to_the_environment(tmp_path: Path, keyring_home: Path) -> None:
    home = tmp_path / "long"
    r = kmsctl(home, "init", env={"KMSCTL_PASSPHRASE": "x" * 1025})
    assert r.returncode == 2
    assert "1024 bytes" in error_line(r, "ValidationException")
    assert not (home / "keyring.db").exists()
    assert kmsctl(home, "-q", "init", env={"KMSCTL_PASSPHRASE": "x" * 1024}).returncode == 0
    r = kmsctl(keyring_home, "list", env={"KMSCTL_PASSPHRASE": "é" * 513})  # 1026 bytes of UTF-8
    assert r.returncode == 2
    error_line(r, "ValidationException")


# ----- an unprotected header offered a credential; the audit head -----


def _swap_in_unprotected_header(victim: Path, tmp_path: Path) -> None:
    """An attacker's unprotected header, with the trail and keyring.epoch wiped."""
    attacker = tmp_path / "attacker"
    kr.create(str(attacker), None, region="us-east-1", account="111122223333", created="x")
    rows = sql(attacker, "SELECT name, value FROM meta WHERE name IN ('header', 'header_mac', 'audit_head')")
    for name, value in rows:
        sql(victim, "UPDATE meta SET value = ? WHERE name = ?", value, name)
    sql(victim, "DELETE FROM audit")
    sql(victim, "DELETE FROM meta WHERE name = 'audit_anchor'")
    (victim / "keyring.epoch").unlink()


def test_unprotected_header_with_a_credential_is_refused(
    kms: LocalKMS, keyring_home: Path, passfile: Path, tmp_path: Path
) -> None:
    kms.create_key()
    token, _ = kms.keyring.new_session(kms.clock(), 3600)
    kms.keyring.close()
    _swap_in_unprotected_header(keyring_home, tmp_path)
    keys_before = sql(keyring_home, "SELECT count(*) FROM keys")
    for env in ({"KMSCTL_PASSPHRASE_FILE": str(passfile)}, {"KMSCTL_SESSION": token}, {"KMSCTL_PASSPHRASE": "p"}):
        for args in (("create",), ("status",), ("unlock",)):
            r = kmsctl(keyring_home, *args, env=env)
            assert r.returncode == 8, (args, env, r.stderr)
            assert "unprotected" in error_line(r, "IntegrityError")
    r = kmsctl(keyring_home, "--passphrase-file", str(passfile), "create")
    assert r.returncode == 8
    assert sql(keyring_home, "SELECT count(*) FROM keys") == keys_before


def test_unprotected_keyring_without_a_credential_still_works(tmp_path: Path) -> None:
    home = tmp_path / "open"
    assert kmsctl(home, "-q", "init", "--no-passphrase").returncode == 0
    r = kmsctl(home, "-o", "text", "create")
    assert r.returncode == 0, r.stderr
    assert kmsctl(home, "check").returncode == 0


def test_init_writes_the_audit_head_so_an_emptied_trail_is_caught(keyring_home: Path, passfile: Path) -> None:
    assert sql(keyring_home, "SELECT count(*) FROM meta WHERE name = 'audit_head'") == [(1,)]
    assert kmsctl(keyring_home, "audit", "verify", passfile=passfile).returncode == 0
    assert kmsctl(keyring_home, "create", passfile=passfile).returncode == 0
    sql(keyring_home, "DELETE FROM audit")
    sql(keyring_home, "DELETE FROM meta WHERE name IN ('audit_head', 'audit_anchor')")
    (keyring_home / "keyring.epoch").unlink()  # so that only the trail itself can tell
    for args in (("audit", "verify"), ("list",), ("create",), ("check",)):
        r = kmsctl(keyring_home, *args, passfile=passfile)
        assert r.returncode == 8, (args, r.stderr)
        assert "head is missing" in error_line(r, "IntegrityError")


def test_a_keyring_from_before_the_head_gets_one_at_its_first_record(keyring_home: Path, passfile: Path) -> None:
    sql(keyring_home, "DELETE FROM meta WHERE name IN ('audit_head', 'epoch')")
    for table in ("principals", "access_keys", "grants", "key_stores"):  # migrations 5's and 6's
        sql(keyring_home, f"DROP TABLE {table}")
    sql(keyring_home, "UPDATE meta SET value = '3' WHERE name = 'schema_version'")
    (keyring_home / "keyring.epoch").unlink()
    r = kmsctl(keyring_home, "-o", "json", "audit", "verify", passfile=passfile)
    assert r.returncode == 0, r.stderr
    assert kmsctl(keyring_home, "create", passfile=passfile).returncode == 0
    assert sql(keyring_home, "SELECT count(*) FROM meta WHERE name = 'audit_legacy'") == [(0,)]
    assert kmsctl(keyring_home, "check", passfile=passfile).returncode == 0


# ----- the home: owner, modes, read-only -----


@pytest.mark.parametrize(
    ("target", "mode"), [(".", 0o777), (".", 0o770), (".", 0o1777), ("keyring.db", 0o666), ("keyring.db", 0o620)]
)
def test_home_or_keyring_writable_by_others_is_refused(
    keyring_home: Path, passfile: Path, target: str, mode: int
) -> None:
    (keyring_home / target).chmod(mode)
    for args in (("status",), ("list",)):
        r = kmsctl(keyring_home, *args, passfile=passfile)
        assert r.returncode == 5, r.stderr
        assert "writable by" in error_line(r, "AccessDeniedException")
    assert stat.S_IMODE((keyring_home / target).stat().st_mode) == mode  # never chmod-ed behind the user's back


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_home_owned_by_another_user_is_refused(keyring_home: Path, passfile: Path) -> None:
    os.chown(keyring_home, 65534, -1)
    r = kmsctl(keyring_home, "status", passfile=passfile)
    assert r.returncode == 5
    assert "owned by uid 65534" in error_line(r, "AccessDeniedException")
    os.chown(keyring_home, 0, -1)
    os.chown(keyring_home / "keyring.db", 65534, -1)
    assert kmsctl(keyring_home, "status", passfile=passfile).returncode == 5


def test_init_uses_an_existing_folder_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    r = kmsctl(shared, "init", env={"KMSCTL_PASSPHRASE": "p"})
    assert r.returncode == 5
    error_line(r, "AccessDeniedException")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # the sticky bit is kept
    assert not (shared / "keyring.db").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o750)
    assert kmsctl(mine, "-q", "init", env={"KMSCTL_PASSPHRASE": "p"}).returncode == 0
    assert stat.S_IMODE(mine.stat().st_mode) == 0o750
    fresh = tmp_path / "a" / "b"
    assert kmsctl(fresh, "-q", "init", env={"KMSCTL_PASSPHRASE": "p"}).returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def _can_mount_read_only() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def read_only_mount(home: Path) -> list[str]:
    """A prefix that runs the command with ``home`` bind-mounted read-only (a :ro volume)."""
    script = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh"]


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs root and mount namespaces")
@pytest.mark.parametrize("live_wal", [False, True])
def test_read_only_home(kms: LocalKMS, keyring_home: Path, passfile: Path, tmp_path: Path, live_wal: bool) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/ro", TargetKeyId=key)
    ct = tmp_path / "ct"
    ct.write_bytes(kms.encrypt(KeyId=key, Plaintext=b"read me")["CiphertextBlob"])
    sealed = tmp_path / "sealed"
    seal_env = env_for(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile))
    seal = subprocess.run([*CMD, "seal", "-k", "alias/ro"], input=b"sealed data", env=seal_env, capture_output=True)
    assert seal.returncode == 0, seal.stderr
    sealed.write_bytes(seal.stdout)
    if not live_wal:
        kms.keyring.close()  # the last connection: the WAL is folded in and removed
    else:
        kms.describe_key(KeyId=key)  # the fixture's connection keeps a live WAL
        assert (keyring_home / "keyring.db-wal").exists()
    records = sql(keyring_home, "SELECT count(*) FROM audit")
    ro = read_only_mount(keyring_home)

    r = kmsctl(keyring_home, "status", passfile=passfile, prefix=ro)
    assert r.returncode == 5, r.stderr  # plainly not writable; never exit 8
    line = error_line(r, "AccessDeniedException")
    assert "not writable" in line and "read-only file system" in line and "--read-only" in line
    assert kmsctl(keyring_home, "decrypt", str(ct), passfile=passfile, prefix=ro).returncode == 5

    for env in ({"KMSCTL_READ_ONLY": "1"}, {}):
        flag = [] if env else ["--read-only"]
        dec = kmsctl(keyring_home, *flag, "decrypt", str(ct), passfile=passfile, prefix=ro, env=env)
        assert (dec.returncode, dec.stdout) == (0, "read me"), dec.stderr
        assert dec.stderr.count("read-only mode") == 1  # said once
    ok = [
        ("status",),
        ("-o", "json", "describe", "alias/ro"),
        ("list",),
        ("check",),
        ("audit", "verify"),
        ("unseal", str(sealed)),
    ]
    for args in ok:
        r = kmsctl(keyring_home, "--read-only", *args, passfile=passfile, prefix=ro)
        assert r.returncode == 0, (args, r.stderr)
    assert "alias/ro" in kmsctl(keyring_home, "--read-only", "list", passfile=passfile, prefix=ro).stdout
    for args in (("create",), ("disable", key), ("unlock",), ("lock",)):
        r = kmsctl(keyring_home, "--read-only", *args, passfile=passfile, prefix=ro)
        assert r.returncode == 5, (args, r.stderr)
        assert "read-only mode" in error_line(r, "AccessDeniedException")
    assert sql(keyring_home, "SELECT count(*) FROM audit") == records  # no record was written


def test_read_only_mode_on_a_writable_home_writes_nothing(keyring_home: Path, passfile: Path) -> None:
    assert kmsctl(keyring_home, "create", "--alias", "alias/x", passfile=passfile).returncode == 0
    files = ("keyring.db", "keyring.epoch")  # SQLite may leave an empty -wal and its -shm index
    before = {name: (keyring_home / name).read_bytes() for name in files}
    r = kmsctl(keyring_home, "--read-only", "-o", "json", "describe", "alias/x", passfile=passfile)
    assert r.returncode == 0, r.stderr
    assert {name: (keyring_home / name).read_bytes() for name in files} == before
    assert kmsctl(keyring_home, "describe", "alias/x", passfile=passfile).returncode == 0


# ----- SQLite's integrity check, the commit counter, kmsctl check -----


def _flip_in_index(home: Path, index: str, needle: bytes, old: bytes, new: bytes) -> None:
    """Change ``old`` to ``new`` (one bit) inside ``needle`` on the index's root page only."""
    ((page_size,),) = sql(home, "PRAGMA page_size")
    ((root,),) = sql(home, "SELECT rootpage FROM sqlite_master WHERE name = ?", index)
    db = home / "keyring.db"
    data = bytearray(db.read_bytes())
    start = (root - 1) * page_size
    at = data.index(needle, start, start + page_size)
    data[at : at + len(needle)] = needle.replace(old, new)
    db.write_bytes(bytes(data))


def test_a_flipped_bit_in_the_alias_index_is_found(kms: LocalKMS, keyring_home: Path, passfile: Path) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for name in ("alias/o1", "alias/o2", "alias/o3"):
        kms.create_alias(AliasName=name, TargetKeyId=key)
    kms.keyring.close()
    _flip_in_index(keyring_home, "sqlite_autoindex_aliases_1", b"alias/o2", b"o2", b"o0")
    for args in (("check",), ("audit", "verify"), ("maintain",)):
        r = kmsctl(keyring_home, *args, passfile=passfile)
        assert r.returncode == 8, (args, r.stderr)
        assert "integrity check" in error_line(r, "IntegrityError")
    # the damage lets a second row past the UNIQUE index; check names that too
    kmsctl(keyring_home, "alias", "create", "alias/o2", key, passfile=passfile)
    assert kmsctl(keyring_home, "check", passfile=passfile).returncode == 8


def test_check_passes_a_sound_keyring_and_counts(kms: LocalKMS, keyring_home: Path, passfile: Path) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/c", TargetKeyId=key)
    kms.rotate_key_on_demand(KeyId=key)
    kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    r = kmsctl(keyring_home, "-o", "json", "check", passfile=passfile)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["Keys"], out["Aliases"], out["KeyMaterials"]) == (2, 1, 3)
    assert out["AuditRecords"] >= 4
    assert "keyring checks" in r.stderr


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE materials SET seq = seq + 5",
        "DELETE FROM materials",
        "UPDATE keys SET key_state = 'Disabled'",
        "UPDATE aliases SET key_id = 'x'",
        "UPDATE audit SET error_code = 'X' WHERE seq = 1",
    ],
)
def test_check_finds_what_only_some_reads_would(kms: LocalKMS, keyring_home: Path, passfile: Path, edit: str) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/c", TargetKeyId=key)
    kms.keyring.close()
    sql(keyring_home, edit)
    r = kmsctl(keyring_home, "check", passfile=passfile)
    assert r.returncode == 8, r.stderr
    error_line(r, "IntegrityError")


def _holding_the_wal(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(home / "keyring.db")
    conn.execute("SELECT count(*) FROM meta").fetchall()
    return conn


def test_a_damaged_wal_that_drops_committed_keys_is_a_rollback(
    keyring_home: Path, passfile: Path, tmp_path: Path
) -> None:
    holder = _holding_the_wal(keyring_home)
    created = []
    for _ in range(3):
        r = kmsctl(keyring_home, "-o", "text", "create", passfile=passfile)
        assert r.returncode == 0, r.stderr
        created.append(r.stdout.strip())
    wal = (keyring_home / "keyring.db-wal").read_bytes()
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    for name in ("keyring.db", "keyring.epoch"):
        shutil.copy(keyring_home / name, copy / name)
    damaged = bytearray(wal)
    damaged[32 + 24 + 100] ^= 0x01  # the first frame's page: SQLite drops it and every frame after
    (copy / "keyring.db-wal").write_bytes(bytes(damaged))
    for name in (copy / "keyring.db", copy / "keyring.db-wal"):
        name.chmod(0o600)
    holder.close()
    for args in (("list",), ("status",), ("check",)):
        r = kmsctl(copy, *args, passfile=passfile)
        assert r.returncode == 8, (args, r.stderr, r.stdout)
        assert "rolled back" in error_line(r, "IntegrityError")
    # the same files with the WAL intact: everything is there
    (copy / "keyring.db-wal").write_bytes(wal)
    r = kmsctl(copy, "-o", "text", "list", passfile=passfile)
    assert r.returncode == 0, r.stderr
    assert {line.split("\t")[0] for line in r.stdout.splitlines()} == set(created)


def test_an_older_keyring_db_put_in_place_is_a_rollback(keyring_home: Path, passfile: Path, tmp_path: Path) -> None:
    assert kmsctl(keyring_home, "create", "--alias", "alias/old", passfile=passfile).returncode == 0
    old = (keyring_home / "keyring.db").read_bytes()
    assert kmsctl(keyring_home, "alias", "delete", "alias/old", passfile=passfile).returncode == 0
    (keyring_home / "keyring.db").write_bytes(old)
    r = kmsctl(keyring_home, "describe", "alias/old", passfile=passfile)
    assert r.returncode == 8
    assert "rolled back" in error_line(r, "IntegrityError")
    # raising the plain counter by hand does not help: the epoch file's MACed head is ahead
    sql(keyring_home, "UPDATE meta SET value = '999' WHERE name = 'epoch'")
    r = kmsctl(keyring_home, "describe", "alias/old", passfile=passfile)
    assert r.returncode == 8
    assert "rolled back" in error_line(r, "IntegrityError")
    # a restore on purpose: delete keyring.epoch, as the hint says
    assert "delete" in r.stderr and "keyring.epoch" in r.stderr
    (keyring_home / "keyring.epoch").unlink()
    assert kmsctl(keyring_home, "describe", "alias/old", passfile=passfile).returncode == 0
    assert (keyring_home / "keyring.epoch").exists()


def test_a_crash_between_commit_and_counter_write_does_not_brick(keyring_home: Path, passfile: Path) -> None:
    """SIGKILL after COMMIT, before keyring.epoch is replaced: the file lags
    the database by that transaction, which is allowed."""
    lagging = (keyring_home / "keyring.epoch").read_bytes()
    assert kmsctl(keyring_home, "create", passfile=passfile).returncode == 0
    (keyring_home / "keyring.epoch").write_bytes(lagging)
    r = kmsctl(keyring_home, "-o", "json", "check", passfile=passfile)
    assert r.returncode == 0, r.stderr
    state = json.loads((keyring_home / "keyring.epoch").read_text())
    ((db_epoch,),) = sql(keyring_home, "SELECT value FROM meta WHERE name = 'epoch'")
    assert state["epoch"] == int(db_epoch) > json.loads(lagging)["epoch"] + 1  # caught up
    (keyring_home / "keyring.epoch").write_bytes(b"")  # torn by a power cut
    assert kmsctl(keyring_home, "list", passfile=passfile).returncode == 0


def test_concurrent_writers_keep_the_counter_in_step(keyring_home: Path, passfile: Path) -> None:
    procs = [
        subprocess.Popen(
            [*CMD, "create"],
            env=env_for(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ((db_epoch,),) = sql(keyring_home, "SELECT value FROM meta WHERE name = 'epoch'")
    state = json.loads((keyring_home / "keyring.epoch").read_text())
    assert state["epoch"] == int(db_epoch)
    keyring = Keyring(str(keyring_home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())  # the MACed head in the file verifies
    keyring.close()
    assert kmsctl(keyring_home, "check", passfile=passfile).returncode == 0


def test_epoch_file_follows_format_md(kms: LocalKMS, keyring_home: Path) -> None:
    kms.create_key()
    state = json.loads((keyring_home / "keyring.epoch").read_bytes())
    assert set(state) == {"epoch", "head", "keyring_id"}
    assert state["keyring_id"] == kms.keyring.keyring_id
    assert state["epoch"] == int(kms.db.meta("epoch") or b"-1")
    assert json.dumps(state["head"], sort_keys=True, separators=(",", ":")).encode() == kms.db.meta("audit_head")
    assert stat.S_IMODE((keyring_home / "keyring.epoch").stat().st_mode) == 0o600
