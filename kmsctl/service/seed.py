"""Seeding from local-kms's seed YAML: keys with fixed key IDs and known
material, aliases (and, as kmsctl's own addition, tags), idempotently.

The format is local-kms's (its README, "Seeding file format"):

    Keys:
      Symmetric:
        Aes:
          - Metadata: {KeyId: UUID, Description: ..., Origin: AWS_KMS | EXTERNAL, Enabled: true}
            BackingKeys: [64 hex digits, ...]   # several: the earlier ones are past rotations
            NextKeyRotation: ISO 8601           # optional: automatic rotation on, next due then
      Asymmetric:
        Rsa: [{Metadata: {KeyId, KeyUsage: SIGN_VERIFY | ENCRYPT_DECRYPT, ...}, PrivateKeyPem: ...}]
        Ecc: [{Metadata: {KeyId, KeyUsage: SIGN_VERIFY, ...}, PrivateKeyPem: ...}]
    Aliases:
      - {AliasName: alias/NAME, TargetKeyId: UUID}

and local-kms's older form, where ``Keys`` is the list of AES keys. Any key
entry may also have ``Tags: [{TagKey, TagValue}]``. A key that exists
already is left as it is (as local-kms does) if it holds the seed's material,
and refused otherwise; an alias that exists is left as it is. Seeding the
same file twice therefore changes nothing. YAML is read with
``yaml.safe_load`` only; PyYAML is the optional extra ``kmsctl[seed]``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from kmsctl import errors as E
from kmsctl.service.base import DAY, LocalKMSBase, operation
from kmsctl.service.imports import material_id_for
from kmsctl.service.tags import _validate_alias_name, validate_tags

_METADATA = {"KeyId", "Description", "KeyUsage", "Origin", "Enabled"}
_AES_FIELDS = {"Metadata", "BackingKeys", "NextKeyRotation", "Tags"}
_PEM_FIELDS = {"Metadata", "PrivateKeyPem", "Tags"}
_CURVE_SPECS = {
    "secp256r1": "ECC_NIST_P256",
    "secp384r1": "ECC_NIST_P384",
    "secp521r1": "ECC_NIST_P521",
    "secp256k1": "ECC_SECG_P256K1",
}
SEED_FILE_MAX = 16 * 1024 * 1024


def _bad(where: str, why: str) -> E.KMSError:
    return E.ValidationException(f"seed entry {where}: {why}")


def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, "is not a mapping")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _bad(where, f"unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(where, "is not a list")
    return value


def _metadata(entry: dict[str, Any], where: str) -> dict[str, Any]:
    md = _mapping(entry.get("Metadata"), f"{where}.Metadata", _METADATA)
    key_id = md.get("KeyId")
    try:
        key_id = str(uuid.UUID(str(key_id)))
    except ValueError:
        raise _bad(where, f"Metadata.KeyId {key_id!r} is not a key ID (a UUID)") from None
    description = md.get("Description") or ""
    if not isinstance(description, str):
        raise _bad(where, "Metadata.Description is not text")
    origin = md.get("Origin") or "AWS_KMS"
    if origin not in ("AWS_KMS", "EXTERNAL"):
        raise _bad(where, f"Metadata.Origin {origin!r} is neither AWS_KMS nor EXTERNAL")
    enabled = md.get("Enabled", True)
    if not isinstance(enabled, bool):
        raise _bad(where, "Metadata.Enabled is neither true nor false")
    try:
        tags = validate_tags(entry.get("Tags") or [])
    except E.KMSError as exc:
        raise _bad(where, f"Tags: {exc.message}") from None
    return {"KeyId": key_id, "Description": description, "Origin": origin, "Enabled": enabled, "Tags": tags}


def _when(value: Any, where: str) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(where, f"NextKeyRotation {value!r} is not an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _aes(entry: Any, where: str) -> dict[str, Any]:
    entry = _mapping(entry, where, _AES_FIELDS)
    out = _metadata(entry, where)
    where = f"{where} ({out['KeyId']})"
    secrets = []
    for i, text in enumerate(_list(entry.get("BackingKeys"), f"{where}.BackingKeys")):
        try:
            raw = bytes.fromhex(str(text))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise _bad(where, f"BackingKeys[{i}] is not 64 hex digits (a 256-bit key)")
        secrets.append(raw)
    if out["Origin"] == "EXTERNAL" and len(secrets) > 1:
        raise _bad(where, "an EXTERNAL key has at most one backing key")
    if out["Origin"] == "AWS_KMS" and not secrets:
        raise _bad(where, "BackingKeys needs at least one key (openssl rand -hex 32)")
    out.update(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", Secrets=secrets)
    if entry.get("NextKeyRotation") is not None:
        if out["Origin"] != "AWS_KMS":
            raise _bad(where, "NextKeyRotation: keys with imported material do not rotate automatically")
        out["NextRotation"] = _when(entry["NextKeyRotation"], where)
    return out


def _pem(entry: Any, where: str, kind: str) -> dict[str, Any]:
    from kmsctl.crypto import primitives_pk as PK

    entry = _mapping(entry, where, _PEM_FIELDS)
    out = _metadata(entry, where)
    where = f"{where} ({out['KeyId']})"
    pem = entry.get("PrivateKeyPem")
    if not isinstance(pem, str):
        raise _bad(where, "PrivateKeyPem is missing")
    try:
        found, size, der = PK.private_pem_to_der(pem.encode())
    except PK.InvalidKeyData as exc:
        raise _bad(where, f"PrivateKeyPem: {exc}") from None
    usage = (entry["Metadata"].get("KeyUsage")) or ("SIGN_VERIFY" if kind == "ec" else None)
    if found != kind:
        raise _bad(where, f"PrivateKeyPem is an {'RSA' if found == 'rsa' else 'elliptic-curve'} key")
    if kind == "rsa":
        spec = {2048: "RSA_2048", 3072: "RSA_3072", 4096: "RSA_4096"}.get(int(size))
        if spec is None:
            raise _bad(where, f"an RSA key of {size} bits: RSA keys are 2048, 3072 or 4096 bits")
        usages: tuple[str, ...] = ("SIGN_VERIFY", "ENCRYPT_DECRYPT")
    else:
        spec = _CURVE_SPECS.get(str(size))
        if spec is None:
            raise _bad(where, f"curve {size} is not one KMS offers")
        usages = ("SIGN_VERIFY", "KEY_AGREEMENT") if spec != "ECC_SECG_P256K1" else ("SIGN_VERIFY",)
    if usage not in usages:
        raise _bad(where, f"Metadata.KeyUsage {usage!r}: a {spec} key is one of {', '.join(usages)}")
    out.update(KeySpec=spec, KeyUsage=usage, Secrets=[der])
    return out


def parse(document: Any) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """-> (key entries, alias entries), every entry checked; ValidationException
    naming the first one that is wrong."""
    if document is None:
        return [], []
    top = _mapping(document, "(top level)", {"Keys", "Aliases"})
    keys: list[dict[str, Any]] = []
    raw_keys = top.get("Keys")
    if isinstance(raw_keys, list):  # local-kms's older form: the AES keys
        keys += [_aes(e, f"Keys[{i}]") for i, e in enumerate(raw_keys)]
    elif raw_keys is not None:
        groups = _mapping(raw_keys, "Keys", {"Symmetric", "Asymmetric"})
        sym = _mapping(groups.get("Symmetric") or {}, "Keys.Symmetric", {"Aes"})
        asym = _mapping(groups.get("Asymmetric") or {}, "Keys.Asymmetric", {"Rsa", "Ecc"})
        keys += [_aes(e, f"Keys.Symmetric.Aes[{i}]") for i, e in enumerate(_list(sym.get("Aes"), "Keys.Symmetric.Aes"))]
        for name, kind in (("Rsa", "rsa"), ("Ecc", "ec")):
            where = f"Keys.Asymmetric.{name}"
            keys += [_pem(e, f"{where}[{i}]", kind) for i, e in enumerate(_list(asym.get(name), where))]
    seen: dict[str, str] = {}
    for n, key in enumerate(keys):
        if key["KeyId"] in seen:
            raise _bad(f"#{n + 1} of Keys", f"KeyId {key['KeyId']} appears twice")
        seen[key["KeyId"]] = key["KeySpec"]
    aliases = []
    for i, entry in enumerate(_list(top.get("Aliases"), "Aliases")):
        where = f"Aliases[{i}]"
        entry = _mapping(entry, where, {"AliasName", "TargetKeyId"})
        try:
            name = _validate_alias_name(entry.get("AliasName"))
        except E.KMSError as exc:
            raise _bad(where, f"AliasName: {exc.message}") from None
        try:
            target = str(uuid.UUID(str(entry.get("TargetKeyId"))))
        except ValueError:
            raise _bad(where, f"TargetKeyId {entry.get('TargetKeyId')!r} is not a key ID (a UUID)") from None
        aliases.append({"AliasName": name, "TargetKeyId": target})
    return keys, aliases


class SeedOps(LocalKMSBase):
    @operation("Seed", writes=True, unlogged=("Document",))
    def seed(self, *, Document: Any, Source: str = "-") -> dict[str, Any]:
        """kmsctl's own: create the seed's keys and aliases that do not exist
        yet, in one transaction. ``Document`` is the parsed YAML."""
        try:
            keys, aliases = parse(Document)
        except E.ValidationException as exc:
            raise E.ValidationException(f"{Source}: {exc.message}") from None
        created, existing = [], []
        for entry in keys:
            doc = self._load_key(entry["KeyId"])
            if doc is None:
                self._seed_key(entry)
                created.append(entry["KeyId"])
            else:
                self._same_key(doc, entry, Source)
                existing.append(entry["KeyId"])
        new_aliases, old_aliases = [], []
        for alias in aliases:
            current = self._alias(alias["AliasName"])
            if current is not None:
                old_aliases.append(alias["AliasName"])
                continue
            if self._load_key(alias["TargetKeyId"]) is None:
                raise E.NotFoundException(
                    f"{Source}: seed alias {alias['AliasName']}: key {alias['TargetKeyId']} does not exist"
                )
            now = self.clock()
            self._save_alias({**alias, "CreationDate": now, "LastUpdatedDate": now})
            new_aliases.append(alias["AliasName"])
        return {
            "CreatedKeys": created,
            "ExistingKeys": existing,
            "CreatedAliases": new_aliases,
            "ExistingAliases": old_aliases,
        }

    def _seed_key(self, entry: dict[str, Any]) -> None:
        key_id, secrets = entry["KeyId"], entry["Secrets"]
        doc: dict[str, Any] = {
            "KeyId": key_id,
            "CreationDate": self.clock(),
            "Description": entry["Description"],
            "KeySpec": entry["KeySpec"],
            "KeyUsage": entry["KeyUsage"],
            "Origin": entry["Origin"],
            "KeyState": "PendingImport",
            "DeletionDate": None,
            "Tags": entry["Tags"],
        }
        ids = []
        for n, secret in enumerate(secrets):
            extra: dict[str, Any] = {"RotationType": "ON_DEMAND", "RotationDate": self.clock()} if n else {}
            if entry["Origin"] == "EXTERNAL":
                extra["Imported"] = True
            ids.append(self._add_material(key_id, secret, material_id=material_id_for(self, key_id, secret), **extra))
        if ids:
            doc["KeyState"] = "Enabled" if entry["Enabled"] else "Disabled"
            if entry["KeySpec"] == "SYMMETRIC_DEFAULT":
                doc["CurrentKeyMaterialId"] = ids[-1]
            else:
                doc["MaterialId"] = ids[-1]
            if entry["Origin"] == "EXTERNAL":
                doc.update(ImportedMaterials=ids, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
                if entry["KeySpec"] == "SYMMETRIC_DEFAULT":
                    doc["LastCurrentKeyMaterialId"] = ids[-1]
        if "NextRotation" in entry:
            doc["Rotation"] = {
                "PeriodDays": 365,
                "Base": entry["NextRotation"] - 365 * DAY,
                "NextRotation": entry["NextRotation"],
            }
        self._save_key(doc)

    def _same_key(self, doc: dict[str, Any], entry: dict[str, Any], source: str) -> None:
        """An existing key is left as it is, if it is the seed's key."""
        key_id = doc["KeyId"]
        have = {m for (m,) in self.db.query("SELECT material_id FROM materials WHERE key_id = ?", (key_id,))}
        have |= set(doc.get("ImportedMaterials") or [])
        want = {material_id_for(self, key_id, s) for s in entry["Secrets"]}
        if (doc["KeySpec"], doc["Origin"]) != (entry["KeySpec"], entry["Origin"]) or not want <= have:
            raise E.AlreadyExistsException(
                f"{source}: seed key {key_id} exists already with other key material, spec or origin",
                hint="seeding never changes an existing key: delete it, or use another --home",
            )


def seed_file(kms: Any, path: str) -> dict[str, Any]:
    """Seed ``kms`` (a LocalKMS) from local-kms's seed YAML at ``path`` (for
    ``kmsctl seed`` and ``kmsctl serve --seed``)."""
    import importlib

    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise E.UsageError(
            "reading a seed file needs PyYAML, which is not installed",
            hint="pip install 'kmsctl[seed]' (or: pip install PyYAML)",
        ) from None
    try:
        with open(path, "rb") as f:
            raw = f.read(SEED_FILE_MAX + 1)
    except OSError as exc:
        raise E.ValidationException(f"cannot read seed file {path}: {exc.strerror}") from None
    if len(raw) > SEED_FILE_MAX:
        raise E.ValidationException(f"{path}: a seed file is at most {SEED_FILE_MAX} bytes")
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise E.ValidationException(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    out: dict[str, Any] = kms.seed(Document=document, Source=path)
    return out
