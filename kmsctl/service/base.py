"""The local KMS client's records: key lookup, key states, key documents,
aliases, key material, metadata, pagination, and the due work of time.
The dispatch point itself is ``kmsctl.service.dispatch``."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl.keyring.keyring import ALIAS_KIND, KEY_KIND
from kmsctl.keyring.store import as_blob, dumps
from kmsctl.service.dispatch import Clock, DispatchBase, Observer, operation

__all__ = ["DAY", "KEY_ROW", "USABLE", "Clock", "LocalKMSBase", "Observer", "check_enum", "operation", "to_datetime"]


_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# fullmatch only: "$" would also accept a trailing newline
_ARN_RE = re.compile(r"arn:(aws[a-z-]*):kms:([^:]*):([^:]*):(key|alias)/(.+)")


DAY = 86400.0
USABLE = ("Enabled",)  # the states in which a key's material may be used
# the key columns _verify_key_row takes, in its order
KEY_ROW = "key_state, key_spec, deletion_date, next_rotation, doc, mac"


def _columns(doc: dict[str, Any]) -> tuple[Any, ...]:
    """The index columns of a key row, as derived from its document."""
    rotation = doc.get("Rotation") or {}
    return (
        doc.get("KeyId"),
        doc.get("KeyState"),
        doc.get("KeySpec"),
        doc.get("DeletionDate"),
        # the time of the key's next due work: its automatic rotation, or the
        # expiry of imported material (an imported key never rotates automatically)
        rotation.get("NextRotation", doc.get("ValidTo")),
    )


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def check_enum(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else AWS's ValidationException."""
    if value not in allowed:
        raise E.validation_error(value, field, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return str(value)


class LocalKMSBase(DispatchBase):
    """State and helpers shared by the operation families (see ``kmsctl.service``)."""

    def _due_work(self, dry_run: bool) -> dict[str, list[dict[str, Any]]]:
        """What time has made due, done before any operation can see the keyring
        (there is no daemon): keys whose deletion window has passed are destroyed
        with their aliases and material, and keys whose automatic rotation is due
        are rotated, once however late. Only verified documents are acted on:
        an edited index column can never destroy or rotate a key."""
        now = self.clock()
        deletions = "SELECT key_id FROM keys WHERE deletion_date IS NOT NULL AND deletion_date <= ?"
        rotations = (
            "SELECT key_id FROM keys WHERE next_rotation IS NOT NULL AND next_rotation <= ? AND key_state = 'Enabled'"
        )
        # imported material that expires on a disabled key (or one pending
        # deletion) is found here: only verified documents count, so that a
        # disabled key whose rotation waits for it to be enabled costs no write
        expiring = (
            "SELECT key_id FROM keys WHERE next_rotation IS NOT NULL AND next_rotation <= ? "
            "AND key_state IN ('Disabled', 'PendingDeletion')"
        )

        def expired(doc: dict[str, Any] | None) -> bool:
            return bool(doc and doc.get("ValidTo") is not None and doc["ValidTo"] <= now)

        report: dict[str, list[dict[str, Any]]] = {"DeletedKeys": [], "RotatedKeys": []}
        if now < self._next_due():
            return report
        expiries = [k for (k,) in self.db.query(expiring, (now,)) if expired(self._load_key(k))]
        if not self.db.query(deletions, (now,)) and not self.db.query(rotations, (now,)) and not expiries:
            return report
        if self.db.read_only and not dry_run:
            raise E.AccessDeniedException(
                "read-only mode: a key deletion or rotation is due, which must be done before any use of the keyring",
                hint="run 'kmsctl maintain' where the keyring is writable",
            )
        with self.db.read() if dry_run else self.db.write():
            for (key_id,) in self.db.query(deletions, (now,)):
                doc = self._load_key(key_id)
                if doc and doc["KeyState"] == "PendingDeletion" and doc["DeletionDate"] <= now:
                    report["DeletedKeys"].append({"KeyId": key_id, "DeletionDate": to_datetime(doc["DeletionDate"])})
                    if not dry_run:
                        self._destroy_key(key_id)
            due_keys = [k for (k,) in self.db.query(rotations, (now,))]
            for key_id in [*due_keys, *(k for (k,) in self.db.query(expiring, (now,)))]:
                doc = self._load_key(key_id)
                if doc is not None and expired(doc):
                    # imported material past its ValidTo is deleted, as AWS does:
                    # the key waits for the same material again (PendingImport)
                    report.setdefault("ExpiredKeys", []).append(
                        {"KeyId": key_id, "ValidTo": to_datetime(doc["ValidTo"])}
                    )
                    if not dry_run:
                        self._drop_imported_material(doc)
                        self._save_key(doc)
                    continue
                if key_id not in due_keys:
                    continue
                rotation = (doc or {}).get("Rotation") or {}
                if not doc or doc["KeyState"] != "Enabled" or not rotation.get("NextRotation"):
                    continue
                due = rotation["NextRotation"]
                entry = {"KeyId": key_id, "RotationDate": to_datetime(due), "RotationType": "AUTOMATIC"}
                if not dry_run:
                    entry["KeyMaterialId"] = self._rotate(doc, "AUTOMATIC", due)
                    # one period after the rotation is done, not after it was due:
                    # a key found 400 days late rotates once, not four times
                    rotation["Base"] = now
                    rotation["NextRotation"] = now + rotation["PeriodDays"] * DAY
                    self._save_key(doc)
                report["RotatedKeys"].append(entry)
        return report

    def _next_due(self) -> float:
        """The earliest time any due work can be (a deletion date, a rotation or
        an expiry: the keys' index columns the queries of ``_due_work`` select on),
        kept while nothing commits (``state_token``): one cheap statement a request
        instead of three queries. Read after the token, so a commit in between
        only makes it be read again."""
        token = self.db.state_token()
        if self._due_after is None or self._due_after[0] != token:
            row = self.db.query("SELECT min(deletion_date), min(next_rotation) FROM keys")[0]
            times = [float(t) for t in row if isinstance(t, (int, float))]
            self._due_after = (token, min(times, default=math.inf))
        return self._due_after[1]

    def _rotate(self, doc: dict[str, Any], rotation_type: str, when: float) -> str:
        """New current key material for a symmetric key; the old stays for Decrypt."""
        from kmsctl.crypto import keygen

        material_id = self._add_material(
            doc["KeyId"], keygen.generate(doc["KeySpec"]), RotationType=rotation_type, RotationDate=when
        )
        doc["CurrentKeyMaterialId"] = material_id
        return material_id

    def _drop_imported_material(self, doc: dict[str, Any]) -> None:
        """Delete every material of an imported key (DeleteImportedKeyMaterial,
        or expiry); what was imported stays known, so only the same material
        can come back. A key pending deletion keeps its state."""
        self.db.execute("DELETE FROM materials WHERE key_id = ?", (doc["KeyId"],))
        for field in ("CurrentKeyMaterialId", "MaterialId", "PendingKeyMaterialId", "ValidTo", "ExpirationModel"):
            doc.pop(field, None)
        if doc["KeyState"] != "PendingDeletion":
            doc["KeyState"] = "PendingImport"

    def _destroy_key(self, key_id: str) -> None:
        for table in ("materials", "aliases", "grants", "keys"):  # grants end with their key
            self.db.execute(f"DELETE FROM {table} WHERE key_id = ?", (key_id,))

    # ----- identifiers -----
    def key_arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def alias_arn(self, name: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:{name}"

    def _parse_ref(self, ref: Any, field: str = "keyId") -> tuple[str, str]:
        """-> ("key", id) or ("alias", "alias/name")."""
        if not isinstance(ref, str):
            raise E.validation_error(ref, field, "Member must be a string")
        if not 1 <= len(ref) <= 2048:
            bound = "greater than or equal to 1" if not ref else "less than or equal to 2048"
            raise E.validation_error(ref, field, f"Member must have length {bound}")
        if ref.startswith("arn:"):
            m = _ARN_RE.fullmatch(ref)
            if not m:
                raise E.InvalidArnException(f"Invalid arn {ref}")
            partition, region, account, kind, rest = m.groups()
            if (partition, region, account) != ("aws", self.region, self.account):
                what = "Alias" if kind == "alias" else "Key"
                raise E.NotFoundException(f"{what} '{ref}' does not exist")
            return ("alias", "alias/" + rest) if kind == "alias" else ("key", rest)
        if ref.startswith("alias/"):
            return "alias", ref
        return "key", ref

    def _key(self, ref: Any, *, aliases: bool = True, field: str = "keyId") -> dict[str, Any]:
        """The verified key document that ``ref`` names."""
        kind, value = self._parse_ref(ref, field)
        if kind == "alias":
            if not aliases:
                raise E.NotFoundException(f"Invalid keyId {ref}: this operation takes a key ID or key ARN")
            alias = self._alias(value)
            if alias is None:
                raise E.NotFoundException(f"Alias {self.alias_arn(value)} is not found.")
            value = alias["TargetKeyId"]
        doc = self._load_key(value)
        if doc is None:
            if kind == "key" and not ref.startswith("arn:") and not _UUID_RE.fullmatch(value):
                # a bare word is not a key ID: echo it as typed, as AWS does, and
                # point at the alias the user most likely meant
                hint = f"did you mean alias/{value}?" if self._alias("alias/" + value) is not None else None
                raise E.NotFoundException(f"Invalid keyId {ref}", hint=hint)
            raise E.NotFoundException(f"Key '{self.key_arn(value)}' does not exist")
        return doc

    # ----- key documents -----
    def _load_key(self, key_id: str) -> dict[str, Any] | None:
        if not _UUID_RE.fullmatch(key_id):
            return None
        rows = self.db.cached(f"SELECT {KEY_ROW} FROM keys WHERE key_id = ?", (key_id,))
        if not rows:
            return None
        return self._verify_key_row(key_id, *rows[0])

    def _verify_key_row(
        self,
        key_id: str,
        state: str,
        spec: str,
        deletion: float | None,
        next_rotation: float | None,
        doc: bytes,
        mac: bytes,
    ) -> dict[str, Any]:
        """The MAC covers the document; the index columns must agree with it."""
        out = self.keyring.check_doc(KEY_KIND, as_blob(doc, what := f"key {key_id}"), as_blob(mac, what), what)
        if _columns(out) != (key_id, state, spec, deletion, next_rotation):
            raise E.IntegrityError(f"{self.keyring.path}: key {key_id} fails its integrity check")
        return out

    def _save_key(self, doc: dict[str, Any]) -> None:
        raw = dumps(doc)
        self.db.execute(
            "INSERT INTO keys(key_id, key_state, key_spec, deletion_date, next_rotation, doc, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key_id) DO UPDATE SET key_state = excluded.key_state, "
            "key_spec = excluded.key_spec, deletion_date = excluded.deletion_date, "
            "next_rotation = excluded.next_rotation, doc = excluded.doc, mac = excluded.mac",
            (*_columns(doc), raw, self.keyring.mac_doc(KEY_KIND, raw)),
        )

    # ----- aliases -----
    def _alias(self, name: str) -> dict[str, Any] | None:
        rows = self.db.cached("SELECT key_id, doc, mac FROM aliases WHERE name = ?", (name,))
        if not rows:
            return None
        key_id, doc, mac = rows[0]
        out = self.keyring.check_doc(ALIAS_KIND, as_blob(doc, what := f"alias {name}"), as_blob(mac, what), what)
        if (out.get("AliasName"), out.get("TargetKeyId")) != (name, key_id):
            raise E.IntegrityError(f"{self.keyring.path}: alias {name} fails its integrity check")
        return out

    def _save_alias(self, doc: dict[str, Any]) -> None:
        raw = dumps(doc)
        self.db.execute(
            "INSERT OR REPLACE INTO aliases(name, key_id, doc, mac) VALUES (?, ?, ?, ?)",
            (doc["AliasName"], doc["TargetKeyId"], raw, self.keyring.mac_doc(ALIAS_KIND, raw)),
        )

    # ----- states -----
    def _require_state(self, doc: dict[str, Any], allowed: tuple[str, ...]) -> None:
        """Raise AWS's error for a key whose state the operation does not
        allow: DisabledException when disabled, KMSInvalidStateException otherwise."""
        state = doc["KeyState"]
        if state in allowed:
            return
        arn = self.key_arn(doc["KeyId"])
        if state == "Disabled":
            raise E.DisabledException(f"{arn} is disabled.")
        words = {"PendingDeletion": "pending deletion", "PendingImport": "pending import"}
        raise E.KMSInvalidStateException(f"{arn} is {words.get(state, state)}.")

    def _require_usage(self, doc: dict[str, Any], usage: str, operation: str) -> None:
        if doc["KeyUsage"] != usage:
            raise E.InvalidKeyUsageException(
                f"{self.key_arn(doc['KeyId'])} key usage is {doc['KeyUsage']} which is not valid for {operation}."
            )

    # ----- metadata -----
    def _metadata(self, doc: dict[str, Any]) -> dict[str, Any]:
        spec, usage = doc["KeySpec"], doc["KeyUsage"]
        md: dict[str, Any] = {
            "AWSAccountId": self.account,
            "KeyId": doc["KeyId"],
            "Arn": self.key_arn(doc["KeyId"]),
            "CreationDate": to_datetime(doc["CreationDate"]),
            "Enabled": doc["KeyState"] == "Enabled",
            "Description": doc["Description"],
            "KeyUsage": usage,
            "KeyState": doc["KeyState"],
        }
        if doc.get("DeletionDate") is not None:
            md["DeletionDate"] = to_datetime(doc["DeletionDate"])
        md["Origin"] = doc["Origin"]
        if doc.get("CustomKeyStoreId"):
            md.update(self._store_metadata(doc))
            md["Enabled"] = md["KeyState"] == "Enabled"
        if doc["Origin"] == "EXTERNAL" and doc.get("ExpirationModel"):
            md["ExpirationModel"] = doc["ExpirationModel"]
            if doc.get("ValidTo") is not None:
                md["ValidTo"] = to_datetime(doc["ValidTo"])
        md["KeyManager"] = doc.get("KeyManager", "CUSTOMER")
        if spec not in model.NO_CMK_SPEC:
            md["CustomerMasterKeySpec"] = spec
        md["KeySpec"] = spec
        md[model.ALGORITHM_FIELD[usage]] = list(model.SPEC_USAGES[spec][usage])
        md["MultiRegion"] = False
        if doc.get("CurrentKeyMaterialId"):
            md["CurrentKeyMaterialId"] = doc["CurrentKeyMaterialId"]
        return md

    # ----- keys in a custom key store (kmsctl.service.keystores) -----
    def _store_metadata(self, doc: dict[str, Any]) -> dict[str, Any]:
        """KeyState (Unavailable while the store is not connected), CustomKeyStoreId, CloudHsmClusterId."""
        raise NotImplementedError

    def _store_seal(self, key: dict[str, Any], plaintext: bytes, context: dict[str, str] | None) -> tuple[bytes, str]:
        """A version 3 blob, made by the key's token -> (blob, token key ID)."""
        raise NotImplementedError

    def _store_unseal(self, key: dict[str, Any], parsed: Any, context: dict[str, str] | None) -> bytes:
        """A version 3 blob's plaintext, from the key's token."""
        raise NotImplementedError

    def _new_store_key(self, store_id: Any, key_id: str) -> dict[str, Any]:
        """The token key of a new KMS key in a custom key store -> the key document's store fields."""
        raise NotImplementedError

    # ----- pagination -----
    @staticmethod
    def _limit(op: str, limit: Any) -> int:
        lo, hi, default = model.LIST_LIMITS[op]
        if limit is None:
            return default
        if not isinstance(limit, int) or isinstance(limit, bool) or not lo <= limit <= hi:
            raise E.validation_error(limit, "limit", f"Member must have value between {lo} and {hi}")
        return limit

    @staticmethod
    def _marker(op: str, position: Any) -> str:
        raw = json.dumps({"op": op, "after": position}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _unmarker(op: str, marker: Any, kind: type[int] | type[str]) -> Any:
        """The position a marker from ``op`` holds, which must be a ``kind``;
        anything else, however well-formed, is InvalidMarkerException."""
        if marker is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4))
            data = json.loads(raw)
            after = data["after"]
            if data["op"] != op or type(after) is not kind:
                raise ValueError(op)
            if isinstance(after, int) and not 0 <= after < 2**63:
                raise ValueError(after)
            return after
        except (ValueError, KeyError, TypeError):
            raise E.InvalidMarkerException(f"Invalid marker: {marker!r} is not a marker from {op}") from None

    @staticmethod
    def _page(items: Iterator[Any], limit: int) -> tuple[list[Any], bool]:
        page: list[Any] = []
        for item in items:
            if len(page) == limit:
                return page, True
            page.append(item)
        return page, False

    # ----- key material -----
    def _add_material(self, key_id: str, secret: bytes, material_id: str | None = None, **extra: Any) -> str:
        """Seal and store one key material; returns its KeyMaterialId (random
        unless given: imported material has one computed from it)."""
        from kmsctl.crypto.primitives import random_bytes

        material_id = material_id or random_bytes(32).hex()
        seq = self.db.query("SELECT coalesce(max(seq), 0) + 1 FROM materials WHERE key_id = ?", (key_id,))[0][0]
        doc = {"KeyId": key_id, "KeyMaterialId": material_id, "CreationDate": self.clock(), "Seq": seq, **extra}
        raw = dumps(doc)
        nonce, sealed = self.keyring.seal_material(key_id, material_id, raw, secret)
        self.db.execute(
            "INSERT INTO materials(key_id, material_id, seq, doc, nonce, sealed) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, material_id, seq, raw, nonce, sealed),
        )
        return material_id

    def _material_doc(self, key_id: str, material_id: str) -> dict[str, Any]:
        """A material's metadata, verified by opening the material it describes."""
        rows = self.db.cached(
            "SELECT doc, nonce, sealed FROM materials WHERE key_id = ? AND material_id = ?", (key_id, material_id)
        )
        doc, nonce, sealed = (as_blob(x, f"key material {material_id}") for x in rows[0])
        self.keyring.open_material(key_id, material_id, doc, nonce, sealed)
        out: dict[str, Any] = json.loads(doc)
        return out

    def _material_secret(self, key_id: str, material_id: str) -> bytes | None:
        rows = self.db.cached(
            "SELECT doc, nonce, sealed FROM materials WHERE key_id = ? AND material_id = ?", (key_id, material_id)
        )
        if not rows:
            return None
        doc, nonce, sealed = (as_blob(x, f"key material {material_id}") for x in rows[0])
        return self.keyring.open_material(key_id, material_id, doc, nonce, sealed)
