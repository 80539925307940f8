"""Asymmetric keys, signatures, RSA-OAEP, HMAC, data key pairs, public keys
and ECDH: the service (LocalKMS) first, then the command line.

Expensive keys (RSA_4096 takes about a second to make) are made once per
module in a shared keyring; tests that change a key's state make their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as std_hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, FakeClock, make_keyring
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kmsctl import errors as E
from kmsctl import model
from kmsctl.crypto import keygen
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

# SM2 (China Regions only) and specs the installed pyca/cryptography lacks (ML_KEM_512) are refused
REFUSED = {"SM2"} | {s for s in model.SPEC_USAGES if keygen.unavailable(s)}
ASYMMETRIC = [s for s in model.SPEC_USAGES if s not in {"SYMMETRIC_DEFAULT", *REFUSED} and not s.startswith("HMAC")]
PAIRS = [(s, u) for s in model.SPEC_USAGES if s not in REFUSED for u in model.SPEC_USAGES[s]]
SIGN_SPECS = [s for s in ASYMMETRIC if "SIGN_VERIFY" in model.SPEC_USAGES[s]]
HMAC_SPECS = ["HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"]
MLDSA_SIZES = {"ML_DSA_44": (1312, 2420), "ML_DSA_65": (1952, 3309), "ML_DSA_87": (2592, 4627)}
# AWS's maximum RSA-OAEP plaintext: the modulus length less 2 hash lengths and 2 bytes
OAEP_LIMITS = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214,
    ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
    ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470,
    ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}
MSG = b"release 1.2.3\n"


class Shared:
    def __init__(self, kms: LocalKMS) -> None:
        self.kms = kms
        self._keys: dict[tuple[str, str], str] = {}

    def key(self, spec: str, usage: str | None = None) -> str:
        usage = usage or next(iter(model.SPEC_USAGES[spec]))
        if (spec, usage) not in self._keys:
            self._keys[spec, usage] = new_key(self.kms, spec, usage)
        return self._keys[spec, usage]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    home = make_keyring(tmp_path_factory.mktemp("asymmetric") / "home")
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    yield Shared(LocalKMS(keyring, clock=FakeClock()))
    keyring.close()


def new_key(kms: Any, spec: str, usage: str | None = None) -> str:
    args = {"KeySpec": spec} if usage is None else {"KeySpec": spec, "KeyUsage": usage}
    return str(kms.create_key(**args)["KeyMetadata"]["KeyId"])


def raises(exc: type[E.KMSError], fn: Any, **kwargs: Any) -> E.KMSError:
    """Exactly ``exc``, never a bare Python error."""
    with pytest.raises(exc) as info:
        fn(**kwargs)
    assert type(info.value) is exc
    return info.value


def digest(algorithm: str, message: bytes) -> bytes:
    return hashlib.new("sha" + algorithm.rsplit("_", 1)[1], message).digest()


def message_types(algorithm: str) -> list[str]:
    if algorithm == "ED25519_SHA_512":
        return ["RAW"]
    if algorithm == "ML_DSA_SHAKE_256":
        return ["RAW", "EXTERNAL_MU"]
    return ["RAW", "DIGEST"]


def mu(spki: bytes, spec: str, message: bytes) -> bytes:
    """FIPS 204 external mu with an empty context, from hashlib alone."""
    pk = spki[-MLDSA_SIZES[spec][0] :]  # the SPKI's BIT STRING holds the raw key at its end
    tr = hashlib.shake_256(pk).digest(64)
    return hashlib.shake_256(tr + b"\x00\x00" + message).digest(64)


def as_message(kms: Any, key: str, spec: str, algorithm: str, message_type: str, message: bytes) -> bytes:
    if message_type == "DIGEST":
        return digest(algorithm, message)
    if message_type == "EXTERNAL_MU":
        return mu(kms.get_public_key(KeyId=key)["PublicKey"], spec, message)
    return message


# ----- CreateKey and DescribeKey -----
@pytest.mark.parametrize(("spec", "usage"), PAIRS)
def test_every_spec_and_usage_reports_awss_algorithms(shared: Shared, spec: str, usage: str) -> None:
    md = shared.kms.describe_key(KeyId=shared.key(spec, usage))["KeyMetadata"]
    assert (md["KeySpec"], md["KeyUsage"], md["KeyState"]) == (spec, usage, "Enabled")
    field = model.ALGORITHM_FIELD[usage]
    assert md[field] == list(model.SPEC_USAGES[spec][usage])
    assert not {f for f in model.ALGORITHM_FIELD.values() if f != field} & set(md)
    assert ("CustomerMasterKeySpec" in md) == (spec not in model.NO_CMK_SPEC)


def test_reported_lists_match_aws() -> None:
    sign = {s: model.SPEC_USAGES[s]["SIGN_VERIFY"] for s in SIGN_SPECS}
    assert sign["ECC_NIST_P521"] == ("ECDSA_SHA_512",)
    assert sign["ECC_SECG_P256K1"] == ("ECDSA_SHA_256",)
    assert sign["ECC_NIST_EDWARDS25519"] == ("ED25519_SHA_512", "ED25519_PH_SHA_512")
    assert sign["ML_DSA_65"] == ("ML_DSA_SHAKE_256",)
    assert len(sign["RSA_3072"]) == 6
    assert model.SPEC_USAGES["RSA_4096"]["ENCRYPT_DECRYPT"] == ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


@pytest.mark.parametrize("spec", [s for s in model.SPEC_USAGES if s not in REFUSED])
def test_invalid_spec_usage_pairs_are_refused(kms: Any, spec: str) -> None:
    for usage in set(model.KEY_USAGES) - set(model.SPEC_USAGES[spec]):
        err = raises(E.ValidationException, kms.create_key, KeySpec=spec, KeyUsage=usage)
        assert spec in err.message and err.exit_code == 2
    if spec != "SYMMETRIC_DEFAULT":
        assert "KeyUsage is required" in raises(E.ValidationException, kms.create_key, KeySpec=spec).message


def test_sm2_is_refused_clearly(kms: Any) -> None:
    for usage in model.SPEC_USAGES["SM2"]:
        err = raises(E.UnsupportedOperationException, kms.create_key, KeySpec="SM2", KeyUsage=usage)
        assert "China" in err.message
    sym = new_key(kms, "SYMMETRIC_DEFAULT")
    err = raises(E.UnsupportedOperationException, kms.generate_data_key_pair, KeyId=sym, KeyPairSpec="SM2")
    assert "China" in err.message


def test_hmac_keys_have_the_digest_size(shared: Shared) -> None:
    for spec, size in zip(HMAC_SPECS, (28, 32, 48, 64), strict=True):
        key = shared.kms.describe_key(KeyId=shared.key(spec))["KeyMetadata"]
        doc = shared.kms._key(key["KeyId"])
        assert len(shared.kms._key_secret(doc)) == size


# ----- Sign and Verify -----
@pytest.mark.parametrize("spec", SIGN_SPECS)
def test_sign_and_verify_every_algorithm_and_message_type(shared: Shared, spec: str) -> None:
    kms, key = shared.kms, shared.key(spec, "SIGN_VERIFY")
    for alg in model.SPEC_USAGES[spec]["SIGN_VERIFY"]:
        if alg == "ED25519_PH_SHA_512":
            continue  # not computable with pyca/cryptography: test_ed25519ph_is_refused
        for mt in message_types(alg):
            message = as_message(kms, key, spec, alg, mt, MSG)
            out = kms.sign(KeyId=key, Message=message, MessageType=mt, SigningAlgorithm=alg)
            assert out["KeyId"] == kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
            assert out["SigningAlgorithm"] == alg
            sig = out["Signature"]
            # the message and its digest (or mu) are the same message, whichever was signed
            for vt in message_types(alg):
                vmsg = as_message(kms, key, spec, alg, vt, MSG)
                ok = kms.verify(KeyId=key, Message=vmsg, MessageType=vt, Signature=sig, SigningAlgorithm=alg)
                assert ok == {"KeyId": out["KeyId"], "SignatureValid": True, "SigningAlgorithm": alg}
            tampered = as_message(kms, key, spec, alg, mt, MSG + b"!")
            err = raises(
                E.KMSInvalidSignatureException,
                kms.verify,
                KeyId=key,
                Message=tampered,
                MessageType=mt,
                Signature=sig,
                SigningAlgorithm=alg,
            )
            assert err.exit_code == 1
            bad = sig[:-1] + bytes([sig[-1] ^ 1])
            raises(
                E.KMSInvalidSignatureException,
                kms.verify,
                KeyId=key,
                Message=message,
                MessageType=mt,
                Signature=bad,
                SigningAlgorithm=alg,
            )


def test_signature_formats(shared: Shared) -> None:
    kms = shared.kms
    for spec, alg, max_len in [("ECC_NIST_P256", "ECDSA_SHA_256", 72), ("ECC_NIST_P521", "ECDSA_SHA_512", 139)]:
        sig = kms.sign(KeyId=shared.key(spec), Message=MSG, SigningAlgorithm=alg)["Signature"]
        assert sig[0] == 0x30 and len(sig) <= max_len  # DER SEQUENCE{r, s}, not r||s
    ed = kms.sign(KeyId=shared.key("ECC_NIST_EDWARDS25519"), Message=MSG, SigningAlgorithm="ED25519_SHA_512")
    assert len(ed["Signature"]) == 64
    rsa_key = shared.key("RSA_3072", "SIGN_VERIFY")
    one, two = (
        kms.sign(KeyId=rsa_key, Message=MSG, SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_384")["Signature"]
        for _ in range(2)
    )
    assert one == two and len(one) == 384  # deterministic, as long as the modulus
    for spec, (_, size) in MLDSA_SIZES.items():
        sig = kms.sign(KeyId=shared.key(spec), Message=MSG, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
        assert len(sig) == size


@pytest.mark.parametrize("alg", ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512"])
def test_pss_salt_length_is_the_digest_length(shared: Shared, alg: str) -> None:
    kms, key = shared.kms, shared.key("RSA_2048", "SIGN_VERIFY")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    sig = kms.sign(KeyId=key, Message=MSG, SigningAlgorithm=alg)["Signature"]
    h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[-3:]]
    public.verify(sig, MSG, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    with pytest.raises(InvalidSignature):
        public.verify(sig, MSG, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size + 1), h)


def test_ed25519_pairings_and_ed25519ph(shared: Shared) -> None:
    kms, key = shared.kms, shared.key("ECC_NIST_EDWARDS25519")
    d = hashlib.sha512(MSG).digest()
    err = raises(
        E.ValidationException, kms.sign, KeyId=key, Message=d, MessageType="DIGEST", SigningAlgorithm="ED25519_SHA_512"
    )
    assert "RAW" in err.message
    err = raises(E.ValidationException, kms.sign, KeyId=key, Message=MSG, SigningAlgorithm="ED25519_PH_SHA_512")
    assert "DIGEST" in err.message
    raises(
        E.ValidationException,
        kms.sign,
        KeyId=key,
        Message=d[:32],
        MessageType="DIGEST",
        SigningAlgorithm="ED25519_PH_SHA_512",
    )
    # Ed25519ph: pyca/cryptography has only PureEdDSA, and kmsctl invents no curve arithmetic
    err = raises(
        E.UnsupportedOperationException,
        kms.sign,
        KeyId=key,
        Message=d,
        MessageType="DIGEST",
        SigningAlgorithm="ED25519_PH_SHA_512",
    )
    assert "Ed25519ph" in err.message and err.exit_code == 4
    raises(E.UnsupportedOperationException, kms.verify, KeyId=key, Message=d, MessageType="DIGEST",
           Signature=b"\0" * 64, SigningAlgorithm="ED25519_PH_SHA_512")  # fmt: skip


@pytest.mark.parametrize("spec", list(MLDSA_SIZES))
def test_ml_dsa_external_mu_equals_raw(shared: Shared, spec: str) -> None:
    kms, key = shared.kms, shared.key(spec)
    spki = kms.get_public_key(KeyId=key)["PublicKey"]
    m = mu(spki, spec, MSG)
    alg = "ML_DSA_SHAKE_256"
    by_mu = kms.sign(KeyId=key, Message=m, MessageType="EXTERNAL_MU", SigningAlgorithm=alg)["Signature"]
    assert kms.verify(KeyId=key, Message=MSG, Signature=by_mu, SigningAlgorithm=alg)["SignatureValid"]
    raw = kms.sign(KeyId=key, Message=MSG, SigningAlgorithm=alg)["Signature"]
    assert kms.verify(KeyId=key, Message=m, MessageType="EXTERNAL_MU", Signature=raw, SigningAlgorithm=alg)
    for bad in (m[:32], m + b"\0"):
        raises(E.ValidationException, kms.sign, KeyId=key, Message=bad, MessageType="EXTERNAL_MU", SigningAlgorithm=alg)
    err = raises(E.ValidationException, kms.sign, KeyId=key, Message=m, MessageType="DIGEST", SigningAlgorithm=alg)
    assert "EXTERNAL_MU" in err.message


def test_external_mu_is_ml_dsa_only(shared: Shared) -> None:
    key = shared.key("ECC_NIST_P384")
    err = raises(E.ValidationException, shared.kms.sign, KeyId=key, Message=b"m" * 64, MessageType="EXTERNAL_MU",
                 SigningAlgorithm="ECDSA_SHA_384")  # fmt: skip
    assert "ML_DSA" in err.message


def test_message_lengths(shared: Shared) -> None:
    kms, key = shared.kms, shared.key("ECC_NIST_P256")
    alg = "ECDSA_SHA_256"
    assert kms.sign(KeyId=key, Message=b"x" * 4096, SigningAlgorithm=alg)["Signature"]
    for message in (b"", b"x" * 4097):
        assert raises(E.ValidationException, kms.sign, KeyId=key, Message=message, SigningAlgorithm=alg).exit_code == 2
    for n in (31, 33, 64):
        err = raises(
            E.ValidationException, kms.sign, KeyId=key, Message=b"d" * n, MessageType="DIGEST", SigningAlgorithm=alg
        )
        assert "Digest is invalid length" in err.message
        raises(E.ValidationException, kms.verify, KeyId=key, Message=b"d" * n, MessageType="DIGEST",
               Signature=b"\x30\x00", SigningAlgorithm=alg)  # fmt: skip
    raises(E.ValidationException, kms.sign, KeyId=key, Message=MSG, MessageType="HASHED", SigningAlgorithm=alg)
    raises(E.ValidationException, kms.sign, KeyId=key, Message=MSG, SigningAlgorithm="ECDSA_SHA_1")
    raises(E.ValidationException, kms.verify, KeyId=key, Message=MSG, Signature=b"", SigningAlgorithm=alg)


def test_malformed_signatures_just_do_not_verify(shared: Shared) -> None:
    for spec in ("ECC_NIST_P256", "RSA_2048", "ECC_NIST_EDWARDS25519", "ML_DSA_44"):
        key = shared.key(spec, "SIGN_VERIFY")
        alg = model.SPEC_USAGES[spec]["SIGN_VERIFY"][0]
        for sig in (b"\x00", b"\x30\x03\x02\x01\x00", b"\xff" * 700):
            raises(E.KMSInvalidSignatureException, shared.kms.verify, KeyId=key, Message=MSG, Signature=sig,
                   SigningAlgorithm=alg)  # fmt: skip


# ----- usage, algorithm and state errors -----
def test_wrong_usage(shared: Shared) -> None:
    kms = shared.kms
    rsa_enc, rsa_sign = shared.key("RSA_2048", "ENCRYPT_DECRYPT"), shared.key("RSA_2048", "SIGN_VERIFY")
    hmac_key, sym = shared.key("HMAC_256"), shared.key("SYMMETRIC_DEFAULT")
    ecdh_key, p256 = shared.key("ECC_NIST_P256", "KEY_AGREEMENT"), shared.key("ECC_NIST_P256", "SIGN_VERIFY")
    peer = kms.get_public_key(KeyId=ecdh_key)["PublicKey"]
    cases: list[tuple[Any, dict[str, Any]]] = [
        (kms.sign, {"KeyId": rsa_enc, "Message": MSG, "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
        (kms.verify, {"KeyId": sym, "Message": MSG, "Signature": b"s", "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
        (kms.sign, {"KeyId": hmac_key, "Message": MSG, "SigningAlgorithm": "ECDSA_SHA_256"}),
        (kms.encrypt, {"KeyId": rsa_sign, "Plaintext": MSG, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        (kms.generate_mac, {"KeyId": p256, "Message": MSG, "MacAlgorithm": "HMAC_SHA_256"}),
        (kms.verify_mac, {"KeyId": sym, "Message": MSG, "Mac": b"m", "MacAlgorithm": "HMAC_SHA_256"}),
        (kms.derive_shared_secret, {"KeyId": p256, "KeyAgreementAlgorithm": "ECDH", "PublicKey": peer}),
        (kms.generate_data_key, {"KeyId": rsa_enc, "KeySpec": "AES_256"}),
        (kms.generate_data_key_pair, {"KeyId": rsa_enc, "KeyPairSpec": "ECC_NIST_P256"}),
        (kms.generate_data_key_pair_without_plaintext, {"KeyId": hmac_key, "KeyPairSpec": "RSA_2048"}),
    ]
    for fn, kwargs in cases:
        assert raises(E.InvalidKeyUsageException, fn, **kwargs).exit_code == 2
    for key in (sym, hmac_key):
        assert raises(E.UnsupportedOperationException, kms.get_public_key, KeyId=key).exit_code == 4


def test_wrong_algorithm_for_the_key(shared: Shared) -> None:
    kms = shared.kms
    cases = [
        ("ECC_NIST_P256", "ECDSA_SHA_384"),
        ("ECC_NIST_P256", "RSASSA_PSS_SHA_256"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_512"),
        ("RSA_2048", "ECDSA_SHA_256"),
        ("ECC_NIST_EDWARDS25519", "ML_DSA_SHAKE_256"),
        ("ML_DSA_44", "ED25519_SHA_512"),
        ("RSA_2048", "SM2DSA"),
    ]
    for spec, alg in cases:
        key = shared.key(spec, "SIGN_VERIFY")
        err = raises(E.InvalidKeyUsageException, kms.sign, KeyId=key, Message=MSG, SigningAlgorithm=alg)
        assert alg in err.message
    mac = shared.key("HMAC_256")
    raises(E.InvalidKeyUsageException, kms.generate_mac, KeyId=mac, Message=MSG, MacAlgorithm="HMAC_SHA_512")
    enc = shared.key("RSA_2048", "ENCRYPT_DECRYPT")
    raises(E.InvalidKeyUsageException, kms.encrypt, KeyId=enc, Plaintext=MSG, EncryptionAlgorithm="SYMMETRIC_DEFAULT")
    raises(E.InvalidKeyUsageException, kms.encrypt, KeyId=enc, Plaintext=MSG)  # AWS: required for RSA keys
    sym = shared.key("SYMMETRIC_DEFAULT")
    raises(E.InvalidKeyUsageException, kms.encrypt, KeyId=sym, Plaintext=MSG, EncryptionAlgorithm="RSAES_OAEP_SHA_1")


def test_disabled_and_pending_deletion_keys(kms: Any) -> None:
    keys = {
        "sign": new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY"),
        "mac": new_key(kms, "HMAC_384", "GENERATE_VERIFY_MAC"),
        "ecdh": new_key(kms, "ECC_NIST_P384", "KEY_AGREEMENT"),
        "rsa": new_key(kms, "RSA_2048", "ENCRYPT_DECRYPT"),
    }
    peer = kms.get_public_key(KeyId=keys["ecdh"])["PublicKey"]
    sig = kms.sign(KeyId=keys["sign"], Message=MSG, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    ct = kms.encrypt(KeyId=keys["rsa"], Plaintext=MSG, EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    calls: list[tuple[Any, dict[str, Any]]] = [
        (kms.sign, {"KeyId": keys["sign"], "Message": MSG, "SigningAlgorithm": "ECDSA_SHA_256"}),
        (kms.verify, {"KeyId": keys["sign"], "Message": MSG, "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"}),
        (kms.get_public_key, {"KeyId": keys["sign"]}),
        (kms.generate_mac, {"KeyId": keys["mac"], "Message": MSG, "MacAlgorithm": "HMAC_SHA_384"}),
        (kms.verify_mac, {"KeyId": keys["mac"], "Message": MSG, "Mac": b"m", "MacAlgorithm": "HMAC_SHA_384"}),
        (kms.derive_shared_secret, {"KeyId": keys["ecdh"], "KeyAgreementAlgorithm": "ECDH", "PublicKey": peer}),
        (kms.encrypt, {"KeyId": keys["rsa"], "Plaintext": MSG, "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}),
        (kms.decrypt, {"KeyId": keys["rsa"], "CiphertextBlob": ct, "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}),
    ]
    for key in keys.values():
        kms.disable_key(KeyId=key)
    for fn, kwargs in calls:
        err = raises(E.DisabledException, fn, **kwargs)
        assert err.exit_code == 4 and "is disabled" in err.message
    for key in keys.values():
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    for fn, kwargs in calls:
        assert "pending deletion" in raises(E.KMSInvalidStateException, fn, **kwargs).message


def test_dry_run(shared: Shared) -> None:
    kms = shared.kms
    key = shared.key("ECC_NIST_P256")
    raises(E.DryRunOperationException, kms.sign, KeyId=key, Message=MSG, SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
    sym = shared.key("SYMMETRIC_DEFAULT")
    raises(E.DryRunOperationException, kms.generate_data_key_pair, KeyId=sym, KeyPairSpec="RSA_4096", DryRun=True)


# ----- RSA encryption -----
@pytest.mark.parametrize(("spec", "alg"), list(OAEP_LIMITS))
def test_rsa_oaep_round_trip_and_plaintext_limit(shared: Shared, spec: str, alg: str) -> None:
    kms, key = shared.kms, shared.key(spec, "ENCRYPT_DECRYPT")
    limit = OAEP_LIMITS[spec, alg]
    out = kms.encrypt(KeyId=key, Plaintext=b"p" * limit, EncryptionAlgorithm=alg)
    assert out["EncryptionAlgorithm"] == alg and len(out["CiphertextBlob"]) == model_bytes(spec)
    back = kms.decrypt(KeyId=key, CiphertextBlob=out["CiphertextBlob"], EncryptionAlgorithm=alg)
    assert back == {"KeyId": out["KeyId"], "Plaintext": b"p" * limit, "EncryptionAlgorithm": alg}
    err = raises(E.ValidationException, kms.encrypt, KeyId=key, Plaintext=b"p" * (limit + 1), EncryptionAlgorithm=alg)
    assert str(limit) in err.message


def model_bytes(spec: str) -> int:
    return int(spec.split("_")[1]) // 8


def test_rsa_decrypt_rules(shared: Shared) -> None:
    kms, key = shared.kms, shared.key("RSA_2048", "ENCRYPT_DECRYPT")
    ct = kms.encrypt(KeyId=key, Plaintext=MSG, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    raises(E.ValidationException, kms.decrypt, CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    raises(
        E.InvalidCiphertextException, kms.decrypt, KeyId=key, CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_1"
    )
    raises(
        E.InvalidCiphertextException,
        kms.decrypt,
        KeyId=key,
        CiphertextBlob=ct[:-1],
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    raises(
        E.InvalidCiphertextException,
        kms.decrypt,
        KeyId=key,
        CiphertextBlob=flipped,
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    for fn, kwargs in [
        (kms.encrypt, {"KeyId": key, "Plaintext": MSG, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        (kms.decrypt, {"KeyId": key, "CiphertextBlob": ct, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    ]:
        err = raises(E.ValidationException, fn, **kwargs, EncryptionContext={"a": "b"})
        assert "encryption context" in err.message and err.exit_code == 2
    # raw RSA ciphertext decrypts with the public key's owner even when made elsewhere
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    h = hashes.SHA256()
    outside = public.encrypt(b"from outside", padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    out = kms.decrypt(KeyId=key, CiphertextBlob=outside, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["Plaintext"] == b"from outside"


def test_re_encrypt_between_symmetric_and_rsa(shared: Shared) -> None:
    kms = shared.kms
    sym, rsa_key = shared.key("SYMMETRIC_DEFAULT"), shared.key("RSA_3072", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(KeyId=sym, Plaintext=MSG, EncryptionContext={"k": "v"})["CiphertextBlob"]
    to_rsa = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"k": "v"}, DestinationKeyId=rsa_key,
                            DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")  # fmt: skip
    assert (to_rsa["SourceEncryptionAlgorithm"], to_rsa["DestinationEncryptionAlgorithm"]) == (
        "SYMMETRIC_DEFAULT",
        "RSAES_OAEP_SHA_256",
    )
    assert "SourceKeyMaterialId" in to_rsa and "DestinationKeyMaterialId" not in to_rsa
    back = kms.re_encrypt(CiphertextBlob=to_rsa["CiphertextBlob"], SourceKeyId=rsa_key,
                          SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=sym,
                          DestinationEncryptionContext={"n": "2"})  # fmt: skip
    assert "SourceKeyMaterialId" not in back and back["DestinationKeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=back["CiphertextBlob"], EncryptionContext={"n": "2"})["Plaintext"] == MSG
    other = shared.key("RSA_2048", "ENCRYPT_DECRYPT")
    rsa_to_rsa = kms.re_encrypt(CiphertextBlob=to_rsa["CiphertextBlob"], SourceKeyId=rsa_key,
                                SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=other,
                                DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")  # fmt: skip
    plain = kms.decrypt(
        KeyId=other, CiphertextBlob=rsa_to_rsa["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_1"
    )
    assert plain["Plaintext"] == MSG
    raises(E.ValidationException, kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"k": "v"},
           DestinationKeyId=rsa_key, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1",
           DestinationEncryptionContext={"a": "b"})  # fmt: skip
    raises(E.InvalidKeyUsageException, kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"k": "v"},
           DestinationKeyId=rsa_key)  # fmt: skip
    raises(E.ValidationException, kms.re_encrypt, CiphertextBlob=to_rsa["CiphertextBlob"],
           SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=sym)  # fmt: skip


# ----- HMAC -----
@pytest.mark.parametrize("spec", HMAC_SPECS)
def test_hmac_matches_rfc_2104(shared: Shared, spec: str) -> None:
    kms, key = shared.kms, shared.key(spec)
    alg = model.SPEC_USAGES[spec]["GENERATE_VERIFY_MAC"][0]
    out = kms.generate_mac(KeyId=key, Message=MSG, MacAlgorithm=alg)
    secret = kms._key_secret(kms._key(key))
    assert out["Mac"] == std_hmac.new(secret, MSG, "sha" + alg.rsplit("_", 1)[1]).digest()
    assert out["MacAlgorithm"] == alg and out["KeyId"].endswith(key)
    ok = kms.verify_mac(KeyId=key, Message=MSG, Mac=out["Mac"], MacAlgorithm=alg)
    assert ok == {"KeyId": out["KeyId"], "MacValid": True, "MacAlgorithm": alg}
    for message, mac in ((MSG + b"!", out["Mac"]), (MSG, out["Mac"][:-1]), (MSG, bytes(len(out["Mac"])))):
        err = raises(E.KMSInvalidMacException, kms.verify_mac, KeyId=key, Message=message, Mac=mac, MacAlgorithm=alg)
        assert err.exit_code == 1


# ----- GetPublicKey, data key pairs, ECDH -----
@pytest.mark.parametrize("spec", ASYMMETRIC)
def test_get_public_key(shared: Shared, spec: str) -> None:
    usage = next(iter(model.SPEC_USAGES[spec]))
    out = shared.kms.get_public_key(KeyId=shared.key(spec, usage))
    expected = ["KeyId", "PublicKey", "CustomerMasterKeySpec", "KeySpec", "KeyUsage", model.ALGORITHM_FIELD[usage]]
    if spec in model.NO_CMK_SPEC:
        expected.remove("CustomerMasterKeySpec")
    assert list(out) == expected
    assert out[model.ALGORITHM_FIELD[usage]] == list(model.SPEC_USAGES[spec][usage])
    der = out["PublicKey"]
    assert der[0] == 0x30 and len(der) <= 8192
    if spec in MLDSA_SIZES:  # id-ml-dsa-44/65/87: 2.16.840.1.101.3.4.3.17/18/19
        oid = bytes.fromhex("06096086480165030403") + bytes([{"44": 0x11, "65": 0x12, "87": 0x13}[spec[-2:]]])
        assert oid in der and len(der) == MLDSA_SIZES[spec][0] + 22
    else:
        serialization.load_der_public_key(der)


@pytest.mark.parametrize("spec", [s for s in model.DATA_KEY_PAIR_SPECS if s not in REFUSED])
def test_data_key_pairs(shared: Shared, spec: str) -> None:
    kms, sym = shared.kms, shared.key("SYMMETRIC_DEFAULT")
    out = kms.generate_data_key_pair(KeyId=sym, KeyPairSpec=spec, EncryptionContext={"use": "tls"})
    assert set(out) == {"PrivateKeyCiphertextBlob", "PrivateKeyPlaintext", "PublicKey", "KeyId", "KeyPairSpec",
                        "KeyMaterialId"}  # fmt: skip
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public == out["PublicKey"]
    back = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext={"use": "tls"})
    assert back["Plaintext"] == out["PrivateKeyPlaintext"]
    raises(E.InvalidCiphertextException, kms.decrypt, CiphertextBlob=out["PrivateKeyCiphertextBlob"])
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=sym, KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in bare and bare["KeyPairSpec"] == spec


def test_data_key_pair_specs_are_awss(shared: Shared) -> None:
    sym = shared.key("SYMMETRIC_DEFAULT")
    for spec in ("ML_DSA_44", "HMAC_256", "SYMMETRIC_DEFAULT"):
        raises(E.ValidationException, shared.kms.generate_data_key_pair, KeyId=sym, KeyPairSpec=spec)


@pytest.mark.parametrize(("spec", "size"), [("ECC_NIST_P256", 32), ("ECC_NIST_P384", 48), ("ECC_NIST_P521", 66)])
def test_derive_shared_secret(shared: Shared, spec: str, size: int) -> None:
    kms = shared.kms
    a, b = shared.key(spec, "KEY_AGREEMENT"), new_key(kms, spec, "KEY_AGREEMENT")
    pa, pb = (kms.get_public_key(KeyId=k)["PublicKey"] for k in (a, b))
    ab = kms.derive_shared_secret(KeyId=a, KeyAgreementAlgorithm="ECDH", PublicKey=pb)
    ba = kms.derive_shared_secret(KeyId=b, KeyAgreementAlgorithm="ECDH", PublicKey=pa)
    assert ab["SharedSecret"] == ba["SharedSecret"] and len(ab["SharedSecret"]) == size
    assert (ab["KeyAgreementAlgorithm"], ab["KeyOrigin"]) == ("ECDH", "AWS_KMS")
    # an outside key pair agrees too
    curve = {"ECC_NIST_P256": ec.SECP256R1(), "ECC_NIST_P384": ec.SECP384R1(), "ECC_NIST_P521": ec.SECP521R1()}[spec]
    outside = ec.generate_private_key(curve)
    peer_der = outside.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mine = kms.derive_shared_secret(KeyId=a, KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)["SharedSecret"]
    public_a = serialization.load_der_public_key(pa)
    assert isinstance(public_a, ec.EllipticCurvePublicKey)
    assert mine == outside.exchange(ec.ECDH(), public_a)


def test_derive_shared_secret_rejects_bad_peers(shared: Shared) -> None:
    kms, key = shared.kms, shared.key("ECC_NIST_P256", "KEY_AGREEMENT")
    other_curve = kms.get_public_key(KeyId=shared.key("ECC_NIST_P384", "KEY_AGREEMENT"))["PublicKey"]
    rsa_pub = kms.get_public_key(KeyId=shared.key("RSA_2048", "SIGN_VERIFY"))["PublicKey"]
    for peer in (other_curve, rsa_pub, b"\x30\x03garbage"):
        err = raises(
            E.ValidationException, kms.derive_shared_secret, KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=peer
        )
        assert err.exit_code == 2
    good = kms.get_public_key(KeyId=key)["PublicKey"]
    raises(E.ValidationException, kms.derive_shared_secret, KeyId=key, KeyAgreementAlgorithm="DH", PublicKey=good)


# ----- the command line -----
def write(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def create(cli: Any, spec: str, usage: str | None = None, alias: str | None = None) -> str:
    args = ["-o", "text", "create", "--key-spec", spec]
    args += ["--key-usage", usage] if usage else []
    args += ["--alias", alias] if alias else []
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    return str(r.stdout.strip())


def test_cli_sign_verify_round_trip(cli: Any, tmp_path: Path) -> None:
    for spec in ("ECC_NIST_P256", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "RSA_2048"):
        key = create(cli, spec, "SIGN_VERIFY")
        sig = cli("sign", "-k", key, input=MSG)
        assert sig.exit_code == 0, sig.stderr
        path = write(tmp_path, "sig", sig.stdout_bytes)
        ok = cli("-o", "text", "verify", "-k", key, "--signature", path, input=MSG)
        assert ok.exit_code == 0 and ok.stdout.split("\t")[0] == "true", ok.stderr
        b64 = write(tmp_path, "sig.b64", base64.b64encode(sig.stdout_bytes) + b"\n")
        assert cli("verify", "-k", key, "--signature", b64, input=MSG).exit_code == 0
        bad = cli("verify", "-k", key, "--signature", path, input=MSG + b"!")
        assert bad.exit_code == 1 and "KMSInvalidSignatureException" in bad.stderr
        flipped = write(tmp_path, "bad.sig", sig.stdout_bytes[:-1] + bytes([sig.stdout_bytes[-1] ^ 1]))
        assert cli("verify", "-k", key, "--signature", flipped, input=MSG).exit_code == 1


def test_cli_digest_and_json(cli: Any, tmp_path: Path) -> None:
    key = create(cli, "ECC_NIST_P384", "SIGN_VERIFY", alias="alias/p384")
    d = hashlib.sha384(MSG).digest()
    r = cli("-o", "json", "sign", "-k", "alias/p384", "--message-type", "DIGEST", input=d)
    out = json.loads(r.stdout)
    assert set(out) == {"KeyId", "Signature", "SigningAlgorithm"} and out["SigningAlgorithm"] == "ECDSA_SHA_384"
    path = write(tmp_path, "sig", base64.b64decode(out["Signature"]))
    v = cli("-o", "json", "verify", "-k", key, "--signature", path, input=MSG)
    assert json.loads(v.stdout)["SignatureValid"] is True
    assert cli("sign", "-k", key, "--message-type", "DIGEST", input=d[:-1]).exit_code == 2


def test_cli_negative_exit_codes(cli: Any, tmp_path: Path) -> None:
    p256 = create(cli, "ECC_NIST_P256", "SIGN_VERIFY")
    rsa_enc = create(cli, "RSA_2048", "ENCRYPT_DECRYPT")

    def code(*args: str, input: bytes = MSG) -> tuple[int, str]:
        r = cli(*args, input=input)
        return r.exit_code, r.stderr

    assert code("sign", "-k", p256, "--message-type", "DIGEST", input=b"d" * 31)[0] == 2  # wrong digest length
    assert code("sign", "-k", p256, input=b"m" * 4097)[0] == 2  # oversized RAW message
    assert code("encrypt", "-k", rsa_enc, input=b"p" * 215)[0] == 2  # oversized RSA plaintext (214 with SHA-1)
    assert code("encrypt", "-k", rsa_enc, "--algorithm", "RSAES_OAEP_SHA_256", input=b"p" * 191)[0] == 2
    rc, err = code("encrypt", "-k", rsa_enc, "-c", "a=b")  # encryption context on an RSA key
    assert rc == 2 and "ValidationException" in err
    rc, err = code("sign", "-k", rsa_enc)  # wrong usage
    assert rc == 2 and "InvalidKeyUsageException" in err
    rc, err = code("sign", "-k", p256, "--algorithm", "ECDSA_SHA_512")  # wrong algorithm for the key
    assert rc == 2 and "InvalidKeyUsageException" in err
    rc, err = code("create", "--key-spec", "ECC_SECG_P256K1", "--key-usage", "KEY_AGREEMENT")  # invalid pair
    assert rc == 2 and "ValidationException" in err
    rc, err = code("create", "--key-spec", "SM2", "--key-usage", "SIGN_VERIFY")
    assert rc == 4 and "China" in err
    assert cli("disable", p256).exit_code == 0
    rc, err = code("sign", "-k", p256)  # disabled key
    assert rc == 4 and "DisabledException" in err
    rc, err = code("public-key", p256)
    assert rc == 4


def test_cli_rsa_encrypt_decrypt_and_re_encrypt(cli: Any) -> None:
    rsa_key = create(cli, "RSA_2048", "ENCRYPT_DECRYPT", alias="alias/rsa")
    create(cli, "SYMMETRIC_DEFAULT", alias="alias/sym")
    ct = cli("encrypt", "-k", "alias/rsa", input=b"secret").stdout_bytes  # default: RSAES_OAEP_SHA_1
    assert len(ct) == 256
    assert cli("decrypt", "-k", rsa_key, input=ct).stdout_bytes == b"secret"
    wrong = cli("decrypt", "-k", rsa_key, "--algorithm", "RSAES_OAEP_SHA_256", input=ct)
    assert wrong.exit_code == 6
    no_key = cli("decrypt", input=ct)
    assert no_key.exit_code == 6 and "KeyId" in no_key.stderr
    sym_blob = cli("re-encrypt", "-k", "alias/sym", "--source-key", "alias/rsa", input=ct).stdout_bytes
    assert cli("decrypt", input=sym_blob).stdout_bytes == b"secret"
    rsa_again = cli("re-encrypt", "-k", "alias/rsa", "--algorithm", "RSAES_OAEP_SHA_256", input=sym_blob)
    assert rsa_again.exit_code == 0, rsa_again.stderr
    out = cli("decrypt", "-k", "alias/rsa", "--algorithm", "RSAES_OAEP_SHA_256", input=rsa_again.stdout_bytes)
    assert out.stdout_bytes == b"secret"


def test_cli_hmac(cli: Any, tmp_path: Path) -> None:
    key = create(cli, "HMAC_512", alias="alias/mac")
    mac = cli("hmac", "-k", "alias/mac", input=MSG)
    assert mac.exit_code == 0 and len(mac.stdout_bytes) == 64
    path = write(tmp_path, "mac", mac.stdout_bytes)
    ok = cli("-o", "json", "verify-mac", "-k", key, "--mac", path, input=MSG)
    assert json.loads(ok.stdout) == {"KeyId": json.loads(ok.stdout)["KeyId"], "MacValid": True,
                                     "MacAlgorithm": "HMAC_SHA_512"}  # fmt: skip
    bad = cli("verify-mac", "-k", key, "--mac", path, input=MSG + b"!")
    assert bad.exit_code == 1 and "KMSInvalidMacException" in bad.stderr
    assert cli("hmac", "-k", key, "--algorithm", "HMAC_SHA_256", input=MSG).exit_code == 2


def test_cli_public_key_and_data_key_pair(cli: Any) -> None:
    key = create(cli, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    pem = cli("public-key", key).stdout
    der = cli("public-key", key, "--format", "der").stdout_bytes
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith("-----END PUBLIC KEY-----\n")
    assert base64.b64decode("".join(pem.splitlines()[1:-1])) == der
    out = json.loads(cli("-o", "json", "public-key", key).stdout)
    assert base64.b64decode(out["PublicKey"]) == der and "CustomerMasterKeySpec" not in out
    create(cli, "SYMMETRIC_DEFAULT", alias="alias/wrap")
    pair = json.loads(
        cli("-o", "json", "data-key-pair", "-k", "alias/wrap", "--spec", "ecc_nist_p256", "-c", "a=b").stdout
    )
    assert pair["KeyPairSpec"] == "ECC_NIST_P256" and pair["PrivateKeyPlaintext"]
    text = cli("-o", "text", "data-key-pair", "-k", "alias/wrap", "--spec", "RSA_2048", "--no-plaintext").stdout
    assert len(text.rstrip("\n").split("\t")) == 4
    dec = cli("decrypt", "-c", "a=b", input=base64.b64decode(pair["PrivateKeyCiphertextBlob"]))
    assert dec.stdout_bytes == base64.b64decode(pair["PrivateKeyPlaintext"])


def test_cli_derive_shared_secret(cli: Any, tmp_path: Path) -> None:
    a = create(cli, "ECC_NIST_P256", "KEY_AGREEMENT")
    b = create(cli, "ECC_NIST_P256", "KEY_AGREEMENT")
    pem_b = write(tmp_path, "b.pem", cli("public-key", b).stdout_bytes)
    der_a = write(tmp_path, "a.der", cli("public-key", a, "--format", "der").stdout_bytes)
    ab = cli("derive-shared-secret", "-k", a, "--public-key", pem_b)
    ba = cli("derive-shared-secret", "-k", b, "--public-key", der_a)
    assert ab.exit_code == 0 and ab.stdout_bytes == ba.stdout_bytes and len(ab.stdout_bytes) == 32
    junk = write(tmp_path, "junk.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert cli("derive-shared-secret", "-k", a, "--public-key", junk).exit_code == 2
