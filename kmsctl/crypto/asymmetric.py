"""Asymmetric keys, signatures, RSA-OAEP, HMAC, ECDH and ML-KEM under AWS's names.

Key material is kept as AWS hands it out: private keys as DER PKCS#8
(RFC 5958), public keys as DER SubjectPublicKeyInfo (RFC 5280), HMAC keys as
raw bytes. The service layer validates names, lengths and key states; this
module maps AWS's key specs and algorithm names onto the primitives of
``kmsctl.crypto.primitives_pk`` and ``kmsctl.crypto.primitives`` (which alone
call pyca/cryptography), and reports failures with the small exception
classes below so that callers choose the AWS error.
"""

from __future__ import annotations

from kmsctl.crypto import primitives as P
from kmsctl.crypto import primitives_pk as PK
from kmsctl.crypto.primitives import AuthenticationFailed, random_bytes
from kmsctl.crypto.primitives_pk import InvalidKeyData, load_public, public_key_der

__all__ = [
    "HMAC_KEY_SIZES", "MU_SIZE", "RSA_BITS", "AuthenticationFailed", "InvalidKeyData", "NotAvailable",
    "digest_size", "ecdh", "generate_key_pair", "generate_private_key", "hmac", "hmac_verify", "load_public",
    "mlkem_ciphertext_size", "mlkem_decapsulate", "mlkem_encapsulate", "public_key_der", "rsa_decrypt",
    "rsa_encrypt", "rsa_max_plaintext", "sign", "unavailable", "verify",
]  # fmt: skip

RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_CURVES = {
    "ECC_NIST_P256": "secp256r1",
    "ECC_NIST_P384": "secp384r1",
    "ECC_NIST_P521": "secp521r1",
    "ECC_SECG_P256K1": "secp256k1",
}
_MLDSA = {"ML_DSA_44": 44, "ML_DSA_65": 65, "ML_DSA_87": 87}
_MLKEM = {"ML_KEM_512": 512, "ML_KEM_768": 768, "ML_KEM_1024": 1024}
# AWS's HMAC keys are as long as the digest they are named after
HMAC_KEY_SIZES = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
MU_SIZE = 64  # FIPS 204 section 6.2: mu is 64 bytes of SHAKE256


class NotAvailable(Exception):
    """The algorithm exists in AWS but pyca/cryptography offers no way to compute it."""


def _hash(algorithm: str) -> str:
    """RSASSA_PSS_SHA_256 -> "SHA256"; the hash is the algorithm name's tail."""
    for bits in ("1", "224", "256", "384", "512"):
        if algorithm.endswith(f"SHA_{bits}"):
            return f"SHA{bits}"
    raise ValueError(f"no hash in {algorithm}")


def digest_size(algorithm: str) -> int:
    """The DIGEST-mode message length for a signing algorithm: its hash's size (ML-DSA: the 64-byte mu)."""
    if algorithm == "ML_DSA_SHAKE_256":
        return MU_SIZE
    return P.digest_size(_hash(algorithm))


# ----- keys -----
def unavailable(spec: str) -> str | None:
    """Why a key of ``spec`` cannot be made with the installed pyca/cryptography, or None."""
    if spec in _MLKEM and _MLKEM[spec] not in PK.MLKEM:
        offered = ", ".join(f"ML_KEM_{n}" for n in sorted(PK.MLKEM)) or "no ML-KEM at all"
        return (
            f"KeySpec {spec} is not available: pyca/cryptography offers {offered}, and kmsctl implements "
            "no lattice arithmetic of its own"
        )
    return None


def generate_private_key(spec: str) -> bytes:
    """New key material for a KMS key spec: PKCS#8 DER, or raw bytes for HMAC."""
    if spec in HMAC_KEY_SIZES:
        return random_bytes(HMAC_KEY_SIZES[spec])
    return generate_key_pair(spec)[0]


def generate_key_pair(spec: str) -> tuple[bytes, bytes]:
    """-> (private key as DER PKCS#8, public key as DER SPKI)."""
    if spec in RSA_BITS:
        return PK.generate("rsa", RSA_BITS[spec])
    if spec in _CURVES:
        return PK.generate("ec", _CURVES[spec])
    if spec == "ECC_NIST_EDWARDS25519":
        return PK.generate("ed25519")
    if spec in _MLDSA:
        return PK.generate("ml-dsa", _MLDSA[spec])
    if spec in _MLKEM:
        why = unavailable(spec)
        if why:
            raise NotAvailable(why)
        return PK.generate("ml-kem", _MLKEM[spec])
    raise ValueError(f"no key pair generator for {spec}")


# ----- signatures -----
def _scheme(algorithm: str, message_type: str) -> tuple[str, str, bool]:
    """-> (primitives_pk scheme, hash name, prehashed) for a SigningAlgorithmSpec."""
    if algorithm == "ML_DSA_SHAKE_256":
        return (PK.ML_DSA_MU if message_type == "EXTERNAL_MU" else PK.ML_DSA), "", False  # empty context
    if algorithm == "ED25519_SHA_512":
        return PK.ED25519, "", False  # PureEdDSA, RFC 8032
    if algorithm == "ED25519_PH_SHA_512":
        raise NotAvailable(_NO_ED25519PH)
    if algorithm.startswith("ECDSA_"):
        scheme = PK.ECDSA
    elif algorithm.startswith("RSASSA_PSS_"):
        scheme = PK.RSA_PSS  # AWS: MGF1 with the same hash, salt length = digest length
    else:
        scheme = PK.RSA_PKCS1V15
    return scheme, _hash(algorithm), message_type == "DIGEST"


def sign(private_der: bytes, algorithm: str, message_type: str, message: bytes) -> bytes:
    """Sign as AWS KMS does (its signature formats are in README). ``message`` has already been
    checked: RAW 1-4096 bytes, DIGEST the digest size, EXTERNAL_MU 64 bytes."""
    scheme, hash_name, prehashed = _scheme(algorithm, message_type)
    return PK.sign(private_der, scheme, message, hash_name, prehashed)


def verify(private_der: bytes, algorithm: str, message_type: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is valid; a malformed signature is simply invalid."""
    scheme, hash_name, prehashed = _scheme(algorithm, message_type)
    return PK.verify(private_der, scheme, message, signature, hash_name, prehashed)


_NO_ED25519PH = (
    "ED25519_PH_SHA_512 (Ed25519ph, RFC 8032 section 5.1 with the SHA-512 prehash) is not available: "
    "pyca/cryptography offers only PureEdDSA Ed25519, and kmsctl implements no curve arithmetic of its own. "
    "Use ED25519_SHA_512 with MessageType RAW"
)


# ----- RSA-OAEP -----
def rsa_max_plaintext(spec: str, algorithm: str) -> int:
    """k - 2*hLen - 2 (RFC 8017 7.1.1): 190 bytes for RSA_2048 with SHA-256."""
    return RSA_BITS[spec] // 8 - 2 * P.digest_size(_hash(algorithm)) - 2


def rsa_encrypt(private_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    return PK.rsa_oaep_encrypt(private_der, _hash(algorithm), plaintext)


def rsa_decrypt(private_der: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    """Raises ``AuthenticationFailed`` for any ciphertext that does not decrypt."""
    return PK.rsa_oaep_decrypt(private_der, _hash(algorithm), ciphertext)


# ----- HMAC -----
def hmac(key: bytes, algorithm: str, message: bytes) -> bytes:
    """RFC 2104 HMAC; ``algorithm`` is a MacAlgorithmSpec (HMAC_SHA_256)."""
    return P.hmac(key, _hash(algorithm), message)


def hmac_verify(key: bytes, algorithm: str, message: bytes, mac: bytes) -> bool:
    try:
        P.hmac_verify(key, _hash(algorithm), message, mac)  # constant time
    except AuthenticationFailed:
        return False
    return True


# ----- ECDH -----
def ecdh(private_der: bytes, peer_public_der: bytes) -> bytes:
    """The raw ECDH shared secret (the x-coordinate), as AWS DeriveSharedSecret returns it."""
    return PK.ecdh(private_der, peer_public_der)


# ----- ML-KEM -----
def mlkem_ciphertext_size(spec: str) -> int:
    return PK.MLKEM_CIPHERTEXT_SIZE[_MLKEM[spec]]


def mlkem_encapsulate(private_der: bytes) -> tuple[bytes, bytes]:
    """-> (32-byte shared secret, ciphertext), with the key pair's public key."""
    return PK.mlkem_encapsulate(private_der)


def mlkem_decapsulate(private_der: bytes, ciphertext: bytes) -> bytes:
    """The 32-byte shared secret; ``ciphertext`` must have the spec's size
    (``InvalidKeyData`` otherwise). Implicit rejection: any other ciphertext
    of that size gives a pseudo-random secret, never an error."""
    return PK.mlkem_decapsulate(private_der, ciphertext)
