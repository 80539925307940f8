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
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from kmsctl.crypto import primitives as P
from kmsctl.errors import IntegrityError
from kmsctl.keyring.audit_codec import pack, unpack
from kmsctl.keyring.store import Database, as_blob, dumps

_LABEL = b"kmsctl audit v1\x00"
_HEAD = b"kmsctl audit head v1\x00"
_ANCHOR = b"kmsctl audit anchor v1\x00"
GENESIS = bytes(32)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # CloudTrail's eventTime
_COLUMNS = "seq, event_time, event_name, key_id, error_code, record, prev, mac"
_NO_HEAD = "the trail's head is missing: records were cut off or the head deleted (or the whole trail emptied)"


def event_time_text(when: float) -> str:
    """A record's eventTime, made from its event_time column's value, and
    checked against it by verify for every record (hence a cached date, not a
    datetime per call: a few times quicker). The second is the one
    ``datetime.fromtimestamp(when, UTC)`` shows: rounded to the microsecond,
    then truncated. ValueError outside the years 1 to 9999."""
    if not math.isfinite(when):
        raise ValueError(when)
    frac, whole = math.modf(when)
    micros = round(frac * 1e6)
    seconds = int(whole) + (1 if micros >= 1_000_000 else -1 if micros < 0 else 0)
    day, second = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        try:
            date = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d")
        except OverflowError:
            raise ValueError(when) from None
        if len(_DAYS) > 10_000:
            _DAYS.clear()
        _DAYS[day] = date
    hours, second = divmod(second, 3600)
    return f"{date}T{hours:02d}:{second // 60:02d}:{second % 60:02d}Z"


_DAYS: dict[int, str] = {}


def _time_text_or_none(when: Any) -> str | None:
    if not isinstance(when, float):
        return None
    try:
        return event_time_text(when)
    except ValueError:
        return None


def _parse_event_time(text: Any) -> float | None:
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None


def key_id_of(event: dict[str, Any]) -> str | None:
    """The key ID the key_id column holds for a record: its first resource's ARN's last part."""
    resources = event.get("resources")
    if not isinstance(resources, list) or not resources or not isinstance(resources[0], dict):
        return None
    arn = resources[0].get("ARN")
    return (arn.rsplit("/", 1)[-1] or None) if isinstance(arn, str) else None


def _pointer(key: bytes, label: bytes, seq: int, mac: bytes) -> bytes:
    """A MACed (seq, mac) pair, as stored for the head and the anchor."""
    body = {"seq": seq, "mac": base64.b64encode(mac).decode()}
    tag = P.hmac_sha256(key, label + dumps(body))
    return dumps({**body, "tag": base64.b64encode(tag).decode()})


def genesis_head(key: bytes) -> bytes:
    """The head ``init`` writes: no record yet (seq 0, the GENESIS MAC)."""
    return _pointer(key, _HEAD, 0, GENESIS)


def read_pointer(raw: bytes, key: bytes, name: str) -> tuple[int, bytes]:
    """(seq, mac) of a stored head or anchor; IntegrityError unless its tag verifies."""
    label = _HEAD if name == "head" else _ANCHOR
    try:
        ptr = json.loads(raw)
        body = {"seq": ptr["seq"], "mac": ptr["mac"]}
        P.hmac_sha256_verify(key, label + dumps(body), base64.b64decode(ptr["tag"]))
        if type(ptr["seq"]) is not int:
            raise ValueError(ptr["seq"])
        return int(ptr["seq"]), base64.b64decode(ptr["mac"])
    except (ValueError, KeyError, TypeError, P.AuthenticationFailed):
        raise IntegrityError(f"the audit trail's {name} record fails its integrity check") from None


class AuditTrail:
    def __init__(self, db: Database, key: bytes | None) -> None:
        self.db = db
        self.key = key  # None while the keyring is locked: records wait in audit_pending
        self._known_head: tuple[bytes, tuple[int, bytes]] | None = None  # a head's bytes, verified (or written) here

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
        seq, prev, legacy = self._head()
        seq += 1
        # the eventTime in the record and the event_time column say the same (verify checks it)
        record = pack(dumps({**event, "eventTime": event_time_text(when)}))  # the MAC covers the stored bytes
        mac = self._record_mac(seq, prev, record)
        self.db.execute(
            f"INSERT INTO audit({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, when, event["eventName"], key_id_of(event), event.get("errorCode"), record, prev, mac),
        )
        head = _pointer(self.key, _HEAD, seq, mac)
        self.db.set_meta("audit_head", head)
        self._known_head = (head, (seq, mac))
        if legacy:
            self.db.execute("DELETE FROM meta WHERE name = 'audit_legacy'")  # it has a head now

    def adopt_pending(self) -> None:
        """Chain the records that waited for an unlock (caller holds a write transaction)."""
        if self.key is not None and self.pending():
            self._adopt_pending()

    def _adopt_pending(self) -> None:
        rows = self.db.query("SELECT id, event_time, record FROM audit_pending ORDER BY id")
        for row_id, when, raw in rows:
            event, when = _pending_event(raw, when)
            self._chain(event, when)
            self.db.execute("DELETE FROM audit_pending WHERE id = ?", (row_id,))

    # ----- pointers -----
    def _read_pointer(self, name: str, label: bytes) -> tuple[int, bytes] | None:
        raw = self.db.meta(name)
        if raw is None:
            return None
        assert self.key is not None
        return read_pointer(raw, self.key, name.split("_")[1])

    def _legacy(self) -> bool:
        """A keyring made before init wrote the head, that has none yet."""
        return self.db.meta("audit_legacy") is not None

    def _head(self) -> tuple[int, bytes, bool]:
        """(seq, MAC) the next record chains to, and whether the keyring is marked
        ``audit_legacy`` (read with the head: one statement a record)."""
        assert self.key is not None
        rows = dict(self.db.query("SELECT name, value FROM meta WHERE name IN ('audit_head', 'audit_legacy')"))
        legacy = "audit_legacy" in rows
        raw = rows.get("audit_head")
        if raw is not None:  # as Database.meta reads it
            raw = raw.encode() if isinstance(raw, str) else as_blob(raw, f"{self.db.path}: keyring meta audit_head")
            if self._known_head is None or self._known_head[0] != raw:  # the same bytes verify the same
                self._known_head = (raw, read_pointer(raw, self.key, "head"))
            return (*self._known_head[1], legacy)
        if not legacy:
            raise IntegrityError(f"audit trail: {_NO_HEAD}")
        return (*self._anchor(), legacy)

    def _anchor(self) -> tuple[int, bytes]:
        return self._read_pointer("audit_anchor", _ANCHOR) or (0, GENESIS)

    # ----- reading -----
    def _checked(self, row: tuple[Any, ...], prev: bytes | None = None) -> tuple[dict[str, Any] | None, str]:
        """(the record, "") if the row is genuine, else (None, what is wrong).
        ``prev``: the MAC the chain says comes before it (else the row's own
        ``prev`` column is used: a record checked on its own). The index
        columns must say what the record says."""
        seq, event_time, name, key_id, error_code, raw, stored_prev, mac = row
        try:
            record = as_blob(raw, "")
            stored_prev, mac = as_blob(stored_prev, ""), as_blob(mac, "")
        except IntegrityError:
            return None, f"record {seq} is damaged (a column of the wrong type)"
        if prev is not None and stored_prev != prev:
            return None, f"record {seq} fails its integrity check (its prev column is not the MAC before it)"
        if not _equal(self._record_mac(seq, stored_prev if prev is None else prev, record), mac):
            return None, f"record {seq} fails its integrity check (edited, reordered or inserted)"
        try:
            event = _decode(unpack(record).decode())
        except ValueError:  # authentic, yet not a record: written by something other than kmsctl
            return None, f"record {seq} is damaged (not a record kmsctl can read)"
        index = (event.get("eventName"), key_id_of(event), event.get("errorCode"), event.get("eventTime"))
        stored = (name, key_id, error_code, _time_text_or_none(event_time))
        if index != stored:
            return None, f"record {seq} fails its integrity check (index columns edited)"
        return event, ""

    def events(self, where: list[str], args: list[Any], limit: int) -> list[dict[str, Any]]:
        """Newest first; see ``page``."""
        return [event for _, event in self._events(where, args, limit, None)]

    def page(
        self, where: list[str], args: list[Any], limit: int, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` records, newest first, and the seq to pass as
        ``before`` for the next page (None when none follows)."""
        rows = self._events(where, args, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return [event for _, event in rows], (rows[-1][0] if more and rows else None)

    def _events(
        self, where: list[str], args: list[Any], limit: int, before: int | None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Newest first (only records before seq ``before``, when given: the
        next page). Each record is checked on its own (its MAC over its
        own seq, the MAC before it, and its bytes; its index columns against
        its bytes), next to its neighbours in the page (links, and no gap when
        unfiltered; a next page's first record links to the record before it),
        and the newest record against the head; ``verify`` checks the whole chain."""
        clauses = [*where, "seq < ?"] if before is not None else where
        sql = f"SELECT {_COLUMNS} FROM audit" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        out: list[tuple[int, dict[str, Any]]] = []
        with self.db.read():
            seq, mac, records = self._tail()
            problem = self._head_problem(seq, mac, records=records)
            if problem:
                raise IntegrityError(f"audit trail: {problem}")
            query_args = (*args, before) if before is not None else tuple(args)
            rows = self.db.query(sql + " ORDER BY seq DESC LIMIT ?", (*query_args, limit))
            newer: tuple[int, bytes] | None = None  # the record checked last: its seq and prev column
            if before is not None:
                after = self.db.query(f"SELECT {_COLUMNS} FROM audit WHERE seq = ?", (before,))
                if after and self._checked(after[0])[0] is not None:
                    newer = (before, bytes(after[0][6]))
            for row in rows:
                event, problem = self._checked(row)
                if event is None or (problem := _link_problem(newer, row[0], bytes(row[7]), where)):
                    raise IntegrityError(f"audit trail: {problem}")
                out.append((row[0], event))
                newer = (row[0], bytes(row[6]))
            if not where and len(rows) < limit:  # the page reaches the start: its oldest follows the anchor
                problem = _link_problem(newer, *self._anchor(), where)
                if problem:
                    raise IntegrityError(f"audit trail: {problem}")
        return out

    def _tail(self) -> tuple[int, bytes, bool]:
        """The last record's (seq, MAC), or the anchor's; and whether the trail ever had a record."""
        rows = self.db.query("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
        if rows:
            return int(rows[0][0]), as_blob(rows[0][1], f"audit record {rows[0][0]}"), True
        anchor = self._read_pointer("audit_anchor", _ANCHOR)
        return (*(anchor or (0, GENESIS)), anchor is not None)

    def pending(self) -> int:
        return int(self.db.query("SELECT count(*) FROM audit_pending")[0][0])

    def ascending(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first, for export: the chain is checked again
        as it streams (IntegrityError at the first bad record)."""
        with self.db.read():
            seq, prev = self._anchor()
            for row in self._ascending():
                if row[0] != seq + 1:
                    raise IntegrityError(f"audit trail: record {seq + 1} is missing (the next one is {row[0]})")
                event, problem = self._checked(row, prev)
                if event is None:
                    raise IntegrityError(f"audit trail: {problem}")
                seq, prev = row[0], bytes(row[7])
                yield event

    def verify(self) -> tuple[int, str | None]:
        """Walk the whole chain in one snapshot: (records checked, None) or
        (records before the problem, what is wrong first)."""
        with self.db.read():
            anchor = self._read_pointer("audit_anchor", _ANCHOR)
            seq, prev = anchor or (0, GENESIS)
            checked = 0
            for row in self._ascending():
                if row[0] != seq + 1:
                    return checked, f"record {seq + 1} is missing (the next one is {row[0]})"
                event, problem = self._checked(row, prev)
                if event is None:
                    return checked, problem
                seq, prev = row[0], bytes(row[7])
                checked += 1
            return checked, self._head_problem(seq, prev, records=bool(checked or anchor))

    def _head_problem(self, seq: int, mac: bytes, *, records: bool) -> str | None:
        """What is wrong with the head, given the last record (seq, mac); None if nothing."""
        head = self._read_pointer("audit_head", _HEAD)
        if head is None:
            return _NO_HEAD if records or not self._legacy() else None
        if head == (seq, mac):
            return None
        if head[0] > seq:
            return f"record {seq + 1} is missing: the trail ends at record {seq} but its head says {head[0]} (cut off)"
        if head[0] < seq:
            return f"record {head[0] + 1} is past the trail's head ({head[0]}): inserted, or the head rolled back"
        return f"record {seq} is not the one the trail's head names (replaced, or the head rolled back)"

    def _ascending(self) -> Iterator[tuple[Any, ...]]:
        after = -1
        while True:
            batch = self.db.query(f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT 5000", (after,))
            yield from batch
            if len(batch) < 5000:
                return
            after = batch[-1][0]

    def prune(self, before: float) -> int:
        """Drop the oldest records, up to the first one at or after ``before``
        (records are in chain order, which is not always time order: a record
        is never dropped because an older one follows it); the anchor keeps
        the rest verifiable."""
        assert self.key is not None
        first_kept = self.db.query("SELECT min(seq) FROM audit WHERE event_time >= ?", (before,))[0][0]
        bound = "" if first_kept is None else " WHERE seq < ?"
        rows = self.db.query(
            f"SELECT seq, mac FROM audit{bound} ORDER BY seq DESC LIMIT 1", () if first_kept is None else (first_kept,)
        )
        if not rows:
            return 0
        last, mac = rows[0]
        dropped = self.db.execute("DELETE FROM audit WHERE seq <= ?", (last,))
        self.db.set_meta("audit_anchor", _pointer(self.key, _ANCHOR, last, as_blob(mac, "audit record")))
        return dropped


def _link_problem(newer: tuple[int, bytes] | None, seq: int, mac: bytes, where: list[str]) -> str | None:
    """What is wrong between record ``seq`` (its MAC ``mac``) and the record
    after it in a newest-first page (``newer``: its seq and prev column).
    Only an unfiltered page must have no gap."""
    if newer is None:
        return None
    if not where and seq != newer[0] - 1:
        return f"record {seq + 1} is missing (the next one is {newer[0]})"
    if seq == newer[0] - 1 and newer[1] != mac:
        return f"record {newer[0]} fails its integrity check (its prev column is not the MAC before it)"
    return None


def _pending_event(raw: Any, when: Any) -> tuple[dict[str, Any], float]:
    """A pending record as it will be chained. Pending rows are not
    authenticated: anything malformed becomes a DamagedPendingRecord (never a
    crash that would stop every later command), and the record says it was
    recorded before unlock. Its eventTime and event_time are made to agree."""
    row_when = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else None
    try:
        event = json.loads(as_blob(raw, "a pending audit record"))
        if not (
            isinstance(event, dict)
            and isinstance(event.get("eventName"), str)
            and isinstance(event.get("errorCode"), (str, type(None)))
            and isinstance(event.get("additionalEventData"), (dict, type(None)))
        ):
            raise ValueError(raw)
    except (ValueError, IntegrityError):
        event = {"eventName": "DamagedPendingRecord"}
    # the row's time if the record's eventTime agrees (it keeps the fraction),
    # else the record's, else the row's; _chain makes both agree
    recorded = _parse_event_time(event.get("eventTime"))
    if row_when is None or (recorded is not None and _time_text_or_none(row_when) != event.get("eventTime")):
        row_when = recorded if recorded is not None else row_when
    if row_when is None or _time_text_or_none(row_when) is None:
        row_when = 0.0
    # it could not be authenticated when it happened; say so
    event["additionalEventData"] = {**(event.get("additionalEventData") or {}), "recordedBeforeUnlock": True}
    return event, row_when


def _equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two MACs. The standard library's hmac is
    imported here, not at the top: it loads _hashlib (~8 ms), which no command
    but the audit ones needs, and a repeated import is only a dict lookup."""
    import hmac

    return hmac.compare_digest(a, b)


_decode = json.JSONDecoder().decode  # json.loads without its per-call set-up (verify parses every record)
