"""The audit commands' operations: list, verify, export, prune (docs/AUDIT.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from kmsctl import errors as E
from kmsctl.service.base import LocalKMSBase, operation


def _epoch(value: Any, field: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise E.ValidationException(f"{field} must be a time")


class AuditOps(LocalKMSBase):
    """Reading, checking, exporting and pruning the trail: kmsctl's own
    operations on the keyring, not KMS's. Reading makes no record; pruning
    records itself, in the transaction that prunes."""

    def _verified(self) -> tuple[int, int]:
        """(records verified, pending ones) once the trail has adopted its
        pending records and walked the whole chain; IntegrityError names the
        first bad record."""
        self._adopt_pending()
        trail = self._audit_trail()
        checked, problem = trail.verify()
        if problem:
            raise E.IntegrityError(f"audit trail: {problem} ({checked} records before it verify)")
        return checked, trail.pending()

    def _adopt_pending(self) -> None:
        trail = self._audit_trail()
        if trail.pending() and not self.db.read_only:
            with self.db.write():
                trail.adopt_pending()

    @operation("AuditList", keyring=True, transaction=False, audited="never")
    def audit_events(
        self,
        *,
        KeyId: str | None = None,
        EventName: str | None = None,
        StartTime: Any = None,
        EndTime: Any = None,
        ErrorsOnly: bool = False,
        Limit: int = 100,
        Marker: str | None = None,
    ) -> dict[str, Any]:
        """Newest first, like CloudTrail's LookupEvents: {"Events": [...],
        "Truncated": bool}, and "NextMarker" when more follow."""
        self._adopt_pending()
        if not isinstance(Limit, int) or isinstance(Limit, bool) or not 1 <= Limit <= 100_000:
            raise E.validation_error(Limit, "limit", "Member must have value between 1 and 100000")
        where: list[str] = []
        args: list[Any] = []
        if KeyId is not None:
            kind, value = self._parse_ref(KeyId)
            if kind == "alias":  # an alias names the key it points at now
                value = self._key(KeyId)["KeyId"]
            where.append("key_id = ?")
            args.append(value)
        if EventName is not None:
            where.append("event_name = ?")
            args.append(EventName)
        if StartTime is not None:
            where.append("event_time >= ?")
            args.append(_epoch(StartTime, "StartTime"))
        if EndTime is not None:
            where.append("event_time <= ?")
            args.append(_epoch(EndTime, "EndTime"))
        if ErrorsOnly:
            where.append("error_code IS NOT NULL")
        before = self._unmarker("AuditEvents", Marker, int)
        events, next_before = self._audit_trail().page(where, args, Limit, before)
        out: dict[str, Any] = {"Events": events, "Truncated": next_before is not None}
        if next_before is not None:
            out["NextMarker"] = self._marker("AuditEvents", next_before)
        return out

    @operation("AuditVerify", keyring=True, transaction=False, audited="never")
    def audit_verify(self) -> dict[str, Any]:
        """Walk the chain; IntegrityError names the first bad record."""
        problem = self.db.integrity_check()  # the indexes, which the chain does not cover
        if problem:
            raise E.IntegrityError(f"{self.keyring.path}: SQLite's integrity check fails: {problem}")
        checked, pending = self._verified()
        return {"RecordsVerified": checked, "PendingUnauthenticated": pending}

    @operation("AuditExport", keyring=True, transaction=False, audited="never")
    def audit_export(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first, after the chain verifies."""
        self._verified()
        return self._audit_trail().ascending()

    @operation("AuditPrune", writes=True, keyring=True, transaction=False, audited="success")
    def audit_prune(self, *, Before: Any) -> dict[str, Any]:
        """Drop records older than Before; the rest stays verifiable. The
        chain is verified in the same transaction, before anything goes; then
        the space the records took is given back to the file system (VACUUM,
        which cannot run inside a transaction)."""
        before = _epoch(Before, "Before")
        with self.db.write():
            self._verified()
            dropped = self._audit_trail().prune(before)
        if dropped and not self.db.in_transaction:
            self.db.vacuum()
        return {"RecordsDropped": dropped}
