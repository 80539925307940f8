"""Public-key primitives: thin, named wrappers over pyca/cryptography.

With ``kmsctl.crypto.primitives`` the only modules that import
``cryptography``. Keys travel as bytes: private keys DER PKCS#8 (RFC 5958),
public keys DER SubjectPublicKeyInfo (RFC 5280). The names here are the
mathematics' (RSA-PSS, ECDSA, ML-KEM); ``kmsctl.crypto.asymmetric`` maps AWS's
key specs and algorithm names onto them.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa, utils

from kmsctl.crypto.primitives import AuthenticationFailed, hash_algorithm

RSA_PUBLIC_EXPONENT = 65537
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "secp256k1": ec.SECP256K1,
}
_MLDSA: dict[int, Any] = {44: mldsa.MLDSA44PrivateKey, 65: mldsa.MLDSA65PrivateKey, 87: mldsa.MLDSA87PrivateKey}
# ML-KEM parameter sets the installed pyca/cryptography offers (512 is absent
# from every release so far)
MLKEM: dict[int, Any] = {
    level: getattr(mlkem, f"MLKEM{level}PrivateKey")
    for level in (512, 768, 1024)
    if hasattr(mlkem, f"MLKEM{level}PrivateKey")
}
# FIPS 203 table 3: the ciphertext size of each parameter set
MLKEM_CIPHERTEXT_SIZE = {512: 768, 768: 1088, 1024: 1568}
# schemes for sign() and verify()
RSA_PSS, RSA_PKCS1V15, ECDSA, ED25519, ML_DSA, ML_DSA_MU = (
    "rsa-pss",
    "rsa-pkcs1v15",
    "ecdsa",
    "ed25519",
    "ml-dsa",
    "ml-dsa-mu",
)


class InvalidKeyData(ValueError):
    """Bytes that are not a usable key: malformed DER, another key type, another curve."""


# ----- keys -----
def _private_der(key: Any) -> bytes:
    out: bytes = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return out


def _public_der(key: Any) -> bytes:
    out: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return out


def generate(kind: str, size: int | str = 0) -> tuple[bytes, bytes]:
    """A new key pair -> (private DER PKCS#8, public DER SPKI). ``kind``: "rsa"
    (size = bits), "ec" (size = curve name), "ed25519", "ml-dsa" / "ml-kem"
    (size = parameter set: 44/65/87, 768/1024)."""
    key: Any
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=int(size))
    elif kind == "ec":
        key = ec.generate_private_key(_CURVES[str(size)]())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ml-dsa":
        key = _MLDSA[int(size)].generate()
    elif kind == "ml-kem":
        key = MLKEM[int(size)].generate()
    else:
        raise ValueError(f"no key pair generator for {kind}")
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
def _rsa_padding(scheme: str, hash_name: str) -> padding.AsymmetricPadding:
    if scheme == RSA_PSS:
        h = hash_algorithm(hash_name)
        # MGF1 with the same hash, salt as long as the digest (not MAX_LENGTH)
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


def _hash_arg(hash_name: str, prehashed: bool) -> Any:
    h = hash_algorithm(hash_name)
    return utils.Prehashed(h) if prehashed else h


def sign(private_der: bytes, scheme: str, message: bytes, hash_name: str = "", prehashed: bool = False) -> bytes:
    """RSA (PSS or PKCS#1 v1.5), ECDSA (DER SEQUENCE{r, s}), PureEdDSA
    Ed25519 (RFC 8032), ML-DSA with an empty context, or ML-DSA over a given mu."""
    key = load_private(private_der)
    out: bytes
    if scheme == ML_DSA_MU:
        out = key.sign_mu(message)
    elif scheme in (ML_DSA, ED25519):
        out = key.sign(message)
    elif scheme == ECDSA:
        out = key.sign(message, ec.ECDSA(_hash_arg(hash_name, prehashed)))
    else:
        out = key.sign(message, _rsa_padding(scheme, hash_name), _hash_arg(hash_name, prehashed))
    return out


def verify(
    private_der: bytes, scheme: str, message: bytes, signature: bytes, hash_name: str = "", prehashed: bool = False
) -> bool:
    """True when ``signature`` is valid; a malformed signature is simply invalid."""
    public = load_private(private_der).public_key()
    try:
        if scheme == ML_DSA_MU:
            public.verify_mu(signature, message)
        elif scheme in (ML_DSA, ED25519):
            public.verify(signature, message)
        elif scheme == ECDSA:
            public.verify(signature, message, ec.ECDSA(_hash_arg(hash_name, prehashed)))
        else:
            public.verify(signature, message, _rsa_padding(scheme, hash_name), _hash_arg(hash_name, prehashed))
    except (InvalidSignature, ValueError):
        return False
    return True


# ----- RSA-OAEP (RFC 8017 7.1) -----
def _oaep(hash_name: str) -> padding.OAEP:
    h = hash_algorithm(hash_name)
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def rsa_oaep_encrypt(private_der: bytes, hash_name: str, plaintext: bytes) -> bytes:
    out: bytes = load_private(private_der).public_key().encrypt(plaintext, _oaep(hash_name))
    return out


def rsa_oaep_decrypt(private_der: bytes, hash_name: str, ciphertext: bytes) -> bytes:
    """Raises ``AuthenticationFailed`` for any ciphertext that does not decrypt."""
    try:
        out: bytes = load_private(private_der).decrypt(ciphertext, _oaep(hash_name))
    except ValueError as exc:
        raise AuthenticationFailed from exc
    return out


# ----- ECDH -----
def ecdh(private_der: bytes, peer_public_der: bytes) -> bytes:
    """The raw ECDH shared secret (the x-coordinate)."""
    key = load_private(private_der)
    peer = load_public(peer_public_der)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidKeyData("the KMS key is not an elliptic-curve key")
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
        raise InvalidKeyData(f"the public key is not a point on the KMS key's curve ({key.curve.name})")
    return key.exchange(ec.ECDH(), peer)


# ----- ML-KEM (FIPS 203) -----
def mlkem_encapsulate(private_der: bytes) -> tuple[bytes, bytes]:
    """Encapsulate to the key pair's public key -> (shared secret, ciphertext)."""
    secret, ciphertext = load_private(private_der).public_key().encapsulate()
    return bytes(secret), bytes(ciphertext)


def mlkem_decapsulate(private_der: bytes, ciphertext: bytes) -> bytes:
    """The shared secret; a ciphertext of the right size that was altered or made
    for another key gives a pseudo-random secret (implicit rejection). A wrong
    size raises ``InvalidKeyData``."""
    try:
        return bytes(load_private(private_der).decapsulate(ciphertext))
    except ValueError as exc:
        raise InvalidKeyData(str(exc)) from None


# ----- keys brought in from outside (imported material, seed files) -----
def rsa_modulus_bytes(private_der: bytes) -> int:
    key = load_private(private_der)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidKeyData("not an RSA key")
    return int((key.key_size + 7) // 8)


def describe_private(der: bytes) -> tuple[str, str | int, bytes]:
    """An outside PKCS#8 DER private key, fully validated (RSA's consistency
    checks included) -> (kind, size, canonical DER PKCS#8): ("rsa", bits) or
    ("ec", curve name). ``InvalidKeyData`` for anything else."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyData("not an unencrypted DER PKCS#8 private key") from exc
    return _describe(key)


def private_pem_to_der(pem: bytes) -> tuple[str, str | int, bytes]:
    """A PEM private key (PKCS#8 "PRIVATE KEY", SEC 1 "EC PRIVATE KEY" or PKCS#1
    "RSA PRIVATE KEY", unencrypted) -> as ``describe_private``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyData("not an unencrypted PEM private key") from exc
    return _describe(key)


def _describe(key: Any) -> tuple[str, str | int, bytes]:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa", key.key_size, _private_der(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec", key.curve.name, _private_der(key)
    raise InvalidKeyData("neither an RSA nor an elliptic-curve private key")


def public_pem(public_der: bytes) -> bytes:
    """A DER SubjectPublicKeyInfo as PEM."""
    out: bytes = load_public(public_der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return out
