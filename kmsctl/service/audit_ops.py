"""The audit commands' operations: list, verify, export, prune (docs/AUDIT.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kmsctl import errors as E
from kmsctl.service.audit import build_event
from kmsctl.service.base import LocalKMSBase


def _epoch(value: Any, field: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise E.ValidationException(f"{field} must be a time")


class AuditOps(LocalKMSBase):
    """Reading, checking, exporting and pruning the trail: kmsctl's own, not
    KMS operations, so they make no records themselves, but for pruning."""

    def _adopt_pending(self) -> None:
        self._ensure_unlocked()
        trail = self.trail()
        if trail.pending():
            with self.keyring.db.write():
                trail.adopt_pending()

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
        events, next_before = self.trail().page(where, args, Limit, before)
        out: dict[str, Any] = {"Events": events, "Truncated": next_before is not None}
        if next_before is not None:
            out["NextMarker"] = self._marker("AuditEvents", next_before)
        return out

    def audit_verify(self) -> dict[str, Any]:
        """Walk the chain; IntegrityError names the first bad record."""
        self._adopt_pending()
        trail = self.trail()
        checked, problem = trail.verify()
        if problem:
            raise E.IntegrityError(f"audit trail: {problem} ({checked} records before it verify)")
        return {"RecordsVerified": checked, "PendingUnauthenticated": trail.pending()}

    def audit_export(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first, after the chain verifies."""
        self.audit_verify()
        return self.trail().ascending()

    def audit_prune(self, *, Before: Any) -> dict[str, Any]:
        """Drop records older than Before; the rest stays verifiable, and the
        space they took is given back (VACUUM)."""
        before = _epoch(Before, "Before")
        self.audit_verify()
        with self.keyring.db.write():
            dropped = self.trail().prune(before)
            when = self.clock()
            event = build_event(
                "AuditPrune",
                {"before": datetime.fromtimestamp(before, UTC)},
                {"recordsDropped": dropped},
                None,
                when=when,
                region=self.keyring.region,
                account=self.keyring.account,
                key_arn=None,
            )
            self.trail().append(event, when)
        # the dropped records' pages back to the file system, not only to SQLite's free list
        if dropped and not self.keyring.db.in_transaction:
            self.keyring.db.vacuum()
        return {"RecordsDropped": dropped}
