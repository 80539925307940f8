"""Symmetric primitives: thin, named wrappers over pyca/cryptography.

This module and ``kmsctl.crypto.primitives_pk`` (public-key primitives, kept
apart because they cost ~35 ms to import) are the only modules of kmsctl that
import ``cryptography``; tests/test_architecture.py keeps it so. Everything
here comes from pyca/cryptography; kmsctl defines no primitive of its own.
Decryption and MAC failures collapse into one opaque ``AuthenticationFailed``
so that callers cannot leak which check failed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

GCM_NONCE_SIZE = 12  # 96-bit random nonces: at most 2**32 messages per key (SP 800-38D 8.3)
GCM_TAG_SIZE = 16
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1,
    "SHA224": hashes.SHA224,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


class AuthenticationFailed(Exception):
    """An AEAD tag or a MAC did not verify."""


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """``"SHA256"`` -> ``hashes.SHA256()``; for the public-key primitives."""
    return _HASHES[name]()


def digest_size(name: str) -> int:
    return hash_algorithm(name).digest_size


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data`` (an unkeyed checksum: a request body, a backup file)."""
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def bytes_eq(a: bytes, b: bytes) -> bool:
    """Constant-time comparison (imported late: it loads the standard library's hmac)."""
    from cryptography.hazmat.primitives import constant_time

    return constant_time.bytes_eq(a, b)


# ----- AES-256-GCM -----
def gcm_seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> tuple[bytes, bytes]:
    """AES-GCM encrypt; returns (nonce, ciphertext || tag)."""
    if nonce is None:
        nonce = os.urandom(GCM_NONCE_SIZE)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, sealed, aad)
    except (InvalidTag, ValueError) as exc:
        raise AuthenticationFailed from exc


class Gcm:
    """One AES-GCM key schedule for many messages (the chunks of a sealed
    file), encrypting and decrypting into caller-owned buffers."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt_into(self, nonce: bytes, data: memoryview, aad: bytes | None, out: memoryview) -> None:
        self._aead.encrypt_into(nonce, data, aad, out)

    def decrypt_into(self, nonce: bytes, data: memoryview, aad: bytes | None, out: memoryview) -> None:
        try:
            self._aead.decrypt_into(nonce, data, aad, out)
        except InvalidTag:
            raise AuthenticationFailed from None

    def opens(self, nonce: bytes, data: bytes, aad: bytes | None = None) -> bool:
        """Whether ``data`` authenticates, its plaintext thrown away."""
        try:
            self._aead.decrypt(nonce, data, aad)
        except (InvalidTag, ValueError):
            return False
        return True


# ----- key derivation -----
def hkdf_expand(key: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-Expand (RFC 5869) with SHA-256; ``key`` must already be uniformly random."""
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(key)


def hkdf(key: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """Full HKDF (RFC 5869, Extract then Expand) with SHA-256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def argon2id(passphrase: bytes, salt: bytes, *, iterations: int, memory_kib: int, lanes: int) -> bytes:
    """Argon2id (RFC 9106) -> a 32-byte key-encryption key."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    return Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib).derive(passphrase)


# ----- HMAC (RFC 2104) -----
def hmac(key: bytes, hash_name: str, data: bytes) -> bytes:
    h = _hmac.HMAC(key, _HASHES[hash_name]())
    h.update(data)
    return h.finalize()


def hmac_verify(key: bytes, hash_name: str, data: bytes, tag: bytes) -> None:
    """Constant time; raises ``AuthenticationFailed`` when ``tag`` is wrong."""
    h = _hmac.HMAC(key, _HASHES[hash_name]())
    h.update(data)
    try:
        h.verify(tag)
    except InvalidSignature as exc:
        raise AuthenticationFailed from exc


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac(key, "SHA256", data)


def hmac_sha256_verify(key: bytes, data: bytes, tag: bytes) -> None:
    hmac_verify(key, "SHA256", data, tag)


# ----- AES Key Wrap with Padding (RFC 5649) -----
def aes_key_unwrap_padded(kek: bytes, wrapped: bytes) -> bytes:
    """RFC 5649 unwrap (the alternative IV A65959A6 and the length it carries);
    raises ``AuthenticationFailed`` for anything that does not unwrap."""
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

    try:
        return aes_key_unwrap_with_padding(kek, wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise AuthenticationFailed from exc


def aes_key_wrap_padded(kek: bytes, key: bytes) -> bytes:
    """RFC 5649 wrap (for tests and tools that make wrapped material)."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    return aes_key_wrap_with_padding(kek, key)
