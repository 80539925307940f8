"""New key material for each key spec, as the bytes kmsctl seals into the keyring."""

from __future__ import annotations

from kmsctl.crypto.primitives import random_bytes

SYMMETRIC_KEY_SIZE = 32  # AES-256


def generate(spec: str) -> bytes:
    if spec == "SYMMETRIC_DEFAULT":
        return random_bytes(SYMMETRIC_KEY_SIZE)
    # asymmetric specs: DER PKCS#8; HMAC specs: raw keys of the digest's size
    from kmsctl.crypto import asymmetric

    return asymmetric.generate_private_key(spec)


def unavailable(spec: str) -> str | None:
    """Why the installed pyca/cryptography cannot make a key of ``spec``, or None."""
    if not spec.startswith("ML_KEM_"):
        return None
    from kmsctl.crypto import asymmetric

    return asymmetric.unavailable(spec)
