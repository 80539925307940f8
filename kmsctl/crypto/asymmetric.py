"""Asymmetric keys, signatures, RSA-OAEP, HMAC and ECDH, all from pyca/cryptography.

Key material is kept as AWS hands it out: private keys as DER PKCS#8
(RFC 5958), public keys as DER SubjectPublicKeyInfo (RFC 5280), HMAC keys as
raw bytes. The service layer validates names, lengths and key states; this
module only does the mathematics, and reports failures with the small
exception classes below so that callers choose the AWS error.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils

from kmsctl.crypto.primitives import AuthenticationFailed, random_bytes

RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
RSA_PUBLIC_EXPONENT = 65537
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
_MLDSA: dict[str, Any] = {
    "ML_DSA_44": mldsa.MLDSA44PrivateKey,
    "ML_DSA_65": mldsa.MLDSA65PrivateKey,
    "ML_DSA_87": mldsa.MLDSA87PrivateKey,
}
# AWS's HMAC keys are as long as the digest they are named after
HMAC_KEY_SIZES = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_224": hashes.SHA224,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
MU_SIZE = 64  # FIPS 204 section 6.2: mu is 64 bytes of SHAKE256


class InvalidKeyData(ValueError):
    """Bytes that are not a usable key: malformed DER, another key type, another curve."""


class NotAvailable(Exception):
    """The algorithm exists in AWS but pyca/cryptography offers no way to compute it."""


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    """RSASSA_PSS_SHA_256 -> SHA256(); the hash is the algorithm name's tail."""
    for suffix, cls in _HASHES.items():
        if algorithm.endswith(suffix):
            return cls()
    raise ValueError(f"no hash in {algorithm}")


def digest_size(algorithm: str) -> int:
    """The DIGEST-mode message length for a signing algorithm: its hash's size (ML-DSA: the 64-byte mu)."""
    if algorithm == "ML_DSA_SHAKE_256":
        return MU_SIZE
    return _hash(algorithm).digest_size


# ----- keys -----
def _private_der(key: Any) -> bytes:
    out: bytes = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return out


def _public_der(key: Any) -> bytes:
    out: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return out


def generate_private_key(spec: str) -> bytes:
    """New key material for a KMS key spec: PKCS#8 DER, or raw bytes for HMAC."""
    if spec in HMAC_KEY_SIZES:
        return random_bytes(HMAC_KEY_SIZES[spec])
    return generate_key_pair(spec)[0]


def generate_key_pair(spec: str) -> tuple[bytes, bytes]:
    """-> (private key as DER PKCS#8, public key as DER SPKI)."""
    key: Any
    if spec in RSA_BITS:
        key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_BITS[spec])
    elif spec in _CURVES:
        key = ec.generate_private_key(_CURVES[spec]())
    elif spec == "ECC_NIST_EDWARDS25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif spec in _MLDSA:
        key = _MLDSA[spec].generate()
    else:
        raise ValueError(f"no key pair generator for {spec}")
    return _private_der(key), _public_der(key.public_key())


def load_private(der: bytes) -> Any:
    # The DER comes out of the keyring, where it was sealed (AES-GCM, bound to
    # its key ID) after kmsctl generated it: RSA's consistency checks cost
    # ~0.4 s per RSA_4096 load and would only re-prove what the seal proves.
    return serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)


def public_key_der(private_der: bytes) -> bytes:
    return _public_der(load_private(private_der).public_key())


def load_public(der: bytes) -> Any:
    try:
        return serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyData("not a DER SubjectPublicKeyInfo public key") from exc


# ----- signatures -----
def sign(private_der: bytes, algorithm: str, message_type: str, message: bytes) -> bytes:
    """Sign as AWS KMS does (its signature formats are in README). ``message`` has already been
    checked: RAW 1-4096 bytes, DIGEST the digest size, EXTERNAL_MU 64 bytes."""
    key = load_private(private_der)
    if algorithm == "ML_DSA_SHAKE_256":
        out: bytes = key.sign_mu(message) if message_type == "EXTERNAL_MU" else key.sign(message)  # empty context
        return out
    if algorithm == "ED25519_SHA_512":
        out = key.sign(message)  # PureEdDSA, RFC 8032
        return out
    if algorithm == "ED25519_PH_SHA_512":
        raise NotAvailable(_NO_ED25519PH)
    h = _hash(algorithm)
    alg: Any = utils.Prehashed(h) if message_type == "DIGEST" else h
    if algorithm.startswith("ECDSA_"):
        out = key.sign(message, ec.ECDSA(alg))  # DER SEQUENCE{r, s}
    else:
        out = key.sign(message, _rsa_sign_padding(algorithm, h), alg)
    return out


def verify(private_der: bytes, algorithm: str, message_type: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is valid; a malformed signature is simply invalid."""
    public = load_private(private_der).public_key()
    try:
        if algorithm == "ML_DSA_SHAKE_256":
            if message_type == "EXTERNAL_MU":
                public.verify_mu(signature, message)
            else:
                public.verify(signature, message)
        elif algorithm == "ED25519_SHA_512":
            public.verify(signature, message)
        elif algorithm == "ED25519_PH_SHA_512":
            raise NotAvailable(_NO_ED25519PH)
        else:
            h = _hash(algorithm)
            alg: Any = utils.Prehashed(h) if message_type == "DIGEST" else h
            if algorithm.startswith("ECDSA_"):
                public.verify(signature, message, ec.ECDSA(alg))
            else:
                public.verify(signature, message, _rsa_sign_padding(algorithm, h), alg)
    except (InvalidSignature, ValueError):
        return False
    return True


_NO_ED25519PH = (
    "ED25519_PH_SHA_512 (Ed25519ph, RFC 8032 section 5.1 with the SHA-512 prehash) is not available: "
    "pyca/cryptography offers only PureEdDSA Ed25519, and kmsctl implements no curve arithmetic of its own. "
    "Use ED25519_SHA_512 with MessageType RAW"
)


def _rsa_sign_padding(algorithm: str, h: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        # AWS: MGF1 with the same hash, salt length = digest length (not MAX_LENGTH)
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


# ----- RSA-OAEP -----
def _oaep(algorithm: str) -> padding.OAEP:
    h = _hash(algorithm)
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def rsa_max_plaintext(spec: str, algorithm: str) -> int:
    """k - 2*hLen - 2 (RFC 8017 7.1.1): 190 bytes for RSA_2048 with SHA-256."""
    return RSA_BITS[spec] // 8 - 2 * _hash(algorithm).digest_size - 2


def rsa_encrypt(private_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    out: bytes = load_private(private_der).public_key().encrypt(plaintext, _oaep(algorithm))
    return out


def rsa_decrypt(private_der: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    """Raises ``AuthenticationFailed`` for any ciphertext that does not decrypt."""
    try:
        out: bytes = load_private(private_der).decrypt(ciphertext, _oaep(algorithm))
    except ValueError as exc:
        raise AuthenticationFailed from exc
    return out


# ----- HMAC -----
def hmac(key: bytes, algorithm: str, message: bytes) -> bytes:
    """RFC 2104 HMAC; ``algorithm`` is a MacAlgorithmSpec (HMAC_SHA_256)."""
    h = _hmac.HMAC(key, _hash(algorithm))
    h.update(message)
    return h.finalize()


def hmac_verify(key: bytes, algorithm: str, message: bytes, mac: bytes) -> bool:
    h = _hmac.HMAC(key, _hash(algorithm))
    h.update(message)
    try:
        h.verify(mac)  # constant time
    except InvalidSignature:
        return False
    return True


# ----- ECDH -----
def ecdh(private_der: bytes, peer_public_der: bytes) -> bytes:
    """The raw ECDH shared secret (the x-coordinate), as AWS DeriveSharedSecret returns it."""
    key = load_private(private_der)
    peer = load_public(peer_public_der)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidKeyData("the KMS key is not an elliptic-curve key")
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
        raise InvalidKeyData(f"the public key is not a point on the KMS key's curve ({key.curve.name})")
    return key.exchange(ec.ECDH(), peer)
