"""ML-KEM (FIPS 203) operations: Encapsulate and Decapsulate.

An ML_KEM_768 or ML_KEM_1024 key (KeyUsage ENCAPSULATE_DECAPSULATE) holds an
ML-KEM key pair. Encapsulate makes a fresh 32-byte shared secret and its
ciphertext with the public key (what a peer does with GetPublicKey's output);
Decapsulate recovers the secret from the ciphertext with the private key.
The shared secret is in the response only, never in an audit record.

Checks run in AWS's order, as for the other asymmetric operations: request
fields (ValidationException), the key (NotFound), its state (Disabled /
KMSInvalidState), its usage and the algorithm (InvalidKeyUsage), then the
ciphertext's length (InvalidCiphertextException). A ciphertext of the right
length that was altered or made for another key decapsulates to a
pseudo-random secret, as FIPS 203's implicit rejection and AWS specify.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl._lazy import LazyModule
from kmsctl.service.asymmetric import AsymmetricOps
from kmsctl.service.base import check_enum, operation
from kmsctl.service.crypto import _bytes

if TYPE_CHECKING:
    from kmsctl.crypto import asymmetric as A
else:
    A = LazyModule("kmsctl.crypto.asymmetric")

USAGE = "ENCAPSULATE_DECAPSULATE"


class KemOps(AsymmetricOps):
    def _kem_key(self, KeyId: Any, EncapsulationAlgorithm: Any, op: str) -> dict[str, Any]:
        algorithm = check_enum(EncapsulationAlgorithm, "encapsulationAlgorithm", model.ENCAPSULATION_ALGORITHMS)
        key = self._usable_key(KeyId, USAGE, op)
        self._check_algorithm(key, algorithm)
        return key

    @operation("Encapsulate")
    def encapsulate(
        self,
        *,
        KeyId: str,
        EncapsulationAlgorithm: str,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        key = self._kem_key(KeyId, EncapsulationAlgorithm, "Encapsulate")
        if DryRun:
            raise E.DryRunOperationException()
        secret, ciphertext = A.mlkem_encapsulate(self._key_secret(key))
        return {
            "KeyId": self.key_arn(key["KeyId"]),
            "SharedSecret": secret,
            "SharedSecretCiphertextBlob": ciphertext,
            "EncapsulationAlgorithm": EncapsulationAlgorithm,
        }

    @operation("Decapsulate")
    def decapsulate(
        self,
        *,
        KeyId: str,
        SharedSecretCiphertextBlob: bytes,
        EncapsulationAlgorithm: str,
        GrantTokens: list[str] | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        ciphertext = _bytes(SharedSecretCiphertextBlob, "SharedSecretCiphertextBlob", 1, model.CIPHERTEXT_MAX)
        key = self._kem_key(KeyId, EncapsulationAlgorithm, "Decapsulate")
        expected = A.mlkem_ciphertext_size(key["KeySpec"])
        if len(ciphertext) != expected:
            raise E.InvalidCiphertextException(
                f"The ciphertext is invalid: {key['KeySpec']} ciphertexts are {expected} bytes, "
                f"this one is {len(ciphertext)}"
            )
        if DryRun:
            raise E.DryRunOperationException()
        try:
            secret = A.mlkem_decapsulate(self._key_secret(key), ciphertext)
        except A.InvalidKeyData as exc:
            raise E.InvalidCiphertextException(f"The ciphertext is invalid: {exc}") from None
        return {
            "KeyId": self.key_arn(key["KeyId"]),
            "SharedSecret": secret,
            "EncapsulationAlgorithm": EncapsulationAlgorithm,
        }
