"""The keyring stays small: audit records are packed (DEFLATE against a
fixed dictionary), a session of work grows the keyring by kilobytes, and
``audit prune`` gives the space back to the file system."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from helpers import sql

from kmsctl.keyring import audit as audit_store
from kmsctl.keyring import store
from kmsctl.keyring.audit_codec import DICTIONARY_V1, MAX_RECORD, PACKED_V1, pack, unpack
from kmsctl.service import LocalKMS


def files(home: Path) -> int:
    store.close_all()  # as the console script does after a command: the WAL folds into keyring.db
    return sum((home / f"keyring.db{s}").stat().st_size for s in ("", "-wal") if (home / f"keyring.db{s}").exists())


def test_the_dictionary_is_part_of_the_format_and_never_changes() -> None:
    # records already written inflate only against these exact bytes
    assert hashlib.sha256(DICTIONARY_V1).hexdigest() == (
        "41ba2ada9ec978da0839b539199461456c7b56f49445b57075c3ea04d2f8d347"
    )
    assert PACKED_V1 == 1


def test_pack_round_trips_and_unpack_refuses_what_is_not_a_record() -> None:
    record = b'{"eventName":"Encrypt","eventTime":"2027-01-15T08:00:00Z"}'
    assert unpack(pack(record)) == record
    assert unpack(record) == record  # a record stored before packing existed
    assert len(pack(record * 20)) < len(record * 20) / 4
    for bad in (b"", b"\x02abc", b"\x01not deflate", pack(record)[:-3], pack(record) + b"x"):
        with pytest.raises(ValueError):
            unpack(bad)
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_V1)
    bomb = b"\x01" + z.compress(b"{" + b" " * (MAX_RECORD + 10)) + z.flush()
    with pytest.raises(ValueError):
        unpack(bomb)


def test_records_of_both_forms_verify_list_and_export(
    kms: LocalKMS, cli: Any, keyring_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_store, "pack", lambda record: record)  # as kmsctl wrote them before
    old = kms.create_key()["KeyMetadata"]["KeyId"]
    monkeypatch.undo()
    kms.describe_key(KeyId=old)
    stored = [bytes(r) for (r,) in sql(keyring_home, "SELECT record FROM audit ORDER BY seq")]
    assert stored[0][:1] == b"{" and stored[1][:1] == b"\x01"
    assert cli("audit", "verify").exit_code == 0
    events = json.loads(cli("-o", "json", "audit", "list").stdout)["Events"]
    assert [e["eventName"] for e in events] == ["DescribeKey", "CreateKey"]
    exported = [json.loads(line) for line in cli("audit", "export").stdout.splitlines()]
    assert exported == events[::-1]


def test_an_authentic_record_that_does_not_inflate_is_damage(kms: LocalKMS, cli: Any, keyring_home: Path) -> None:
    kms.create_key()
    trail = kms._audit_trail()
    bad = b"\x01garbage"
    ((seq, prev),) = sql(keyring_home, "SELECT seq, prev FROM audit")
    sql(
        keyring_home,
        "UPDATE audit SET record = ?, mac = ? WHERE seq = ?",
        bad,
        trail._record_mac(seq, bytes(prev), bad),
        seq,
    )
    out = cli("audit", "verify")
    assert out.exit_code == 8 and "record 1 is damaged" in out.stderr


def test_a_session_of_encrypts_grows_the_keyring_by_kilobytes(cli: Any, kms: LocalKMS, keyring_home: Path) -> None:
    kms.create_alias(AliasName="alias/app", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    kms.keyring.close()
    assert cli("encrypt", "-k", "alias/app", "-", input=b"warm-up").exit_code == 0  # the unlock's own records
    before = files(keyring_home)
    for _ in range(100):
        assert cli("encrypt", "-k", "alias/app", "-", input=b"a secret").exit_code == 0
    grown = files(keyring_home) - before
    # 2.9 KB a command before: two records of a kilobyte each, stored as JSON
    assert grown < 60_000, grown


def test_prune_gives_the_space_back(cli: Any, kms: LocalKMS, keyring_home: Path) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(3000):
        kms.describe_key(KeyId=key)
    kms.keyring.close()
    full = files(keyring_home)
    out = cli("-o", "json", "audit", "prune", "--before", "2027-01-15T12:00:00Z")
    assert out.exit_code == 0 and json.loads(out.stdout)["RecordsDropped"] == 3001
    small = files(keyring_home)
    assert small < full / 4, (full, small)
    assert cli("audit", "verify").exit_code == 0
