"""One logged-in session on one PKCS#11 token, through python-pkcs11.

python-pkcs11 is imported inside the functions here only (the extra
``kmsctl[pkcs11]``): the CLI's start-up never loads it. A process keeps one
session per (module, token serial), opened by ``open_token`` and closed at
exit or by ``close_all``; a token's user is logged in once per process, so a
second login with a wrong PIN would not be noticed by the token: a different
PIN closes the cached session and logs in afresh.

Errors are ``TokenError``, one line naming the token (never the PIN), with a
``reason`` the callers map to their contract: the root of trust to exit 5,
the custom key stores to AWS's ConnectionErrorCode.
"""

from __future__ import annotations

import atexit
import hmac
import os
from contextlib import suppress
from typing import Any

from kmsctl.errors import KMSError
from kmsctl.hsm.uri import TokenUri

INSTALL_HINT = "pip install 'kmsctl[pkcs11]'"
REASONS = frozenset({"module", "token", "pin_incorrect", "pin_locked", "key_missing", "device"})


class TokenError(KMSError):
    """A token could not be used; ``reason`` says why (one of REASONS)."""

    exit_code = 5

    def __init__(self, message: str, *, reason: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message, hint=hint)
        assert reason in REASONS, reason
        self.reason = reason
        if exit_code is not None:
            self.exit_code = exit_code


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise TokenError(
            "PKCS#11 support is not installed (python-pkcs11)", reason="module", hint=INSTALL_HINT, exit_code=2
        ) from None
    return pkcs11


class Token:
    """One logged-in session on one token. Keys are found by CKA_ID."""

    def __init__(self, uri: TokenUri, session: Any, label: str, serial: str, pin_digest: bytes) -> None:
        self.uri = uri
        self.label = label
        self.serial = serial
        self._session = session
        self._pin_digest = pin_digest
        self._pid = os.getpid()

    def describe(self) -> str:
        return f"{self.label!r} (serial {self.serial})"

    def _device_error(self, exc: Exception, doing: str) -> TokenError:
        name = type(exc).__name__
        if name in ("PinIncorrect", "PinLocked", "UserNotLoggedIn"):
            return TokenError(f"token {self.describe()}: not logged in ({doing})", reason="pin_incorrect")
        return TokenError(f"token {self.describe()} failed while {doing} ({name})", reason="device")

    def _key(self, key_id: bytes) -> Any:
        p = _pkcs11()
        try:
            found = list(
                self._session.get_objects({p.Attribute.CLASS: p.ObjectClass.SECRET_KEY, p.Attribute.ID: key_id})
            )
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "looking for a key") from None
        if len(found) != 1:
            what = "no key" if not found else f"{len(found)} keys"
            raise TokenError(
                f"token {self.describe()} has {what} with id {key_id.hex()} (removed, or another token)",
                reason="key_missing",
            )
        return found[0]

    def generate_aes_key(self, label: str, key_id: bytes) -> None:
        """An AES-256 key kept in the token: sensitive, never extractable."""
        p = _pkcs11()
        a = p.Attribute
        template = {
            a.TOKEN: True,
            a.SENSITIVE: True,
            a.EXTRACTABLE: False,
            a.PRIVATE: True,
            a.ENCRYPT: True,
            a.DECRYPT: True,
            a.WRAP: True,
            a.UNWRAP: True,
        }
        try:
            self._session.generate_key(p.KeyType.AES, 256, id=key_id, label=label, store=True, template=template)
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "generating a key") from None

    def has_key(self, key_id: bytes) -> bool:
        try:
            self._key(key_id)
        except TokenError as exc:
            if exc.reason == "key_missing":
                return False
            raise
        return True

    def destroy_key(self, key_id: bytes) -> None:
        if not self.has_key(key_id):
            return
        p = _pkcs11()
        try:
            self._key(key_id).destroy()
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "destroying a key") from None

    def wrap(self, key_id: bytes, secret: bytes) -> bytes:
        """CKM_AES_KEY_WRAP_PAD (RFC 5649) of ``secret`` under the token key:
        the secret enters the token as a session-only generic secret."""
        p = _pkcs11()
        a = p.Attribute
        kek = self._key(key_id)
        obj = None
        try:
            obj = self._session.create_object(
                {
                    a.CLASS: p.ObjectClass.SECRET_KEY,
                    a.KEY_TYPE: p.KeyType.GENERIC_SECRET,
                    a.VALUE: secret,
                    a.TOKEN: False,
                    a.EXTRACTABLE: True,
                    a.SENSITIVE: False,
                }
            )
            return bytes(kek.wrap_key(obj, mechanism=p.Mechanism.AES_KEY_WRAP_PAD))
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "wrapping") from None
        finally:
            if obj is not None:
                obj.destroy()

    def unwrap(self, key_id: bytes, wrapped: bytes) -> bytes:
        """The secret ``wrap`` wrapped: unwrapped into a session-only,
        extractable generic secret (SoftHSM has no C_Decrypt for KWP), read,
        destroyed. A wrapped value this key did not make: AuthenticationFailed."""
        from kmsctl.crypto.primitives import AuthenticationFailed

        p = _pkcs11()
        a = p.Attribute
        kek = self._key(key_id)
        try:
            obj = kek.unwrap_key(
                p.ObjectClass.SECRET_KEY,
                p.KeyType.GENERIC_SECRET,
                wrapped,
                mechanism=p.Mechanism.AES_KEY_WRAP_PAD,
                store=False,
                template={a.EXTRACTABLE: True, a.SENSITIVE: False, a.TOKEN: False},
            )
        except (p.exceptions.WrappedKeyInvalid, p.exceptions.WrappedKeyLenRange, p.exceptions.EncryptedDataInvalid):
            raise AuthenticationFailed from None
        except p.exceptions.GeneralError:  # SoftHSM's answer to a failed integrity check
            raise AuthenticationFailed from None
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "unwrapping") from None
        try:
            return bytes(obj[a.VALUE])
        finally:
            obj.destroy()

    def _gcm(self, nonce: bytes, aad: bytes) -> Any:
        p = _pkcs11()
        return p.mechanisms.GCMParams(nonce, aad, 128)

    def gcm_encrypt(self, key_id: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM in the token: ciphertext || 16-byte tag."""
        p = _pkcs11()
        key = self._key(key_id)
        try:
            return bytes(key.encrypt(plaintext, mechanism=p.Mechanism.AES_GCM, mechanism_param=self._gcm(nonce, aad)))
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "encrypting") from None

    def gcm_decrypt(self, key_id: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        """The inverse; a wrong tag (or AAD, or key) raises AuthenticationFailed, as local GCM does."""
        from kmsctl.crypto.primitives import AuthenticationFailed

        p = _pkcs11()
        key = self._key(key_id)
        try:
            return bytes(key.decrypt(data, mechanism=p.Mechanism.AES_GCM, mechanism_param=self._gcm(nonce, aad)))
        except (
            p.exceptions.EncryptedDataInvalid,
            p.exceptions.EncryptedDataLenRange,
            p.exceptions.GeneralError,  # SoftHSM 2.6 on a wrong tag
        ):
            raise AuthenticationFailed from None
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "decrypting") from None

    def attributes(self, key_id: bytes) -> dict[str, bool]:
        p = _pkcs11()
        a = p.Attribute
        key = self._key(key_id)
        try:
            return {
                "extractable": bool(key[a.EXTRACTABLE]),
                "sensitive": bool(key[a.SENSITIVE]),
                "token": bool(key[a.TOKEN]),
            }
        except p.exceptions.PKCS11Error as exc:
            raise self._device_error(exc, "reading attributes") from None

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._pid == os.getpid():
            with suppress(Exception):  # closing at exit: the token may be gone already
                session.close()


_OPEN: dict[tuple[str, str], Token] = {}
_LOADED: set[str] = set()  # modules this process initialised (C_Initialize)
_ATEXIT = False


def _find_token(lib: Any, uri: TokenUri, module: str) -> Any:
    p = _pkcs11()
    found = []
    for slot in lib.get_slots(token_present=True):
        tok = slot.get_token()
        if not tok.flags & p.TokenFlag.TOKEN_INITIALIZED:
            continue
        serial = (
            tok.serial.decode(errors="replace").strip() if isinstance(tok.serial, bytes) else str(tok.serial).strip()
        )
        checks = (
            (uri.token, tok.label.strip()),
            (uri.serial, serial),
            (uri.manufacturer, tok.manufacturer_id.strip()),
            (uri.model, tok.model.strip()),
        )
        if all(want is None or want == have for want, have in checks):
            found.append((tok, serial))
    if not found:
        raise TokenError(f"no token {_wanted(uri)} (module {module})", reason="token")
    if len(found) > 1:
        raise TokenError(
            f"{len(found)} tokens match {_wanted(uri)} (module {module})",
            reason="token",
            hint="name one with serial=... in the URI",
        )
    return found[0]


def _wanted(uri: TokenUri) -> str:
    parts = [f"labelled {uri.token!r}"] if uri.token is not None else []
    parts += [
        f"{k} {v!r}" for k, v in (("serial", uri.serial), ("manufacturer", uri.manufacturer), ("model", uri.model)) if v
    ]
    return " ".join(parts) or "at all"


def open_token(uri: TokenUri, pin: bytes) -> Token:
    """The logged-in session on the token ``uri`` names (its module_path must be set)."""
    global _ATEXIT
    p = _pkcs11()
    module = uri.module_path
    if not module:
        raise TokenError("no PKCS#11 module given", reason="module", exit_code=2)
    if not os.path.isfile(module):
        raise TokenError(f"PKCS#11 module {module} cannot be loaded (no such file)", reason="module")
    try:
        lib = p.lib(module)
        _LOADED.add(module)
    except p.exceptions.PKCS11Error as exc:
        raise TokenError(f"PKCS#11 module {module} cannot be loaded ({type(exc).__name__})", reason="module") from None
    try:
        tok, serial = _find_token(lib, uri, module)
    except p.exceptions.PKCS11Error as exc:
        raise TokenError(
            f"PKCS#11 module {module} failed listing its tokens ({type(exc).__name__})", reason="device"
        ) from None
    label = tok.label.strip()
    digest = hmac.digest(b"kmsctl pin cache", pin, "sha256")
    key = (module, serial)
    cached = _OPEN.get(key)
    if cached is not None and cached._pid == os.getpid():
        if hmac.compare_digest(cached._pin_digest, digest):
            return cached
        cached.close()  # a different PIN: log in again, so that the token judges it
    _OPEN.pop(key, None)
    name = f"{label!r} (serial {serial})"
    try:
        session = tok.open(user_pin=pin.decode(errors="surrogateescape"), rw=True)
    except p.exceptions.PinIncorrect:
        raise TokenError(f"wrong PIN for token {name}", reason="pin_incorrect") from None
    except p.exceptions.PinLocked:
        raise TokenError(f"the PIN of token {name} is locked (too many wrong tries)", reason="pin_locked") from None
    except (p.exceptions.PinInvalid, p.exceptions.PinLenRange):
        raise TokenError(f"wrong PIN for token {name} (not a valid PIN)", reason="pin_incorrect") from None
    except (p.exceptions.TokenNotPresent, p.exceptions.DeviceRemoved):
        raise TokenError(f"token {name} was removed", reason="token") from None
    except p.exceptions.PKCS11Error as exc:
        raise TokenError(f"token {name} refused a session ({type(exc).__name__})", reason="device") from None
    token = Token(uri, session, label, serial, digest)
    _OPEN[key] = token
    if not _ATEXIT:
        atexit.register(close_all)
        _ATEXIT = True
    return token


def close_all() -> None:
    """Close every session this process opened, then finalise the modules
    (C_Finalize): the next open_token loads them afresh, and a module reads
    its configuration then (SoftHSM2: SOFTHSM2_CONF)."""
    while _OPEN:
        _, token = _OPEN.popitem()
        token.close()
    if not _LOADED:
        return
    import pkcs11

    while _LOADED:
        with suppress(Exception):  # a module that will not finalise is left to the process exit
            pkcs11.unload(_LOADED.pop())
