"""The keyring header: its format versions, checks, and the wrapping of the
master key (MK) under the passphrase and, in version 2, the PKCS#11 token's
share too. docs/FORMAT.md sections 2 and 5.

Version 1: KEK = Argon2id(passphrase) (32 zero bytes without one).
Version 2 (a "pkcs11" stanza): KEK = HKDF-SHA256(K_pass || S, no salt,
"kmsctl master key v2" 00 || keyring ID), S being the share the token unwraps;
the stanza is bound into MK's AAD, so an edited stanza fails the unwrap.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from kmsctl.crypto import primitives as P
from kmsctl.errors import AccessDeniedException, IntegrityError
from kmsctl.keyring.store import dumps


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


FORMAT = "kmsctl-keyring"
FORMAT_VERSION = 1  # a header without a token
FORMAT_VERSION_TOKEN = 2  # a header with a "pkcs11" stanza (a token as second factor)
READ_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_TOKEN)
TOKEN_MECHANISM = "AES_KEY_WRAP_PAD"  # noqa: S105 - RFC 5649, CKM_AES_KEY_WRAP_PAD (a mechanism name)
# The least Argon2id cost a header may hold (and init or passwd write): below
# it, a header is damage (exit 8), not a wrong passphrase. The ceilings refuse
# a denial of service (16 GiB, 64 passes). kmsctl.config.KDF_BOUNDS says the same.
KDF_FLOOR = {"iterations": 1, "memory_kib": 1024, "lanes": 1}
KDF_CEILING = {"iterations": 64, "memory_kib": 16 << 20, "lanes": 64}
_UNPROTECTED_KEK = bytes(32)

_AAD_MK = b"kmsctl master key v1\x00"
_AAD_MK_TOKEN = b"\x00pkcs11"  # then the stanza's canonical JSON
_INFO_KEK_V2 = b"kmsctl master key v2\x00"  # then the keyring ID


def kdf_problem(kdf: dict[str, Any]) -> str | None:
    """What is wrong with Argon2id parameters (None if they are within the
    floor and the ceilings, and memory is at least 8 KiB a lane)."""
    for name in ("iterations", "memory_kib", "lanes"):
        value = kdf.get(name)
        if type(value) is not int:
            return f"{name} is not a whole number"
        if not KDF_FLOOR[name] <= value <= KDF_CEILING[name]:
            return f"{name} {value} is outside {KDF_FLOOR[name]}..{KDF_CEILING[name]}"
    if kdf["memory_kib"] < 8 * kdf["lanes"]:
        return "memory_kib is less than 8 x lanes"
    return None


def _kpass(header: dict[str, Any], passphrase: bytes | None) -> bytes:
    """K_pass: Argon2id of the passphrase, or 32 zero bytes without one."""
    if not header["protected"]:
        return _UNPROTECTED_KEK
    assert passphrase is not None
    kdf = header["kdf"]
    return P.argon2id(
        passphrase,
        _unb64(kdf["salt"]),
        iterations=kdf["iterations"],
        memory_kib=kdf["memory_kib"],
        lanes=kdf["lanes"],
    )


def token_kek(k_pass: bytes, share: bytes, keyring_id: str) -> bytes:
    """Version 2: KEK = HKDF-SHA256(K_pass || S, no salt, "kmsctl master key v2" 00 || keyring ID)."""
    return P.hkdf(k_pass + share, b"", _INFO_KEK_V2 + keyring_id.encode())


def _final_kek(header: dict[str, Any], k_pass: bytes, share: bytes | None) -> bytes:
    if header.get("pkcs11") is None:
        return k_pass
    if share is None:
        raise AccessDeniedException("the keyring needs its PKCS#11 token to unlock")
    return token_kek(k_pass, share, str(header["keyring_id"]))


def _mk_aad(header: dict[str, Any]) -> bytes:
    kdf = dumps(header.get("kdf") or {})
    aad = _AAD_MK + str(header["keyring_id"]).encode() + (b"\x01" if header["protected"] else b"\x00") + kdf
    if header.get("pkcs11") is not None:  # an edited stanza fails the unwrap
        aad += _AAD_MK_TOKEN + dumps(header["pkcs11"])
    return aad


# enrolment in a token: given the keyring ID, the header's "pkcs11" stanza and the share S
Enrol = Callable[[str], tuple[dict[str, Any], bytes]]


def _wrap_mk(header: dict[str, Any], mk: bytes, k_pass: bytes, share: bytes | None) -> None:
    nonce, wrapped = P.gcm_seal(_final_kek(header, k_pass, share), mk, _mk_aad(header))
    header["master_key"] = {"nonce": _b64(nonce), "wrapped": _b64(wrapped)}


def _checked_header(raw: bytes | None, path: str) -> dict[str, Any]:
    """The header, with every field the code relies on present and sane; the
    MAC is checked once the master key is known. Anything else is damage."""
    damaged = IntegrityError(f"{path}: the keyring header is damaged")
    try:
        header = json.loads(raw or b"")
    except ValueError:
        raise damaged from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise damaged
    version = header.get("version")
    if type(version) is not int or version not in READ_VERSIONS:
        readable = ", ".join(map(str, READ_VERSIONS))
        raise IntegrityError(
            f"{path}: keyring format version {version!r} is not one this kmsctl reads ({readable})",
            hint="upgrade kmsctl",
        )
    strings = ("keyring_id", "region", "account")
    wrap = header.get("master_key")
    ok = all(isinstance(header.get(k), str) for k in strings) and isinstance(header.get("protected"), bool)
    ok = ok and isinstance(wrap, dict) and all(isinstance(wrap.get(k), str) for k in ("nonce", "wrapped"))
    if ok and header["protected"]:
        kdf = header.get("kdf")
        ok = isinstance(kdf, dict) and kdf.get("name") == "argon2id" and isinstance(kdf.get("salt"), str)
        ints = [kdf.get(k) for k in ("iterations", "memory_kib", "lanes")] if ok and isinstance(kdf, dict) else []
        ok = ok and all(type(v) is int for v in ints)
        if ok and isinstance(kdf, dict):
            # below the floor (edited: init and passwd never write it) or above
            # the ceilings (a denial of service): damage, not a wrong passphrase
            problem = kdf_problem(kdf)
            if problem:
                raise IntegrityError(f"{path}: the keyring header is damaged (Argon2id parameters: {problem})")
    stanza = header.get("pkcs11")
    if version == FORMAT_VERSION_TOKEN:
        fields = ("uri", "mechanism", "wrapped_share")
        ok = ok and isinstance(stanza, dict) and all(isinstance(stanza.get(k), str) for k in fields)
        if ok and isinstance(stanza, dict) and stanza["mechanism"] != TOKEN_MECHANISM:
            raise IntegrityError(f"{path}: the keyring header is damaged (token mechanism {stanza['mechanism']!r})")
    elif "pkcs11" in header:  # a version 1 header never has one
        ok = False
    if not ok:
        raise damaged
    return header
