"""The values of custom key stores (kmsctl.service.keystores): their IDs,
names and PINs as AWS checks them, the synthetic CloudHsmClusterId of a
token, and what a token's failure is as AWS's ConnectionErrorCode."""

from __future__ import annotations

from typing import Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl.crypto import primitives as P

# the operations on custom key stores: account-level IAM actions, as AWS has them (no key policy)
STORE_OPS = frozenset(
    [f"{verb}CustomKeyStore" for verb in ("Create", "Connect", "Disconnect", "Update", "Delete")]
    + ["DescribeCustomKeyStores"]
)
PIN_MAX = 255  # bytes; AWS's KeyStorePassword is 7..32 characters, a token judges its own PINs
B32 = "abcdefghijklmnopqrstuvwxyz234567"
# TokenError.reason -> the ConnectionErrorCode AWS would report
CONNECTION_ERRORS = {
    "module": "CLUSTER_NOT_FOUND",
    "token": "CLUSTER_NOT_FOUND",
    "pin_incorrect": "INVALID_CREDENTIALS",
    "pin_locked": "USER_LOCKED_OUT",
    "key_missing": "INTERNAL_ERROR",
    "device": "NETWORK_ERRORS",
}
# what each ConnectionErrorCode means here (the CLI's explanation of a FAILED store)
ERROR_MEANINGS = {
    "CLUSTER_NOT_FOUND": "the token or its PKCS#11 module was not found",
    "INVALID_CREDENTIALS": "the token refused the PIN the store keeps",
    "USER_LOCKED_OUT": "the token's PIN is locked (too many wrong tries)",
    "NETWORK_ERRORS": "the token failed to open a session",
    "INTERNAL_ERROR": "the token failed",
}


def cluster_id(label: str, serial: str) -> str:
    """The stable synthetic CloudHsmClusterId of a token: ``cluster-`` and 16
    characters of base32 (a-z, 2-7) of SHA-256("kmsctl cluster v1" 0x00 label
    0x00 serial), which fits AWS's pattern cluster-[2-7a-zA-Z]{11,16}."""
    digest = P.sha256(b"kmsctl cluster v1\x00" + label.encode() + b"\x00" + serial.encode())
    return "cluster-" + "".join(B32[b % 32] for b in digest[:16])


def new_store_id() -> str:
    return "cks-" + P.random_bytes(9).hex()[:17]


def store_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= model.CUSTOM_KEY_STORE_NAME_MAX:
        raise E.validation_error(
            value, field, f"Member must have length between 1 and {model.CUSTOM_KEY_STORE_NAME_MAX}"
        )
    return value


def store_pin(value: Any) -> bytes:
    """KeyStorePassword: text (the wire) or bytes (a PIN file), 1..255 bytes."""
    if isinstance(value, str):
        try:
            value = value.encode()
        except UnicodeEncodeError:
            raise E.ValidationException("KeyStorePassword is not valid Unicode text") from None
    if not isinstance(value, (bytes, bytearray)) or not 1 <= len(value) <= PIN_MAX:
        raise E.ValidationException(
            f"1 validation error detected: Value at 'keyStorePassword' failed to satisfy constraint: "
            f"Member must have length between 1 and {PIN_MAX}"
        )
    return bytes(value)


def is_token_error(exc: Exception) -> bool:
    from kmsctl.hsm.token import TokenError

    return isinstance(exc, TokenError)


def pct(label: str) -> str:
    """A token label as an RFC 7512 path attribute value."""
    from urllib.parse import quote

    return quote(label, safe="")
