"""Rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
RotateKeyOnDemand, ListKeyRotations, and kmsctl's own Maintain.

Only symmetric encryption keys with AWS_KMS origin rotate. A key keeps every
material it ever had (NON_CURRENT ones decrypt); Encrypt uses the current one.
Automatic rotation needs no daemon: LocalKMSBase._due_work runs it before any
operation, and ``maintain`` runs it for the whole keyring on demand.
"""

from __future__ import annotations

from typing import Any

from kmsctl import errors as E
from kmsctl.service.base import DAY, LocalKMSBase, check_enum, operation, to_datetime

ON_DEMAND_MAX = 25
PERIOD_MIN, PERIOD_MAX, PERIOD_DEFAULT = 90, 2560, 365
CONFLICT_WINDOW_S = 20 * 60  # RotateKeyOnDemand refuses when automatic rotation is this close


class RotationOps(LocalKMSBase):
    def _rotatable(self, ref: Any, states: tuple[str, ...]) -> dict[str, Any]:
        key = self._key(ref, aliases=False)
        if key["KeySpec"] != "SYMMETRIC_DEFAULT" or key["Origin"] != "AWS_KMS":
            raise E.UnsupportedOperationException(
                f"{self.key_arn(key['KeyId'])} does not support rotation: only symmetric encryption keys "
                f"with AWS_KMS origin rotate (this one is {key['KeySpec']}, origin {key['Origin']})"
            )
        self._require_state(key, states)
        return key

    @operation("EnableKeyRotation", writes=True)
    def enable_key_rotation(self, *, KeyId: str, RotationPeriodInDays: int | None = None) -> dict[str, Any]:
        period = PERIOD_DEFAULT if RotationPeriodInDays is None else RotationPeriodInDays
        if not isinstance(period, int) or isinstance(period, bool) or not PERIOD_MIN <= period <= PERIOD_MAX:
            raise E.validation_error(
                period, "rotationPeriodInDays", f"Member must have value between {PERIOD_MIN} and {PERIOD_MAX}"
            )
        key = self._rotatable(KeyId, ("Enabled",))
        rotation = key.get("Rotation") or {}
        # the first rotation comes one period after enabling; a new period counts
        # from the last rotation (or from when rotation was first enabled)
        base = rotation.get("Base") or self.clock()
        key["Rotation"] = {"PeriodDays": period, "Base": base, "NextRotation": base + period * DAY}
        self._save_key(key)
        return {}

    @operation("DisableKeyRotation", writes=True)
    def disable_key_rotation(self, *, KeyId: str) -> dict[str, Any]:
        key = self._rotatable(KeyId, ("Enabled",))
        key.pop("Rotation", None)
        self._save_key(key)
        return {}

    @operation("GetKeyRotationStatus")
    def get_key_rotation_status(self, *, KeyId: str) -> dict[str, Any]:
        key = self._rotatable(KeyId, ("Enabled", "Disabled", "PendingDeletion"))
        rotation = key.get("Rotation")
        out: dict[str, Any] = {"KeyRotationEnabled": bool(rotation) and key["KeyState"] != "PendingDeletion"}
        out["KeyId"] = self.key_arn(key["KeyId"])
        if out["KeyRotationEnabled"] and rotation:
            out["RotationPeriodInDays"] = rotation["PeriodDays"]
            out["NextRotationDate"] = to_datetime(rotation["NextRotation"])
        return out

    @operation("RotateKeyOnDemand", writes=True)
    def rotate_key_on_demand(self, *, KeyId: str) -> dict[str, Any]:
        key = self._key(KeyId, aliases=False)
        if key["KeySpec"] == "SYMMETRIC_DEFAULT" and key["Origin"] == "EXTERNAL":
            from kmsctl.service.imports import rotate_imported

            self._require_state(key, ("Enabled",))
            rotate_imported(self, key)
            self._save_key(key)
            return {"KeyId": key["KeyId"]}
        key = self._rotatable(KeyId, ("Enabled",))
        count = key.get("OnDemandRotations", 0)
        if count >= ON_DEMAND_MAX:
            raise E.LimitExceededException(
                f"{self.key_arn(key['KeyId'])} has had {ON_DEMAND_MAX} on-demand rotations, the most a key may have"
            )
        rotation = key.get("Rotation")
        if rotation and rotation["NextRotation"] - self.clock() < CONFLICT_WINDOW_S:
            raise E.ConflictException("An automatic rotation of this key is due within 20 minutes; try again later")
        key["OnDemandRotations"] = count + 1
        self._rotate(key, "ON_DEMAND", self.clock())
        self._save_key(key)
        return {"KeyId": key["KeyId"]}  # the bare key ID, as AWS answers (not the ARN)

    @operation("ListKeyRotations")
    def list_key_rotations(
        self,
        *,
        KeyId: str,
        IncludeKeyMaterial: str | None = None,
        Limit: int | None = None,
        Marker: str | None = None,
    ) -> dict[str, Any]:
        include = IncludeKeyMaterial or "ROTATIONS_ONLY"
        check_enum(include, "includeKeyMaterial", ("ROTATIONS_ONLY", "ALL_KEY_MATERIAL"))
        limit = self._limit("ListKeyRotations", Limit)
        after = self._unmarker("ListKeyRotations", Marker, int) or 0
        if include == "ROTATIONS_ONLY":
            after = max(after, 1)  # the original material (seq 1) is no rotation
        key = self._rotatable(KeyId, ("Enabled", "Disabled"))
        rows = self.db.query(
            "SELECT seq, material_id FROM materials WHERE key_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (key["KeyId"], after, limit + 1),
        )
        entries = []
        for seq, material_id in rows:
            doc = self._material_doc(key["KeyId"], material_id)
            entry: dict[str, Any] = {
                "KeyId": key["KeyId"],
                "KeyMaterialId": doc["KeyMaterialId"],
                "KeyMaterialState": "CURRENT" if doc["KeyMaterialId"] == key["CurrentKeyMaterialId"] else "NON_CURRENT",
            }
            if "RotationType" in doc:
                entry["RotationDate"] = to_datetime(doc["RotationDate"])
                entry["RotationType"] = doc["RotationType"]
            entries.append((seq, entry))
        page, more = self._page(iter(entries), limit)
        out: dict[str, Any] = {"Rotations": [e for _, e in page], "Truncated": more}
        if more:
            out["NextMarker"] = self._marker("ListKeyRotations", page[-1][0])
        return out

    @operation("Maintain", writes=True, maintenance=True)
    def maintain(self, *, DryRun: bool = False) -> dict[str, Any]:
        """kmsctl's own: complete due deletions and automatic rotations for the
        whole keyring now (for cron or a CI schedule); DryRun only reports.
        SQLite's full integrity check runs first: a damaged index must not
        steer what is destroyed or rotated."""
        problem = self.db.integrity_check()
        if problem:
            raise E.IntegrityError(f"{self.keyring.path}: SQLite's integrity check fails: {problem}")
        report = self._due_work(dry_run=bool(DryRun))
        return {**report, "DryRun": bool(DryRun)}
