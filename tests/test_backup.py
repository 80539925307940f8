"""kmsctl backup and restore: a consistent snapshot while other processes
write, restored whole into a new home; any change to the file is exit 8 with
the target untouched; the passphrase (or a session) is needed; an existing
keyring needs --force and is kept aside; keyring.epoch follows the restored
database; the format matches docs/FORMAT.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import sql

from kmsctl.keyring import backup as B

ACCOUNT = "111122223333"


def ok(r: Any) -> Any:
    code = r.exit_code if hasattr(r, "exit_code") else r.returncode
    assert code == 0, r.stderr
    return r


def exit_of(r: Any) -> int:
    return int(r.exit_code if hasattr(r, "exit_code") else r.returncode)


@pytest.fixture
def populated(cli: Any, tmp_path: Path) -> dict[str, str]:
    """A key with an alias, a tag, a policy and a grant."""
    key = ok(cli("-o", "text", "create", "--alias", "alias/app", "--tag", "team=web")).stdout.strip()
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
                       "Resource": "*"}],
    }  # fmt: skip
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    ok(cli("policy", "put", key, str(tmp_path / "policy.json")))
    grant = ok(cli("-o", "json", "grant", "create", key, "--grantee", f"arn:aws:iam::{ACCOUNT}:role/app",
                   "--operation", "Decrypt"))  # fmt: skip
    blob = ok(cli("encrypt", "-k", "alias/app", input=b"kept secret")).stdout_bytes
    (tmp_path / "secret.enc").write_bytes(blob)
    return {"key": key, "grant": json.loads(grant.stdout)["GrantId"]}


def test_backup_restores_everything_into_a_new_home(cli: Any, populated: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "keyring.backup"
    ok(cli("backup", str(file)))
    assert file.read_bytes().startswith(b"kmsctl-backup\x00")
    before = json.loads(ok(cli("-o", "json", "audit", "list")).stdout)
    new = tmp_path / "new-home"
    out = ok(cli("-o", "json", "restore", str(file), env={"KMSCTL_HOME": str(new)}))
    assert json.loads(out.stdout)["Keys"] == 1
    env = {"KMSCTL_HOME": str(new)}
    key = populated["key"]
    assert ok(cli("decrypt", str(tmp_path / "secret.enc"), env=env)).stdout_bytes == b"kept secret"
    assert ok(cli("-o", "text", "alias", "list", env=env)).stdout.split()[0] == "alias/app"
    assert "team\tweb" in ok(cli("-o", "text", "tag", "list", key, env=env)).stdout
    assert "kms:*" in ok(cli("policy", "get", key, env=env)).stdout
    assert populated["grant"] in ok(cli("-o", "text", "grant", "list", key, env=env)).stdout
    restored = json.loads(ok(cli("-o", "json", "audit", "list", env=env)).stdout)
    ids = {e["eventID"] for e in restored["Events"]}
    # every record up to the backup, and the restore's own record
    assert {e["eventID"] for e in before["Events"]} <= ids | {before["Events"][0]["eventID"]}
    assert any(e["eventName"] == "RestoreKeyring" for e in restored["Events"])
    ok(cli("check", env=env))
    ok(cli("audit", "verify", env=env))


def test_an_existing_keyring_needs_force_and_is_kept_aside(cli: Any, populated: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "b"
    ok(cli("backup", str(file)))
    r = cli("backup", str(file))
    assert exit_of(r) == 2 and "use --force" in r.stderr
    ok(cli("create", "--alias", "alias/later"))  # after the backup: gone once it is restored
    r = cli("restore", str(file))
    assert exit_of(r) == 7 and "AlreadyExistsException" in r.stderr
    r = ok(cli("-o", "json", "restore", "--force", str(file)))
    aside = json.loads(r.stdout)["Replaced"]
    assert Path(aside).exists() and ".replaced-" in aside
    aliases = ok(cli("-o", "text", "alias", "list")).stdout
    assert "alias/app" in aliases and "alias/later" not in aliases
    # keyring.epoch follows the restored (older) database: no rollback alarm
    ok(cli("check"))
    ok(cli("create"))


def test_restore_needs_the_passphrase_or_a_session(
    cli: Any, populated: dict[str, str], tmp_path: Path, passfile: Path
) -> None:
    file = tmp_path / "b"
    session = ok(cli("-o", "text", "unlock", "--ttl", "1h")).stdout.strip().split()[0]
    ok(cli("backup", str(file)))
    no_secret = {"KMSCTL_HOME": str(tmp_path / "h1"), "KMSCTL_PASSPHRASE_FILE": None, "KMSCTL_NO_INPUT": "1"}
    r = cli("--no-input", "restore", str(file), env=no_secret)
    assert exit_of(r) == 5, r.stderr
    assert not (tmp_path / "h1" / "keyring.db").exists()
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    r = cli("restore", str(file), env={"KMSCTL_HOME": str(tmp_path / "h2"), "KMSCTL_PASSPHRASE_FILE": str(wrong)})
    assert exit_of(r) == 5 and "wrong passphrase" in r.stderr
    with_session = {**no_secret, "KMSCTL_HOME": str(tmp_path / "h3"), "KMSCTL_SESSION": session}
    ok(cli("--no-input", "restore", str(file), env=with_session))
    assert (tmp_path / "h3" / "keyring.db").exists()


def test_any_flipped_byte_fails_with_exit_8_and_the_target_untouched(
    cli: Any, populated: dict[str, str], tmp_path: Path, keyring_home: Path
) -> None:
    file = tmp_path / "b"
    ok(cli("backup", str(file)))
    data = file.read_bytes()
    target = keyring_home / "keyring.db"
    ok(cli("check"))
    from kmsctl.keyring import store

    store.close_all()
    untouched = target.read_bytes()
    listing = sorted(os.listdir(keyring_home))
    n = len(data)
    positions = sorted({0, 5, 14, 15, 16, 19, 20, 40, n // 3, n // 2, n - 100, n - 64, n - 40, n - 33, n - 32, n - 1,
                        *range(100, n - 64, max(1, n // 25))})  # fmt: skip
    bad = tmp_path / "bad"
    for pos in positions:
        changed = bytearray(data)
        changed[pos] ^= 0x01
        bad.write_bytes(bytes(changed))
        r = cli("restore", "--force", str(bad))
        assert exit_of(r) == 8, (pos, r.stderr)
        assert r.stderr.startswith("kmsctl: IntegrityError: "), r.stderr
    for cut in (n - 1, n // 2, 10):
        bad.write_bytes(data[:cut])
        assert exit_of(cli("restore", "--force", str(bad))) == 8
    store.close_all()
    assert target.read_bytes() == untouched
    assert sorted(os.listdir(keyring_home)) == listing


def test_a_change_with_a_recomputed_checksum_fails_the_mac(cli: Any, populated: dict[str, str], tmp_path: Path) -> None:
    """Someone who can recompute the checksum still cannot forge the MAC."""
    file = tmp_path / "b"
    ok(cli("backup", str(file)))
    data = bytearray(file.read_bytes())
    _header, image = B.unpack(bytes(data), "b")
    # a change inside the image that SQLite would not notice
    start = len(data) - 64 - len(image)
    data[start + 24] ^= 0x01  # SQLite's file change counter
    data[-32:] = hashlib.sha256(bytes(data[:-32])).digest()
    (tmp_path / "forged").write_bytes(bytes(data))
    r = cli("restore", str(tmp_path / "forged"), env={"KMSCTL_HOME": str(tmp_path / "h")})
    assert exit_of(r) == 8 and "fails its integrity check" in r.stderr, r.stderr
    assert not (tmp_path / "h" / "keyring.db").exists()


def test_the_format_as_docs_format_md_describes_it(kms: Any, tmp_path: Path) -> None:
    kms.create_key()
    out = kms.backup_keyring(Destination=str(tmp_path / "b"))
    data = (tmp_path / "b").read_bytes()
    assert data[:14] == b"kmsctl-backup\x00" and data[14:16] == b"\x01\x00"
    size = int.from_bytes(data[16:20], "big")
    header = json.loads(data[20 : 20 + size])
    assert header["format"] == "kmsctl-backup" and header["version"] == 1 and header["keys"] == 1
    assert header["keyring_id"] == kms.keyring.keyring_id and header["epoch"] == out["CommitCounter"]
    image = data[20 + size : 20 + size + header["database_size"]]
    assert image.startswith(b"SQLite format 3\x00")
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()
    mac_key = kms.keyring.derive(b"backup")
    assert data[-64:-32] == hmac.new(mac_key, b"kmsctl backup v1\x00" + data[:-64], "sha256").digest()


def test_the_worked_example_in_docs_format_md() -> None:
    """The derivation FORMAT.md shows for a fixed master key."""
    from kmsctl.crypto import primitives as P

    mk = bytes(range(32))
    key = P.hkdf_expand(mk, b"kmsctl v1 backup")
    docs = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text()
    assert key.hex() in docs
    body = B.pack({"created": "2027-01-15T08:00:00+00:00", "epoch": 1, "keyring_id": "0" * 32, "keys": 0,
                   "schema_version": 5}, b"", key)  # fmt: skip
    assert body.hex() in docs.replace("\n", "").replace(" ", "")


WRITER = """
import os, sys
from kmsctl.cli import run
# until the test says stop (argv[3] exists), at most argv[2] keys
for i in range(int(sys.argv[2])):
    if os.path.exists(sys.argv[3]):
        break
    code = run(["-q", "create", "--alias", f"alias/w{sys.argv[1]}-{i}", "--tag", f"writer={sys.argv[1]}"])
    if code:
        sys.exit(code)
"""


@pytest.mark.slow
def test_a_backup_taken_while_four_processes_write_is_consistent(
    sub: Any, keyring_home: Path, passfile: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "KMSCTL_HOME": str(keyring_home), "KMSCTL_PASSPHRASE_FILE": str(passfile)}
    stop = tmp_path / "stop"
    before = sql(keyring_home, "SELECT count(*) FROM keys")[0][0]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(w), "2000", str(stop)], env=env, stderr=subprocess.PIPE)
        for w in range(4)
    ]
    try:
        deadline = time.monotonic() + 60
        while sql(keyring_home, "SELECT count(*) FROM keys")[0][0] < before + 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        file = tmp_path / "b"
        r = sub("-o", "json", "backup", str(file))
        running = [w.poll() is None for w in writers]
        stop.touch()
        assert r.returncode == 0, r.stderr
        keys = json.loads(r.stdout)["Keys"]
    finally:
        stop.touch()
        for w in writers:
            assert w.wait(timeout=300) == 0, w.stderr.read() if w.stderr else ""
    assert all(running), "a writer had stopped before the backup ended"
    written = sql(keyring_home, "SELECT count(*) FROM keys")[0][0]
    new = tmp_path / "new"
    r = sub("-o", "json", "restore", str(file), env={"KMSCTL_HOME": str(new)})
    assert r.returncode == 0, r.stderr
    assert before + 8 <= keys < written, (keys, written)  # taken while the writers were writing
    env2 = {"KMSCTL_HOME": str(new)}
    listed = json.loads(sub("-o", "json", "list", env=env2).stdout)["Keys"]
    assert len(listed) == keys
    aliases = json.loads(sub("-o", "json", "alias", "list", env=env2).stdout)["Aliases"]
    # each key and its alias landed together, or neither: no half transaction in the snapshot
    assert len(aliases) == keys
    assert {a["TargetKeyId"] for a in aliases} == {k["KeyId"] for k in listed}
    assert sub("check", env=env2).returncode == 0
    assert sub("audit", "verify", env=env2).returncode == 0
