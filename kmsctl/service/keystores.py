"""Custom key stores: CreateCustomKeyStore, DescribeCustomKeyStores,
ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore,
DeleteCustomKeyStore, and the keys they hold.

A store is AWS's CloudHSM type (CustomKeyStoreType AWS_CLOUDHSM) backed by a
PKCS#11 token (``kmsctl.hsm``): its keys' AES-256 material is generated in the
token, non-extractable and sensitive, and every Encrypt, Decrypt, ReEncrypt
and GenerateDataKey* with them runs in the token (AES-GCM, the ciphertext
blob's version 3, docs/FORMAT.md 3.6). The keyring keeps the store's document
(MACed like a key's) and the token's PIN, sealed under a key derived from the
master key, as AWS keeps the ``kmsuser`` password; the keys' documents keep
only the token object's CKA_ID.

ConnectionState is kept in the keyring: CONNECTED means every kmsctl process
may open the token (each opens its own session when it first needs one);
DISCONNECTED and FAILED keys are listed and described (KeyState
``Unavailable``, as AWS shows them) but unusable (KMSInvalidStateException).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl.crypto import primitives as P
from kmsctl.keyring.store import as_blob, dumps
from kmsctl.service.base import LocalKMSBase, check_enum, operation, to_datetime
from kmsctl.service.keystore_rules import (
    CONNECTION_ERRORS,
    cluster_id,
    is_token_error,
    new_store_id,
    pct,
    store_name,
    store_pin,
)

if TYPE_CHECKING:
    from kmsctl.hsm.token import Token

STORE_KIND = b"kmsctl key store v1\x00"  # the document's MAC domain
_AAD_PIN = b"kmsctl key store pin v1\x00"
_PIN_WRAP = b"key store pin wrap"  # Keyring.derive label of the PIN's sealing key
_SELECT = "SELECT rowid, store_id, name, doc, mac, nonce, sealed FROM key_stores"


class KeyStoreOps(LocalKMSBase):
    _audit_store: str | None = None  # the store the current operation used (its audit record says so)

    # ----- the store rows -----
    def _pin_key(self) -> bytes:
        return self.keyring.derive(_PIN_WRAP)

    def _verify_store_row(self, store_id: str, name: str, doc: Any, mac: Any) -> dict[str, Any]:
        what = f"custom key store {store_id}"
        out = self.keyring.check_doc(STORE_KIND, as_blob(doc, what), as_blob(mac, what), what)
        if (out.get("CustomKeyStoreId"), out.get("CustomKeyStoreName")) != (store_id, name):
            raise E.IntegrityError(f"{self.keyring.path}: {what} fails its integrity check")
        return out

    def _store(self, store_id: Any, field: str = "customKeyStoreId") -> dict[str, Any]:
        """The verified document of a store, by ID; CustomKeyStoreNotFoundException otherwise."""
        if not isinstance(store_id, str) or not 1 <= len(store_id) <= 64:
            raise E.validation_error(store_id, field, "Member must have length between 1 and 64")
        doc = self._find_store(store_id)
        if doc is None:
            raise E.CustomKeyStoreNotFoundException(f"Custom key store '{store_id}' does not exist in this keyring")
        return doc

    def _find_store(self, store_id: str) -> dict[str, Any] | None:
        rows = self.db.query(_SELECT + " WHERE store_id = ?", (store_id,))
        return self._verify_store_row(*rows[0][1:5]) if rows else None

    def _save_store(self, doc: dict[str, Any], pin: bytes | None = None) -> None:
        raw = dumps(doc)
        mac = self.keyring.mac_doc(STORE_KIND, raw)
        store_id = doc["CustomKeyStoreId"]
        if pin is None:
            self.db.execute(
                "UPDATE key_stores SET name = ?, doc = ?, mac = ? WHERE store_id = ?",
                (doc["CustomKeyStoreName"], raw, mac, store_id),
            )
            return
        nonce, sealed = P.gcm_seal(self._pin_key(), pin, _AAD_PIN + store_id.encode())
        self.db.execute(
            "INSERT INTO key_stores(store_id, name, doc, mac, nonce, sealed) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(store_id) DO UPDATE SET name = excluded.name, doc = excluded.doc, mac = excluded.mac, "
            "nonce = excluded.nonce, sealed = excluded.sealed",
            (store_id, doc["CustomKeyStoreName"], raw, mac, nonce, sealed),
        )

    def _store_pin(self, store_id: str) -> bytes:
        rows = self.db.query("SELECT nonce, sealed FROM key_stores WHERE store_id = ?", (store_id,))
        what = f"the PIN of custom key store {store_id}"
        if not rows:
            raise E.IntegrityError(f"{self.keyring.path}: {what} is missing")
        try:
            return P.gcm_open(
                self._pin_key(), as_blob(rows[0][0], what), as_blob(rows[0][1], what), _AAD_PIN + store_id.encode()
            )
        except P.AuthenticationFailed:
            raise E.IntegrityError(f"{self.keyring.path}: {what} fails its integrity check") from None

    def _name_taken(self, name: str, store_id: str | None = None) -> None:
        rows = self.db.query("SELECT store_id FROM key_stores WHERE name = ?", (name,))
        if rows and rows[0][0] != store_id:
            raise E.CustomKeyStoreNameInUseException(f"The custom key store name '{name}' is already in use")

    def _store_entry(self, doc: dict[str, Any]) -> dict[str, Any]:
        """DescribeCustomKeyStores' CustomKeyStoresListEntry, and kmsctl's Pkcs11Uri."""
        out: dict[str, Any] = {
            "CustomKeyStoreId": doc["CustomKeyStoreId"],
            "CustomKeyStoreName": doc["CustomKeyStoreName"],
            "CloudHsmClusterId": doc["CloudHsmClusterId"],
        }
        if doc.get("TrustAnchorCertificate"):
            out["TrustAnchorCertificate"] = doc["TrustAnchorCertificate"]
        out["ConnectionState"] = doc["ConnectionState"]
        if doc["ConnectionState"] == "FAILED" and doc.get("ConnectionErrorCode"):
            out["ConnectionErrorCode"] = doc["ConnectionErrorCode"]
        out["CreationDate"] = to_datetime(doc["CreationDate"])
        out["CustomKeyStoreType"] = doc["CustomKeyStoreType"]
        out["Pkcs11Uri"] = doc["Pkcs11Uri"]  # kmsctl's own: the token behind the "cluster"
        return out

    # ----- the token -----
    def _open_store_token(self, doc: dict[str, Any], pin: bytes | None = None) -> Token:
        """The logged-in token of a store; raises TokenError (``reason``) when it cannot be used,
        including another token that has the same label."""
        from kmsctl.hsm import token as T
        from kmsctl.hsm import uri as U

        if pin is None:
            pin = self._store_pin(doc["CustomKeyStoreId"])
        token = T.open_token(U.parse(doc["Pkcs11Uri"]), pin)
        if token.serial != doc["TokenSerial"]:
            raise T.TokenError(
                f"token {token.describe()} is not the store's token (serial {doc['TokenSerial']})", reason="token"
            )
        return token

    def _pkcs11_setting(self, name: str) -> str | None:
        """A pkcs11.* setting from the environment or this home's config.toml (the wire has no flags)."""
        import os

        from kmsctl import config

        try:
            value, _ = config.resolve(name, flags={}, env=os.environ, config=lambda: config.load(self.keyring.home))
        except (KeyError, E.KMSError):
            return None
        return str(value) if value else None

    def _resolve_uri(self, text: str) -> Any:
        from dataclasses import replace

        from kmsctl.hsm import uri as U

        parsed = U.parse(text)
        parsed = U.resolved(
            parsed, module=self._pkcs11_setting("pkcs11.module"), token=self._pkcs11_setting("pkcs11.token")
        )
        if parsed.token is None and parsed.serial is None:
            raise E.ValidationException(f"the PKCS#11 URI {text!r} names no token: add token=LABEL")
        # the store keeps the token, not an object in it, nor where a PIN was read from
        return replace(parsed, object=None, id=None, pin_source=None)

    # ----- the operations -----
    @operation("CreateCustomKeyStore", writes=True, unlogged=("KeyStorePassword",))
    def create_custom_key_store(
        self,
        *,
        CustomKeyStoreName: str,
        CloudHsmClusterId: str | None = None,
        TrustAnchorCertificate: str | None = None,
        KeyStorePassword: str | bytes | None = None,
        CustomKeyStoreType: str | None = None,
        XksProxyUriEndpoint: str | None = None,
        XksProxyUriPath: str | None = None,
        XksProxyVpcEndpointServiceName: str | None = None,
        XksProxyVpcEndpointServiceOwner: str | None = None,
        XksProxyAuthenticationCredential: dict[str, str] | None = None,
        XksProxyConnectivity: str | None = None,
        Pkcs11Uri: str | None = None,
    ) -> dict[str, Any]:
        """CloudHsmClusterId names the token: a PKCS#11 URI, or a token label
        on the configured module; ``Pkcs11Uri`` (kmsctl's own) takes precedence."""
        name = store_name(CustomKeyStoreName, "customKeyStoreName")
        kind = check_enum(CustomKeyStoreType or "AWS_CLOUDHSM", "customKeyStoreType", model.CUSTOM_KEY_STORE_TYPES)
        if kind != "AWS_CLOUDHSM":
            raise E.UnsupportedOperationException(
                "external key stores (EXTERNAL_KEY_STORE) are not available in a local keyring; "
                "kmsctl's custom key stores are PKCS#11 tokens (AWS_CLOUDHSM)"
            )
        where = Pkcs11Uri or CloudHsmClusterId
        if not isinstance(where, str) or not where:
            raise E.ValidationException(
                "CloudHsmClusterId is required for an AWS_CLOUDHSM key store: a PKCS#11 URI or a token label"
            )
        if KeyStorePassword is None:
            raise E.ValidationException("KeyStorePassword is required for an AWS_CLOUDHSM key store: the token's PIN")
        pin = store_pin(KeyStorePassword)
        if TrustAnchorCertificate is not None and not isinstance(TrustAnchorCertificate, str):
            raise E.ValidationException("TrustAnchorCertificate must be a string")
        uri = self._resolve_uri(where if where.startswith("pkcs11:") else "pkcs11:token=" + pct(where))
        self._name_taken(name)
        if self.db.query("SELECT count(*) FROM key_stores")[0][0] >= model.CUSTOM_KEY_STORES_MAX:
            raise E.LimitExceededException(f"a keyring holds at most {model.CUSTOM_KEY_STORES_MAX} custom key stores")
        from kmsctl.hsm import token as T

        try:
            token = T.open_token(uri, pin)  # the token exists and takes the PIN
        except T.TokenError as exc:
            if exc.reason in ("module", "token") and exc.exit_code != 2:
                raise E.CloudHsmClusterNotFoundException(exc.message, hint=exc.hint) from None
            raise
        cluster = cluster_id(token.label, token.serial)
        for other in self._all_stores():
            if other["CloudHsmClusterId"] == cluster:
                raise E.CloudHsmClusterInUseException(
                    f"token {token.describe()} already backs custom key store {other['CustomKeyStoreId']} "
                    f"({other['CustomKeyStoreName']})"
                )
        store_id = new_store_id()
        doc: dict[str, Any] = {
            "CustomKeyStoreId": store_id,
            "CustomKeyStoreName": name,
            "CustomKeyStoreType": "AWS_CLOUDHSM",
            "CloudHsmClusterId": cluster,
            "Pkcs11Uri": uri.text(),
            "TokenLabel": token.label,
            "TokenSerial": token.serial,
            "ConnectionState": "DISCONNECTED",
            "CreationDate": self.clock(),
        }
        if TrustAnchorCertificate:
            doc["TrustAnchorCertificate"] = TrustAnchorCertificate
        self._save_store(doc, pin)
        return {"CustomKeyStoreId": store_id}

    def _all_stores(self) -> list[dict[str, Any]]:
        return [self._verify_store_row(*r[1:5]) for r in self.db.query(_SELECT + " ORDER BY rowid")]

    @operation("DescribeCustomKeyStores")
    def describe_custom_key_stores(
        self,
        *,
        CustomKeyStoreId: str | None = None,
        CustomKeyStoreName: str | None = None,
        Limit: int | None = None,
        Marker: str | None = None,
    ) -> dict[str, Any]:
        if CustomKeyStoreId is not None and CustomKeyStoreName is not None:
            raise E.ValidationException("Give CustomKeyStoreId or CustomKeyStoreName, not both")
        limit = self._limit("DescribeCustomKeyStores", Limit)
        after = self._unmarker("DescribeCustomKeyStores", Marker, int) or 0
        if CustomKeyStoreId is not None:
            return {"CustomKeyStores": [self._store_entry(self._store(CustomKeyStoreId))], "Truncated": False}
        if CustomKeyStoreName is not None:
            name = store_name(CustomKeyStoreName, "customKeyStoreName")
            rows = self.db.query(_SELECT + " WHERE name = ?", (name,))
            if not rows:
                raise E.CustomKeyStoreNotFoundException(f"Custom key store '{name}' does not exist in this keyring")
            return {"CustomKeyStores": [self._store_entry(self._verify_store_row(*rows[0][1:5]))], "Truncated": False}
        rows = self.db.query(_SELECT + " WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, limit + 1))
        page = [(r[0], self._verify_store_row(*r[1:5])) for r in rows[:limit]]
        out: dict[str, Any] = {
            "CustomKeyStores": [self._store_entry(d) for _, d in page],
            "Truncated": len(rows) > limit,
        }
        if len(rows) > limit:
            out["NextMarker"] = self._marker("DescribeCustomKeyStores", page[-1][0])
        return out

    def store_by_name_or_id(self, ref: str) -> dict[str, Any]:
        """A store's list entry by its ID or its name (the CLI's NAME|ID), read for
        the client's own use (``internal_reads``). Local to kmsctl."""
        with self.internal_reads():
            if ref.startswith("cks-"):
                out = self.describe_custom_key_stores(CustomKeyStoreId=ref)
            else:
                out = self.describe_custom_key_stores(CustomKeyStoreName=ref)
        found: dict[str, Any] = out["CustomKeyStores"][0]
        return found

    @operation("ConnectCustomKeyStore", writes=True)
    def connect_custom_key_store(self, *, CustomKeyStoreId: str) -> dict[str, Any]:
        """Opens the token with the PIN the store keeps, at once: CONNECTED, or
        FAILED with the ConnectionErrorCode AWS would give (the call itself
        succeeds either way, as AWS's does; DescribeCustomKeyStores tells)."""
        doc = self._store(CustomKeyStoreId)
        state = doc["ConnectionState"]
        if state in ("FAILED", "DISCONNECTING"):
            raise E.CustomKeyStoreInvalidStateException(
                f"Custom key store {doc['CustomKeyStoreId']} is {state}: disconnect it first "
                "(DisconnectCustomKeyStore), then connect it",
            )
        if state == "CONNECTED":
            return {}
        try:
            self._open_store_token(doc)
        except Exception as exc:
            if not is_token_error(exc) or getattr(exc, "exit_code", 0) == 2:  # not installed: not the store's state
                raise
            doc.update(ConnectionState="FAILED", ConnectionErrorCode=CONNECTION_ERRORS[exc.reason])  # type: ignore[attr-defined]
            self._save_store(doc)
            return {}
        doc["ConnectionState"] = "CONNECTED"
        doc.pop("ConnectionErrorCode", None)
        self._save_store(doc)
        return {}

    @operation("DisconnectCustomKeyStore", writes=True)
    def disconnect_custom_key_store(self, *, CustomKeyStoreId: str) -> dict[str, Any]:
        doc = self._store(CustomKeyStoreId)
        if doc["ConnectionState"] in ("DISCONNECTED", "DISCONNECTING"):
            raise E.CustomKeyStoreInvalidStateException(
                f"Custom key store {doc['CustomKeyStoreId']} is {doc['ConnectionState']} already"
            )
        doc["ConnectionState"] = "DISCONNECTED"
        doc.pop("ConnectionErrorCode", None)
        self._save_store(doc)
        return {}

    @operation("UpdateCustomKeyStore", writes=True, unlogged=("KeyStorePassword",))
    def update_custom_key_store(
        self,
        *,
        CustomKeyStoreId: str,
        NewCustomKeyStoreName: str | None = None,
        KeyStorePassword: str | bytes | None = None,
        CloudHsmClusterId: str | None = None,
        XksProxyUriEndpoint: str | None = None,
        XksProxyUriPath: str | None = None,
        XksProxyVpcEndpointServiceName: str | None = None,
        XksProxyVpcEndpointServiceOwner: str | None = None,
        XksProxyAuthenticationCredential: dict[str, str] | None = None,
        XksProxyConnectivity: str | None = None,
    ) -> dict[str, Any]:
        """The name may change while CONNECTED or DISCONNECTED; the PIN only
        while DISCONNECTED, as AWS has it. CloudHsmClusterId may only name the
        store's own token (AWS: a related cluster), else CloudHsmClusterNotRelatedException."""
        doc = self._store(CustomKeyStoreId)
        xks = (XksProxyUriEndpoint, XksProxyUriPath, XksProxyVpcEndpointServiceName, XksProxyVpcEndpointServiceOwner)
        if any(v is not None for v in (*xks, XksProxyAuthenticationCredential, XksProxyConnectivity)):
            raise E.ValidationException("the XksProxy* properties belong to external key stores, not AWS_CLOUDHSM")
        state = doc["ConnectionState"]
        others = KeyStorePassword is not None or CloudHsmClusterId is not None
        if NewCustomKeyStoreName is None and not others:
            raise E.ValidationException("Give at least one of NewCustomKeyStoreName, KeyStorePassword")
        if (others and state != "DISCONNECTED") or state not in ("CONNECTED", "DISCONNECTED"):
            raise E.CustomKeyStoreInvalidStateException(
                f"Custom key store {doc['CustomKeyStoreId']} is {state}: only its name can change while "
                "it is connected; disconnect it first (DisconnectCustomKeyStore)"
            )
        if CloudHsmClusterId is not None and CloudHsmClusterId not in (doc["CloudHsmClusterId"], doc["Pkcs11Uri"]):
            raise E.CloudHsmClusterNotRelatedException(
                f"{CloudHsmClusterId!r} is not the token of custom key store {doc['CustomKeyStoreId']} "
                f"({doc['CloudHsmClusterId']}): a store keeps its token"
            )
        if NewCustomKeyStoreName is not None:
            name = store_name(NewCustomKeyStoreName, "newCustomKeyStoreName")
            self._name_taken(name, doc["CustomKeyStoreId"])
            doc["CustomKeyStoreName"] = name
        self._save_store(doc, store_pin(KeyStorePassword) if KeyStorePassword is not None else None)
        return {}

    @operation("DeleteCustomKeyStore", writes=True)
    def delete_custom_key_store(self, *, CustomKeyStoreId: str) -> dict[str, Any]:
        doc = self._store(CustomKeyStoreId)
        if doc["ConnectionState"] != "DISCONNECTED":
            raise E.CustomKeyStoreInvalidStateException(
                f"Custom key store {doc['CustomKeyStoreId']} is {doc['ConnectionState']}: "
                "disconnect it first (DisconnectCustomKeyStore)"
            )
        keys = self._store_keys(doc["CustomKeyStoreId"])
        if keys:
            raise E.CustomKeyStoreHasCMKsException(
                f"Custom key store {doc['CustomKeyStoreId']} holds {len(keys)} KMS key(s) "
                f"(e.g. {keys[0]}), counting keys pending deletion: schedule their deletion and wait it out"
            )
        self.db.execute("DELETE FROM key_stores WHERE store_id = ?", (doc["CustomKeyStoreId"],))
        return {}

    def _store_keys(self, store_id: str) -> list[str]:
        """The IDs of the keys a store holds, whatever their state: every key
        document that says so, verified (a prefilter on the stored bytes finds
        the candidates; only a verified document counts)."""
        needle = dumps({"CustomKeyStoreId": store_id})[1:-1]  # '"CustomKeyStoreId":"cks-..."'
        rows = self.db.query(
            "SELECT key_id, key_state, key_spec, deletion_date, next_rotation, doc, mac FROM keys "
            "WHERE instr(doc, ?) > 0 ORDER BY seq",
            (needle,),
        )
        out = []
        for key_id, *rest in rows:
            if self._verify_key_row(key_id, *rest).get("CustomKeyStoreId") == store_id:
                out.append(key_id)
        return out
