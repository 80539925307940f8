"""Import of key material (BYOK): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial.

A key made with Origin EXTERNAL starts in PendingImport with no material.
GetParametersForImport makes a fresh RSA wrapping key pair for the request;
its private key travels sealed inside the import token (AES-256-GCM under a
key derived from the master key, bound to the key ID, the wrapping algorithm
and spec, and the token's expiry 24 hours on), so the keyring keeps no state
for it and only this keyring can open it (docs/FORMAT.md, "Import token").
ImportKeyMaterial unwraps the material as AWS documents (RSA-OAEP, or
RSA-OAEP of an AES key followed by RFC 5649 key wrap with padding), checks
its format for the key spec, and stores it under a KeyMaterialId computed
from the key ID and the material, so that a reimport is recognised and any
other material refused. Expiry needs no daemon: the due work of time
(``LocalKMSBase._due_work``) deletes material past its ValidTo.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

from kmsctl import errors as E
from kmsctl.service.base import DAY, LocalKMSBase, check_enum, operation, to_datetime

WRAPPING_ALGORITHMS = (
    "RSAES_PKCS1_V1_5",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
    "SM2PKE",
)
WRAPPING_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096", "SM2")
EXPIRATION_MODELS = ("KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE")
IMPORT_TYPES = ("NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL")
# key specs whose material may be imported (AWS: symmetric, HMAC, RSA, ECC)
IMPORTABLE_SPECS = frozenset(
    {
        "SYMMETRIC_DEFAULT",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "HMAC_224",
        "HMAC_256",
        "HMAC_384",
        "HMAC_512",
    }
)
# AWS's accepted HMAC key lengths, in bytes, per spec
HMAC_LENGTHS = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128), "HMAC_512": (64, 128)}
_CURVES = {
    "ECC_NIST_P256": "secp256r1",
    "ECC_NIST_P384": "secp384r1",
    "ECC_NIST_P521": "secp521r1",
    "ECC_SECG_P256K1": "secp256k1",
}
TOKEN_VALID_S = 86400  # an import token and its wrapping key are valid 24 hours
VALID_TO_MAX_S = 365 * DAY  # ValidTo at most 365 days ahead
ENCRYPTED_MATERIAL_MAX = 6144
TOKEN_MAX = 6144
DESCRIPTION_MAX = 256

# ----- the import token, version 1 (docs/FORMAT.md) -----
TOKEN_VERSION = 1
_TOKEN_AAD = b"kmsctl import token v1\x00"
_HEADER = struct.Struct(">B16sQBB")  # version, key ID, expiry (Unix seconds), algorithm, spec
_ALG_CODES = {
    "RSAES_OAEP_SHA_1": 1,
    "RSAES_OAEP_SHA_256": 2,
    "RSA_AES_KEY_WRAP_SHA_1": 3,
    "RSA_AES_KEY_WRAP_SHA_256": 4,
}
_SPEC_CODES = {"RSA_2048": 1, "RSA_3072": 2, "RSA_4096": 3}
_WRAP_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}


def _hash_of(algorithm: str) -> str:
    return "SHA256" if algorithm.endswith("SHA_256") else "SHA1"


def material_id_for(kms: LocalKMSBase, key_id: str, material: bytes) -> str:
    """The KeyMaterialId of imported (or seeded) material: computed from the
    key ID and the material, as AWS computes it, under a key derived from the
    master key so that the ID says nothing about the material."""
    from kmsctl.crypto import primitives as P

    key = kms.keyring.derive(b"key material id")
    return P.hmac_sha256(key, b"kmsctl key material id v1\x00" + key_id.encode() + b"\x00" + material).hex()


def check_material(spec: str, material: bytes) -> bytes:
    """The material as kmsctl stores it, or IncorrectKeyMaterialException:
    32 bytes for SYMMETRIC_DEFAULT, AWS's lengths for HMAC, a DER PKCS#8
    private key of the spec's size or curve for RSA and ECC."""
    if spec == "SYMMETRIC_DEFAULT":
        if len(material) != 32:
            raise E.IncorrectKeyMaterialException(
                f"SYMMETRIC_DEFAULT key material is 32 bytes (an AES-256 key); this is {len(material)} bytes"
            )
        return material
    if spec in HMAC_LENGTHS:
        lo, hi = HMAC_LENGTHS[spec]
        if not lo <= len(material) <= hi:
            raise E.IncorrectKeyMaterialException(
                f"{spec} key material is {lo} to {hi} bytes; this is {len(material)} bytes"
            )
        return material
    from kmsctl.crypto import primitives_pk as PK

    try:
        kind, size, der = PK.describe_private(material)
    except PK.InvalidKeyData:
        raise E.IncorrectKeyMaterialException(
            f"{spec} key material is an unencrypted DER PKCS#8 private key; this is not one"
        ) from None
    wanted: tuple[str, str | int] = ("rsa", _WRAP_BITS[spec]) if spec.startswith("RSA_") else ("ec", _CURVES[spec])
    if (kind, size) != wanted:
        got = f"{size}-bit RSA" if kind == "rsa" else f"an elliptic-curve key on {size}"
        raise E.IncorrectKeyMaterialException(f"the key material is {got}, which is not a {spec} key")
    return der


class ImportOps(LocalKMSBase):
    def _external_key(self, ref: Any, operation_name: str) -> dict[str, Any]:
        key = self._key(ref, aliases=False)
        if key["Origin"] != "EXTERNAL":
            raise E.UnsupportedOperationException(
                f"{self.key_arn(key['KeyId'])} origin is {key['Origin']} which is not valid for this operation "
                f"({operation_name} needs a key created with Origin EXTERNAL)"
            )
        return key

    @operation("GetParametersForImport", unlogged=("ImportToken",))
    def get_parameters_for_import(self, *, KeyId: str, WrappingAlgorithm: str, WrappingKeySpec: str) -> dict[str, Any]:
        algorithm = check_enum(WrappingAlgorithm, "wrappingAlgorithm", WRAPPING_ALGORITHMS)
        spec = check_enum(WrappingKeySpec, "wrappingKeySpec", WRAPPING_SPECS)
        if algorithm in ("SM2PKE",) or spec == "SM2":
            raise E.UnsupportedOperationException("SM2 wrapping is offered only in AWS China Regions, not by kmsctl")
        if algorithm == "RSAES_PKCS1_V1_5":
            raise E.ValidationException(
                "WrappingAlgorithm RSAES_PKCS1_V1_5 is no longer supported; use RSAES_OAEP_SHA_256 or "
                "RSA_AES_KEY_WRAP_SHA_256"
            )
        key = self._external_key(KeyId, "GetParametersForImport")
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        from kmsctl.crypto import primitives as P
        from kmsctl.crypto import primitives_pk as PK

        private_der, public_der = PK.generate("rsa", _WRAP_BITS[spec])
        expires = int(self.clock()) + TOKEN_VALID_S
        header = _HEADER.pack(
            TOKEN_VERSION, uuid.UUID(key["KeyId"]).bytes, expires, _ALG_CODES[algorithm], _SPEC_CODES[spec]
        )
        nonce, sealed = P.gcm_seal(self.keyring.derive(b"import token"), private_der, _TOKEN_AAD + header)
        return {
            "KeyId": self.key_arn(key["KeyId"]),
            "ImportToken": header + nonce + sealed,
            "PublicKey": public_der,
            "ParametersValidTo": to_datetime(expires),
        }

    def _open_token(self, token: Any, key_id: str) -> tuple[str, bytes]:
        """-> (wrapping algorithm, wrapping private key DER)."""
        from kmsctl.crypto import primitives as P

        invalid = E.InvalidImportTokenException("The import token is invalid: it was not made by this keyring")
        if not isinstance(token, (bytes, bytearray)) or not 1 <= len(token) <= TOKEN_MAX:
            raise E.validation_error("...", "importToken", f"Member must have length between 1 and {TOKEN_MAX}")
        token = bytes(token)
        n = _HEADER.size
        if len(token) < n + P.GCM_NONCE_SIZE + P.GCM_TAG_SIZE or token[0] != TOKEN_VERSION:
            raise invalid
        header, nonce, sealed = token[:n], token[n : n + P.GCM_NONCE_SIZE], token[n + P.GCM_NONCE_SIZE :]
        _version, token_key, expires, alg_code, _spec_code = _HEADER.unpack(header)
        try:
            private_der = P.gcm_open(self.keyring.derive(b"import token"), nonce, sealed, _TOKEN_AAD + header)
        except P.AuthenticationFailed:
            raise invalid from None
        if token_key != uuid.UUID(key_id).bytes:
            raise E.InvalidImportTokenException(
                f"The import token is for key {uuid.UUID(bytes=token_key)}, not {key_id}",
                hint="get parameters for this key with 'kmsctl import params'",
            )
        if self.clock() >= expires:
            raise E.ExpiredImportTokenException(
                f"The import token expired at {to_datetime(expires).isoformat()} (tokens are valid 24 hours)",
                hint="get new parameters with 'kmsctl import params' and wrap the material again",
            )
        algorithm = {v: k for k, v in _ALG_CODES.items()}[alg_code]
        return algorithm, private_der

    @staticmethod
    def _unwrap(algorithm: str, private_der: bytes, wrapped: bytes) -> bytes:
        from kmsctl.crypto import primitives as P
        from kmsctl.crypto import primitives_pk as PK

        hash_name = _hash_of(algorithm)
        try:
            if algorithm.startswith("RSAES_OAEP"):
                return PK.rsa_oaep_decrypt(private_der, hash_name, wrapped)
            k = PK.rsa_modulus_bytes(private_der)
            aes_key = PK.rsa_oaep_decrypt(private_der, hash_name, wrapped[:k])
            return P.aes_key_unwrap_padded(aes_key, wrapped[k:])
        except P.AuthenticationFailed:
            raise E.InvalidCiphertextException(
                f"The wrapped key material does not unwrap with this import token's wrapping key ({algorithm})",
                hint="wrap it with the WrappingPublicKey that came with this token, with the same algorithm",
            ) from None

    @operation("ImportKeyMaterial", writes=True, unlogged=("ImportToken", "EncryptedKeyMaterial"))
    def import_key_material(
        self,
        *,
        KeyId: str,
        ImportToken: bytes,
        EncryptedKeyMaterial: bytes,
        ValidTo: Any = None,
        ExpirationModel: str | None = None,
        ImportType: str | None = None,
        KeyMaterialDescription: str | None = None,
        KeyMaterialId: str | None = None,
    ) -> dict[str, Any]:
        model_ = check_enum(ExpirationModel or "KEY_MATERIAL_EXPIRES", "expirationModel", EXPIRATION_MODELS)
        valid_to = self._valid_to(model_, ValidTo)
        if ImportType is not None:
            check_enum(ImportType, "importType", IMPORT_TYPES)
        if KeyMaterialDescription is not None and (
            not isinstance(KeyMaterialDescription, str) or len(KeyMaterialDescription) > DESCRIPTION_MAX
        ):
            raise E.validation_error(
                "...", "keyMaterialDescription", f"Member must have length less than or equal to {DESCRIPTION_MAX}"
            )
        if not isinstance(EncryptedKeyMaterial, (bytes, bytearray)) or not (
            1 <= len(EncryptedKeyMaterial) <= ENCRYPTED_MATERIAL_MAX
        ):
            raise E.validation_error(
                "...", "encryptedKeyMaterial", f"Member must have length between 1 and {ENCRYPTED_MATERIAL_MAX}"
            )
        key = self._external_key(KeyId, "ImportKeyMaterial")
        self._require_state(key, ("Enabled", "Disabled", "PendingImport"))
        key_id = key["KeyId"]
        algorithm, private_der = self._open_token(ImportToken, key_id)
        material = check_material(key["KeySpec"], self._unwrap(algorithm, private_der, bytes(EncryptedKeyMaterial)))
        material_id = material_id_for(self, key_id, material)
        known: list[str] = key.setdefault("ImportedMaterials", [])
        symmetric = key["KeySpec"] == "SYMMETRIC_DEFAULT"
        import_type = ImportType or ("EXISTING_KEY_MATERIAL" if known else "NEW_KEY_MATERIAL")
        if import_type == "NEW_KEY_MATERIAL" and KeyMaterialId is not None:
            raise E.ValidationException("KeyMaterialId must not be given with ImportType NEW_KEY_MATERIAL")
        if KeyMaterialId is not None and KeyMaterialId != material_id:
            raise E.IncorrectKeyMaterialException(
                f"The key material is not the key material {KeyMaterialId} of {self.key_arn(key_id)}"
            )
        arn = self.key_arn(key_id)
        if import_type == "EXISTING_KEY_MATERIAL":
            if material_id not in known:
                raise E.IncorrectKeyMaterialException(
                    f"The key material is not the key material previously imported into {arn}; only the same "
                    "material can be imported again",
                    hint="a symmetric key takes new material with ImportType NEW_KEY_MATERIAL, then an on-demand "
                    "rotation"
                    if symmetric
                    else None,
                )
        elif known:  # NEW_KEY_MATERIAL on a key that has had material
            if not symmetric:
                raise E.IncorrectKeyMaterialException(
                    f"{arn} is a {key['KeySpec']} key: its material cannot change after the first import"
                )
            if material_id in known:
                raise E.IncorrectKeyMaterialException(f"The key material is already associated with {arn}")
            if not key.get("CurrentKeyMaterialId"):
                raise E.IncorrectKeyMaterialException(
                    f"{arn} has no current key material: import its current material again before new material"
                )
            if key.get("PendingKeyMaterialId"):
                raise E.IncorrectKeyMaterialException(
                    f"{arn} already has new key material waiting for an on-demand rotation"
                )
        present = bool(
            self.db.query("SELECT 1 FROM materials WHERE key_id = ? AND material_id = ?", (key_id, material_id))
        )
        if not present:
            extra: dict[str, Any] = {"Imported": True}
            if KeyMaterialDescription:
                extra["KeyMaterialDescription"] = KeyMaterialDescription
            self._add_material(key_id, material, material_id=material_id, **extra)
        if material_id not in known:
            known.append(material_id)
        if import_type == "NEW_KEY_MATERIAL" and key.get("CurrentKeyMaterialId"):
            key["PendingKeyMaterialId"] = material_id  # current after RotateKeyOnDemand
        elif symmetric:
            # the first material, or the current one again; an older one comes
            # back as it was (NON_CURRENT, or still waiting for its rotation)
            if material_id == key.get("LastCurrentKeyMaterialId") or not key.get("LastCurrentKeyMaterialId"):
                key["CurrentKeyMaterialId"] = key["LastCurrentKeyMaterialId"] = material_id
        else:
            key["MaterialId"] = material_id
        if key.get("CurrentKeyMaterialId") or key.get("MaterialId"):
            key["ExpirationModel"] = model_
            key.pop("ValidTo", None)
            if valid_to is not None:
                key["ValidTo"] = valid_to
            if key["KeyState"] == "PendingImport":
                key["KeyState"] = "Enabled"
        self._save_key(key)
        return {"KeyId": arn, "KeyMaterialId": material_id}

    def _valid_to(self, model_: str, value: Any) -> float | None:
        if model_ == "KEY_MATERIAL_DOES_NOT_EXPIRE":
            if value is not None:
                raise E.ValidationException(
                    "ValidTo must not be given with ExpirationModel KEY_MATERIAL_DOES_NOT_EXPIRE"
                )
            return None
        if value is None:
            raise E.ValidationException(
                "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default)",
                hint="give a time up to 365 days ahead, or KEY_MATERIAL_DOES_NOT_EXPIRE",
            )
        from datetime import datetime

        if isinstance(value, datetime):
            when = value.timestamp()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            when = float(value)
        else:
            raise E.validation_error(value, "validTo", "Member must be a timestamp")
        now = self.clock()
        if when <= now:
            raise E.ValidationException(f"ValidTo {to_datetime(when).isoformat()} is in the past")
        if when > now + VALID_TO_MAX_S:
            raise E.ValidationException("ValidTo must be at most 365 days ahead")
        return when

    @operation("DeleteImportedKeyMaterial", writes=True)
    def delete_imported_key_material(self, *, KeyId: str, KeyMaterialId: str | None = None) -> dict[str, Any]:
        key = self._external_key(KeyId, "DeleteImportedKeyMaterial")
        self._require_state(key, ("Enabled", "Disabled", "PendingImport", "PendingDeletion"))
        key_id = key["KeyId"]
        known = key.get("ImportedMaterials") or [None]
        current = key.get("CurrentKeyMaterialId") or key.get("MaterialId") or key.get("LastCurrentKeyMaterialId")
        current = current or known[-1]
        if KeyMaterialId is not None and KeyMaterialId not in known:
            raise E.NotFoundException(f"Key material {KeyMaterialId} of {self.key_arn(key_id)} does not exist")
        target = KeyMaterialId or current
        if target is not None and target == key.get("PendingKeyMaterialId"):
            self.db.execute("DELETE FROM materials WHERE key_id = ? AND material_id = ?", (key_id, target))
            key.pop("PendingKeyMaterialId")
        elif target is not None and target not in (key.get("CurrentKeyMaterialId"), key.get("MaterialId")):
            self.db.execute("DELETE FROM materials WHERE key_id = ? AND material_id = ?", (key_id, target))
        elif key.get("CurrentKeyMaterialId") or key.get("MaterialId"):
            self._drop_imported_material(key)
        self._save_key(key)
        out: dict[str, Any] = {"KeyId": self.key_arn(key_id)}
        if target:
            out["KeyMaterialId"] = target
        return out


def rotate_imported(kms: LocalKMSBase, key: dict[str, Any]) -> None:
    """RotateKeyOnDemand of an imported symmetric key: its new material
    (imported with NEW_KEY_MATERIAL) becomes current; the old one still decrypts."""
    pending = key.get("PendingKeyMaterialId")
    if not pending:
        raise E.UnsupportedOperationException(
            f"{kms.key_arn(key['KeyId'])} has imported key material: import new material first "
            "(ImportType NEW_KEY_MATERIAL), then rotate",
        )
    key["CurrentKeyMaterialId"] = key["LastCurrentKeyMaterialId"] = pending
    key.pop("PendingKeyMaterialId")
