"""kmsctl's signatures, public keys, RSA-OAEP, ECDH and data key pairs against
tools outside kmsctl: the ``openssl`` command (3.0 or later) and, for ML-DSA,
which OpenSSL 3.0 lacks, the pure-Python FIPS 204 implementation dilithium-py.

Every public key comes from ``kmsctl public-key``; every signature from
``kmsctl sign``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
pytestmark = pytest.mark.skipif(not Path(OPENSSL).exists(), reason="needs the openssl command")

MSG = b"kmsctl interop: the quick brown fox\n"
# the spec -> signing algorithms OpenSSL can verify (all but Ed25519ph, which kmsctl
# cannot compute, and ML-DSA, which OpenSSL 3.0 lacks)
OPENSSL_SIGNING = {
    "RSA_2048": [
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
    ],
    "RSA_3072": ["RSASSA_PSS_SHA_384", "RSASSA_PKCS1_V1_5_SHA_256"],
    "RSA_4096": ["RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_512"],
    "ECC_NIST_P256": ["ECDSA_SHA_256"],
    "ECC_NIST_P384": ["ECDSA_SHA_384"],
    "ECC_NIST_P521": ["ECDSA_SHA_512"],
    "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
    "ECC_NIST_EDWARDS25519": ["ED25519_SHA_512"],
}
MLDSA_PUBLIC_SIZES = {"ML_DSA_44": 1312, "ML_DSA_65": 1952, "ML_DSA_87": 2592}


def ossl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([OPENSSL, *args], input=input, capture_output=True, timeout=60, check=False)


def ok(cli: Any, *args: str, input: bytes | None = None) -> bytes:
    r = cli(*args, input=input)
    assert r.exit_code == 0, r.stderr
    return bytes(r.stdout_bytes)


def create(cli: Any, spec: str, usage: str | None = None) -> str:
    args = ["-o", "text", "create", "--key-spec", spec] + (["--key-usage", usage] if usage else [])
    return ok(cli, *args).decode().strip()


def hash_name(algorithm: str) -> str:
    return "sha" + algorithm.rsplit("_", 1)[1]


def rsa_options(flag: str, algorithm: str) -> list[str]:
    if algorithm.startswith("RSASSA_PSS_"):
        # salt length must be exactly the digest length (AWS's choice), not "auto"
        return [
            flag,
            "rsa_padding_mode:pss",
            flag,
            "rsa_pss_saltlen:digest",
            flag,
            f"rsa_mgf1_md:{hash_name(algorithm)}",
        ]
    if algorithm.startswith("RSASSA_PKCS1_"):
        return [flag, "rsa_padding_mode:pkcs1"]
    return []


def openssl_verifies(tmp: Path, pub: Path, algorithm: str, message: bytes, signature: bytes) -> bool:
    """Both of OpenSSL's ways must agree: hash-then-verify (dgst, or pkeyutl
    -rawin for Ed25519) on the message, and pkeyutl on its digest."""
    msg, sig, dig = tmp / "msg", tmp / "sig", tmp / "digest"
    msg.write_bytes(message)
    sig.write_bytes(signature)
    if algorithm == "ED25519_SHA_512":
        r = ossl("pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin", "-in", str(msg), "-sigfile", str(sig))
        return r.returncode == 0 and b"Signature Verified Successfully" in r.stdout
    h = hash_name(algorithm)
    raw = ossl(
        "dgst", f"-{h}", "-verify", str(pub), *rsa_options("-sigopt", algorithm), "-signature", str(sig), str(msg)
    )
    dig.write_bytes(hashlib.new(h, message).digest())
    pre = ossl(
        "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-in", str(dig), "-sigfile", str(sig),
        "-pkeyopt", f"digest:{h}", *rsa_options("-pkeyopt", algorithm),
    )  # fmt: skip
    assert (raw.returncode == 0) == (pre.returncode == 0), (raw.stderr, pre.stderr)
    return raw.returncode == 0 and b"Verified OK" in raw.stdout


@pytest.mark.parametrize("spec", list(OPENSSL_SIGNING))
def test_openssl_verifies_kmsctl_signatures(cli: Any, tmp_path: Path, spec: str) -> None:
    key = create(cli, spec, "SIGN_VERIFY")
    pub = tmp_path / "pub.pem"
    pub.write_bytes(ok(cli, "public-key", key))
    assert ossl("pkey", "-pubin", "-in", str(pub), "-noout").returncode == 0
    for alg in OPENSSL_SIGNING[spec]:
        modes = ["RAW"] if alg.startswith("ED25519") else ["RAW", "DIGEST"]
        for mode in modes:
            message = MSG if mode == "RAW" else hashlib.new(hash_name(alg), MSG).digest()
            sig = ok(cli, "sign", "-k", key, "--algorithm", alg, "--message-type", mode, input=message)
            assert openssl_verifies(tmp_path, pub, alg, MSG, sig), (spec, alg, mode)
            assert not openssl_verifies(tmp_path, pub, alg, MSG + b"x", sig), (spec, alg, mode)


def test_openssl_verifies_through_the_real_binary(sub: Any, tmp_path: Path) -> None:
    key = sub("-o", "text", "create", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY").stdout.strip()
    pub = tmp_path / "pub.pem"
    pub.write_bytes(sub("public-key", key.decode()).stdout)
    sig = sub("sign", "-k", key.decode(), input=MSG)
    assert sig.returncode == 0, sig.stderr
    assert openssl_verifies(tmp_path, pub, "ECDSA_SHA_256", MSG, sig.stdout)


@pytest.mark.parametrize(("spec", "algorithm"), [("RSA_2048", "RSAES_OAEP_SHA_1"), ("RSA_2048", "RSAES_OAEP_SHA_256"),
                                                 ("RSA_3072", "RSAES_OAEP_SHA_256")])  # fmt: skip
def test_kmsctl_decrypts_what_openssl_encrypts(cli: Any, tmp_path: Path, spec: str, algorithm: str) -> None:
    key = create(cli, spec, "ENCRYPT_DECRYPT")
    pub = tmp_path / "pub.pem"
    pub.write_bytes(ok(cli, "public-key", key))
    md = hash_name(algorithm)
    limit = int(spec[4:]) // 8 - 2 * hashlib.new(md).digest_size - 2
    for plaintext in (b"s", b"x" * limit):
        (tmp_path / "plain").write_bytes(plaintext)
        enc = ossl(
            "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), "-in", str(tmp_path / "plain"),
            "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}", "-pkeyopt", f"rsa_mgf1_md:{md}",
        )  # fmt: skip
        assert enc.returncode == 0, enc.stderr
        assert ok(cli, "decrypt", "-k", key, "--algorithm", algorithm, input=enc.stdout) == plaintext


@pytest.mark.parametrize(("spec", "curve"), [("ECC_NIST_P256", "P-256"), ("ECC_NIST_P384", "P-384"),
                                             ("ECC_NIST_P521", "P-521")])  # fmt: skip
def test_ecdh_secret_equals_openssls(cli: Any, tmp_path: Path, spec: str, curve: str) -> None:
    key = create(cli, spec, "KEY_AGREEMENT")
    kms_pub, peer, peer_pub, peer_der = (tmp_path / n for n in ("kms.pem", "peer.pem", "peer_pub.pem", "peer.der"))
    kms_pub.write_bytes(ok(cli, "public-key", key))
    r = ossl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}", "-out", str(peer))
    assert r.returncode == 0, r.stderr
    assert ossl("pkey", "-in", str(peer), "-pubout", "-out", str(peer_pub)).returncode == 0
    assert ossl("pkey", "-in", str(peer), "-pubout", "-outform", "DER", "-out", str(peer_der)).returncode == 0
    theirs = ossl("pkeyutl", "-derive", "-inkey", str(peer), "-peerkey", str(kms_pub))
    assert theirs.returncode == 0, theirs.stderr
    for path in (peer_pub, peer_der):
        assert ok(cli, "derive-shared-secret", "-k", key, "--public-key", str(path)) == theirs.stdout


@pytest.mark.parametrize(
    "spec",
    ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
     "ECC_NIST_EDWARDS25519"],
)  # fmt: skip
def test_data_key_pairs_load_in_openssl(cli: Any, tmp_path: Path, spec: str) -> None:
    ok(cli, "create", "--alias", "alias/wrap")
    pair = json.loads(ok(cli, "-o", "json", "data-key-pair", "-k", "alias/wrap", "--spec", spec, "-c", "app=tls"))
    priv = tmp_path / "priv.der"
    priv.write_bytes(base64.b64decode(pair["PrivateKeyPlaintext"]))
    assert ossl("pkey", "-inform", "DER", "-in", str(priv), "-noout").returncode == 0
    if not spec.startswith("ECC_NIST_EDWARDS"):  # OpenSSL 3.0 has no key check for Ed25519
        check = ossl("pkey", "-inform", "DER", "-in", str(priv), "-check", "-noout")
        assert check.returncode == 0, check.stderr
    pub = ossl("pkey", "-inform", "DER", "-in", str(priv), "-pubout", "-outform", "DER")
    assert pub.returncode == 0 and pub.stdout == base64.b64decode(pair["PublicKey"])
    again = ok(cli, "decrypt", "-c", "app=tls", input=base64.b64decode(pair["PrivateKeyCiphertextBlob"]))
    assert again == priv.read_bytes()


@pytest.mark.parametrize("spec", list(MLDSA_PUBLIC_SIZES))
def test_ml_dsa_signatures_verify_with_dilithium_py(cli: Any, spec: str) -> None:
    """OpenSSL 3.0 has no ML-DSA: check against FIPS 204 as dilithium-py implements it."""
    from dilithium_py import ml_dsa

    verifier = getattr(ml_dsa, spec)
    key = create(cli, spec, "SIGN_VERIFY")
    spki = ok(cli, "public-key", key, "--format", "der")
    size = MLDSA_PUBLIC_SIZES[spec]
    oid_tail = {"ML_DSA_44": 0x11, "ML_DSA_65": 0x12, "ML_DSA_87": 0x13}[spec]
    assert spki[:22].endswith(b"\x00") and bytes.fromhex("06096086480165030403") + bytes([oid_tail]) in spki[:22]
    assert len(spki) == size + 22
    pk = spki[22:]
    raw = ok(cli, "sign", "-k", key, input=MSG)
    assert verifier.verify(pk, MSG, raw, ctx=b"")
    assert not verifier.verify(pk, MSG + b"x", raw, ctx=b"")
    # EXTERNAL_MU: mu = SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || M, 64) with an empty context;
    # a signature over mu is a RAW signature over M
    mu = hashlib.shake_256(hashlib.shake_256(pk).digest(64) + b"\x00\x00" + MSG).digest(64)
    by_mu = ok(cli, "sign", "-k", key, "--message-type", "EXTERNAL_MU", input=mu)
    assert verifier.verify(pk, MSG, by_mu, ctx=b"")
    assert not verifier.verify(pk, MSG, by_mu, ctx=b"other context")
