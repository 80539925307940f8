"""The only module that imports ``cryptography.hazmat``: thin, named wrappers.

Everything here comes from pyca/cryptography; kmsctl defines no primitive of
its own. Decryption and MAC failures collapse into one opaque
``AuthenticationFailed`` so that callers cannot leak which check failed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

GCM_NONCE_SIZE = 12  # 96-bit random nonces: at most 2**32 messages per key (SP 800-38D 8.3)
GCM_TAG_SIZE = 16


class AuthenticationFailed(Exception):
    """An AEAD tag or a MAC did not verify."""


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


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


def hkdf_expand(key: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-Expand (RFC 5869) with SHA-256; ``key`` must already be uniformly random."""
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(key)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = _hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def hmac_sha256_verify(key: bytes, data: bytes, tag: bytes) -> None:
    h = _hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    try:
        h.verify(tag)
    except InvalidSignature as exc:
        raise AuthenticationFailed from exc


def argon2id(passphrase: bytes, salt: bytes, *, iterations: int, memory_kib: int, lanes: int) -> bytes:
    """Argon2id (RFC 9106) -> a 32-byte key-encryption key."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    return Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib).derive(passphrase)
