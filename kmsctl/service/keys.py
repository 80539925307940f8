"""Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl.crypto import keygen
from kmsctl.service.base import DAY, KEY_ROW, LocalKMSBase, check_enum, operation, to_datetime
from kmsctl.service.tags import validate_tags

MAX_KEYS = 100_000


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > model.DESCRIPTION_MAX:
        raise E.validation_error(
            "...", "description", f"Member must have length less than or equal to {model.DESCRIPTION_MAX}"
        )
    return value


class KeyOps(LocalKMSBase):
    @operation("CreateKey", writes=True)
    def create_key(
        self,
        *,
        Policy: str | None = None,
        Description: str = "",
        KeyUsage: str | None = None,
        CustomerMasterKeySpec: str | None = None,
        KeySpec: str | None = None,
        Origin: str = "AWS_KMS",
        CustomKeyStoreId: str | None = None,
        BypassPolicyLockoutSafetyCheck: bool = False,
        Tags: list[dict[str, str]] | None = None,
        MultiRegion: bool = False,
        XksKeyId: str | None = None,
    ) -> dict[str, Any]:
        if KeySpec and CustomerMasterKeySpec and KeySpec != CustomerMasterKeySpec:
            raise E.ValidationException("KeySpec and CustomerMasterKeySpec are both given and differ")
        spec = check_enum(KeySpec or CustomerMasterKeySpec or "SYMMETRIC_DEFAULT", "keySpec", model.KEY_SPECS)
        if spec == "SM2":
            raise E.UnsupportedOperationException("KeySpec SM2 is offered only in AWS China Regions, not by kmsctl")
        usages = model.SPEC_USAGES[spec]
        if KeyUsage is None:
            if spec != "SYMMETRIC_DEFAULT":
                raise E.ValidationException(f"KeyUsage is required for KeySpec {spec}: one of {', '.join(usages)}")
            KeyUsage = "ENCRYPT_DECRYPT"
        usage = check_enum(KeyUsage, "keyUsage", model.KEY_USAGES)
        if usage not in usages:
            raise E.ValidationException(
                f"KeyUsage {usage} is not compatible with KeySpec {spec}; use one of {', '.join(usages)}"
            )
        origin = check_enum(Origin, "origin", model.ORIGINS)
        if origin == "EXTERNAL_KEY_STORE" or XksKeyId:
            raise E.UnsupportedOperationException("external key stores are not available in a local keyring")
        if (origin == "AWS_CLOUDHSM") != (CustomKeyStoreId is not None):
            raise E.ValidationException(
                "a key in a custom key store needs both CustomKeyStoreId and Origin AWS_CLOUDHSM"
                if origin == "AWS_CLOUDHSM"
                else f"CustomKeyStoreId needs Origin AWS_CLOUDHSM, not {origin}"
            )
        if CustomKeyStoreId is not None and (spec, usage) != ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"):
            raise E.UnsupportedOperationException(
                f"a custom key store holds symmetric encryption keys only (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT), "
                f"not {spec} {usage}"
            )
        if origin == "EXTERNAL":
            from kmsctl.service.imports import IMPORTABLE_SPECS

            if spec not in IMPORTABLE_SPECS:
                raise E.UnsupportedOperationException(
                    f"KeySpec {spec} cannot have imported key material (Origin EXTERNAL): AWS imports "
                    "symmetric, HMAC, RSA and ECC keys"
                )
        if MultiRegion:
            raise E.UnsupportedOperationException("multi-Region keys are not available in a local keyring")
        if spec not in model.SUPPORTED_SPECS:
            raise E.UnsupportedOperationException(f"KeySpec {spec} is not supported by this kmsctl yet")
        if why := keygen.unavailable(spec):
            raise E.UnsupportedOperationException(why)
        description = _description(Description)
        tags = validate_tags(Tags or [])
        if len(tags) > model.TAGS_PER_KEY:
            raise E.LimitExceededException(f"A key can have at most {model.TAGS_PER_KEY} tags")
        if self.db.query("SELECT count(*) FROM keys")[0][0] >= MAX_KEYS:
            raise E.LimitExceededException(f"a keyring holds at most {MAX_KEYS} keys")

        key_id = str(uuid.uuid4())
        doc: dict[str, Any] = {
            "KeyId": key_id,
            "CreationDate": self.clock(),
            "Description": description,
            "KeySpec": spec,
            "KeyUsage": usage,
            "Origin": origin,
            "KeyState": "PendingImport" if origin == "EXTERNAL" else "Enabled",
            "DeletionDate": None,
            "Tags": tags,
        }
        if Policy is not None:  # else the default key policy, which is never stored
            self._check_key_policy(Policy, doc, BypassPolicyLockoutSafetyCheck)
            doc["Policy"] = Policy
        if origin == "AWS_CLOUDHSM":  # generated in the token; the keyring keeps its CKA_ID
            doc.update(self._new_store_key(CustomKeyStoreId, key_id))
        if origin == "AWS_KMS":
            material_id = self._add_material(key_id, keygen.generate(spec))
            if spec == "SYMMETRIC_DEFAULT":
                doc["CurrentKeyMaterialId"] = material_id
            else:
                doc["MaterialId"] = material_id
        self._save_key(doc)
        return {"KeyMetadata": self._metadata(doc)}

    @operation("DescribeKey")
    def describe_key(self, *, KeyId: str, GrantTokens: list[str] | None = None) -> dict[str, Any]:
        return {"KeyMetadata": self._metadata(self._key(KeyId))}

    def key_metadata(self, KeyId: str) -> dict[str, Any]:
        """DescribeKey's KeyMetadata, read for the client's own use: not
        recorded when it succeeds (``internal_reads``). Local to kmsctl."""
        with self.internal_reads():
            out: dict[str, Any] = self.describe_key(KeyId=KeyId)["KeyMetadata"]
        return out

    @operation("ListKeys")
    def list_keys(
        self,
        *,
        Limit: int | None = None,
        Marker: str | None = None,
        FilterKeyState: str | None = None,
        FilterKeySpec: str | None = None,
        FilterTag: dict[str, str] | None = None,
        FilterAliasPrefix: str | None = None,
    ) -> dict[str, Any]:
        """ListKeys. The Filter* arguments are kmsctl extensions (AWS has none)."""
        limit = self._limit("ListKeys", Limit)
        after = self._unmarker("ListKeys", Marker, int) or 0
        if FilterKeyState is not None:
            check_enum(FilterKeyState, "keyState", model.KEY_STATES)
        if FilterKeySpec is not None:
            check_enum(FilterKeySpec, "keySpec", model.KEY_SPECS)
        page, more = self._page(
            self._iter_keys(after, FilterKeyState, FilterKeySpec, FilterTag, FilterAliasPrefix), limit
        )
        out: dict[str, Any] = {
            "Keys": [{"KeyId": d["KeyId"], "KeyArn": self.key_arn(d["KeyId"])} for _, d in page],
            "Truncated": more,
        }
        if more:
            out["NextMarker"] = self._marker("ListKeys", page[-1][0])
        return out

    def _iter_keys(
        self,
        after: int,
        state: str | None,
        spec: str | None,
        tag: dict[str, str] | None,
        alias_prefix: str | None,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        where: list[str] = ["seq > ?"]
        args: list[Any] = []
        if state:
            where.append("key_state = ?")
            args.append(state)
        if spec:
            where.append("key_spec = ?")
            args.append(spec)
        if alias_prefix:
            where.append("key_id IN (SELECT key_id FROM aliases WHERE substr(name, 1, ?) = ?)")
            args += [len(alias_prefix), alias_prefix]
        sql = f"SELECT seq, key_id, {KEY_ROW} FROM keys WHERE " + " AND ".join(where) + " ORDER BY seq LIMIT 200"
        while True:
            rows = self.db.query(sql, (after, *args))
            for seq, key_id, *rest in rows:
                after = seq
                doc = self._verify_key_row(key_id, *rest)
                if tag and doc.get("Tags", {}).get(tag["TagKey"]) != tag.get("TagValue"):
                    continue
                yield seq, doc
            if len(rows) < 200:
                return

    def _change_state(self, KeyId: str, allowed: tuple[str, ...], new_state: str) -> None:
        key = self._key(KeyId, aliases=False)
        self._require_state(key, allowed)
        if key["KeyState"] != new_state:
            key["KeyState"] = new_state
            self._save_key(key)

    @operation("EnableKey", writes=True)
    def enable_key(self, *, KeyId: str) -> dict[str, Any]:
        self._change_state(KeyId, ("Enabled", "Disabled"), "Enabled")
        return {}

    @operation("DisableKey", writes=True)
    def disable_key(self, *, KeyId: str) -> dict[str, Any]:
        self._change_state(KeyId, ("Enabled", "Disabled"), "Disabled")
        return {}

    @operation("UpdateKeyDescription", writes=True)
    def update_key_description(self, *, KeyId: str, Description: str) -> dict[str, Any]:
        description = _description(Description)
        key = self._key(KeyId, aliases=False)
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        key["Description"] = description
        self._save_key(key)
        return {}

    @operation("ScheduleKeyDeletion", writes=True)
    def schedule_key_deletion(self, *, KeyId: str, PendingWindowInDays: int | None = None) -> dict[str, Any]:
        days = model.PENDING_WINDOW_DEFAULT if PendingWindowInDays is None else PendingWindowInDays
        if not isinstance(days, int) or isinstance(days, bool):
            raise E.validation_error(days, "pendingWindowInDays", "Member must be an integer")
        if days < model.PENDING_WINDOW_MIN:
            raise E.validation_error(
                days,
                "pendingWindowInDays",
                f"Member must have value greater than or equal to {model.PENDING_WINDOW_MIN}",
            )
        if days > model.PENDING_WINDOW_MAX:
            raise E.validation_error(
                days, "pendingWindowInDays", f"Member must have value less than or equal to {model.PENDING_WINDOW_MAX}"
            )
        key = self._key(KeyId, aliases=False)
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        key.update(KeyState="PendingDeletion", DeletionDate=self.clock() + days * DAY, PendingWindowInDays=days)
        self._save_key(key)
        return {
            "KeyId": self.key_arn(key["KeyId"]),
            "DeletionDate": to_datetime(key["DeletionDate"]),
            "KeyState": "PendingDeletion",
            "PendingWindowInDays": days,
        }

    @operation("CancelKeyDeletion", writes=True)
    def cancel_key_deletion(self, *, KeyId: str) -> dict[str, Any]:
        key = self._key(KeyId, aliases=False)
        if key["KeyState"] != "PendingDeletion":
            raise E.KMSInvalidStateException(f"{self.key_arn(key['KeyId'])} is not pending deletion.")
        # back to Disabled, as AWS does; a key that never got its imported
        # material goes back to waiting for it, so it can never become usable
        has_material = bool(key.get("CurrentKeyMaterialId") or key.get("MaterialId"))
        key.update(KeyState="Disabled" if has_material else "PendingImport", DeletionDate=None)
        key.pop("PendingWindowInDays", None)
        self._save_key(key)
        return {"KeyId": self.key_arn(key["KeyId"])}
