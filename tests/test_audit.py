"""The audit trail (docs/AUDIT.md): a CloudTrail-shaped record of
every operation, chained and authenticated; list, verify, export, prune.

Through the service (``kms``, with its FakeClock), the CLI in-process
(``cli``, or ``run_at`` on a copy of a keyring) and the real binary (``sub``).
Tampering edits a fresh copy of a keyring with sqlite3, as a person who can
write the files would, and expects exit 8 naming the first bad record.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, START, FakeClock
from helpers import Out, checkpoint, run_cli, sql

from kmsctl import errors as E
from kmsctl.cli.app import App
from kmsctl.cli.audit import parse_time
from kmsctl.keyring import audit as audit_store
from kmsctl.keyring.audit import AuditTrail, event_time_text
from kmsctl.keyring.audit_codec import DICTIONARY_V1, pack, unpack
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

DAY = 86400
WRONG = "not the passphrase, wrong"
PLAINTEXT = b"audit-plaintext:7f3a9c0d5e1b"
CONTEXT = {"app": "web"}


# ----------------------------------------------------------------- helpers ---
def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["eventName"] for e in events]


def seqs(home: Path) -> list[int]:
    return [s for (s,) in sql(home, "SELECT seq FROM audit ORDER BY seq")]


def names_record(text: str, seq: int) -> bool:
    return re.search(rf"\brecord {seq}\b", text) is not None


@pytest.fixture
def wrongfile(tmp_path: Path) -> Path:
    p = tmp_path / "wrong.txt"
    p.write_text(WRONG + "\n")
    return p


# ---------------------------------------------------- a scripted session ---
def test_scripted_session_through_the_real_binary(sub: Any, tmp_path: Path, wrongfile: Path) -> None:
    created = sub("-o", "text", "create")
    assert created.returncode == 0, created.stderr
    key = created.stdout.decode().strip()
    plain = tmp_path / "plain.txt"
    plain.write_bytes(PLAINTEXT)
    ct = tmp_path / "ct.bin"
    enc = sub("encrypt", "-k", key, "-c", "app=web", str(plain))
    assert enc.returncode == 0, enc.stderr
    ct.write_bytes(enc.stdout)
    dec = sub("decrypt", "-c", "app=web", str(ct))
    assert (dec.returncode, dec.stdout) == (0, PLAINTEXT), dec.stderr
    assert sub("decrypt", "-c", "app=other", str(ct)).returncode == 6
    assert sub("disable", key).returncode == 0
    denied = sub("describe", key, env={"KMSCTL_PASSPHRASE_FILE": str(wrongfile)})
    assert denied.returncode == 5, denied.stderr

    listed = sub("-o", "json", "audit", "list")
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)["Events"]
    oldest_first = events[::-1]
    wanted = [
        ("CreateKey", None),
        ("Encrypt", None),
        ("Decrypt", None),
        ("Decrypt", "InvalidCiphertextException"),
        ("DisableKey", None),
        ("DescribeKey", "AccessDeniedException"),
    ]
    got = iter([(e["eventName"], e.get("errorCode")) for e in oldest_first])
    assert all(step in got for step in wanted), [(e["eventName"], e.get("errorCode")) for e in oldest_first]
    # no failure but the two the session made
    assert [e["errorCode"] for e in oldest_first if "errorCode" in e] == [
        "InvalidCiphertextException",
        "AccessDeniedException",
    ]
    arn = f"arn:aws:kms:us-east-1:111122223333:key/{key}"
    for e in events:
        assert e["resources"] == [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": arn}]
        assert (e["eventSource"], e["eventVersion"], e["awsRegion"]) == ("kms.amazonaws.com", "1.08", "us-east-1")
        assert e["userIdentity"]["principalId"] == str(os.getuid())
        assert e["readOnly"] is (e["eventName"] not in ("CreateKey", "DisableKey"))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["eventTime"])
    # newest first, and the wrong passphrase is the newest, chained by the list that unlocked
    denied_event = events[0]
    assert (denied_event["eventName"], denied_event["errorCode"]) == ("DescribeKey", "AccessDeniedException")
    assert denied_event["errorMessage"] == "wrong passphrase"
    assert denied_event["additionalEventData"] == {"recordedBeforeUnlock": True}
    assert all("additionalEventData" not in e for e in events[1:])
    failed = next(e for e in events if e.get("errorCode") == "InvalidCiphertextException")
    assert failed["requestParameters"]["encryptionContext"] == {"app": "other"}
    assert failed["responseElements"] is None
    encrypt = next(e for e in events if e["eventName"] == "Encrypt")
    assert encrypt["requestParameters"]["plaintext"] == {"length": len(PLAINTEXT)}
    assert encrypt["responseElements"]["ciphertextBlob"] == {"length": len(ct.read_bytes())}
    # each process is its own userIdentity.processId
    assert len({e["userIdentity"]["processId"] for e in events}) >= 5
    assert len({e["eventID"] for e in events}) == len(events)

    verified = sub("-o", "json", "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout) == {"RecordsVerified": len(events), "PendingUnauthenticated": 0}


def test_a_pending_record_is_counted_by_verify_until_chained(kms: LocalKMS, keyring_home: Path) -> None:
    locked = LocalKMS(Keyring(str(keyring_home)), clock=kms.clock)
    with pytest.raises(E.AccessDeniedException):
        locked.describe_key(KeyId="alias/none")
    locked.keyring.close()
    assert sql(keyring_home, "SELECT count(*) FROM audit_pending") == [(1,)]
    out = kms.audit_verify()  # verify chains it first: an unlocked command
    assert out == {"RecordsVerified": 1, "PendingUnauthenticated": 0}
    (event,) = kms.audit_events()["Events"]
    assert (event["eventName"], event["errorCode"]) == ("DescribeKey", "AccessDeniedException")
    assert event["additionalEventData"] == {"recordedBeforeUnlock": True}
    assert event["resources"] == []  # alias/none names no key


# ------------------------------------------------------- nothing secret ---
def _needles(secrets: dict[str, bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, value in secrets.items():
        out[name] = value
        out[f"{name} (base64)"] = base64.b64encode(value)
        out[f"{name} (base64url)"] = base64.urlsafe_b64encode(value).rstrip(b"=")
        out[f"{name} (hex)"] = value.hex().encode()
    return out


def _leaks(blobs: dict[str, bytes], needles: dict[str, bytes]) -> list[str]:
    return [f"{needle} in {where}" for where, data in blobs.items() for needle, n in needles.items() if n in data]


def test_no_secret_in_the_home_or_any_export(
    kms: LocalKMS, keyring_home: Path, passfile: Path, wrongfile: Path, tmp_path: Path
) -> None:
    secrets: dict[str, bytes] = {"passphrase": PASSPHRASE.encode(), "wrong passphrase": WRONG.encode()}
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    secrets["plaintext"] = PLAINTEXT
    ct = kms.encrypt(KeyId=key, Plaintext=PLAINTEXT, EncryptionContext=CONTEXT)["CiphertextBlob"]
    secrets["ciphertext"] = ct
    assert kms.decrypt(CiphertextBlob=ct, EncryptionContext=CONTEXT)["Plaintext"] == PLAINTEXT
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=ct, EncryptionContext={"app": "other"})
    secrets["re-encrypted"] = kms.re_encrypt(
        CiphertextBlob=ct, SourceEncryptionContext=CONTEXT, DestinationKeyId=other
    )["CiphertextBlob"]
    dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
    secrets["data key"], secrets["data key blob"] = dk["Plaintext"], dk["CiphertextBlob"]
    secrets["data key 2 blob"] = kms.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=48)["CiphertextBlob"]
    secrets["random"] = kms.generate_random(NumberOfBytes=40)["Plaintext"]
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    message = b"audit-signed-message:41d9"
    secrets["signed message"] = message
    sig = kms.sign(KeyId=signer, Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    secrets["signature"] = sig
    assert kms.verify(KeyId=signer, Message=message, Signature=sig, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    secrets["mac"] = kms.generate_mac(KeyId=mac_key, Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    pair = kms.generate_data_key_pair(KeyId=key, KeyPairSpec="ECC_NIST_P256")
    secrets["private key"] = pair["PrivateKeyPlaintext"]
    # failures record their request: secrets passed with the wrong type or a misspelt name too
    for bad in (
        {"KeyId": key, "Plaintext": "str-plaintext:5b2e8d"},
        {"KeyId": key, "PlainText": b"misspelt-plaintext:0c4a"},
        {"KeyId": key, "Plain_text": "misspelt-plaintext:93fe"},
    ):
        with pytest.raises(E.ValidationException):
            kms.encrypt(**bad)
    with pytest.raises(E.ValidationException):
        kms.decrypt(CiphertextBlob=base64.b64encode(ct).decode())  # base64 text instead of bytes
    secrets.update(
        {
            "str plaintext": b"str-plaintext:5b2e8d",
            "misspelt": b"misspelt-plaintext:0c4a",
            "misspelt 2": b"misspelt-plaintext:93fe",
        }
    )
    # a wrong passphrase (pending, then chained), a session token, a new passphrase
    assert run_cli(keyring_home, "describe", key, passfile=wrongfile).code == 5
    unlocked = run_cli(keyring_home, "unlock", "--ttl", "1h", passfile=passfile)
    assert unlocked.code == 0, unlocked.stderr
    secrets["session token"] = unlocked.stdout.strip()
    new_pass = tmp_path / "new.txt"
    new_pass.write_text("a new passphrase, also secret\n")
    secrets["new passphrase"] = b"a new passphrase, also secret"
    changed = run_cli(keyring_home, "passwd", "--new-passphrase-file", str(new_pass), passfile=passfile)
    assert changed.code == 0, changed.stderr
    needles = _needles(secrets)

    def home_files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(keyring_home.iterdir()) if p.is_file()}

    before = home_files()
    assert "keyring.db-wal" in before  # the trail's newest pages are still in the log
    exports = {}
    for fmt in ("jsonl", "cloudtrail"):
        out = run_cli(keyring_home, "audit", "export", "--format", fmt, passfile=new_pass)
        assert out.code == 0, out.stderr
        exports[f"export {fmt}"] = out.stdout
    listed = run_cli(keyring_home, "-o", "json", "audit", "list", "--limit", "1000", passfile=new_pass)
    assert listed.code == 0
    exports["audit list"] = listed.stdout
    kms.keyring.close()
    checkpoint(keyring_home)
    after = {f"{name} (checkpointed)": data for name, data in home_files().items()}
    assert not _leaks({**before, **exports, **after}, needles)
    # the records are there, with lengths where the secrets were
    events = json.loads(listed.stdout)["Events"]
    assert {"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "Sign", "GenerateMac", "ChangePassphrase"} <= set(
        names(events)
    )
    typed = [e for e in events if e["eventName"] == "Encrypt" and e.get("errorCode")]
    assert [e["requestParameters"] for e in typed][::-1] == [
        {"keyId": key, "plaintext": {"length": 20}},
        {"keyId": key, "plainText": {"length": 23}},
        {"keyId": key, "plain_text": {"length": 23}},
    ]
    dk_event = next(e for e in events if e["eventName"] == "GenerateDataKey")
    assert dk_event["responseElements"]["plaintext"] == {"length": 32}


# ------------------------------------------------------------- tampering ---
N = 10  # records in the tamper fixture's trail


@dataclass
class Trail:
    db: bytes
    passfile: Path
    key: str
    tmp: Path

    def copy(self, name: str) -> Path:
        home = self.tmp / name
        home.mkdir(mode=0o700)
        (home / "keyring.db").write_bytes(self.db)
        (home / "keyring.db").chmod(0o600)
        return home

    def run(self, home: Path, *args: str) -> Out:
        return run_cli(home, *args, passfile=self.passfile)


@pytest.fixture
def trail(kms: LocalKMS, clock: FakeClock, keyring_home: Path, passfile: Path, tmp_path: Path) -> Trail:
    key = kms.create_key()["KeyMetadata"]["KeyId"]  # 1
    kms.create_alias(AliasName="alias/app", TargetKeyId=key)  # 2
    cts = []
    for i in range(3):  # 3, 4, 5
        clock.advance(seconds=60)
        cts.append(kms.encrypt(KeyId=key, Plaintext=b"x%d" % i, EncryptionContext=CONTEXT)["CiphertextBlob"])
    kms.decrypt(CiphertextBlob=cts[0], EncryptionContext=CONTEXT)  # 6
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=cts[1])  # 7
    kms.describe_key(KeyId="alias/app")  # 8
    kms.disable_key(KeyId=key)  # 9
    kms.describe_key(KeyId=key)  # 10
    kms.keyring.close()
    checkpoint(keyring_home)
    assert seqs(keyring_home) == list(range(1, N + 1))
    return Trail((keyring_home / "keyring.db").read_bytes(), passfile, key, tmp_path)


def _edit_bytes(home: Path) -> None:
    ((record,),) = sql(home, "SELECT record FROM audit WHERE seq = 5")
    edited = pack(unpack(bytes(record)).replace(b'"eventVersion":"1.08"', b'"eventVersion":"1.09"'))
    assert unpack(edited) != unpack(bytes(record))
    sql(home, "UPDATE audit SET record = ? WHERE seq = 5", edited)


def _swap(home: Path) -> None:
    cols = "event_time, event_name, key_id, error_code, record, prev, mac"
    four, six = (sql(home, f"SELECT {cols} FROM audit WHERE seq = ?", s)[0] for s in (4, 6))
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    sql(home, f"UPDATE audit SET {sets} WHERE seq = 4", *six)
    sql(home, f"UPDATE audit SET {sets} WHERE seq = 6", *four)


def _forge(home: Path) -> None:
    ((record, mac),) = sql(home, "SELECT record, mac FROM audit WHERE seq = ?", N)
    forged = pack(unpack(bytes(record)).replace(b'"eventName":"DescribeKey"', b'"eventName":"DeleteAlias"'))
    sql(
        home,
        "INSERT INTO audit(seq, event_time, event_name, key_id, error_code, record, prev, mac) "
        "SELECT ?, event_time + 1, 'DeleteAlias', key_id, NULL, ?, ?, ? FROM audit WHERE seq = ?",
        N + 1,
        forged,
        bytes(mac),
        os.urandom(32),
        N,
    )


# name -> (edit, the first bad record verify names, the records audit list may name)
TAMPERING: dict[str, tuple[Callable[[Path], None], int, set[int]]] = {
    "edit one record's bytes": (_edit_bytes, 5, {5}),
    "delete a record in the middle": (lambda h: sql(h, "DELETE FROM audit WHERE seq = 5"), 5, {5}),
    "swap two records": (_swap, 4, {4, 6}),
    "insert a forged record": (_forge, N + 1, {N + 1}),
    "truncate the last 3 (keeping the keyring)": (lambda h: sql(h, "DELETE FROM audit WHERE seq > ?", N - 3), 8, {8}),
    "edit the prev column": (lambda h: sql(h, "UPDATE audit SET prev = ? WHERE seq = 5", os.urandom(32)), 5, {5}),
    "edit event_name": (lambda h: sql(h, "UPDATE audit SET event_name = 'Decrypt' WHERE seq = 5"), 5, {5}),
    "edit error_code": (lambda h: sql(h, "UPDATE audit SET error_code = NULL WHERE seq = 7"), 7, {7}),
    "edit key_id": (lambda h: sql(h, "UPDATE audit SET key_id = 'other' WHERE seq = 5"), 5, {5}),
    "edit event_time": (lambda h: sql(h, "UPDATE audit SET event_time = event_time - 86400 WHERE seq = 5"), 5, {5}),
    "a column of the wrong type": (lambda h: sql(h, "UPDATE audit SET mac = 'x' WHERE seq = 5"), 5, {5}),
    "delete the first record": (lambda h: sql(h, "DELETE FROM audit WHERE seq = 1"), 1, {1}),
}


@pytest.mark.parametrize("case", list(TAMPERING), ids=lambda c: c.replace(" ", "-"))
def test_tampering_is_detected_and_names_the_first_bad_record(trail: Trail, case: str) -> None:
    edit, first_bad, list_names = TAMPERING[case]
    home = trail.copy("tampered")
    edit(home)
    verify = trail.run(home, "audit", "verify")
    assert verify.code == 8, (verify.code, verify.stderr)
    assert verify.stderr.startswith("kmsctl: IntegrityError: audit trail: "), verify.stderr
    first_line = verify.stderr.split(": audit trail: ", 1)[1]
    assert re.match(rf"record {first_bad}\b", first_line), verify.stderr
    assert f"({first_bad - 1} records before it verify)" in verify.stderr
    listed = trail.run(home, "-o", "json", "audit", "list")
    if list_names:  # the bad record is in the default page
        assert listed.code == 8, (listed.code, listed.stderr)
        assert any(names_record(listed.stderr, n) for n in list_names), listed.stderr
        assert listed.stdout == b""
    for fmt in ("jsonl", "cloudtrail"):
        exported = trail.run(home, "audit", "export", "--format", fmt)
        assert (exported.code, exported.stdout) == (8, b""), exported.stderr
    # the rest of the keyring still works: only the trail is refused
    assert trail.run(home, "-o", "json", "status").code == 0


def test_an_untouched_trail_verifies(trail: Trail) -> None:
    home = trail.copy("untouched")
    out = trail.run(home, "-o", "json", "audit", "verify")
    assert (out.code, out.json()) == (0, {"RecordsVerified": N, "PendingUnauthenticated": 0}), out.stderr
    text = trail.run(home, "audit", "verify")
    assert text.stderr == f"kmsctl: audit trail verifies: {N} records\n"
    listed = trail.run(home, "-o", "json", "audit", "list")
    assert listed.code == 0 and len(listed.json()["Events"]) == N


def test_list_checks_its_page_and_verify_the_whole_trail(trail: Trail) -> None:
    home = trail.copy("old-edit")
    sql(home, "UPDATE audit SET event_name = 'Decrypt' WHERE seq = 2")
    page = trail.run(home, "-o", "json", "audit", "list", "--limit", "3")
    assert page.code == 0, page.stderr
    assert [e["eventName"] for e in page.json()["Events"]] == ["DescribeKey", "DisableKey", "DescribeKey"]
    assert trail.run(home, "audit", "list", "--event", "Decrypt").code == 8  # record 2 is in that page
    assert trail.run(home, "audit", "verify").code == 8


def test_a_missing_head_is_detected(trail: Trail) -> None:
    home = trail.copy("headless")
    sql(home, "DELETE FROM audit WHERE seq > 8")
    sql(home, "DELETE FROM meta WHERE name = 'audit_head'")
    for args in (("audit", "verify"), ("audit", "list")):
        out = trail.run(home, *args)
        assert out.code == 8 and "head is missing" in out.stderr, out.stderr


def test_a_forged_head_is_detected(trail: Trail) -> None:
    home = trail.copy("forged-head")
    ((raw,),) = sql(home, "SELECT value FROM meta WHERE name = 'audit_head'")
    head = json.loads(raw)
    sql(home, "UPDATE meta SET value = ? WHERE name = 'audit_head'", json.dumps({**head, "seq": 8}).encode())
    sql(home, "DELETE FROM audit WHERE seq > 8")
    out = trail.run(home, "audit", "verify")
    assert out.code == 8 and "head record fails its integrity check" in out.stderr, out.stderr


def test_an_old_head_with_the_records_after_it_deleted_is_a_rollback(
    kms: LocalKMS, keyring_home: Path, passfile: Path
) -> None:
    """docs/AUDIT.md, limits: a genuine older head plus a trail cut back to it
    is caught by keyring.epoch's head; without that file (rolled back or
    deleted with it) it verifies. A trail emptied of records, head and anchor
    is always caught: init writes the head."""
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    old_head = kms.db.meta("audit_head")
    kms.describe_key(KeyId=key)
    kms.disable_key(KeyId=key)
    sql(keyring_home, "DELETE FROM audit WHERE seq > 1")
    sql(keyring_home, "UPDATE meta SET value = ? WHERE name = 'audit_head'", old_head)
    out = run_cli(keyring_home, "-o", "json", "audit", "verify", passfile=passfile)
    assert out.code == 8 and "rolled back" in out.stderr, out.stderr
    (keyring_home / "keyring.epoch").unlink()
    out = run_cli(keyring_home, "-o", "json", "audit", "verify", passfile=passfile)
    assert (out.code, out.json()["RecordsVerified"]) == (0, 1)
    sql(keyring_home, "DELETE FROM audit")
    sql(keyring_home, "DELETE FROM meta WHERE name IN ('audit_head', 'audit_anchor')")
    (keyring_home / "keyring.epoch").unlink()
    out = run_cli(keyring_home, "-o", "json", "audit", "verify", passfile=passfile)
    assert out.code == 8 and "head is missing" in out.stderr, out.stderr


def test_verify_sees_one_snapshot_while_others_write(kms: LocalKMS, keyring_home: Path, monkeypatch: Any) -> None:
    """A record appended by another process during a verify is not mistaken
    for a head that runs ahead of the trail (records "cut off")."""
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    other = LocalKMS(Keyring(str(keyring_home)), clock=kms.clock)
    other.keyring.unlock_with_passphrase(PASSPHRASE.encode())
    walk = AuditTrail._ascending

    def walk_then_write(self: AuditTrail) -> Iterator[tuple[Any, ...]]:
        yield from walk(self)
        other.describe_key(KeyId=key)  # commits while the verify's snapshot is open

    monkeypatch.setattr(AuditTrail, "_ascending", walk_then_write)
    assert kms.audit_verify()["RecordsVerified"] == 1
    monkeypatch.undo()
    assert kms.audit_verify()["RecordsVerified"] == 2
    other.keyring.close()


# --------------------------------------------------------------- filters ---
@pytest.fixture
def history(kms: LocalKMS, clock: FakeClock) -> dict[str, Any]:
    """Day 0: two keys, alias/a -> a. Day 1: encrypt under a. Day 2: a failed
    decrypt naming a, describe b. Day 3: disable a. Day 4: encrypt under b."""
    a = kms.create_key()["KeyMetadata"]["KeyId"]
    b = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/a", TargetKeyId=a)
    clock.advance(days=1)
    ct = kms.encrypt(KeyId="alias/a", Plaintext=b"one")["CiphertextBlob"]
    clock.advance(days=1)
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=ct, EncryptionContext={"x": "y"})
    kms.describe_key(KeyId=b)
    clock.advance(days=1)
    kms.disable_key(KeyId=a)
    clock.advance(days=1)
    kms.encrypt(KeyId=b, Plaintext=b"two")
    return {"a": a, "b": b}


def test_filters_through_the_service(kms: LocalKMS, history: dict[str, Any]) -> None:
    a, b = history["a"], history["b"]
    every = kms.audit_events()["Events"]
    assert names(every) == [
        "Encrypt", "DisableKey", "DescribeKey", "Decrypt", "Encrypt", "CreateAlias", "CreateKey", "CreateKey",
    ]  # fmt: skip
    times = [e["eventTime"] for e in every]
    assert times == sorted(times, reverse=True)
    by_a = kms.audit_events(KeyId=a)["Events"]
    assert names(by_a) == ["DisableKey", "Decrypt", "Encrypt", "CreateAlias", "CreateKey"]
    assert kms.audit_events(KeyId="alias/a")["Events"] == by_a
    assert kms.audit_events(KeyId=f"arn:aws:kms:us-east-1:111122223333:key/{a}")["Events"] == by_a
    assert names(kms.audit_events(KeyId=b)["Events"]) == ["Encrypt", "DescribeKey", "CreateKey"]
    assert names(kms.audit_events(EventName="Encrypt")["Events"]) == ["Encrypt", "Encrypt"]
    assert [e["resources"][0]["ARN"][-36:] for e in kms.audit_events(EventName="Encrypt")["Events"]] == [b, a]
    errors = kms.audit_events(ErrorsOnly=True)["Events"]
    assert [(e["eventName"], e["errorCode"]) for e in errors] == [("Decrypt", "InvalidCiphertextException")]
    assert names(kms.audit_events(Limit=2)["Events"]) == ["Encrypt", "DisableKey"]
    day = [datetime.fromtimestamp(START + d * DAY, UTC) for d in range(6)]
    assert names(kms.audit_events(StartTime=day[2])["Events"]) == ["Encrypt", "DisableKey", "DescribeKey", "Decrypt"]
    assert names(kms.audit_events(EndTime=day[1])["Events"]) == ["Encrypt", "CreateAlias", "CreateKey", "CreateKey"]
    window = kms.audit_events(StartTime=day[1], EndTime=day[3] - timedelta(seconds=1))["Events"]
    assert names(window) == ["DescribeKey", "Decrypt", "Encrypt"]
    assert kms.audit_events(StartTime=START + 2 * DAY, EndTime=START + 2 * DAY)["Events"] == window[:2]
    assert names(kms.audit_events(KeyId=a, StartTime=day[2], ErrorsOnly=True)["Events"]) == ["Decrypt"]
    assert kms.audit_events(StartTime=day[5])["Events"] == []
    for bad in ({"Limit": 0}, {"Limit": 100_001}, {"Limit": True}, {"StartTime": "yesterday"}):
        with pytest.raises(E.ValidationException):
            kms.audit_events(**bad)
    with pytest.raises(E.NotFoundException):
        kms.audit_events(KeyId="alias/none")
    assert kms.audit_events(KeyId="0b7a93a2-0000-4000-8000-000000000000")["Events"] == []  # a key never seen


def test_relative_and_iso_times_follow_the_apps_clock(clock: FakeClock, tmp_path: Path) -> None:
    app = App(str(tmp_path), clock=clock)
    assert parse_time(app, "7d", "--since") == datetime.fromtimestamp(START - 7 * DAY, UTC)
    assert parse_time(app, "90m", "--since") == datetime.fromtimestamp(START - 5400, UTC)
    assert parse_time(app, "30s", "--until").timestamp() == START - 30
    assert parse_time(app, "12h", "--until").timestamp() == START - 12 * 3600
    assert parse_time(app, "2027-01-15", "--since") == datetime(2027, 1, 15, tzinfo=UTC)
    assert parse_time(app, "2027-01-15T10:00:00Z", "--since") == datetime(2027, 1, 15, 10, tzinfo=UTC)
    assert parse_time(app, "2027-01-15T10:00:00+02:00", "--since").timestamp() == START
    import click

    for bad in ("yesterday", "7w", "-1d", ""):
        with pytest.raises(click.BadParameter):
            parse_time(app, bad, "--since")


def test_filters_through_the_cli(cli: Any) -> None:
    key = cli("-o", "text", "create", "--alias", "alias/f").stdout.strip()
    other = cli("-o", "text", "create").stdout.strip()
    assert cli("describe", "alias/f").exit_code == 0
    assert cli("describe", other).exit_code == 0
    assert cli("disable", key).exit_code == 0
    assert cli("decrypt", input=b"not a blob").exit_code == 6

    def listed(*args: str) -> list[dict[str, Any]]:
        out = cli("-o", "json", "audit", "list", *args)
        assert out.exit_code == 0, out.stderr
        events: list[dict[str, Any]] = json.loads(out.stdout)["Events"]
        return events

    assert names(listed("--key", "alias/f")) == ["DisableKey", "DescribeKey", "CreateAlias", "CreateKey"]
    assert listed("--key", key) == listed("--key", "alias/f")
    assert names(listed("--key", other)) == ["DescribeKey", "CreateKey"]
    assert names(listed("--event", "DescribeKey")) == ["DescribeKey", "DescribeKey"]
    assert [(e["eventName"], e["errorCode"]) for e in listed("--errors")] == [("Decrypt", "InvalidCiphertextException")]
    assert names(listed("--limit", "2")) == ["Decrypt", "DisableKey"]
    assert len(listed("--since", "1h")) == 7 == len(listed("--since", "2000-01-01"))
    assert listed("--until", "1h") == [] == listed("--until", "2000-01-01T00:00:00Z")
    assert listed("--since", "2999-01-01") == []
    text = cli("-o", "text", "audit", "list", "--limit", "1")
    assert text.stdout.split("\t")[1:4] == ["Decrypt", "", "InvalidCiphertextException"]
    assert cli("audit", "list", "--since", "last week").exit_code == 2
    assert cli("audit", "list", "--limit", "0").exit_code == 2


# ----------------------------------------------------------------- prune ---
def test_prune_drops_what_is_older_and_keeps_the_rest_verifiable(
    kms: LocalKMS, history: dict[str, Any], clock: FakeClock, keyring_home: Path, passfile: Path
) -> None:
    before = datetime.fromtimestamp(START + 2 * DAY, UTC)
    total = kms.audit_verify()["RecordsVerified"]
    kept_names = names(kms.audit_events(StartTime=before)["Events"])
    out = kms.audit_prune(Before=before)
    assert out == {"RecordsDropped": total - len(kept_names)}
    events = kms.audit_events()["Events"]
    assert names(events) == ["AuditPrune", *kept_names]
    prune = events[0]
    assert prune["requestParameters"] == {"before": "2027-01-17T08:00:00Z"}
    assert prune["responseElements"] == {"recordsDropped": total - len(kept_names)}
    assert prune["readOnly"] is False and prune["resources"] == []
    assert sql(keyring_home, "SELECT count(*) FROM audit WHERE event_time < ?", START + 2 * DAY) == [(0,)]
    assert kms.audit_verify()["RecordsVerified"] == len(kept_names) + 1
    # a new process reads the anchor the prune wrote
    again = run_cli(keyring_home, "-o", "json", "audit", "verify", passfile=passfile)
    assert again.code == 0 and again.json()["RecordsVerified"] == len(kept_names) + 1
    # nothing older is left: pruning again drops nothing but still records itself
    assert kms.audit_prune(Before=before) == {"RecordsDropped": 0}
    assert names(kms.audit_events(Limit=2)["Events"]) == ["AuditPrune", "AuditPrune"]
    # deleting the anchor is noticed: the first record left no longer follows anything
    first_left = seqs(keyring_home)[0]
    assert first_left > 1
    sql(keyring_home, "DELETE FROM meta WHERE name = 'audit_anchor'")
    bad = run_cli(keyring_home, "audit", "verify", passfile=passfile)
    assert bad.code == 8 and f"record 1 is missing (the next one is {first_left})" in bad.stderr, bad.stderr


def test_prune_never_drops_a_record_newer_than_the_cut(kms: LocalKMS, clock: FakeClock) -> None:
    """Chain order is not time order (a slow command's record is chained when
    it ends, stamped when it began): the prefix that is dropped stops at the
    first record at or after the cut."""
    key = kms.create_key()["KeyMetadata"]["KeyId"]  # day 0
    clock.advance(days=3)
    kms.describe_key(KeyId=key)  # day 3
    started_earlier = LocalKMS(kms.keyring, clock=lambda: START + DAY)
    started_earlier.encrypt(KeyId=key, Plaintext=b"z")  # chained now, stamped day 1
    clock.advance(days=1)
    kms.disable_key(KeyId=key)  # day 4
    assert kms.audit_prune(Before=START + 2 * DAY) == {"RecordsDropped": 1}
    assert names(kms.audit_events()["Events"]) == ["AuditPrune", "DisableKey", "Encrypt", "DescribeKey"]
    assert kms.audit_verify()["RecordsVerified"] == 4


def test_prune_through_the_cli(cli: Any, keyring_home: Path) -> None:
    assert cli("create").exit_code == 0
    nothing = cli("audit", "prune", "--before", "2000-01-01")
    assert (nothing.exit_code, nothing.stderr) == (0, "kmsctl: pruned 0 audit record(s)\n")
    out = cli("-o", "json", "audit", "prune", "--before", "2999-01-01")  # CreateKey and the first AuditPrune
    assert (out.exit_code, json.loads(out.stdout)) == (0, {"RecordsDropped": 2})
    assert names(json.loads(cli("-o", "json", "audit", "list").stdout)["Events"]) == ["AuditPrune"]
    assert cli("audit", "verify").exit_code == 0
    assert cli("audit", "prune").exit_code == 2  # --before is required
    assert cli("audit", "prune", "--before", "soon").exit_code == 2


def test_prune_refuses_a_tampered_trail(trail: Trail) -> None:
    home = trail.copy("tampered-prune")
    _edit_bytes(home)
    out = trail.run(home, "audit", "prune", "--before", "2999-01-01")
    assert out.code == 8 and names_record(out.stderr, 5)
    assert seqs(home) == list(range(1, N + 1))


# ---------------------------------------------------------------- export ---
def test_export_formats(trail: Trail) -> None:
    home = trail.copy("export")
    jsonl = trail.run(home, "audit", "export")
    assert jsonl.code == 0, jsonl.stderr
    lines = jsonl.stdout.decode().splitlines()
    assert len(lines) == N and jsonl.stdout.endswith(b"\n")
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    assert names(records) == [
        "CreateKey", "CreateAlias", "Encrypt", "Encrypt", "Encrypt", "Decrypt", "Decrypt", "DescribeKey",
        "DisableKey", "DescribeKey",
    ]  # fmt: skip
    times = [r["eventTime"] for r in records]
    assert times == sorted(times)
    assert jsonl.stdout == trail.run(home, "audit", "export", "--format", "jsonl").stdout
    cloudtrail = trail.run(home, "audit", "export", "--format", "cloudtrail")
    assert cloudtrail.code == 0
    doc = json.loads(cloudtrail.stdout)
    assert list(doc) == ["Records"] and doc["Records"] == records
    listed = trail.run(home, "-o", "json", "audit", "list")
    assert listed.json()["Events"] == records[::-1]
    assert trail.run(home, "audit", "export", "--format", "csv").code == 2


def test_export_of_an_empty_trail(cli: Any) -> None:
    assert cli("audit", "export").stdout == ""
    assert json.loads(cli("audit", "export", "--format", "cloudtrail").stdout) == {"Records": []}


# ------------------------------------------------------------ durability ---
def test_a_failure_inside_an_outer_transaction_is_recorded_and_the_rollback_leaves_nothing(
    cli: Any, keyring_home: Path
) -> None:
    first = cli("-o", "text", "create", "--alias", "alias/taken")
    assert first.exit_code == 0
    again = cli("create", "--alias", "alias/taken")
    assert again.exit_code == 7, again.stderr
    assert sql(keyring_home, "SELECT count(*) FROM keys") == [(1,)]
    events = json.loads(cli("-o", "json", "audit", "list").stdout)["Events"]
    assert [(e["eventName"], e.get("errorCode")) for e in events] == [
        ("CreateAlias", "AlreadyExistsException"),
        ("CreateAlias", None),
        ("CreateKey", None),
    ]
    failed = events[0]
    assert failed["requestParameters"]["aliasName"] == "alias/taken"
    # the failed alias names the key that was rolled back, which does not exist
    rolled_back = failed["requestParameters"]["targetKeyId"]
    assert rolled_back != first.stdout.strip()
    assert sql(keyring_home, "SELECT count(*) FROM keys WHERE key_id = ?", rolled_back) == [(0,)]
    assert cli("audit", "verify").exit_code == 0


def test_a_change_and_its_record_land_together(kms: LocalKMS, monkeypatch: Any) -> None:
    key = kms.create_key(Description="before")["KeyMetadata"]["KeyId"]

    def broken(self: AuditTrail, event: dict[str, Any], when: float) -> None:
        raise E.IntegrityError("the trail cannot be written")

    monkeypatch.setattr(AuditTrail, "append", broken)
    with pytest.raises(E.IntegrityError):
        kms.update_key_description(KeyId=key, Description="after")
    monkeypatch.undo()
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["Description"] == "before"
    assert "UpdateKeyDescription" not in names(kms.audit_events()["Events"])


def test_read_only_records_skip_the_fsync_and_changes_do_not(kms: LocalKMS, monkeypatch: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    relaxed: list[str] = []
    real = type(kms.db).relaxed_durability

    def spy(db: Any) -> Any:
        relaxed.append(db.conn.execute("PRAGMA synchronous").fetchone()[0])
        return real(db)

    monkeypatch.setattr(type(kms.db), "relaxed_durability", spy)
    kms.describe_key(KeyId=key)
    assert len(relaxed) == 1
    kms.disable_key(KeyId=key)
    assert len(relaxed) == 1  # the change's record is in its own, fsynced transaction
    assert kms.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again


def test_a_read_in_a_snapshot_is_not_failed_by_another_writer(
    kms: LocalKMS, keyring_home: Path, monkeypatch: Any
) -> None:
    import kmsctl.service.audit as service_audit

    kms.create_key()
    other = LocalKMS(Keyring(str(keyring_home)), clock=kms.clock)
    other.keyring.unlock_with_passphrase(PASSPHRASE.encode())
    identity = service_audit._identity
    wrote: list[bool] = []

    def identity_while_another_writes() -> dict[str, Any]:
        if not wrote:
            wrote.append(True)
            other.create_key()  # commits between the snapshot's read and its record
        return identity()

    try:
        with kms.snapshot():
            monkeypatch.setattr(service_audit, "_identity", identity_while_another_writes)
            assert len(kms.list_keys()["Keys"]) == 1
    finally:
        other.keyring.close()


# -------------------------------------------------- keyring commands ---
def test_unlock_lock_and_passwd_are_recorded(cli: Any, tmp_path: Path, wrongfile: Path) -> None:
    assert cli("unlock", "--passphrase-file", str(wrongfile)).exit_code == 5
    token = cli("unlock", "--ttl", "15m").stdout.strip()
    assert token.startswith("kmsctl_s1_")
    assert cli("lock").exit_code == 0
    new = tmp_path / "new.txt"
    new.write_text("the next passphrase\n")
    assert cli("passwd", "--passphrase-file", str(wrongfile), "--new-passphrase-file", str(new)).exit_code == 5
    assert cli("passwd", "--new-passphrase-file", str(new)).exit_code == 0
    out = cli("-o", "json", "audit", "list", env={"KMSCTL_PASSPHRASE_FILE": str(new)})
    assert out.exit_code == 0, out.stderr
    events = json.loads(out.stdout)["Events"][::-1]
    summary = [
        (e["eventName"], e.get("errorCode"), (e.get("additionalEventData") or {}).get("recordedBeforeUnlock", False))
        for e in events
    ]
    assert summary == [
        ("Unlock", "AccessDeniedException", True),  # pending until the next unlock chained it
        ("Unlock", None, False),
        ("Lock", None, True),  # lock needs no passphrase: its record waits for one
        ("ChangePassphrase", "AccessDeniedException", True),
        ("ChangePassphrase", None, False),
    ]
    assert events[1]["requestParameters"] == {"ttlSeconds": 900}
    assert events[1]["readOnly"] is False and events[1]["resources"] == []
    assert all(token not in json.dumps(e) for e in events)
    assert cli("audit", "verify", env={"KMSCTL_PASSPHRASE_FILE": str(new)}).exit_code == 0


def test_a_session_records_its_commands(cli: Any) -> None:
    token = cli("unlock").stdout.strip()
    env: dict[str, str | None] = {"KMSCTL_SESSION": token, "KMSCTL_PASSPHRASE_FILE": None}
    assert cli("create", env=env).exit_code == 0
    assert cli("lock").exit_code == 0
    assert cli("create", env=env).exit_code == 5  # the session has ended
    events = json.loads(cli("-o", "json", "audit", "list").stdout)["Events"][::-1]
    assert [(e["eventName"], e.get("errorCode")) for e in events] == [
        ("Unlock", None),
        ("CreateKey", None),
        ("Lock", None),
        ("Unlock", "AccessDeniedException"),  # the transaction of create --alias unlocks first
    ]


# --------------------------------------------- pending records, damaged ---
def test_damaged_pending_records_never_stop_the_next_command(kms: LocalKMS, keyring_home: Path) -> None:
    rows: list[tuple[Any, Any]] = [
        (START, b"not json"),
        (START, json.dumps({"eventName": "Decrypt", "resources": "x"}).encode()),
        (START, json.dumps({"eventName": "Decrypt", "errorCode": {"no": 1}}).encode()),
        (START, json.dumps({"eventName": "Decrypt", "additionalEventData": [1]}).encode()),
        (START, json.dumps({"eventName": 5}).encode()),
        ("soon", json.dumps({"eventName": "Encrypt", "eventTime": "2027-01-15T09:00:00Z"}).encode()),
        (1e300, json.dumps({"eventName": "Encrypt"}).encode()),
        (START, "text, not a blob"),
    ]
    for when, record in rows:
        sql(keyring_home, "INSERT INTO audit_pending(event_time, record) VALUES (?, ?)", when, record)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyId"] == key
    events = kms.audit_events()["Events"][::-1]
    assert names(events) == [
        "DamagedPendingRecord", "Decrypt", "DamagedPendingRecord", "DamagedPendingRecord", "DamagedPendingRecord",
        "Encrypt", "Encrypt", "DamagedPendingRecord", "CreateKey", "DescribeKey",
    ]  # fmt: skip
    assert all(e["additionalEventData"] == {"recordedBeforeUnlock": True} for e in events[:8])
    assert events[5]["eventTime"] == "2027-01-15T09:00:00Z"  # the record's own time, when the row's is damaged
    assert events[6]["eventTime"] == "1970-01-01T00:00:00Z"
    assert kms.audit_verify() == {"RecordsVerified": 10, "PendingUnauthenticated": 0}


# ------------------------------------------------------- record details ---
def test_event_time_text_matches_datetime() -> None:
    rng = random.Random(6)
    values = [START, 0.0, -1.5, 1.9999995, 1.9999994999, 253402300799.0, -62135596800.0]
    values += [rng.uniform(-1e10, 2.5e11) for _ in range(3000)]
    values += [math.floor(rng.uniform(0, 4e9)) + f for f in (0.9999995, 0.99999949, 5e-7, 0.5) for _ in range(50)]
    for when in values:
        assert event_time_text(when) == datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), when
    for bad in (math.inf, math.nan, 1e300):
        with pytest.raises(ValueError):
            event_time_text(bad)
    assert audit_store.TIME_FORMAT == "%Y-%m-%dT%H:%M:%SZ"


def test_stored_records_are_canonical_and_chained_as_docs_say(kms: LocalKMS, keyring_home: Path) -> None:
    """docs/AUDIT.md section 3, from the text: K = HKDF-Expand(MK, "kmsctl v1
    audit"), mac_n = HMAC(K, "kmsctl audit v1" 0x00 || n || 0x00 || mac_{n-1}
    || record_n), the head MACed under its own label."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.describe_key(KeyId=key)
    k = HKDFExpand(hashes.SHA256(), 32, b"kmsctl v1 audit").derive(kms.keyring._master())
    rows = sql(keyring_home, "SELECT seq, event_time, event_name, key_id, error_code, record, prev, mac FROM audit")
    prev = bytes(32)
    for seq, when, name, key_id, error_code, record, stored_prev, mac in rows:
        record = bytes(record)  # 0x01 || raw DEFLATE of the canonical JSON, against the preset dictionary
        assert record[0] == 1
        inflate = zlib.decompressobj(-15, DICTIONARY_V1)
        canonical = inflate.decompress(record[1:]) + inflate.flush()
        assert inflate.eof and not inflate.unused_data
        event = json.loads(canonical)
        assert canonical == json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert bytes(stored_prev) == prev
        expected = hmac.new(k, b"kmsctl audit v1\x00" + str(seq).encode() + b"\x00" + prev + record, hashlib.sha256)
        assert bytes(mac) == expected.digest()
        assert (name, key_id, error_code) == (event["eventName"], key, None)
        assert event["eventTime"] == datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prev = bytes(mac)
    ((raw,),) = sql(keyring_home, "SELECT value FROM meta WHERE name = 'audit_head'")
    head = json.loads(raw)
    body = json.dumps({"mac": head["mac"], "seq": head["seq"]}, sort_keys=True, separators=(",", ":")).encode()
    tag = hmac.new(k, b"kmsctl audit head v1\x00" + body, hashlib.sha256).digest()
    assert (head["seq"], base64.b64decode(head["mac"]), base64.b64decode(head["tag"])) == (2, prev, tag)
    kms.audit_prune(Before=START + 1)  # both records are older
    ((raw,),) = sql(keyring_home, "SELECT value FROM meta WHERE name = 'audit_anchor'")
    anchor = json.loads(raw)
    body = json.dumps({"mac": anchor["mac"], "seq": anchor["seq"]}, sort_keys=True, separators=(",", ":")).encode()
    tag = hmac.new(k, b"kmsctl audit anchor v1\x00" + body, hashlib.sha256).digest()
    assert (anchor["seq"], base64.b64decode(anchor["mac"]), base64.b64decode(anchor["tag"])) == (2, prev, tag)
    assert sql(keyring_home, "SELECT seq, prev FROM audit") == [(3, prev)]  # AuditPrune follows the anchor


def test_pack_is_the_documented_deflate_whatever_came_before() -> None:
    """pack copies one compressor primed with the dictionary: each record's bytes are those a new
    compressor (level 9, raw DEFLATE, 8 KiB window, DICTIONARY_V1) makes, records packed before
    it make no difference, and the bytes inflate to the record."""
    records = [
        json.dumps({"eventName": name, "n": i, "pad": "x" * (i * 37)}, sort_keys=True).encode()
        for i, name in enumerate(["Encrypt", "Decrypt", "CreateKey", "Encrypt"] * 3)
    ]
    for record in records:
        fresh = zlib.compressobj(9, zlib.DEFLATED, -13, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_V1)
        assert pack(record) == b"\x01" + fresh.compress(record) + fresh.flush()
        assert unpack(pack(record)) == record
