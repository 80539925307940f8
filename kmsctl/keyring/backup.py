"""The backup file (docs/FORMAT.md, "Backup file"), and putting a restored
keyring in place.

    magic "kmsctl-backup\\0" (14 bytes) || version 0x01 || 0x00
    || u32be(len(header)) || header (canonical JSON)
    || the database: a SQLite file image made by SQLite's online backup API
    || MAC: HMAC-SHA256(HKDF-Expand(MK, "kmsctl v1 backup"), "kmsctl backup v1\\0" || everything before it)
    || checksum: SHA-256(everything before it)

The checksum finds any damage without a secret (exit 8 before a passphrase
is asked for); the MAC, under a key only the keyring's master key gives,
finds any change made by someone who recomputed the checksum. The database
keeps every secret sealed as it is in keyring.db: a backup is no less
protected than the keyring, and opens with the same passphrase.
"""

from __future__ import annotations

import json
import os
import struct
import time
from contextlib import suppress
from typing import Any

from kmsctl.errors import IntegrityError

MAGIC = b"kmsctl-backup\x00"
VERSION = 1
FORMAT = "kmsctl-backup"
MAC_LABEL = b"kmsctl backup v1\x00"
DERIVE_LABEL = b"backup"  # the key is HKDF-Expand(MK, "kmsctl v1 backup")
_PREFIX = struct.Struct(">14sBBI")
TAIL = 64  # MAC and checksum
HEADER_MAX = 65536


def pack(header: dict[str, Any], database: bytes, mac_key: bytes) -> bytes:
    from kmsctl.crypto import primitives as P
    from kmsctl.keyring.store import dumps

    raw = dumps({**header, "database_size": len(database), "format": FORMAT, "version": VERSION})
    body = _PREFIX.pack(MAGIC, VERSION, 0, len(raw)) + raw + database
    body += P.hmac_sha256(mac_key, MAC_LABEL + body)
    return body + P.sha256(body)


def unpack(data: bytes, path: str) -> tuple[dict[str, Any], bytes]:
    """-> (header, database image), once the checksum verifies; IntegrityError
    (exit 8) for anything damaged, cut short or not a kmsctl backup."""
    from kmsctl.crypto import primitives as P

    what = f"{path} is not a kmsctl backup"
    if len(data) < _PREFIX.size + TAIL or not data.startswith(MAGIC):
        raise IntegrityError(what, hint="a backup file starts with 'kmsctl-backup'")
    if not P.bytes_eq(P.sha256(data[:-32]), data[-32:]):
        raise IntegrityError(f"{path}: the backup fails its checksum (damaged, cut short or changed)")
    _magic, version, _reserved, size = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise IntegrityError(f"{path}: backup format version {version} is not one this kmsctl reads ({VERSION})")
    end = _PREFIX.size + size
    try:
        header = json.loads(data[_PREFIX.size : end])
    except ValueError:
        raise IntegrityError(f"{path}: the backup's header is damaged") from None
    if (
        not isinstance(header, dict)
        or size > HEADER_MAX
        or header.get("format") != FORMAT
        or type(header.get("database_size")) is not int
        or end + header["database_size"] + TAIL != len(data)
    ):
        raise IntegrityError(f"{path}: the backup's header is damaged")
    return header, data[end : end + header["database_size"]]


def verify_mac(data: bytes, mac_key: bytes, path: str) -> None:
    from kmsctl.crypto import primitives as P

    try:
        P.hmac_sha256_verify(mac_key, MAC_LABEL + data[:-TAIL], data[-TAIL:-32])
    except P.AuthenticationFailed:
        raise IntegrityError(
            f"{path}: the backup fails its integrity check (changed since it was made, or made by another keyring)"
        ) from None


def install(staged: str, home: str, now: float | None = None) -> str | None:
    """Put the verified keyring in ``staged`` (a folder in ``home``) in place:
    an existing keyring.db (and keyring.epoch) is renamed aside first, as
    keyring.db.replaced-<UTC time>, then the new keyring.db and its
    keyring.epoch are renamed in. Returns the aside name, or None."""
    from kmsctl.keyring import epoch
    from kmsctl.keyring.store import DB_NAME

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    db = os.path.join(home, DB_NAME)
    aside: str | None = None
    if os.path.lexists(db):
        aside = f"{db}.replaced-{stamp}"
        n = 1
        while os.path.lexists(aside):
            n += 1
            aside = f"{db}.replaced-{stamp}-{n}"
        for suffix in ("-wal", "-shm"):  # a live log stays with the database it belongs to
            if os.path.lexists(db + suffix):
                os.rename(db + suffix, aside + suffix)
        os.rename(db, aside)
    old_epoch = epoch.path(home)
    if os.path.lexists(old_epoch):
        # never left beside the restored database: it would read as a rollback
        os.rename(old_epoch, (aside or f"{db}.replaced-{stamp}") + ".epoch")
    os.rename(os.path.join(staged, DB_NAME), db)
    staged_epoch = epoch.path(staged)
    if os.path.exists(staged_epoch):
        os.rename(staged_epoch, old_epoch)
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return aside


def snapshot(conn: Any) -> tuple[bytes, dict[str, Any]]:
    """A consistent image of the database behind ``conn`` (sqlite3), taken with
    SQLite's online backup API in one step: one read snapshot, so writers in
    other processes go on (WAL) and none of their transactions is half in it.
    -> (image, {"epoch", "schema_version", "keys"} as the image holds them)."""
    import sqlite3

    copy = sqlite3.connect(":memory:")
    try:
        conn.backup(copy)
        rows = dict(copy.execute("SELECT name, value FROM meta WHERE name IN ('epoch', 'schema_version')").fetchall())
        keys = copy.execute("SELECT count(*) FROM keys").fetchone()[0]
        image = copy.serialize()
    finally:
        copy.close()

    def number(v: Any) -> int:
        text = v.decode() if isinstance(v, bytes) else str(v)
        if not text.isdigit():
            raise IntegrityError("the keyring's commit counter or schema version is damaged")
        return int(text)

    return bytes(image), {
        "epoch": number(rows.get("epoch")),
        "schema_version": number(rows.get("schema_version")),
        "keys": keys,
    }
