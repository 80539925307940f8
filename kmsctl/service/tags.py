"""Aliases and tags: CreateAlias, UpdateAlias, DeleteAlias, ListAliases,
TagResource, UntagResource, ListResourceTags."""

from __future__ import annotations

import re
from typing import Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl.service.base import LocalKMSBase, operation, to_datetime

_ALIAS_RE = re.compile(r"^[a-zA-Z0-9:/_-]+$")


def validate_tags(tags: Any) -> dict[str, str]:
    """AWS's tag rules -> {TagKey: TagValue}; TagException for a bad tag."""
    if not isinstance(tags, list):
        raise E.ValidationException("Tags must be a list of {TagKey, TagValue}")
    out: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict) or set(tag) - {"TagKey", "TagValue"} or "TagKey" not in tag:
            raise E.ValidationException("each tag must be {TagKey, TagValue}")
        key, value = tag["TagKey"], tag.get("TagValue", "")
        if not isinstance(key, str) or not 1 <= len(key) <= model.TAG_KEY_MAX:
            raise E.TagException(f"Tag key must be 1 to {model.TAG_KEY_MAX} characters: {key!r}")
        if not isinstance(value, str) or len(value) > model.TAG_VALUE_MAX:
            raise E.TagException(f"Tag value for {key!r} must be 0 to {model.TAG_VALUE_MAX} characters")
        if key.lower().startswith("aws:"):
            raise E.TagException(f"Tag key {key!r} uses the reserved prefix 'aws:'")
        if key in out:
            raise E.TagException(f"Duplicate tag key {key!r} in one request")
        out[key] = value
    return out


def _validate_alias_name(name: Any) -> str:
    """AWS's checks, in AWS's order: the API model's length and pattern
    (botocore's AliasNameType, which allows ':'), then the service's own rules:
    the alias/ prefix, no ':' (letters, digits, '/', '_' and '-' only), and the
    reserved alias/aws/."""
    if not isinstance(name, str):
        raise E.validation_error(name, "aliasName", "Member must be a string")
    if not 1 <= len(name) <= model.ALIAS_NAME_MAX:
        bound = "greater than or equal to 1" if not name else f"less than or equal to {model.ALIAS_NAME_MAX}"
        raise E.validation_error(name, "aliasName", f"Member must have length {bound}")
    if not _ALIAS_RE.fullmatch(name):
        raise E.validation_error(
            name, "aliasName", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )
    if not name.startswith("alias/"):
        raise E.ValidationException(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if ":" in name:
        raise E.ValidationException(f"{name} contains invalid characters for an alias")
    if len(name) == len("alias/"):
        raise E.InvalidAliasNameException(f"Alias name {name!r} names nothing after the prefix alias/")
    if name.startswith("alias/aws/"):
        raise E.InvalidAliasNameException(
            f"Alias name {name!r}: the prefix alias/aws/ is reserved for AWS managed keys"
        )
    return name


class AliasTagOps(LocalKMSBase):
    def _alias_target(self, ref: Any) -> dict[str, Any]:
        """TargetKeyId takes a key ID or key ARN, never an alias."""
        kind, _ = self._parse_ref(ref, "targetKeyId")
        if kind == "alias":
            raise E.ValidationException("Aliases must refer to keys. Not aliases")
        return self._key(ref, aliases=False, field="targetKeyId")

    def _alias_entry(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "AliasName": doc["AliasName"],
            "AliasArn": self.alias_arn(doc["AliasName"]),
            "TargetKeyId": doc["TargetKeyId"],
            "CreationDate": to_datetime(doc["CreationDate"]),
            "LastUpdatedDate": to_datetime(doc["LastUpdatedDate"]),
        }

    @operation("CreateAlias", writes=True)
    def create_alias(self, *, AliasName: str, TargetKeyId: str) -> dict[str, Any]:
        name = _validate_alias_name(AliasName)
        key = self._alias_target(TargetKeyId)
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        if self._alias(name) is not None:
            raise E.AlreadyExistsException(f"An alias with the name {self.alias_arn(name)} already exists")
        count = self.db.query("SELECT count(*) FROM aliases WHERE key_id = ?", (key["KeyId"],))[0][0]
        if count >= model.ALIASES_PER_KEY:
            raise E.LimitExceededException(
                f"Key {self.key_arn(key['KeyId'])} already has {model.ALIASES_PER_KEY} aliases"
            )
        now = self.clock()
        self._save_alias({"AliasName": name, "TargetKeyId": key["KeyId"], "CreationDate": now, "LastUpdatedDate": now})
        return {}

    @operation("UpdateAlias", writes=True)
    def update_alias(self, *, AliasName: str, TargetKeyId: str) -> dict[str, Any]:
        name = _validate_alias_name(AliasName)
        alias = self._alias(name)
        if alias is None:
            raise E.NotFoundException(f"Alias {self.alias_arn(name)} is not found.")
        new = self._alias_target(TargetKeyId)
        if new["KeyState"] == "PendingDeletion":
            self._require_state(new, ())
        old = self._load_key(alias["TargetKeyId"])
        if old is not None and (old["KeyUsage"], _kind(old["KeySpec"])) != (new["KeyUsage"], _kind(new["KeySpec"])):
            raise E.ValidationException(
                f"{self.key_arn(new['KeyId'])} is not the same type of key, or has a different key usage, "
                f"than the key the alias points to"
            )
        alias.update(TargetKeyId=new["KeyId"], LastUpdatedDate=self.clock())
        self._save_alias(alias)
        return {}

    @operation("DeleteAlias", writes=True)
    def delete_alias(self, *, AliasName: str) -> dict[str, Any]:
        name = _validate_alias_name(AliasName)
        if not self.db.execute("DELETE FROM aliases WHERE name = ?", (name,)):
            raise E.NotFoundException(f"Alias {self.alias_arn(name)} is not found.")
        return {}

    @operation("ListAliases")
    def list_aliases(
        self, *, KeyId: str | None = None, Limit: int | None = None, Marker: str | None = None
    ) -> dict[str, Any]:
        limit = self._limit("ListAliases", Limit)
        after = self._unmarker("ListAliases", Marker, str) or ""
        if KeyId is not None:
            key_id = self._key(KeyId, aliases=False)["KeyId"]
            rows = self.db.query(
                "SELECT name FROM aliases WHERE key_id = ? AND name > ? ORDER BY name LIMIT ?",
                (key_id, after, limit + 1),
            )
        else:
            rows = self.db.query("SELECT name FROM aliases WHERE name > ? ORDER BY name LIMIT ?", (after, limit + 1))
        docs = (self._alias(name) for (name,) in rows)
        page, more = self._page((self._alias_entry(d) for d in docs if d is not None), limit)
        out: dict[str, Any] = {"Aliases": page, "Truncated": more}
        if more:
            out["NextMarker"] = self._marker("ListAliases", page[-1]["AliasName"])
        return out

    @operation("TagResource", writes=True)
    def tag_resource(self, *, KeyId: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        new = validate_tags(Tags)
        key = self._key(KeyId, aliases=False)
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        merged = {**key.get("Tags", {}), **new}
        if len(merged) > model.TAGS_PER_KEY:
            raise E.LimitExceededException(f"A key can have at most {model.TAGS_PER_KEY} tags")
        key["Tags"] = merged
        self._save_key(key)
        return {}

    @operation("UntagResource", writes=True)
    def untag_resource(self, *, KeyId: str, TagKeys: list[str]) -> dict[str, Any]:
        if not isinstance(TagKeys, list) or not all(isinstance(k, str) and 1 <= len(k) <= 128 for k in TagKeys):
            raise E.TagException("TagKeys must be a list of tag keys of 1 to 128 characters")
        key = self._key(KeyId, aliases=False)
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        tags = key.get("Tags", {})
        key["Tags"] = {k: v for k, v in tags.items() if k not in TagKeys}
        self._save_key(key)
        return {}

    @operation("ListResourceTags")
    def list_resource_tags(self, *, KeyId: str, Limit: int | None = None, Marker: str | None = None) -> dict[str, Any]:
        limit = self._limit("ListResourceTags", Limit)
        after = self._unmarker("ListResourceTags", Marker, str) or ""
        key = self._key(KeyId, aliases=False)
        items = ({"TagKey": k, "TagValue": v} for k, v in sorted(key.get("Tags", {}).items()) if k > after)
        page, more = self._page(items, limit)
        out: dict[str, Any] = {"Tags": page, "Truncated": more}
        if more:
            out["NextMarker"] = self._marker("ListResourceTags", page[-1]["TagKey"])
        return out


def _kind(spec: str) -> str:
    if spec == "SYMMETRIC_DEFAULT":
        return "symmetric"
    return "hmac" if spec.startswith("HMAC") else "asymmetric"
