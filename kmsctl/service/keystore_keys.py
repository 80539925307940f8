"""Keys held in a custom key store: CreateKey's token key, Encrypt, Decrypt,
ReEncrypt and GenerateDataKey* run by the token (the ciphertext blob's
version 3, docs/FORMAT.md 3.6), KeyState Unavailable while the store is not
CONNECTED, a due deletion's token object, and the store's ID in the audit
record. The stores themselves: ``kmsctl.service.keystores``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl.crypto import blob
from kmsctl.crypto import primitives as P
from kmsctl.service.keystore_rules import is_token_error
from kmsctl.service.keystores import KeyStoreOps

if TYPE_CHECKING:
    from kmsctl.hsm.token import Token


class StoreKeyOps(KeyStoreOps):
    def _new_store_key(self, store_id: Any, key_id: str) -> dict[str, Any]:
        """The token key of a new KMS key in a store: the store must be CONNECTED.
        Returns the key document's store fields."""
        doc = self._store(store_id)
        if doc["ConnectionState"] != "CONNECTED":
            raise E.CustomKeyStoreInvalidStateException(
                f"Custom key store {doc['CustomKeyStoreId']} is {doc['ConnectionState']}: keys are made only "
                "in a CONNECTED store (ConnectCustomKeyStore)"
            )
        token_key_id = P.random_bytes(32).hex()
        token = self._usable_token(doc, key_id)
        try:
            token.generate_aes_key(f"kmsctl {key_id}", bytes.fromhex(token_key_id))
        except Exception as exc:
            if is_token_error(exc):
                raise E.KMSInvalidStateException(
                    f"custom key store {doc['CustomKeyStoreId']}: {exc}", hint=getattr(exc, "hint", None)
                ) from None
            raise
        self._audit_store = doc["CustomKeyStoreId"]
        return {"CustomKeyStoreId": doc["CustomKeyStoreId"], "TokenKeyId": token_key_id}

    def _usable_token(self, store: dict[str, Any], key_id: str) -> Token:
        arn = self.key_arn(key_id)
        if store["ConnectionState"] != "CONNECTED":
            raise E.KMSInvalidStateException(
                f"{arn} is unavailable: its custom key store {store['CustomKeyStoreId']} is {store['ConnectionState']}",
                hint=f"kmsctl keystore connect {store['CustomKeyStoreName']}",
            )
        try:
            return self._open_store_token(store)
        except Exception as exc:
            if is_token_error(exc) and getattr(exc, "exit_code", 0) != 2:
                raise E.KMSInvalidStateException(
                    f"{arn} is unavailable: custom key store {store['CustomKeyStoreId']}: {exc}"
                ) from None
            raise

    def _store_of_key(self, key: dict[str, Any]) -> dict[str, Any]:
        store = self._find_store(key["CustomKeyStoreId"])
        if store is None:  # DeleteCustomKeyStore refuses while keys exist: damage
            raise E.IntegrityError(
                f"{self.keyring.path}: key {key['KeyId']} names custom key store {key['CustomKeyStoreId']}, "
                "which is missing"
            )
        return store

    def _key_token(self, key: dict[str, Any]) -> tuple[Token, bytes]:
        """The usable token of a store key and its object's CKA_ID; the
        operation's audit record will name the store."""
        token = self._usable_token(self._store_of_key(key), key["KeyId"])
        self._audit_store = key["CustomKeyStoreId"]
        return token, bytes.fromhex(key["TokenKeyId"])

    @contextmanager
    def _unavailable_on_token_error(self, key: dict[str, Any]) -> Iterator[None]:
        """A token that fails mid-operation makes the key unavailable (KMSInvalidStateException)."""
        try:
            yield
        except Exception as exc:
            if is_token_error(exc):
                raise E.KMSInvalidStateException(f"{self.key_arn(key['KeyId'])} is unavailable: {exc}") from None
            raise

    def _store_seal(self, key: dict[str, Any], plaintext: bytes, context: dict[str, str] | None) -> tuple[bytes, str]:
        token, cka_id = self._key_token(key)

        def encrypt(nonce: bytes, data: bytes, aad: bytes) -> bytes:
            return token.gcm_encrypt(cka_id, nonce, data, aad)

        with self._unavailable_on_token_error(key):
            sealed = blob.seal_in_store(
                encrypt, key["KeyId"], key["TokenKeyId"], key["CustomKeyStoreId"], plaintext, context
            )
        return sealed, key["TokenKeyId"]

    def _store_unseal(self, key: dict[str, Any], parsed: blob.Blob, context: dict[str, str] | None) -> bytes:
        if parsed.store_id != key.get("CustomKeyStoreId") or parsed.material_id != key.get("TokenKeyId"):
            raise E.InvalidCiphertextException(
                "The ciphertext names a custom key store or token key that its key does not have"
            )
        token, cka_id = self._key_token(key)

        def decrypt(nonce: bytes, data: bytes, aad: bytes) -> bytes:
            return token.gcm_decrypt(cka_id, nonce, data, aad)

        with self._unavailable_on_token_error(key):  # a wrong tag stays AuthenticationFailed
            return blob.open_in_store(decrypt, parsed, context)

    def _store_metadata(self, doc: dict[str, Any]) -> dict[str, Any]:
        """KeyState as AWS shows a store key: Unavailable while its store is not
        CONNECTED (PendingDeletion stays), else its own state; and the store's IDs."""
        state = str(doc["KeyState"])
        store = self._store_of_key(doc)
        if state != "PendingDeletion" and store["ConnectionState"] != "CONNECTED":
            state = "Unavailable"
        return {
            "KeyState": state,
            "CustomKeyStoreId": store["CustomKeyStoreId"],
            "CloudHsmClusterId": store["CloudHsmClusterId"],
        }

    def _destroy_key(self, key_id: str) -> None:
        """A due deletion: a store key's token object goes too, when the store
        is CONNECTED and its token opens; else it is left on the token (as AWS
        leaves orphaned key material in the cluster), and the key is deleted anyway."""
        doc = self._load_key(key_id)
        if doc is not None and doc.get("CustomKeyStoreId"):
            store = self._find_store(doc["CustomKeyStoreId"])
            if store is not None and store["ConnectionState"] == "CONNECTED":
                try:
                    self._open_store_token(store).destroy_key(bytes.fromhex(doc["TokenKeyId"]))
                except Exception as exc:
                    if not is_token_error(exc):
                        raise
        super()._destroy_key(key_id)

    def _annotate(self, event: dict[str, Any], error: E.KMSError | None) -> None:
        """The custom key store an operation used, as CloudTrail's additionalEventData says it."""
        super()._annotate(event, error)
        store_id, self._audit_store = self._audit_store, None
        if store_id:
            event["additionalEventData"] = {"customKeyStoreId": store_id}
