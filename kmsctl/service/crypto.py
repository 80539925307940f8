"""Symmetric cryptographic operations: Encrypt, Decrypt, ReEncrypt,
GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateRandom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl._lazy import LazyModule
from kmsctl.crypto import blob
from kmsctl.crypto.primitives import AuthenticationFailed, random_bytes
from kmsctl.service.base import USABLE, LocalKMSBase, check_enum, operation

if TYPE_CHECKING:
    from kmsctl.crypto import asymmetric
else:
    asymmetric = LazyModule("kmsctl.crypto.asymmetric")


def _bytes(value: Any, field: str, lo: int, hi: int) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise E.ValidationException(f"{field} must be bytes")
    data = bytes(value)
    if not lo <= len(data) <= hi:
        # AWS's wording for a blob member: no value quoted, one bound named
        bound = f"greater than or equal to {lo}" if len(data) < lo else f"less than or equal to {hi}"
        raise E.ValidationException(
            f"1 validation error detected: Value at '{field[0].lower() + field[1:]}' failed to satisfy "
            f"constraint: Member must have length {bound}"
        )
    return data


def _context(ctx: Any, field: str = "EncryptionContext") -> dict[str, str] | None:
    if ctx is None:
        return None
    if not isinstance(ctx, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()):
        raise E.ValidationException(f"{field} must map strings to strings")
    return ctx


def _number_of_bytes(value: Any, field: str = "numberOfBytes") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise E.validation_error(value, field, f"Member must have value between 1 and {model.NUMBER_OF_BYTES_MAX}")
    if value < 1:
        raise E.validation_error(value, field, "Member must have value greater than or equal to 1")
    if value > model.NUMBER_OF_BYTES_MAX:
        raise E.validation_error(
            value, field, f"Member must have value less than or equal to {model.NUMBER_OF_BYTES_MAX}"
        )
    return value


class CryptoOps(LocalKMSBase):
    # ----- helpers shared by the operations -----
    def _encryption_key(self, ref: Any, algorithm: Any) -> dict[str, Any]:
        key = self._key(ref)
        self._require_state(key, USABLE)
        self._require_usage(key, "ENCRYPT_DECRYPT", "this operation")
        allowed = model.SPEC_USAGES[key["KeySpec"]]["ENCRYPT_DECRYPT"]
        if algorithm is not None:
            check_enum(algorithm, "encryptionAlgorithm", model.ENCRYPTION_ALGORITHMS)
        if (algorithm or allowed[0]) not in allowed:
            raise E.InvalidKeyUsageException(
                f"Algorithm {algorithm} is not valid for {self.key_arn(key['KeyId'])}; use one of {', '.join(allowed)}"
            )
        return key

    def _seal(self, key: dict[str, Any], plaintext: bytes, context: dict[str, str] | None) -> tuple[bytes, str]:
        if key.get("CustomKeyStoreId"):  # the token encrypts (blob version 3)
            return self._store_seal(key, plaintext, context)
        material_id = key["CurrentKeyMaterialId"]
        secret = self._material_secret(key["KeyId"], material_id)
        if secret is None:
            raise E.IntegrityError(f"{self.keyring.path}: the current material of key {key['KeyId']} is missing")
        return blob.seal(secret, key["KeyId"], material_id, plaintext, context), material_id

    def _unseal(
        self, data: bytes, context: dict[str, str] | None, expected: Any, field: str
    ) -> tuple[dict[str, Any], bytes, str]:
        """Decrypt a symmetric blob -> (key doc, plaintext, material id)."""
        try:
            parsed = blob.parse(data)
        except blob.MalformedBlob as exc:
            raise E.InvalidCiphertextException(
                f"The ciphertext is invalid: {exc}",
                hint="ciphertext from an RSA key needs its KeyId and EncryptionAlgorithm (RSAES_OAEP_SHA_*)",
            ) from None
        if expected is not None:
            wanted = self._key(expected, field=field)
            if wanted["KeyId"] != parsed.key_id:
                raise E.IncorrectKeyException(
                    f"The key ID in the request does not identify the key that encrypted the ciphertext "
                    f"({self.key_arn(parsed.key_id)})"
                )
        key = self._load_key(parsed.key_id)
        if key is None:
            raise E.InvalidCiphertextException(
                f"The ciphertext refers to key {self.key_arn(parsed.key_id)}, which does not exist in this keyring"
            )
        self._require_state(key, USABLE)
        self._require_usage(key, "ENCRYPT_DECRYPT", "Decrypt")
        if parsed.version == blob.STORE_VERSION or key.get("CustomKeyStoreId"):
            if parsed.version != blob.STORE_VERSION or not key.get("CustomKeyStoreId"):
                raise E.InvalidCiphertextException("The ciphertext refers to key material this key does not have")
            try:
                return key, self._store_unseal(key, parsed, context), parsed.material_id
            except AuthenticationFailed:
                raise E.InvalidCiphertextException(
                    "The ciphertext is invalid: it was altered, or the encryption context does not match"
                ) from None
        secret = self._material_secret(parsed.key_id, parsed.material_id)
        if secret is None:
            raise E.InvalidCiphertextException("The ciphertext refers to key material this key does not have")
        try:
            plaintext = blob.open_blob(secret, parsed, context)
        except AuthenticationFailed:
            raise E.InvalidCiphertextException(
                "The ciphertext is invalid: it was altered, or the encryption context does not match"
            ) from None
        return key, plaintext, parsed.material_id

    # ----- RSA: the ciphertext is raw RSA-OAEP output, with no header and no context -----
    def _key_secret(self, key: dict[str, Any]) -> bytes:
        """The one material of an asymmetric or HMAC key (DER PKCS#8 or raw HMAC key)."""
        material_id = key.get("MaterialId") or key.get("CurrentKeyMaterialId")
        secret = self._material_secret(key["KeyId"], material_id) if material_id else None
        if secret is None:
            raise E.IntegrityError(f"{self.keyring.path}: the material of key {key['KeyId']} is missing")
        return secret

    def _rsa_algorithm(self, key: dict[str, Any], algorithm: Any, context: Any, field: str) -> str:
        """AWS requires the algorithm for asymmetric keys, which take no encryption context."""
        if algorithm is None:
            allowed = model.SPEC_USAGES[key["KeySpec"]]["ENCRYPT_DECRYPT"]
            raise E.InvalidKeyUsageException(
                f"{self.key_arn(key['KeyId'])} is an asymmetric {key['KeySpec']} key: the encryption algorithm "
                f"is required; use one of {', '.join(allowed)}"
            )
        if context:
            raise E.ValidationException(
                f"{field} is not supported with asymmetric key {self.key_arn(key['KeyId'])}: "
                "an encryption context is valid only with symmetric encryption keys"
            )
        return str(algorithm)

    def _rsa_encrypt(self, key: dict[str, Any], algorithm: str, plaintext: bytes) -> bytes:
        limit = asymmetric.rsa_max_plaintext(key["KeySpec"], algorithm)
        if len(plaintext) > limit:
            raise E.ValidationException(
                f"Plaintext is {len(plaintext)} bytes; {algorithm} with {key['KeySpec']} encrypts at most {limit}"
            )
        return asymmetric.rsa_encrypt(self._key_secret(key), algorithm, plaintext)

    def _rsa_decrypt(
        self, data: bytes, ref: Any, algorithm: Any, context: Any, fields: tuple[str, str]
    ) -> tuple[dict[str, Any], bytes, str]:
        """Decrypt raw RSA-OAEP ciphertext -> (key doc, plaintext, algorithm)."""
        if ref is None:
            raise E.ValidationException(
                f"{fields[0]} is required to decrypt ciphertext under an asymmetric key ({algorithm})"
            )
        key = self._encryption_key(ref, algorithm)
        algorithm = self._rsa_algorithm(key, algorithm, _context(context, fields[1]), fields[1])
        try:
            if len(data) != asymmetric.RSA_BITS[key["KeySpec"]] // 8:
                raise AuthenticationFailed
            plaintext = asymmetric.rsa_decrypt(self._key_secret(key), algorithm, data)
        except AuthenticationFailed:
            raise E.InvalidCiphertextException(
                f"The ciphertext is invalid: it does not decrypt with {self.key_arn(key['KeyId'])} and {algorithm}"
            ) from None
        return key, plaintext, algorithm

    # ----- operations -----
    @operation("Encrypt")
    def encrypt(
        self,
        *,
        KeyId: str,
        Plaintext: bytes,
        EncryptionContext: dict[str, str] | None = None,
        GrantTokens: list[str] | None = None,
        EncryptionAlgorithm: str | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        plaintext = _bytes(Plaintext, "Plaintext", 1, model.PLAINTEXT_MAX)
        context = _context(EncryptionContext)
        key = self._encryption_key(KeyId, EncryptionAlgorithm)
        algorithm = "SYMMETRIC_DEFAULT"
        if key["KeySpec"] != "SYMMETRIC_DEFAULT":
            algorithm = self._rsa_algorithm(key, EncryptionAlgorithm, context, "EncryptionContext")
        if DryRun:
            raise E.DryRunOperationException()
        if algorithm != "SYMMETRIC_DEFAULT":
            ciphertext = self._rsa_encrypt(key, algorithm, plaintext)
        else:
            ciphertext, _ = self._seal(key, plaintext, context)
        return {
            "CiphertextBlob": ciphertext,
            "KeyId": self.key_arn(key["KeyId"]),
            "EncryptionAlgorithm": algorithm,
        }

    @operation("Decrypt")
    def decrypt(
        self,
        *,
        CiphertextBlob: bytes,
        EncryptionContext: dict[str, str] | None = None,
        GrantTokens: list[str] | None = None,
        KeyId: str | None = None,
        EncryptionAlgorithm: str | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        data = _bytes(CiphertextBlob, "CiphertextBlob", 1, model.CIPHERTEXT_MAX)
        if EncryptionAlgorithm not in (None, "SYMMETRIC_DEFAULT"):
            key, plaintext, algorithm = self._rsa_decrypt(
                data, KeyId, EncryptionAlgorithm, EncryptionContext, ("KeyId", "EncryptionContext")
            )
            if DryRun:
                raise E.DryRunOperationException()
            return {"KeyId": self.key_arn(key["KeyId"]), "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}
        key, plaintext, material_id = self._unseal(data, _context(EncryptionContext), KeyId, "keyId")
        if DryRun:
            raise E.DryRunOperationException()
        return {
            "KeyId": self.key_arn(key["KeyId"]),
            "Plaintext": plaintext,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "KeyMaterialId": material_id,
        }

    @operation("ReEncrypt")
    def re_encrypt(
        self,
        *,
        CiphertextBlob: bytes,
        DestinationKeyId: str,
        SourceEncryptionContext: dict[str, str] | None = None,
        SourceKeyId: str | None = None,
        DestinationEncryptionContext: dict[str, str] | None = None,
        SourceEncryptionAlgorithm: str | None = None,
        DestinationEncryptionAlgorithm: str | None = None,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        data = _bytes(CiphertextBlob, "CiphertextBlob", 1, model.CIPHERTEXT_MAX)
        dest_context = _context(DestinationEncryptionContext, "DestinationEncryptionContext")
        source_material: str | None = None
        dest_material: str | None = None
        source_algorithm = dest_algorithm = "SYMMETRIC_DEFAULT"
        if SourceEncryptionAlgorithm not in (None, "SYMMETRIC_DEFAULT"):
            source, plaintext, source_algorithm = self._rsa_decrypt(
                data,
                SourceKeyId,
                SourceEncryptionAlgorithm,
                SourceEncryptionContext,
                ("SourceKeyId", "SourceEncryptionContext"),
            )
        else:
            source, plaintext, source_material = self._unseal(
                data, _context(SourceEncryptionContext, "SourceEncryptionContext"), SourceKeyId, "sourceKeyId"
            )
        dest = self._encryption_key(DestinationKeyId, DestinationEncryptionAlgorithm)
        if dest["KeySpec"] != "SYMMETRIC_DEFAULT":
            dest_algorithm = self._rsa_algorithm(
                dest, DestinationEncryptionAlgorithm, dest_context, "DestinationEncryptionContext"
            )
        if DryRun:
            raise E.DryRunOperationException()
        if dest_algorithm != "SYMMETRIC_DEFAULT":
            ciphertext = self._rsa_encrypt(dest, dest_algorithm, plaintext)
        else:
            ciphertext, dest_material = self._seal(dest, plaintext, dest_context)
        out = {
            "CiphertextBlob": ciphertext,
            "SourceKeyId": self.key_arn(source["KeyId"]),
            "KeyId": self.key_arn(dest["KeyId"]),
            "SourceEncryptionAlgorithm": source_algorithm,
            "DestinationEncryptionAlgorithm": dest_algorithm,
            "SourceKeyMaterialId": source_material,
            "DestinationKeyMaterialId": dest_material,
        }
        return {k: v for k, v in out.items() if v is not None}  # material IDs: symmetric keys only

    def _data_key(self, KeyId: Any, KeySpec: Any, NumberOfBytes: Any, context: Any) -> dict[str, Any]:
        if (KeySpec is None) == (NumberOfBytes is None):
            raise E.ValidationException("Please specify either number of bytes or key spec.")
        if KeySpec is not None:
            size = model.DATA_KEY_SPECS[check_enum(KeySpec, "keySpec", tuple(model.DATA_KEY_SPECS))]
        else:
            size = _number_of_bytes(NumberOfBytes)
        ctx = _context(context)
        key = self._encryption_key(KeyId, None)
        if key["KeySpec"] != "SYMMETRIC_DEFAULT":
            raise E.InvalidKeyUsageException(
                f"{self.key_arn(key['KeyId'])} is not a symmetric encryption key; data keys need one"
            )
        plaintext = random_bytes(size)
        ciphertext, material_id = self._seal(key, plaintext, ctx)
        return {
            "CiphertextBlob": ciphertext,
            "Plaintext": plaintext,
            "KeyId": self.key_arn(key["KeyId"]),
            "KeyMaterialId": material_id,
        }

    @operation("GenerateDataKey")
    def generate_data_key(
        self,
        *,
        KeyId: str,
        EncryptionContext: dict[str, str] | None = None,
        NumberOfBytes: int | None = None,
        KeySpec: str | None = None,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        out = self._data_key(KeyId, KeySpec, NumberOfBytes, EncryptionContext)
        if DryRun:
            raise E.DryRunOperationException()
        return out

    @operation("GenerateDataKeyWithoutPlaintext")
    def generate_data_key_without_plaintext(
        self,
        *,
        KeyId: str,
        EncryptionContext: dict[str, str] | None = None,
        KeySpec: str | None = None,
        NumberOfBytes: int | None = None,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        out = self._data_key(KeyId, KeySpec, NumberOfBytes, EncryptionContext)
        if DryRun:
            raise E.DryRunOperationException()
        del out["Plaintext"]
        return out

    @operation("GenerateRandom", unlock=False)
    def generate_random(
        self, *, NumberOfBytes: int | None = None, CustomKeyStoreId: str | None = None
    ) -> dict[str, Any]:
        if CustomKeyStoreId is not None:
            raise E.UnsupportedOperationException("custom key stores are not available in a local keyring")
        if NumberOfBytes is None:
            raise E.ValidationException("NumberOfBytes is required")
        return {"Plaintext": random_bytes(_number_of_bytes(NumberOfBytes))}
