"""Asymmetric and HMAC operations: Sign, Verify, GenerateMac, VerifyMac,
GetPublicKey, GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext,
DeriveSharedSecret (ML-KEM's Encapsulate and Decapsulate: ``kmsctl.service.kem``).

Checks run in AWS's order: request fields (ValidationException), then the key
(NotFound), its state (Disabled / KMSInvalidState), its usage and the
algorithm's fit with its spec (InvalidKeyUsage), then the message against the
algorithm (ValidationException). RSA Encrypt/Decrypt/ReEncrypt live with the
symmetric ones in ``kmsctl.service.crypto``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl._lazy import LazyModule
from kmsctl.service.base import USABLE, check_enum, operation
from kmsctl.service.crypto import CryptoOps, _bytes, _context

if TYPE_CHECKING:
    from kmsctl.crypto import asymmetric as A
else:
    A = LazyModule("kmsctl.crypto.asymmetric")


def _check_message_type(algorithm: str, message_type: str, message: bytes) -> None:
    """AWS's MessageType rules: EXTERNAL_MU only with ML_DSA_SHAKE_256, which
    takes no DIGEST; Ed25519 RAW, Ed25519ph DIGEST; a DIGEST or EXTERNAL_MU as
    long as the algorithm's digest (a 64-byte mu)."""
    if message_type == "EXTERNAL_MU" and algorithm != "ML_DSA_SHAKE_256":
        raise E.ValidationException(f"MessageType EXTERNAL_MU is valid only with ML_DSA_SHAKE_256, not {algorithm}")
    if message_type == "DIGEST" and algorithm == "ML_DSA_SHAKE_256":
        raise E.ValidationException("ML_DSA_SHAKE_256 takes MessageType RAW or EXTERNAL_MU (a 64-byte mu), not DIGEST")
    if algorithm == "ED25519_SHA_512" and message_type != "RAW":
        raise E.ValidationException("ED25519_SHA_512 signing algorithm requires MessageType RAW")
    if algorithm == "ED25519_PH_SHA_512" and message_type != "DIGEST":
        raise E.ValidationException("ED25519_PH_SHA_512 signing algorithm requires MessageType DIGEST")
    if message_type != "RAW" and len(message) != A.digest_size(algorithm):
        raise E.ValidationException(
            f"Digest is invalid length for algorithm {algorithm}: "
            f"expected {A.digest_size(algorithm)} bytes, got {len(message)}"
        )


class AsymmetricOps(CryptoOps):
    # ----- helpers -----
    def _usable_key(self, ref: Any, usage: str, operation: str) -> dict[str, Any]:
        key = self._key(ref)
        self._require_state(key, USABLE)
        self._require_usage(key, usage, operation)
        return key

    def _check_algorithm(self, key: dict[str, Any], algorithm: str) -> None:
        allowed = model.SPEC_USAGES[key["KeySpec"]][key["KeyUsage"]]
        if algorithm not in allowed:
            raise E.InvalidKeyUsageException(
                f"Algorithm {algorithm} is incompatible with key spec {key['KeySpec']} of "
                f"{self.key_arn(key['KeyId'])}; use one of {', '.join(allowed)}"
            )

    def _signing(self, KeyId: Any, Message: Any, MessageType: Any, SigningAlgorithm: Any, op: str) -> Any:
        message = _bytes(Message, "Message", 1, model.PLAINTEXT_MAX)
        message_type = check_enum("RAW" if MessageType is None else MessageType, "messageType", model.MESSAGE_TYPES)
        algorithm = check_enum(SigningAlgorithm, "signingAlgorithm", model.SIGNING_ALGORITHMS)
        key = self._usable_key(KeyId, "SIGN_VERIFY", op)
        self._check_algorithm(key, algorithm)
        _check_message_type(algorithm, message_type, message)
        return key, message, message_type, algorithm

    def _mac_key(self, KeyId: Any, Message: Any, MacAlgorithm: Any, op: str) -> tuple[dict[str, Any], bytes, str]:
        message = _bytes(Message, "Message", 1, model.PLAINTEXT_MAX)
        algorithm = check_enum(MacAlgorithm, "macAlgorithm", model.MAC_ALGORITHMS)
        key = self._usable_key(KeyId, "GENERATE_VERIFY_MAC", op)
        self._check_algorithm(key, algorithm)
        return key, message, algorithm

    # ----- Sign / Verify -----
    @operation("Sign")
    def sign(
        self,
        *,
        KeyId: str,
        Message: bytes,
        SigningAlgorithm: str,
        MessageType: str | None = None,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        key, message, message_type, algorithm = self._signing(KeyId, Message, MessageType, SigningAlgorithm, "Sign")
        if DryRun:
            raise E.DryRunOperationException()
        try:
            signature = A.sign(self._key_secret(key), algorithm, message_type, message)
        except A.NotAvailable as exc:
            raise E.UnsupportedOperationException(str(exc)) from None
        return {"KeyId": self.key_arn(key["KeyId"]), "Signature": signature, "SigningAlgorithm": algorithm}

    @operation("Verify")
    def verify(
        self,
        *,
        KeyId: str,
        Message: bytes,
        Signature: bytes,
        SigningAlgorithm: str,
        MessageType: str | None = None,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        signature = _bytes(Signature, "Signature", 1, model.CIPHERTEXT_MAX)
        key, message, message_type, algorithm = self._signing(KeyId, Message, MessageType, SigningAlgorithm, "Verify")
        if DryRun:
            raise E.DryRunOperationException()
        try:
            valid = A.verify(self._key_secret(key), algorithm, message_type, message, signature)
        except A.NotAvailable as exc:
            raise E.UnsupportedOperationException(str(exc)) from None
        if not valid:
            # AWS never answers SignatureValid: false
            raise E.KMSInvalidSignatureException(
                f"The signature does not verify with {self.key_arn(key['KeyId'])} and {algorithm}"
            )
        return {"KeyId": self.key_arn(key["KeyId"]), "SignatureValid": True, "SigningAlgorithm": algorithm}

    # ----- GenerateMac / VerifyMac -----
    @operation("GenerateMac")
    def generate_mac(
        self,
        *,
        Message: bytes,
        KeyId: str,
        MacAlgorithm: str,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        key, message, algorithm = self._mac_key(KeyId, Message, MacAlgorithm, "GenerateMac")
        if DryRun:
            raise E.DryRunOperationException()
        mac = A.hmac(self._key_secret(key), algorithm, message)
        return {"Mac": mac, "MacAlgorithm": algorithm, "KeyId": self.key_arn(key["KeyId"])}

    @operation("VerifyMac")
    def verify_mac(
        self,
        *,
        Message: bytes,
        KeyId: str,
        MacAlgorithm: str,
        Mac: bytes,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        mac = _bytes(Mac, "Mac", 1, model.CIPHERTEXT_MAX)
        key, message, algorithm = self._mac_key(KeyId, Message, MacAlgorithm, "VerifyMac")
        if DryRun:
            raise E.DryRunOperationException()
        if not A.hmac_verify(self._key_secret(key), algorithm, message, mac):
            raise E.KMSInvalidMacException(f"The MAC does not verify with {self.key_arn(key['KeyId'])} and {algorithm}")
        return {"KeyId": self.key_arn(key["KeyId"]), "MacValid": True, "MacAlgorithm": algorithm}

    # ----- GetPublicKey -----
    @operation("GetPublicKey")
    def get_public_key(self, *, KeyId: str, GrantTokens: list[str] | None = None) -> dict[str, Any]:
        key = self._key(KeyId)
        spec, usage = key["KeySpec"], key["KeyUsage"]
        if spec == "SYMMETRIC_DEFAULT" or usage == "GENERATE_VERIFY_MAC":
            raise E.UnsupportedOperationException(
                f"{self.key_arn(key['KeyId'])} is a {spec} key; GetPublicKey needs an asymmetric key"
            )
        self._require_state(key, USABLE)
        out: dict[str, Any] = {
            "KeyId": self.key_arn(key["KeyId"]),
            "PublicKey": A.public_key_der(self._key_secret(key)),
        }
        if spec not in model.NO_CMK_SPEC:
            out["CustomerMasterKeySpec"] = spec
        out["KeySpec"] = spec
        out["KeyUsage"] = usage
        out[model.ALGORITHM_FIELD[usage]] = list(model.SPEC_USAGES[spec][usage])
        return out

    # ----- data key pairs -----
    def _data_key_pair(self, KeyId: Any, KeyPairSpec: Any, EncryptionContext: Any, DryRun: Any) -> dict[str, Any]:
        spec = check_enum(KeyPairSpec, "keyPairSpec", model.DATA_KEY_PAIR_SPECS)
        context = _context(EncryptionContext)
        key = self._encryption_key(KeyId, None)
        if key["KeySpec"] != "SYMMETRIC_DEFAULT":
            raise E.InvalidKeyUsageException(
                f"{self.key_arn(key['KeyId'])} is not a symmetric encryption key; data key pairs need one"
            )
        if key.get("CustomKeyStoreId"):
            raise E.UnsupportedOperationException(
                f"{self.key_arn(key['KeyId'])} is in a custom key store, which does not generate data key pairs "
                "(GenerateDataKeyPair), as AWS has it"
            )
        if spec == "SM2":
            raise E.UnsupportedOperationException("KeyPairSpec SM2 is offered only in AWS China Regions, not by kmsctl")
        if why := A.unavailable(spec):
            raise E.UnsupportedOperationException(why)
        if DryRun:
            raise E.DryRunOperationException()
        private, public = A.generate_key_pair(spec)
        ciphertext, material_id = self._seal(key, private, context)
        return {
            "PrivateKeyCiphertextBlob": ciphertext,
            "PrivateKeyPlaintext": private,
            "PublicKey": public,
            "KeyId": self.key_arn(key["KeyId"]),
            "KeyPairSpec": spec,
            "KeyMaterialId": material_id,
        }

    @operation("GenerateDataKeyPair")
    def generate_data_key_pair(
        self,
        *,
        KeyId: str,
        KeyPairSpec: str,
        EncryptionContext: dict[str, str] | None = None,
        GrantTokens: list[str] | None = None,
        Recipient: dict[str, Any] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        if Recipient is not None:
            raise E.UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not available locally")
        return self._data_key_pair(KeyId, KeyPairSpec, EncryptionContext, DryRun)

    @operation("GenerateDataKeyPairWithoutPlaintext")
    def generate_data_key_pair_without_plaintext(
        self,
        *,
        KeyId: str,
        KeyPairSpec: str,
        EncryptionContext: dict[str, str] | None = None,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        out = self._data_key_pair(KeyId, KeyPairSpec, EncryptionContext, DryRun)
        del out["PrivateKeyPlaintext"]
        return out

    # ----- DeriveSharedSecret -----
    @operation("DeriveSharedSecret")
    def derive_shared_secret(
        self,
        *,
        KeyId: str,
        KeyAgreementAlgorithm: str,
        PublicKey: bytes,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
        Recipient: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        algorithm = check_enum(KeyAgreementAlgorithm, "keyAgreementAlgorithm", model.KEY_AGREEMENT_ALGORITHMS)
        peer = _bytes(PublicKey, "PublicKey", 1, 8192)
        if Recipient is not None:
            raise E.UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not available locally")
        key = self._usable_key(KeyId, "KEY_AGREEMENT", "DeriveSharedSecret")
        self._check_algorithm(key, algorithm)
        if key["Origin"] not in ("AWS_KMS", "EXTERNAL"):
            raise E.UnsupportedOperationException(f"DeriveSharedSecret is not valid for origin {key['Origin']}")
        try:
            A.load_public(peer)
        except A.InvalidKeyData as exc:
            raise E.ValidationException(f"PublicKey is invalid: {exc}") from None
        if DryRun:
            raise E.DryRunOperationException()
        try:
            secret = A.ecdh(self._key_secret(key), peer)
        except A.InvalidKeyData as exc:
            raise E.ValidationException(f"PublicKey is invalid: {exc}") from None
        return {
            "KeyId": self.key_arn(key["KeyId"]),
            "SharedSecret": secret,
            "KeyAgreementAlgorithm": algorithm,
            "KeyOrigin": key["Origin"],
        }
