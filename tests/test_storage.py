"""The keyring on disk: concurrent writers, crashes, tampering, file modes and
secrets at rest, sessions, versioning, and the format as docs/FORMAT.md writes it.

Tampering tests edit a copy of a populated keyring and then run the real CLI
entry point (in-process, for speed) on it: the verdict must be the right
plaintext or a clean error with a documented exit code, never a wrong plaintext
and never an internal error (exit 70).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_KDF, PASSPHRASE
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from helpers import Out, checkpoint, run_cli, sql

from kmsctl import errors as E
from kmsctl.crypto import blob
from kmsctl.errors import AccessDeniedException, IntegrityError
from kmsctl.keyring import keyring as kr
from kmsctl.keyring import store
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

KMSCTL = Path(sys.executable).with_name("kmsctl")
CLI_CMD = [str(KMSCTL)] if KMSCTL.exists() else [sys.executable, "-m", "kmsctl"]
PLAINTEXT = b"plaintext-at-rest-check:9c1f5e2a"
CONTEXT = {"app": "web"}


# ----------------------------------------------------------------- helpers ---
def home_files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def token_from_shell(stdout: bytes) -> str:
    line = stdout.decode().strip()
    assert line.startswith("export KMSCTL_SESSION="), line
    return line.split("=", 1)[1]


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def hkdf_expand(key: bytes, info: bytes) -> bytes:
    return HKDFExpand(algorithm=hashes.SHA256(), length=32, info=info).derive(key)


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------ a populated keyring ---
@dataclass
class Populated:
    home: Path
    passfile: Path
    key_a: str  # Enabled, alias/app, ciphertext ct_a under CONTEXT
    key_b: str  # Disabled after encrypting ct_b, alias/b
    ct_a: Path
    ct_b: Path
    db: bytes  # keyring.db after a checkpoint: the whole keyring in one file

    def copy(self, dest: Path, db: bytes | None = None) -> Path:
        dest.mkdir(mode=0o700)
        target = dest / "keyring.db"
        target.write_bytes(self.db if db is None else db)
        target.chmod(0o600)
        return dest

    def decrypt_a(self, home: Path) -> Out:
        return run_cli(home, "decrypt", "-c", "app=web", str(self.ct_a), passfile=self.passfile)

    def decrypt_b(self, home: Path) -> Out:
        return run_cli(home, "decrypt", str(self.ct_b), passfile=self.passfile)

    def describe(self, home: Path, ref: str) -> Out:
        return run_cli(home, "-o", "json", "describe", ref, passfile=self.passfile)


@pytest.fixture
def populated(kms: LocalKMS, keyring_home: Path, passfile: Path, tmp_path: Path) -> Populated:
    a = kms.create_key(Description="key a")["KeyMetadata"]["KeyId"]
    b = kms.create_key(Description="key b")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=a)
    kms.create_alias(AliasName="alias/b", TargetKeyId=b)
    ct_a = tmp_path / "a.ct"
    ct_b = tmp_path / "b.ct"
    ct_a.write_bytes(kms.encrypt(KeyId="alias/app", Plaintext=PLAINTEXT, EncryptionContext=CONTEXT)["CiphertextBlob"])
    ct_b.write_bytes(kms.encrypt(KeyId=b, Plaintext=PLAINTEXT)["CiphertextBlob"])
    kms.disable_key(KeyId=b)
    kms.keyring.close()
    checkpoint(keyring_home)
    assert not (keyring_home / "keyring.db-wal").exists()
    return Populated(keyring_home, passfile, a, b, ct_a, ct_b, (keyring_home / "keyring.db").read_bytes())


def test_populated_keyring_baseline(populated: Populated, tmp_path: Path) -> None:
    home = populated.copy(tmp_path / "copy")
    a = populated.decrypt_a(home)
    assert (a.code, a.stdout) == (0, PLAINTEXT), a.stderr
    assert populated.decrypt_b(home).code == 4  # disabled
    assert populated.describe(home, "alias/app").code == 0


# ------------------------------------------------------------- concurrency ---
WORKER = r"""
import io, json, os, sys, time
from kmsctl.cli import run
go, n = sys.argv[1], int(sys.argv[2])
real_stdout, real_stderr = sys.stdout, sys.stderr
def kmsctl(*args):
    # one kmsctl invocation: the real CLI entry point and error boundary, a
    # fresh keyring connection each time; only the interpreter start is shared
    out, err = io.BytesIO(), io.BytesIO()
    sys.stdout = io.TextIOWrapper(out, write_through=True)
    sys.stderr = io.TextIOWrapper(err, write_through=True)
    try:
        code = run(list(args))
    finally:
        for wrapper in (sys.stdout, sys.stderr):
            wrapper.flush()
            wrapper.detach()  # so that collecting the wrapper does not close the buffer
        sys.stdout, sys.stderr = real_stdout, real_stderr
    return code, out.getvalue().decode(), err.getvalue().decode()
while not os.path.exists(go):
    time.sleep(0.002)
result = {"create": [], "keys": [], "aliases": {}}
for i in range(10):
    code, stdout, stderr = kmsctl("-o", "text", "create", "--description", f"worker {n} key {i}")
    result["create"].append([code, stderr])
    if code == 0:
        result["keys"].append(stdout.strip())
        if i < 5:
            name = f"alias/shared-{i}"
            code, _, stderr = kmsctl("alias", "create", name, stdout.strip())
            result["aliases"][name] = [code, stdout.strip(), stderr]
print(json.dumps(result))
"""


def test_eight_concurrent_processes(keyring_home: Path, passfile: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env.update(KMSCTL_HOME=str(keyring_home), KMSCTL_PASSPHRASE_FILE=str(passfile))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(go), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for n in range(8)
    ]
    go.touch()  # all eight start together
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, stderr.decode()
        results.append(json.loads(stdout))

    for r in results:
        for code, stderr in r["create"]:
            assert code == 0, stderr
    printed = [k for r in results for k in r["keys"]]
    assert len(printed) == len(set(printed)) == 80

    winners: dict[str, list[str]] = {f"alias/shared-{i}": [] for i in range(5)}
    for r in results:
        assert set(r["aliases"]) == set(winners)
        for name, (code, key, stderr) in r["aliases"].items():
            assert code in (0, 7), f"{name}: exit {code}: {stderr}"
            if code == 0:
                winners[name].append(key)
            else:
                assert "AlreadyExistsException" in stderr
    assert all(len(keys) == 1 for keys in winners.values()), winners

    keyring = Keyring(str(keyring_home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    kms = LocalKMS(keyring)
    listed = [k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]]
    assert sorted(listed) == sorted(printed)
    aliases = kms.list_aliases(Limit=100)["Aliases"]
    assert sorted(a["AliasName"] for a in aliases) == sorted(winners)
    for a in aliases:
        assert [a["TargetKeyId"]] == winners[a["AliasName"]]
    assert keyring.db.query("PRAGMA integrity_check") == [("ok",)]
    keyring.close()


def test_eight_binaries_race_for_one_alias(sub: Callable[..., Any], keyring_home: Path, passfile: Path) -> None:
    """The same race through the installed ``kmsctl`` binary: one wins, seven exit 7."""
    key = sub("-o", "text", "create").stdout.decode().strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env.update(KMSCTL_HOME=str(keyring_home), KMSCTL_PASSPHRASE_FILE=str(passfile))
    procs = [
        subprocess.Popen(
            [*CLI_CMD, "alias", "create", "alias/race", key],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(8)
    ]
    outcomes = [(p.communicate(timeout=60)[1].decode(), p.returncode) for p in procs]
    outcomes = [(code, err) for err, code in outcomes]
    assert sorted(code for code, _ in outcomes) == [0] + [7] * 7, outcomes
    assert all("AlreadyExistsException" in err for code, err in outcomes if code == 7)
    assert sql(keyring_home, "SELECT key_id FROM aliases WHERE name = 'alias/race'") == [(key,)]


# ------------------------------------------------------------------- crash ---
CHILD = r"""
import os, sys
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS
keyring = Keyring(sys.argv[1])
keyring.unlock_with_passphrase(os.environ["TEST_PASSPHRASE"].encode())
kms = LocalKMS(keyring)
for i in range(100000):
    print(kms.create_key(Description=f"crash {i}")["KeyMetadata"]["KeyId"], flush=True)
"""


def test_sigkill_while_creating_keys(keyring_home: Path, sub: Callable[..., Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env["TEST_PASSPHRASE"] = PASSPHRASE
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(keyring_home)], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert child.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 60
    while len(printed) < 20 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        printed.append(line.decode().strip())
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(printed) >= 20, "the child stopped before printing 20 keys"
    printed += [line.decode() for line in rest.split(b"\n")[:-1]]  # whole lines only: each was committed

    keyring = Keyring(str(keyring_home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    assert keyring.db.query("PRAGMA integrity_check") == [("ok",)]
    kms = LocalKMS(keyring)
    listed = {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
    assert set(printed) <= listed
    assert len(listed) <= len(printed) + 1  # at most the one being created, whole or not at all
    for key_id in printed:
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
        ct = kms.encrypt(KeyId=key_id, Plaintext=b"after the crash")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"after the crash"
    keyring.close()
    # and the real binary opens it too
    out = sub("-o", "text", "describe", printed[-1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith(printed[-1])


# --------------------------------------------------------------- tampering ---
ALLOWED = {0, 3, 5, 6, 8}


def test_byte_flips_never_give_a_wrong_answer(populated: Populated, tmp_path: Path) -> None:
    """Flip one byte at every 97th offset of keyring.db, each on a fresh copy:
    alternately its low bit (keeps ASCII text ASCII, turns a BLOB into TEXT of
    the same length when it hits a record header) and all eight bits."""
    size = len(populated.db)
    assert size >= 4 * 4096
    problems = []
    cases = 0
    for i, pos in enumerate(range(0, size, 97)):
        mask = 0x01 if i % 2 else 0xFF
        damaged = bytearray(populated.db)
        damaged[pos] ^= mask
        home = populated.copy(tmp_path / f"flip-{pos}", bytes(damaged))
        cases += 1
        dec = populated.decrypt_a(home)
        desc = populated.describe(home, "alias/app")
        if dec.code == 0 and dec.stdout != PLAINTEXT:
            problems.append((pos, mask, "decrypt: WRONG PLAINTEXT", dec.stdout[:40]))
        if desc.code == 0 and json.loads(desc.stdout)["KeyMetadata"]["KeyId"] != populated.key_a:
            problems.append((pos, mask, "describe: WRONG KEY", desc.stdout[:200]))
        for what, out in (("decrypt", dec), ("describe", desc)):
            if out.code not in ALLOWED or "Traceback" in out.stderr:
                problems.append((pos, mask, what, out.code, out.stderr.strip()[:200]))
        shutil.rmtree(home)
    assert cases > 150
    assert not problems, "\n".join(map(repr, problems))


def _edit_header(field: str, value: Any) -> Callable[[Path, Populated], None]:
    def edit(home: Path, _p: Populated) -> None:
        (raw,) = sql(home, "SELECT value FROM meta WHERE name = 'header'")[0]
        header = json.loads(raw)
        target = header
        *path, last = field.split(".")
        for part in path:
            target = target[part]
        target[last] = value
        sql(home, "UPDATE meta SET value = ? WHERE name = 'header'", canonical_json(header))

    return edit


def _drop_header_field(field: str) -> Callable[[Path, Populated], None]:
    def edit(home: Path, _p: Populated) -> None:
        (raw,) = sql(home, "SELECT value FROM meta WHERE name = 'header'")[0]
        header = json.loads(raw)
        del header[field]
        sql(home, "UPDATE meta SET value = ? WHERE name = 'header'", canonical_json(header))

    return edit


def _damage_schema_text(home: Path, _p: Populated) -> None:
    """A keyword of a CREATE statement stored in sqlite_master (page 1) damaged
    with a non-UTF-8 byte: SQLite's error message quotes the damaged text."""
    db = bytearray((home / "keyring.db").read_bytes())
    at = db.index(b"CREATE TABLE sessions")
    assert at < 4096
    db[at + len("CREATE T")] ^= 0xFF
    (home / "keyring.db").write_bytes(bytes(db))


def _damage_btree_page(table: str) -> Callable[[Path, Populated], None]:
    """Zero the page-type byte of a table's root page: 'database disk image is malformed'."""

    def edit(home: Path, _p: Populated) -> None:
        ((root,),) = sql(home, "SELECT rootpage FROM sqlite_master WHERE name = ?", table)
        ((page_size,),) = sql(home, "PRAGMA page_size")
        db = bytearray((home / "keyring.db").read_bytes())
        db[(root - 1) * page_size] = 0
        (home / "keyring.db").write_bytes(bytes(db))

    return edit


def _sql_edit(script: str) -> Callable[[Path, Populated], None]:
    def edit(home: Path, p: Populated) -> None:
        sql(home, script.format(A=p.key_a, B=p.key_b))

    return edit


def _flip_column(table: str, column: str, where: str) -> Callable[[Path, Populated], None]:
    def edit(home: Path, p: Populated) -> None:
        cond = where.format(A=p.key_a, B=p.key_b)
        (value,) = sql(home, f"SELECT {column} FROM {table} WHERE {cond}")[0]
        value = bytearray(value)
        value[len(value) // 2] ^= 0x01
        sql(home, f"UPDATE {table} SET {column} = ? WHERE {cond}", bytes(value))

    return edit


def _copy_material_of_b_into_a(home: Path, p: Populated) -> None:
    doc, nonce, sealed = sql(home, "SELECT doc, nonce, sealed FROM materials WHERE key_id = ?", p.key_b)[0]
    sql(home, "UPDATE materials SET doc = ?, nonce = ?, sealed = ? WHERE key_id = ?", doc, nonce, sealed, p.key_a)


def _copy_key_row_of_b_into_a(home: Path, p: Populated) -> None:
    doc, mac = sql(home, "SELECT doc, mac FROM keys WHERE key_id = ?", p.key_b)[0]
    sql(home, "UPDATE keys SET doc = ?, mac = ?, key_state = 'Disabled' WHERE key_id = ?", doc, mac, p.key_a)


def _copy_alias_row_b_into_app(home: Path, p: Populated) -> None:
    key_id, doc, mac = sql(home, "SELECT key_id, doc, mac FROM aliases WHERE name = 'alias/b'")[0]
    sql(home, "UPDATE aliases SET key_id = ?, doc = ?, mac = ? WHERE name = 'alias/app'", key_id, doc, mac)


_DOC_ENABLE_B = (
    "UPDATE keys SET key_state = 'Enabled', doc = CAST(replace(CAST(doc AS TEXT), "
    '\'"KeyState":"Disabled"\', \'"KeyState":"Enabled"\') AS BLOB) WHERE key_id = \'{B}\''
)

# name -> (edit, which operation, allowed exit codes)
TARGETED: dict[str, tuple[Callable[[Path, Populated], None], str, set[int]]] = {
    "key doc KeyState Disabled->Enabled (and its column)": (_sql_edit(_DOC_ENABLE_B), "decrypt_b", {8}),
    "key doc Description edited": (
        _sql_edit(
            "UPDATE keys SET doc = CAST(replace(CAST(doc AS TEXT), 'key a', 'key z') AS BLOB) WHERE key_id='{A}'"
        ),
        "decrypt_a",
        {8},
    ),
    "key_state column only, Enabled->Disabled": (
        _sql_edit("UPDATE keys SET key_state = 'Disabled' WHERE key_id = '{A}'"),
        "decrypt_a",
        {8},
    ),
    "key_state column only, Disabled->Enabled": (
        _sql_edit("UPDATE keys SET key_state = 'Enabled' WHERE key_id = '{B}'"),
        "decrypt_b",
        {8},
    ),
    "key_spec column only": (
        _sql_edit("UPDATE keys SET key_spec = 'HMAC_256' WHERE key_id = '{A}'"),
        "decrypt_a",
        {8},
    ),
    "next_rotation column only": (
        _sql_edit("UPDATE keys SET next_rotation = 1.0 WHERE key_id = '{A}'"),
        "decrypt_a",
        {8},
    ),
    "key mac flipped": (_flip_column("keys", "mac", "key_id = '{A}'"), "decrypt_a", {8}),
    "key row of B copied onto A": (_copy_key_row_of_b_into_a, "decrypt_a", {8}),
    "key doc stored as TEXT instead of BLOB": (
        _sql_edit("UPDATE keys SET doc = CAST(doc AS TEXT) WHERE key_id = '{A}'"),
        "decrypt_a",
        {8},
    ),
    "alias key_id pointed at another key": (
        _sql_edit("UPDATE aliases SET key_id = '{B}' WHERE name = 'alias/app'"),
        "describe_alias",
        {8},
    ),
    "alias row of alias/b copied onto alias/app": (_copy_alias_row_b_into_app, "describe_alias", {8}),
    "alias doc edited": (
        _sql_edit(
            "UPDATE aliases SET doc = CAST(replace(CAST(doc AS TEXT), '{A}', '{B}') AS BLOB), key_id = '{B}' "
            "WHERE name = 'alias/app'"
        ),
        "describe_alias",
        {8},
    ),
    "sealed material altered": (_flip_column("materials", "sealed", "key_id = '{A}'"), "decrypt_a", {8}),
    "material nonce altered": (_flip_column("materials", "nonce", "key_id = '{A}'"), "decrypt_a", {8}),
    "material doc altered": (_flip_column("materials", "doc", "key_id = '{A}'"), "decrypt_a", {8}),
    "material of B copied onto A": (_copy_material_of_b_into_a, "decrypt_a", {8}),
    "material doc stored as TEXT instead of BLOB": (
        _sql_edit("UPDATE materials SET doc = CAST(doc AS TEXT) WHERE key_id = '{A}'"),
        "decrypt_a",
        {8},
    ),
    "header region replaced": (_edit_header("region", "eu-west-1"), "decrypt_a", {8}),
    "header account replaced": (_edit_header("account", "999999999999"), "describe_alias", {8}),
    "header_mac flipped": (_flip_column("meta", "value", "name = 'header_mac'"), "decrypt_a", {8}),
    "header not a JSON object": (
        _sql_edit("UPDATE meta SET value = CAST('[]' AS BLOB) WHERE name = 'header'"),
        "decrypt_a",
        {8},
    ),
    "header without its kdf field": (_drop_header_field("kdf"), "decrypt_a", {5, 8}),
    "header without its master_key field": (_drop_header_field("master_key"), "decrypt_a", {5, 8}),
    "header KDF iterations 0": (_edit_header("kdf.iterations", 0), "decrypt_a", {5, 8}),
    "header KDF lanes 0": (_edit_header("kdf.lanes", 0), "decrypt_a", {5, 8}),
    "header KDF salt not base64": (_edit_header("kdf.salt", "@@@@"), "decrypt_a", {5, 8}),
    "header master key nonce not base64": (_edit_header("master_key.nonce", "@@@@"), "decrypt_a", {5, 8}),
    "keys table page damaged": (_damage_btree_page("keys"), "decrypt_a", {8}),
    "materials table page damaged": (_damage_btree_page("materials"), "decrypt_a", {8}),
    "aliases table page damaged": (_damage_btree_page("aliases"), "describe_alias", {8}),
    "schema SQL in sqlite_master made non-UTF-8": (_damage_schema_text, "decrypt_a", {8}),
    "schema_version newer than this kmsctl": (
        _sql_edit("UPDATE meta SET value = '99' WHERE name = 'schema_version'"),
        "decrypt_a",
        {8},
    ),
    "schema_version 0": (_sql_edit("UPDATE meta SET value = '0' WHERE name = 'schema_version'"), "decrypt_a", {8}),
    "schema_version not a number": (
        _sql_edit("UPDATE meta SET value = 'x' WHERE name = 'schema_version'"),
        "decrypt_a",
        {8},
    ),
    # a column kmsctl acts on must be verified before it is acted on: a forged
    # deletion_date must not make kmsctl destroy the key and its material
    "deletion_date column only, in the past": (
        _sql_edit("UPDATE keys SET deletion_date = 1.0 WHERE key_id = '{A}'"),
        "decrypt_a",
        {8},
    ),
}


@pytest.mark.parametrize("name", list(TARGETED))
def test_targeted_edit_is_detected(populated: Populated, tmp_path: Path, name: str) -> None:
    edit, operation, allowed = TARGETED[name]
    home = populated.copy(tmp_path / "copy")
    edit(home, populated)
    out = {
        "decrypt_a": populated.decrypt_a,
        "decrypt_b": populated.decrypt_b,
        "describe_alias": lambda h: populated.describe(h, "alias/app"),
    }[operation](home)
    assert out.code in allowed, f"exit {out.code}: {out.stderr}"
    assert PLAINTEXT not in out.stdout
    assert "InternalError" not in out.stderr and "Traceback" not in out.stderr


def test_forged_deletion_date_does_not_destroy_the_key(populated: Populated, tmp_path: Path) -> None:
    home = populated.copy(tmp_path / "copy")
    sql(home, "UPDATE keys SET deletion_date = 1.0 WHERE key_id = ?", populated.key_a)
    assert run_cli(home, "list", passfile=populated.passfile).code == 8
    assert sql(home, "SELECT count(*) FROM keys WHERE key_id = ?", populated.key_a) == [(1,)]
    assert sql(home, "SELECT count(*) FROM materials WHERE key_id = ?", populated.key_a) == [(1,)]


def test_row_deletion_is_not_an_integrity_error(populated: Populated, tmp_path: Path) -> None:
    """FORMAT.md section 7: deleting rows is not detected as tampering; the
    key or material simply no longer exists (exit 6 / 3), documented as a limit."""
    home = populated.copy(tmp_path / "materials")
    sql(home, "DELETE FROM materials WHERE key_id = ?", populated.key_a)
    assert populated.decrypt_a(home).code == 6
    home = populated.copy(tmp_path / "keys")
    sql(home, "DELETE FROM keys WHERE key_id = ?", populated.key_a)
    assert populated.decrypt_a(home).code == 6
    assert populated.describe(home, populated.key_a).code == 3


def test_row_rollback_is_not_detected(populated: Populated, tmp_path: Path) -> None:
    """FORMAT.md section 7: any genuine version of a row verifies. Here the
    Enabled row of key B from another copy of the keyring replaces its Disabled
    row, and B decrypts again."""
    old = populated.copy(tmp_path / "old")
    run_cli(old, "enable", populated.key_b, passfile=populated.passfile)
    checkpoint(old)
    enabled_row = sql(old, "SELECT key_state, doc, mac FROM keys WHERE key_id = ?", populated.key_b)[0]
    home = populated.copy(tmp_path / "copy")
    assert populated.decrypt_b(home).code == 4
    sql(home, "UPDATE keys SET key_state = ?, doc = ?, mac = ? WHERE key_id = ?", *enabled_row, populated.key_b)
    assert populated.decrypt_b(home).code == 0


# ------------------------------------------------------- files and secrets ---
def _assert_no_secret_in(home: Path, secrets: dict[str, bytes]) -> None:
    files = home_files(home)
    assert files
    for path in files:
        data = path.read_bytes()
        for what, secret in secrets.items():
            assert secret not in data, f"{what} found in {path.name}"


def test_file_modes_and_no_secret_at_rest(kms: LocalKMS, keyring_home: Path, sub: Callable[..., Any]) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/files", TargetKeyId=key)
    secrets: dict[str, bytes] = {"passphrase": PASSPHRASE.encode(), "plaintext": PLAINTEXT}
    ct = kms.encrypt(KeyId=key, Plaintext=PLAINTEXT, EncryptionContext=CONTEXT)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ct, EncryptionContext=CONTEXT)["Plaintext"] == PLAINTEXT
    for i, args in enumerate([{"KeySpec": "AES_256"}, {"KeySpec": "AES_128"}, {"NumberOfBytes": 64}]):
        secrets[f"data key {i}"] = kms.generate_data_key(KeyId="alias/files", **args)["Plaintext"]
    (material_id,) = kms.db.query("SELECT material_id FROM materials WHERE key_id = ?", (key,))[0]
    secrets["key material"] = kms._material_secret(key, material_id) or b"?"
    secrets["master key"] = kms.keyring._master()
    token, _ = kms.keyring.new_session(time.time(), 3600)
    body = token[len("kmsctl_s1_") :]
    secrets["session secret"] = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))[16:]
    secrets["session token"] = token.encode()
    # the real binary too: stdin plaintext and a data key through -o json
    enc = sub("encrypt", "-k", "alias/files", input=b"cli-" + PLAINTEXT)
    assert enc.returncode == 0, enc.stderr
    secrets["cli plaintext"] = b"cli-" + PLAINTEXT
    dk = sub("-o", "json", "data-key", "-k", "alias/files")
    assert dk.returncode == 0, dk.stderr
    secrets["cli data key"] = base64.b64decode(json.loads(dk.stdout)["Plaintext"])

    assert mode(keyring_home) == 0o700
    names = {p.name for p in home_files(keyring_home)}
    assert "keyring.db-wal" in names  # the fixture's connection is still open
    for path in home_files(keyring_home):
        assert path.name in {"keyring.db", "keyring.db-wal", "keyring.db-shm", "keyring.epoch"}
        assert mode(path) == 0o600, path.name
    _assert_no_secret_in(keyring_home, secrets)  # WAL not yet folded in

    kms.keyring.close()
    checkpoint(keyring_home)
    assert [p.name for p in home_files(keyring_home)] == ["keyring.db", "keyring.epoch"]
    assert mode(keyring_home / "keyring.db") == 0o600
    _assert_no_secret_in(keyring_home, secrets)


def test_init_makes_private_home_and_files(tmp_path: Path, sub: Callable[..., Any]) -> None:
    home = tmp_path / "loose"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    init = sub("init", env={"KMSCTL_HOME": str(home)})
    assert init.returncode == 0, init.stderr
    assert mode(home) == 0o755  # an existing folder is used as it is (writable by no one else)
    assert mode(home / "keyring.db") == 0o600
    assert sub("-o", "text", "create", env={"KMSCTL_HOME": str(home)}).returncode == 0
    # no temporary file left behind
    assert [p.name for p in home_files(home)] == ["keyring.db", "keyring.epoch"]
    made = tmp_path / "made"
    assert sub("init", env={"KMSCTL_HOME": str(made)}).returncode == 0
    assert mode(made) == 0o700  # one kmsctl makes is private
    again = sub("init", env={"KMSCTL_HOME": str(home)})
    assert again.returncode == 7, again.stderr


# ---------------------------------------------------------------- sessions ---
NO_PASSPHRASE = {"KMSCTL_PASSPHRASE_FILE": ""}


def test_session_token_and_home_copies(keyring_home: Path, tmp_path: Path, sub: Callable[..., Any]) -> None:
    key = sub("-o", "text", "create").stdout.decode().strip()
    ct = sub("encrypt", "-k", key, input=PLAINTEXT).stdout
    before = tmp_path / "before"
    shutil.copytree(keyring_home, before)

    unlocked = sub("unlock", "--shell", "--ttl", "10m")
    assert unlocked.returncode == 0, unlocked.stderr
    token = token_from_shell(unlocked.stdout)
    assert token.startswith("kmsctl_s1_") and len(token) == len("kmsctl_s1_") + 64
    with_token = {**NO_PASSPHRASE, "KMSCTL_SESSION": token}

    ok = sub("decrypt", input=ct, env=with_token)
    assert (ok.returncode, ok.stdout) == (0, PLAINTEXT), ok.stderr

    # the token alone, with the files as they were before the unlock: useless
    early = sub("decrypt", input=ct, env={**with_token, "KMSCTL_HOME": str(before)})
    assert early.returncode == 5, early.stderr
    assert PLAINTEXT not in early.stdout

    # the files alone (made during the session), no token: the passphrase is needed
    during = tmp_path / "during"
    shutil.copytree(keyring_home, during)
    locked = sub("decrypt", input=ct, env={**NO_PASSPHRASE, "KMSCTL_HOME": str(during)})
    assert locked.returncode == 5, locked.stderr
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    denied = sub("decrypt", input=ct, env={"KMSCTL_HOME": str(during), "KMSCTL_PASSPHRASE_FILE": str(wrong)})
    assert denied.returncode == 5, denied.stderr
    opened = sub("decrypt", input=ct, env={"KMSCTL_HOME": str(during)})
    assert (opened.returncode, opened.stdout) == (0, PLAINTEXT), opened.stderr

    # a token with its last character changed, or of another keyring, is refused
    bad = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert sub("decrypt", input=ct, env={**with_token, "KMSCTL_SESSION": bad}).returncode == 5

    # the expiry is bound into the AAD: extending it in the file breaks the session
    extended = tmp_path / "extended"
    shutil.copytree(keyring_home, extended)
    sql(extended, "UPDATE sessions SET expires = expires + 86400")
    assert sub("decrypt", input=ct, env={**with_token, "KMSCTL_HOME": str(extended)}).returncode == 5

    # lock deletes the rows, and no byte of the wrapped master key stays in the files
    ((wrapped,),) = sql(keyring_home, "SELECT wrapped FROM sessions")
    assert sub("lock").returncode == 0
    assert sql(keyring_home, "SELECT count(*) FROM sessions") == [(0,)]
    after_lock = sub("decrypt", input=ct, env=with_token)
    assert after_lock.returncode == 5, after_lock.stderr
    for path in home_files(keyring_home):
        assert bytes(wrapped) not in path.read_bytes(), path.name

    # FORMAT.md section 7, a limit: a copy taken during the session plus the token
    # opens until the expiry; 'lock' on the original cannot reach the copy
    assert sub("decrypt", input=ct, env={**with_token, "KMSCTL_HOME": str(during)}).returncode == 0


def test_session_expiry(keyring_home: Path) -> None:
    keyring = Keyring(str(keyring_home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    token, expires = keyring.new_session(1_000_000.0, 60)
    assert expires == 1_000_060
    keyring.close()
    fresh = Keyring(str(keyring_home))
    fresh.unlock_with_session(token, 1_000_059.0)
    assert fresh.unlocked
    fresh.close()
    late = Keyring(str(keyring_home))
    with pytest.raises(AccessDeniedException):
        late.unlock_with_session(token, 1_000_060.0)
    late.close()


# -------------------------------------------------------------- versioning ---
def _schema_version(home: Path) -> str:
    ((value,),) = sql(home, "SELECT value FROM meta WHERE name = 'schema_version'")
    return value.decode() if isinstance(value, bytes) else str(value)


def test_new_keyring_is_at_the_current_schema(keyring_home: Path) -> None:
    assert _schema_version(keyring_home) == str(store.SCHEMA_VERSION)


def test_version_1_keyring_is_upgraded_on_open(populated: Populated, tmp_path: Path) -> None:
    """A keyring as kmsctl 0.1 (schema 1) left it, keys and all, opens and works."""
    home = populated.copy(tmp_path / "v1")
    conn = sqlite3.connect(home / "keyring.db", isolation_level=None)
    conn.executescript(
        "DROP TABLE audit; DROP TABLE audit_pending; DELETE FROM meta WHERE name LIKE 'audit_%';"
        "DROP INDEX keys_rotation; DROP INDEX materials_seq; ALTER TABLE keys DROP COLUMN next_rotation;"
        "DROP TABLE principals; DROP TABLE access_keys; DROP TABLE grants;"  # migration 5
        "DROP TABLE key_stores;"  # migration 6
        "DELETE FROM meta WHERE name IN ('epoch', 'audit_legacy');"  # migration 4
        "UPDATE meta SET value = '1' WHERE name = 'schema_version';"
    )
    conn.close()
    (home / "keyring.epoch").unlink(missing_ok=True)  # kmsctl 0.1 kept no commit counter
    out = populated.decrypt_a(home)
    assert (out.code, out.stdout) == (0, PLAINTEXT), out.stderr
    assert _schema_version(home) == str(store.SCHEMA_VERSION)
    assert ("index", "keys_rotation") in set(sql(home, "SELECT type, name FROM sqlite_master"))


def test_migration_runs_in_one_transaction(keyring_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = store.SCHEMA_VERSION
    monkeypatch.setattr(store, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store.MIGRATIONS, current + 1, "CREATE TABLE later (later_id TEXT PRIMARY KEY);")
    keyring = Keyring(str(keyring_home))
    assert keyring.db.query("SELECT count(*) FROM later") == [(0,)]
    keyring.close()
    assert _schema_version(keyring_home) == str(current + 1)


def test_failed_migration_changes_nothing(keyring_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = store.SCHEMA_VERSION
    monkeypatch.setattr(store, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store.MIGRATIONS, current + 1, "CREATE TABLE later (x); CREATE TABLE keys (x);")
    with pytest.raises(IntegrityError):
        Keyring(str(keyring_home))
    assert _schema_version(keyring_home) == str(current)
    assert sql(keyring_home, "SELECT count(*) FROM sqlite_master WHERE name = 'later'") == [(0,)]


def test_unknown_header_version_is_refused(keyring_home: Path) -> None:
    """A header of a later format version, genuinely MACed, must not be read as v1."""
    keyring = Keyring(str(keyring_home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    header = dict(keyring.header, version=2)
    raw = canonical_json(header)
    with keyring.db.write():
        keyring.db.set_meta("header", raw)
        keyring.db.set_meta("header_mac", hmac_sha256(keyring._mac, b"kmsctl header v1\x00" + raw))
    keyring.close()
    with pytest.raises(IntegrityError):
        Keyring(str(keyring_home))


# ------------------------------------------- the format, as FORMAT.md says ---
SCHEMA_OBJECTS = {
    ("table", "key_stores"),  # migration 6: custom key stores
    ("table", "principals"),  # migration 5: access control
    ("table", "access_keys"),
    ("index", "access_keys_arn"),
    ("table", "grants"),
    ("index", "grants_key"),
    ("index", "grants_retiring"),
    ("index", "keys_rotation"),
    ("index", "materials_seq"),
    ("table", "audit"),
    ("table", "audit_pending"),
    ("index", "audit_key"),
    ("index", "audit_event"),
    ("index", "audit_time"),
    ("table", "meta"),
    ("table", "keys"),
    ("table", "materials"),
    ("table", "aliases"),
    ("table", "sessions"),
    ("index", "keys_deletion"),
    ("index", "aliases_key"),
}


@pytest.fixture
def spec_keyring(kms: LocalKMS, keyring_home: Path) -> Iterator[dict[str, Any]]:
    key = kms.create_key(Description="spec", Tags=[{"TagKey": "t", "TagValue": "v"}])["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    kms.create_alias(AliasName="alias/spec", TargetKeyId=key)
    ct = kms.encrypt(KeyId=key, Plaintext=PLAINTEXT, EncryptionContext=CONTEXT)["CiphertextBlob"]
    token, expires = kms.keyring.new_session(time.time(), 600)
    kms.keyring.close()
    checkpoint(keyring_home)
    yield {"home": keyring_home, "key": key, "ct": ct, "token": token, "expires": expires}


def _unwrap_master_key(header: dict[str, Any], passphrase: bytes | None) -> bytes:
    """FORMAT.md 2.4, from the text."""
    if header["protected"]:
        kdf = header["kdf"]
        assert passphrase is not None
        kek = Argon2id(
            salt=base64.b64decode(kdf["salt"]),
            length=32,
            iterations=kdf["iterations"],
            lanes=kdf["lanes"],
            memory_cost=kdf["memory_kib"],
        ).derive(passphrase)
        aad = b"kmsctl master key v1\x00" + header["keyring_id"].encode() + b"\x01" + canonical_json(kdf)
    else:
        kek = bytes(32)
        aad = b"kmsctl master key v1\x00" + header["keyring_id"].encode() + b"\x00" + b"{}"
    wrap = header["master_key"]
    return AESGCM(kek).decrypt(base64.b64decode(wrap["nonce"]), base64.b64decode(wrap["wrapped"]), aad)


def test_keyring_follows_format_md(spec_keyring: dict[str, Any]) -> None:
    home: Path = spec_keyring["home"]
    assert sql(home, "PRAGMA journal_mode") == [("wal",)]
    objects = set(sql(home, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    assert objects == SCHEMA_OBJECTS
    meta = {name: value for name, value in sql(home, "SELECT name, value FROM meta")}
    # audit_head is written at init (docs/AUDIT.md); epoch is the commit counter (FORMAT.md 2.9)
    assert set(meta) == {"schema_version", "header", "header_mac", "audit_head", "epoch"}
    assert _schema_version(home) == str(store.SCHEMA_VERSION)
    columns = [row[1] for row in sql(home, "PRAGMA table_info(keys)")]
    assert columns == ["seq", "key_id", "key_state", "key_spec", "deletion_date", "doc", "mac", "next_rotation"]

    raw = bytes(meta["header"])
    header = json.loads(raw)
    assert raw == canonical_json(header)
    assert set(header) == {"format", "version", "keyring_id", "region", "account", "created", "protected", "kdf"} | {
        "master_key"
    }
    assert (header["format"], header["version"], header["protected"]) == ("kmsctl-keyring", 1, True)
    assert len(bytes.fromhex(header["keyring_id"])) == 16
    assert header["kdf"] == {"name": "argon2id", **FAST_KDF, "salt": header["kdf"]["salt"]}
    assert len(base64.b64decode(header["kdf"]["salt"])) == 16
    assert len(base64.b64decode(header["master_key"]["nonce"])) == 12
    assert len(base64.b64decode(header["master_key"]["wrapped"])) == 48

    mk = _unwrap_master_key(header, PASSPHRASE.encode())
    assert len(mk) == 32
    mac_key = hkdf_expand(mk, b"kmsctl v1 record mac")
    wrap_key = hkdf_expand(mk, b"kmsctl v1 material wrap")
    assert hmac_sha256(mac_key, b"kmsctl header v1\x00" + raw) == bytes(meta["header_mac"])

    key = spec_keyring["key"]
    ((state, spec, deletion, next_rotation, doc, mac),) = sql(
        home, "SELECT key_state, key_spec, deletion_date, next_rotation, doc, mac FROM keys WHERE key_id = ?", key
    )
    kdoc = json.loads(doc)
    assert bytes(doc) == canonical_json(kdoc)
    assert hmac_sha256(mac_key, b"kmsctl key v1\x00" + bytes(doc)) == bytes(mac)
    assert (kdoc["KeyId"], kdoc["KeyState"], kdoc["KeySpec"], kdoc["DeletionDate"]) == (key, state, spec, deletion)
    assert kdoc["Rotation"]["NextRotation"] == next_rotation
    assert kdoc["Tags"] == {"t": "v"}

    ((name, target, adoc, amac),) = sql(home, "SELECT name, key_id, doc, mac FROM aliases")
    assert hmac_sha256(mac_key, b"kmsctl alias v1\x00" + bytes(adoc)) == bytes(amac)
    assert json.loads(adoc)["AliasName"] == name == "alias/spec"
    assert json.loads(adoc)["TargetKeyId"] == target == key

    ((material_id, seq, mdoc, nonce, sealed),) = sql(
        home, "SELECT material_id, seq, doc, nonce, sealed FROM materials WHERE key_id = ?", key
    )
    assert material_id == kdoc["CurrentKeyMaterialId"] and len(bytes.fromhex(material_id)) == 32
    assert json.loads(mdoc)["Seq"] == seq == 1
    aad = b"kmsctl material v1\x00" + key.encode() + b"\x00" + material_id.encode() + b"\x00" + bytes(mdoc)
    secret = AESGCM(wrap_key).decrypt(bytes(nonce), bytes(sealed), aad)
    assert len(secret) == 32

    # section 3: the ciphertext, opened by hand with that material
    ct: bytes = spec_keyring["ct"]
    assert ct[0] == 0xA9 and ct[1] == 2 and ct[18:50].hex() == material_id
    assert str(uuid.UUID(bytes=ct[2:18])) == key
    blob_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ct[50:82], info=b"kmsctl blob v2").derive(secret)
    plaintext = AESGCM(blob_key).decrypt(ct[82:94], ct[94:], ct[:82] + blob.canonical_context(CONTEXT))
    assert plaintext == PLAINTEXT

    # section 4: the session row, opened with the token
    token: str = spec_keyring["token"]
    body = base64.urlsafe_b64decode(token[len("kmsctl_s1_") :] + "=" * (-len(token) % 4))
    sid, session_secret = body[:16], body[16:]
    ((expires, snonce, wrapped),) = sql(home, "SELECT expires, nonce, wrapped FROM sessions WHERE sid = ?", sid)
    assert int(expires) == spec_keyring["expires"]
    saad = b"kmsctl session v1\x00" + header["keyring_id"].encode() + sid + str(int(expires)).encode()
    assert AESGCM(session_secret).decrypt(bytes(snonce), bytes(wrapped), saad) == mk


def test_unprotected_keyring_follows_format_md(tmp_path: Path) -> None:
    home = tmp_path / "open"
    kr.create(str(home), None, region="eu-west-1", account="123456789012", created="2027-01-15T08:00:00+00:00")
    ((raw,),) = sql(home, "SELECT value FROM meta WHERE name = 'header'")
    header = json.loads(raw)
    assert header["protected"] is False and "kdf" not in header
    mk = _unwrap_master_key(header, None)
    ((mac,),) = sql(home, "SELECT value FROM meta WHERE name = 'header_mac'")
    assert hmac_sha256(hkdf_expand(mk, b"kmsctl v1 record mac"), b"kmsctl header v1\x00" + bytes(raw)) == bytes(mac)
    keyring = Keyring(str(home))
    keyring.unlock_unprotected()
    assert keyring._master() == mk
    keyring.close()
    # the protected flag is in the AAD: the same wrap does not open as "protected"
    wrap = header["master_key"]
    aad = b"kmsctl master key v1\x00" + header["keyring_id"].encode() + b"\x01" + b"{}"
    with pytest.raises(InvalidTag):
        AESGCM(bytes(32)).decrypt(base64.b64decode(wrap["nonce"]), base64.b64decode(wrap["wrapped"]), aad)


def test_cached_rows_are_dropped_by_any_commit_but_an_audit_record(kms: LocalKMS, keyring_home: Path) -> None:
    """Database.cached: a client keeps the rows it read while nothing commits. Another
    connection's commit (another process, here another Keyring) and this client's own
    change are seen by the next operation; its own audit records keep the rows."""
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key, Plaintext=b"x")
    statements: list[str] = []
    kms.db.conn.set_trace_callback(statements.append)
    kms.encrypt(KeyId=key, Plaintext=b"x")  # after one Encrypt and its record: the key's rows are kept
    assert not [s for s in statements if s.startswith("SELECT") and "FROM keys WHERE key_id" in s]
    other = Keyring(str(keyring_home))
    other.unlock_with_passphrase(PASSPHRASE.encode())
    try:
        LocalKMS(other).disable_key(KeyId=key)
    finally:
        other.close()
    with pytest.raises(E.DisabledException):
        kms.encrypt(KeyId=key, Plaintext=b"x")
    kms.enable_key(KeyId=key)  # this client's own change
    assert kms.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    with pytest.raises(E.KMSInvalidStateException):
        kms.encrypt(KeyId=key, Plaintext=b"x")
    kms.db.conn.set_trace_callback(None)


def test_a_writer_waits_for_another_in_short_steps_then_gives_up(keyring_home: Path) -> None:
    """Database.write waits for another connection's write transaction in short
    steps, not SQLite's busy handler's 1, 2, 5, 10 ms...: it begins within a
    few milliseconds of the other's commit; after busy_timeout_s it is
    ConflictException ("the keyring is busy"), and the connection's own
    busy timeout is what it was."""
    import threading

    from kmsctl.keyring.store import BUSY_TIMEOUT_S, Database

    path = str(keyring_home / "keyring.db")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    waiter = Database(path)
    try:
        waits = []
        for _ in range(5):
            holder.execute("BEGIN IMMEDIATE")
            released = []
            timer = threading.Timer(0.035, lambda r=released: (holder.execute("COMMIT"), r.append(time.monotonic())))
            timer.start()
            with waiter.write():
                began = time.monotonic()
            timer.join()
            waits.append(began - released[0])
        assert sorted(waits)[2] < 0.008, waits  # the median; SQLite's own handler: 18 ms behind (tries at 33, 53 ms)
        assert waiter.query("PRAGMA busy_timeout") == [(int(BUSY_TIMEOUT_S * 1000),)]
        waiter.busy_timeout_s = 0.2
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(E.ConflictException, match="the keyring is busy"), waiter.write():
            pass
        assert 0.2 <= time.monotonic() - started < 1.0
        holder.execute("ROLLBACK")
        assert waiter.query("PRAGMA busy_timeout") == [(200,)]
    finally:
        holder.close()
        waiter.close()
