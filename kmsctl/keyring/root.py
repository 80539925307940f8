"""A PKCS#11 token as the keyring's second factor (the root of trust).

Enrolment generates in the token a non-extractable, sensitive AES-256 key
(random CKA_ID) and a random 32-byte share S, kept in the header only as the
token wrapped it (CKM_AES_KEY_WRAP_PAD). The header's "pkcs11" stanza names
the token by its label and serial and the key by its id, so a token with the
same label but another serial, or without that key, does not open the
keyring. kmsctl.keyring.keyring derives the key that wraps the master key
from K_pass and S (docs/FORMAT.md section 2.4).

Every failure to get S is exit 5 (AccessDeniedException) naming the token,
never its PIN; a stanza that is not what kmsctl writes is damage (exit 8).
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kmsctl.crypto import primitives as P
from kmsctl.errors import AccessDeniedException, IntegrityError, KMSError, ValidationException
from kmsctl.keyring.keyring import TOKEN_MECHANISM, Enrol

if TYPE_CHECKING:
    from kmsctl.hsm.token import TokenError
    from kmsctl.hsm.uri import TokenUri
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.keyring.unlock import UnlockSources

LABEL_PREFIX = "kmsctl-root-"
_HINTS = {
    "token": "is the token plugged in and its module configured (for SoftHSM2, SOFTHSM2_CONF)?",
    "pin_incorrect": "check --pin-file, KMSCTL_PKCS11_PIN_FILE or KMSCTL_PKCS11_PIN",
    "pin_locked": "unlock the PIN with the token's own tools (its security officer)",
    "key_missing": "the token's key for this keyring was deleted, or this is another token; restore from a backup",
}


def _denied(exc: TokenError) -> KMSError:
    if exc.exit_code != AccessDeniedException.exit_code:  # python-pkcs11 not installed: exit 2
        return exc
    return AccessDeniedException(f"keyring token: {exc.message}", hint=exc.hint or _HINTS.get(exc.reason))


def enrolment_uri(text: str, sources: UnlockSources, token: str | None = None) -> TokenUri:
    """The URI ``init --pkcs11`` / ``passwd --add-pkcs11`` was given, with the
    module and token filled in from config (pkcs11.module, pkcs11.token)."""
    from kmsctl.hsm import uri as U

    given = U.parse(text)
    if given.id is not None:
        raise ValidationException("PKCS#11 URI: drop id=...: kmsctl generates the token key and its id")
    return U.resolved(given, module=sources.pkcs11_module(), token=token, env=sources.env)


def _pin(uri: TokenUri, sources: UnlockSources) -> bytes:
    from kmsctl.hsm import uri as U

    if sources.pin_file is None and U.pin_file(uri) is not None:
        sources.pin_file = U.pin_file(uri)
    return sources.pin(uri.describe())


def enroller(uri: TokenUri, sources: UnlockSources) -> tuple[Enrol, dict[str, str]]:
    """The enrolment function for kmsctl.keyring.keyring.create / set_token,
    and what it enrolled (label, serial, module: filled once it ran), for the
    audit trail and messages. The PIN is read now, before anything is made."""
    from kmsctl.hsm.token import TokenError, open_token

    pin = _pin(uri, sources)
    done: dict[str, str] = {}

    def enrol(keyring_id: str) -> tuple[dict[str, Any], bytes]:
        try:
            tok = open_token(uri, pin)
            key_id = P.random_bytes(16)
            label = uri.object or LABEL_PREFIX + keyring_id[:12]
            tok.generate_aes_key(label, key_id)
            share = P.random_bytes(32)
            wrapped = tok.wrap(key_id, share)
            if tok.unwrap(key_id, wrapped) != share:  # a token that cannot give it back must not be enrolled
                tok.destroy_key(key_id)
                raise AccessDeniedException(f"token {tok.describe()} does not unwrap what it wrapped")
        except TokenError as exc:
            raise _denied(exc) from None
        except P.AuthenticationFailed:
            raise AccessDeniedException(f"token {uri.describe()} does not unwrap what it wrapped") from None
        stored = replace(uri, token=tok.label, serial=tok.serial, pin_source=None).with_object(label, key_id)
        done.update(Label=tok.label, Serial=tok.serial, Module=str(uri.module_path), Object=label)
        stanza = {
            "uri": stored.text(),
            "mechanism": TOKEN_MECHANISM,
            "wrapped_share": base64.b64encode(wrapped).decode(),
        }
        return stanza, share

    return enrol, done


def stanza_uri(keyring: Keyring) -> TokenUri:
    """The token the header names (damage, exit 8, if it is not a URI kmsctl wrote)."""
    from kmsctl.hsm import uri as U

    stanza = keyring.token_stanza
    try:
        assert stanza is not None
        uri = U.parse(stanza["uri"])
    except (AssertionError, KeyError, TypeError, ValidationException):
        raise IntegrityError(f"{keyring.path}: the keyring header is damaged (its token URI)") from None
    if uri.id is None or uri.serial is None or uri.token is None:
        raise IntegrityError(f"{keyring.path}: the keyring header is damaged (its token URI names no serial or id)")
    return uri


def describe(keyring: Keyring) -> dict[str, str] | None:
    """The token as status shows it (label, serial, module, object), no PIN needed."""
    if keyring.token_stanza is None:
        return None
    uri = stanza_uri(keyring)
    return {"Label": str(uri.token), "Serial": str(uri.serial), "Module": str(uri.module_path), "Uri": uri.text()}


def open_share(keyring: Keyring, sources: UnlockSources) -> bytes:
    """S, unwrapped by the keyring's token: exit 5 naming the token when the
    token is absent, the PIN wrong or locked, or its key gone."""
    from kmsctl.hsm.token import TokenError, open_token

    uri = stanza_uri(keyring)
    stanza = keyring.token_stanza or {}
    try:
        wrapped = base64.b64decode(stanza["wrapped_share"], validate=True)
    except (KeyError, ValueError):
        raise IntegrityError(f"{keyring.path}: the keyring header is damaged (its wrapped token share)") from None
    module = sources.pkcs11_module()
    if module:  # the module may live elsewhere on this machine
        uri = replace(uri, module_path=module)
    if not uri.module_path:
        raise AccessDeniedException(f"keyring token {uri.describe()}: no PKCS#11 module", hint="set pkcs11.module")
    pin = _pin(uri, sources)
    try:
        tok = open_token(uri, pin)
        assert uri.id is not None
        return tok.unwrap(uri.id, wrapped)
    except TokenError as exc:
        raise _denied(exc) from None
    except P.AuthenticationFailed:
        raise AccessDeniedException(
            f"keyring token {uri.describe()}: its key does not unwrap this keyring's share",
            hint="another token, or an edited header",
        ) from None
