"""``keyring.epoch``: the keyring's commit counter, kept outside the database,
so that a database that lost committed transactions is noticed.

Every write transaction adds one to ``meta.epoch`` inside the transaction;
after it commits, the counter and the audit trail's head as they now stand
(read back from the database, so only committed values are ever written) are
written to ``keyring.epoch`` next to ``keyring.db`` (in place, under an
advisory lock on the file, and only if it moves the counter forward). The
file therefore never runs ahead of the database: after a crash between the
commit and the file write the database is one transaction ahead, which is
allowed. The database falling behind the file is not:

* at every open (no secret needed), ``meta.epoch`` must be at least the file's
  ``epoch``: a damaged write-ahead log (SQLite drops every frame after a bad
  one), or an older copy of ``keyring.db`` put in place, fails here;
* at every unlock, the file's audit head (MACed under the audit key, so it
  cannot be forged without the master key) must not be ahead of the
  database's: this catches a database whose plain counter was raised by hand.

docs/FORMAT.md section 2.9 has the format and what stays undetectable.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import suppress
from typing import Any

from kmsctl.errors import IntegrityError

NAME = "keyring.epoch"
MAX_SIZE = 4096
RECORD_SIZE = 512  # the JSON, padded with spaces: every write is the same size
RESTORED_HINT = "if you put an older keyring.db in place on purpose (a restored backup), delete {path} and rerun"


def path(home: str) -> str:
    return os.path.join(home, NAME)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(doc, dict)
        or type(doc.get("epoch")) is not int
        or doc["epoch"] < 0
        or not isinstance(doc.get("keyring_id"), str)
        or not isinstance(doc.get("head"), (dict, type(None)))
    ):
        return None
    return doc


def read(home: str) -> dict[str, Any] | None:
    """The file's content; None if it is missing or unreadable (a torn write
    after a power cut: it is then made anew, since the counter may only lag).
    Read under a shared lock, so never half-written by a concurrent writer."""
    try:
        fd = os.open(path(home), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with suppress(OSError):  # no locks on this file system: the JSON check still holds
            fcntl.flock(fd, fcntl.LOCK_SH)
        raw = os.pread(fd, MAX_SIZE + 1, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse(raw)


def check(state: dict[str, Any] | None, keyring_id: str, db_epoch: int, home: str) -> None:
    """The database must not be behind the file (the check at open)."""
    if state is None:
        return
    if state["keyring_id"] != keyring_id:
        raise IntegrityError(
            f"{path(home)} belongs to another keyring than {home}/keyring.db (replaced?)",
            hint=RESTORED_HINT.format(path=path(home)),
        )
    if db_epoch < state["epoch"]:
        raise IntegrityError(
            f"{home}/keyring.db was rolled back: it holds {db_epoch} commits but {NAME} says "
            f"{state['epoch']} were made (committed changes lost from a damaged write-ahead log, "
            "or an older copy of the file)",
            hint=RESTORED_HINT.format(path=path(home)),
        )


def write(home: str, doc: dict[str, Any]) -> None:
    """Set the file to ``doc`` if that moves the counter forward (or the file
    belongs to no keyring or another one). One fixed-size record, rewritten in
    place under an exclusive lock: cheaper than a rename, which ext4 turns
    into a flush, and after a crash the block holds the old record or the new
    one, both committed values."""
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode().ljust(RECORD_SIZE)
    fd = os.open(path(home), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        with suppress(OSError):  # no locks on this file system: at worst the file lags
            fcntl.flock(fd, fcntl.LOCK_EX)
        current = _parse(os.pread(fd, MAX_SIZE + 1, 0))
        if current is not None and current["keyring_id"] == doc["keyring_id"] and current["epoch"] >= doc["epoch"]:
            return
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size != len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def document(keyring_id: str, epoch: int, head: bytes | None) -> dict[str, Any]:
    return {"epoch": epoch, "head": json.loads(head) if head else None, "keyring_id": keyring_id}
