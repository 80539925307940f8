"""The audit trail's storage: an HMAC chain of CloudTrail-shaped records.

Record i is stored with mac_i = HMAC-SHA256(K, label || seq_i || mac_{i-1} ||
record_i), K derived from the keyring master key, so that editing, deleting,
reordering or inserting a record breaks the chain at that record. A head row
(the last seq and MAC, itself MACed) catches a trail cut short at its end; an
anchor row does the same for the start after ``prune``. docs/AUDIT.md has the
design and its limits.

Records of failures that happen before the keyring is unlocked (a wrong
passphrase) cannot be authenticated when they happen; they wait in
``audit_pending`` and are chained, marked as such, by the next command that
unlocks the keyring.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from kmsctl.crypto import primitives as P
from kmsctl.errors import IntegrityError
from kmsctl.keyring.store import Database, as_blob, dumps

_LABEL = b"kmsctl audit v1\x00"
_HEAD = b"kmsctl audit head v1\x00"
_ANCHOR = b"kmsctl audit anchor v1\x00"
GENESIS = bytes(32)


def _pointer(key: bytes, label: bytes, seq: int, mac: bytes) -> bytes:
    """A MACed (seq, mac) pair, as stored for the head and the anchor."""
    body = {"seq": seq, "mac": base64.b64encode(mac).decode()}
    tag = P.hmac_sha256(key, label + dumps(body))
    return dumps({**body, "tag": base64.b64encode(tag).decode()})


class AuditTrail:
    def __init__(self, db: Database, key: bytes | None) -> None:
        self.db = db
        self.key = key  # None while the keyring is locked: records wait in audit_pending

    # ----- writing -----
    def _record_mac(self, seq: int, prev: bytes, record: bytes) -> bytes:
        assert self.key is not None
        return P.hmac_sha256(self.key, _LABEL + str(seq).encode() + b"\x00" + prev + record)

    def append(self, event: dict[str, Any], when: float) -> None:
        """Chain one record; the caller holds a write transaction."""
        if self.key is None:
            self.db.execute("INSERT INTO audit_pending(event_time, record) VALUES (?, ?)", (when, dumps(event)))
            return
        self._adopt_pending()
        self._chain(event, when)

    def _chain(self, event: dict[str, Any], when: float) -> None:
        assert self.key is not None
        seq, prev = self._head()
        seq += 1
        record = dumps(event)
        mac = self._record_mac(seq, prev, record)
        resources = event.get("resources") or [{}]
        key_id = (resources[0].get("ARN") or "").rsplit("/", 1)[-1] or None
        self.db.execute(
            "INSERT INTO audit(seq, event_time, event_name, key_id, error_code, record, prev, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, when, event["eventName"], key_id, event.get("errorCode"), record, prev, mac),
        )
        self.db.set_meta("audit_head", _pointer(self.key, _HEAD, seq, mac))

    def adopt_pending(self) -> None:
        """Chain the records that waited for an unlock (caller holds a write transaction)."""
        if self.key is not None and self.pending():
            self._adopt_pending()

    def _adopt_pending(self) -> None:
        rows = self.db.query("SELECT id, event_time, record FROM audit_pending ORDER BY id")
        for row_id, when, raw in rows:
            try:
                event = json.loads(as_blob(raw, "a pending audit record"))
                if not isinstance(event, dict) or not isinstance(event.get("eventName"), str):
                    raise ValueError(raw)
            except (ValueError, IntegrityError):
                event = {"eventName": "DamagedPendingRecord"}
            if not isinstance(when, (int, float)):
                when = 0.0
            # it could not be authenticated when it happened; say so
            event["additionalEventData"] = {**(event.get("additionalEventData") or {}), "recordedBeforeUnlock": True}
            self._chain(event, float(when))
            self.db.execute("DELETE FROM audit_pending WHERE id = ?", (row_id,))

    # ----- pointers -----
    def _read_pointer(self, name: str, label: bytes) -> tuple[int, bytes] | None:
        raw = self.db.meta(name)
        if raw is None:
            return None
        assert self.key is not None
        try:
            ptr = json.loads(raw)
            body = {"seq": ptr["seq"], "mac": ptr["mac"]}
            P.hmac_sha256_verify(self.key, label + dumps(body), base64.b64decode(ptr["tag"]))
            return int(ptr["seq"]), base64.b64decode(ptr["mac"])
        except (ValueError, KeyError, TypeError, P.AuthenticationFailed):
            raise IntegrityError(f"the audit trail's {name.split('_')[1]} record fails its integrity check") from None

    def _head(self) -> tuple[int, bytes]:
        return self._read_pointer("audit_head", _HEAD) or self._anchor()

    def _anchor(self) -> tuple[int, bytes]:
        return self._read_pointer("audit_anchor", _ANCHOR) or (0, GENESIS)

    # ----- reading -----
    def events(self, where: list[str], args: list[Any], limit: int) -> list[dict[str, Any]]:
        """Newest first; each record checked on its own (its MAC over its own
        seq, the MAC before it, and its bytes). ``verify`` checks the chain."""
        sql = (
            "SELECT seq, event_name, error_code, record, prev, mac FROM audit"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY seq DESC LIMIT ?"
        )
        out = []
        for seq, name, error_code, raw, prev, mac in self.db.query(sql, (*args, limit)):
            record = as_blob(raw, f"audit record {seq}")
            if not _equal(self._record_mac(seq, as_blob(prev, "audit record"), record), as_blob(mac, "audit record")):
                raise IntegrityError(f"audit record {seq} fails its integrity check")
            event = json.loads(record)
            if (event.get("eventName"), event.get("errorCode")) != (name, error_code):
                raise IntegrityError(f"audit record {seq} fails its integrity check (index columns edited)")
            out.append(event)
        return out

    def pending(self) -> int:
        return int(self.db.query("SELECT count(*) FROM audit_pending")[0][0])

    def ascending(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first, for export (run ``verify`` to vouch for them)."""
        for _, raw, _, _ in self._ascending():
            yield json.loads(as_blob(raw, "audit record"))

    def verify(self) -> tuple[int, str | None]:
        """Walk the whole chain: (records checked, None) or (n, what is wrong first)."""
        seq, prev = self._anchor()
        checked = 0
        for row_seq, raw, stored_prev, mac in self._ascending():
            record, mac = as_blob(raw, "audit record"), as_blob(mac, "audit record")
            if row_seq != seq + 1:
                return checked, f"record {seq + 1} is missing (the next one is {row_seq})"
            expected = self._record_mac(row_seq, prev, record)
            if not _equal(expected, mac) or as_blob(stored_prev, "audit record") != prev:
                return checked, f"record {row_seq} fails its integrity check (edited, reordered or inserted)"
            seq, prev = row_seq, mac
            checked += 1
        head = self._read_pointer("audit_head", _HEAD)
        if head is not None and head != (seq, prev):
            return checked, f"the trail ends at record {seq} but its head says {head[0]}: records were cut off"
        return checked, None

    def _ascending(self) -> Iterator[tuple[Any, ...]]:
        after = -1
        while True:
            batch = self.db.query(
                "SELECT seq, record, prev, mac FROM audit WHERE seq > ? ORDER BY seq LIMIT 5000", (after,)
            )
            yield from batch
            if len(batch) < 5000:
                return
            after = batch[-1][0]

    def prune(self, before: float) -> int:
        """Drop records older than ``before``; the anchor keeps the rest verifiable."""
        assert self.key is not None
        rows = self.db.query("SELECT seq, mac FROM audit WHERE event_time < ? ORDER BY seq DESC LIMIT 1", (before,))
        if not rows:
            return 0
        last, mac = rows[0]
        dropped = self.db.execute("DELETE FROM audit WHERE seq <= ?", (last,))
        self.db.set_meta("audit_anchor", _pointer(self.key, _ANCHOR, last, as_blob(mac, "audit record")))
        return dropped


def _equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two MACs."""
    return P.constant_time_equal(a, b)
