"""``kmsctl check``: the whole keyring, checked at once (kmsctl's own operation).

SQLite's full integrity check (every page, and every index against its
table: an index entry flipped so that a row is hidden from a lookup, or a
second row let past a UNIQUE index, is found here and nowhere else), then
every record a command would verify when it reads it: each key row's MAC and
index columns, each alias, each key material (opened), the links between
them, and the whole audit chain. The commit counter (keyring.epoch) was
checked when the keyring was opened and unlocked.
"""

from __future__ import annotations

import json
from typing import Any

from kmsctl import errors as E
from kmsctl.keyring.store import as_blob
from kmsctl.service.base import KEY_ROW, LocalKMSBase, operation


class CheckOps(LocalKMSBase):
    @operation("CheckKeyring", maintenance=True)
    def check_keyring(self) -> dict[str, Any]:
        """Exit 0 with counts, or IntegrityError naming the first problem."""
        return self._check_all()

    def _check_all(self) -> dict[str, Any]:
        """What ``check`` checks (also run on a backup before it is restored)."""
        path = self.keyring.path
        problem = self.db.integrity_check()
        if problem:
            raise E.IntegrityError(f"{path}: SQLite's integrity check fails: {problem}")
        keys: dict[str, dict[str, Any]] = {}
        for key_id, *row in self.db.query(f"SELECT key_id, {KEY_ROW} FROM keys ORDER BY key_id"):
            keys[key_id] = self._verify_key_row(key_id, *row)
        aliases = 0
        for (name,) in self.db.query("SELECT name FROM aliases ORDER BY name"):
            doc = self._alias(name)
            assert doc is not None
            if doc["TargetKeyId"] not in keys:
                raise E.IntegrityError(f"{path}: alias {name} points at key {doc['TargetKeyId']}, which is missing")
            aliases += 1
        materials: set[tuple[str, str]] = set()
        rows = self.db.query("SELECT key_id, material_id, seq, doc, nonce, sealed FROM materials")
        for key_id, material_id, seq, doc, nonce, sealed in rows:
            what = f"key material {str(material_id)[:12]}… of key {key_id}"
            raw = as_blob(doc, what)
            self.keyring.open_material(key_id, material_id, raw, as_blob(nonce, what), as_blob(sealed, what))
            meta = json.loads(raw)
            if (meta.get("KeyId"), meta.get("KeyMaterialId"), meta.get("Seq")) != (key_id, material_id, seq):
                raise E.IntegrityError(f"{path}: {what} fails its integrity check (index columns edited)")
            if key_id not in keys:
                raise E.IntegrityError(f"{path}: {what} belongs to no key")
            materials.add((key_id, material_id))
        for key_id, doc in keys.items():
            for field in ("CurrentKeyMaterialId", "MaterialId"):
                if doc.get(field) and (key_id, doc[field]) not in materials:
                    missing = f"names key material {doc[field][:12]}…, which is missing"
                    raise E.IntegrityError(f"{path}: key {key_id} {missing}")
        checked, problem = self._audit_trail().verify()
        if problem:
            raise E.IntegrityError(f"audit trail: {problem} ({checked} records before it verify)")
        return {
            "Keys": len(keys),
            "Aliases": aliases,
            "KeyMaterials": len(materials),
            "AuditRecords": checked,
            "CommitCounter": self.db.epoch(),
        }
