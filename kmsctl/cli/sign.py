"""Asymmetric and MAC commands: sign, verify, hmac, verify-mac, public-key,
data-key-pair, derive-shared-secret.

Binary results (signature, MAC, DER key, shared secret) go raw to a file or
pipe and as base64 to a terminal or with --base64; -o json prints AWS's
response shape. A signature or MAC that does not verify exits 1.
"""

from __future__ import annotations

import re
from typing import Any

import click

from kmsctl import model
from kmsctl.cli import hints
from kmsctl.cli.app import App
from kmsctl.cli.crypto import BLOB_READ_MAX, base64_option, context_option, key_option, respond
from kmsctl.cli.io import decode_blob, key_metadata, parse_pairs, read_input, strict_base64, write_binary
from kmsctl.cli.lines import many
from kmsctl.cli.options import AwsChoice, input_argument
from kmsctl.errors import ValidationException
from kmsctl.render import emit

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
PUBLIC_KEY_READ_MAX = 16384  # an 8192-byte DER key as PEM, with room for line breaks


def _verdict(app: App, out: dict[str, Any], columns: list[str]) -> None:
    emit(app, out, columns=columns, rows=[[out[c] for c in columns]], vertical=True)


def _default_algorithm(app: App, key: str, field: str, fallback: str, message_type: str | None = None) -> str:
    """The key's first algorithm, as describe lists them. A key without that list
    gets ``fallback``, so that the service reports the key's wrong usage."""
    algorithms: list[str] = key_metadata(app, key).get(field) or [fallback]
    if message_type == "DIGEST" and "ED25519_PH_SHA_512" in algorithms:
        return "ED25519_PH_SHA_512"  # the one Ed25519 algorithm that takes a digest
    return algorithms[0]


def to_pem(der: bytes, label: str = "PUBLIC KEY") -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def from_pem_or_der(data: bytes, what: str = "public key") -> bytes:
    """A PEM ``PUBLIC KEY`` block, or DER (raw or base64) as it is."""
    if b"-----BEGIN" not in data:
        return decode_blob(data, what=what)
    m = _PEM.search(data)
    if m is None or m.group(1) != b"PUBLIC KEY":
        raise ValidationException(f"the {what} is PEM but not a '-----BEGIN PUBLIC KEY-----' block")
    der, problem = strict_base64(b"".join(m.group(2).split()))
    if problem or b"-" in m.group(2) or b"_" in m.group(2):
        raise ValidationException(f"the {what} PEM block does not decode: {problem or 'not standard base64'}")
    return der


algorithm_help = "{}; default: the key's first ({})."
message_type_option = click.option(
    "--message-type",
    type=AwsChoice(model.MESSAGE_TYPES),
    default="RAW",
    show_default=True,
    help="RAW: kmsctl hashes INPUT; DIGEST: INPUT is the digest; EXTERNAL_MU: INPUT is ML-DSA's 64-byte mu.",
)
signing_algorithm_option = click.option(
    "--algorithm",
    type=AwsChoice(model.SIGNING_ALGORITHMS),
    metavar="A",
    help=algorithm_help.format("Signing algorithm, e.g. RSASSA_PSS_SHA_256, ECDSA_SHA_256", "describe shows them"),
)
mac_algorithm_option = click.option(
    "--algorithm",
    type=AwsChoice(model.MAC_ALGORITHMS),
    metavar="A",
    help=algorithm_help.format("MAC algorithm, HMAC_SHA_224/256/384/512", "its only one"),
)


@many(lines=True)
@click.command()
@key_option
@signing_algorithm_option
@message_type_option
@base64_option
@input_argument
@click.pass_obj
def sign(app: App, key: str, algorithm: str | None, message_type: str, b64: bool, input_path: str) -> None:
    """Sign up to 4096 bytes, or a digest, from INPUT (Sign).

    \b
    kmsctl sign -k alias/release < SHA256SUMS > SHA256SUMS.sig
    openssl dgst -sha256 -binary f | kmsctl sign -k alias/release --message-type DIGEST > f.sig
    """
    message = read_input(input_path, model.PLAINTEXT_MAX, "message")
    algorithm = algorithm or _default_algorithm(app, key, "SigningAlgorithms", "RSASSA_PSS_SHA_256", message_type)
    with hints.sign_too_long(message, message_type, algorithm, key, verify=False):
        out = app.kms().sign(KeyId=key, Message=message, MessageType=message_type, SigningAlgorithm=algorithm)
    respond(app, out, "Signature", b64)


@many(lines=True, per_line="signature_path")
@click.command()
@key_option
@click.option(
    "--signature",
    "signature_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="The signature, raw or base64.",
)
@signing_algorithm_option
@message_type_option
@input_argument
@click.pass_obj
def verify(app: App, key: str, signature_path: str, algorithm: str | None, message_type: str, input_path: str) -> None:
    """Check a signature of INPUT (Verify). Exit 0 if it verifies, 1 if not.

    Text columns: SignatureValid KeyId SigningAlgorithm.
    """
    signature = decode_blob(read_input(signature_path, BLOB_READ_MAX, "signature"), what="signature")
    message = read_input(input_path, model.PLAINTEXT_MAX, "message")
    algorithm = algorithm or _default_algorithm(app, key, "SigningAlgorithms", "RSASSA_PSS_SHA_256", message_type)
    with hints.sign_too_long(message, message_type, algorithm, key, verify=True):
        out = app.kms().verify(
            KeyId=key, Message=message, MessageType=message_type, Signature=signature, SigningAlgorithm=algorithm
        )
    _verdict(app, out, ["SignatureValid", "KeyId", "SigningAlgorithm"])


@many(lines=True)
@click.command()
@key_option
@mac_algorithm_option
@base64_option
@input_argument
@click.pass_obj
def hmac(app: App, key: str, algorithm: str | None, b64: bool, input_path: str) -> None:
    """HMAC of up to 4096 bytes from INPUT with an HMAC key (GenerateMac).

    \b
    printf %s "$PAYLOAD" | kmsctl hmac -k alias/webhook --base64
    """
    message = read_input(input_path, model.PLAINTEXT_MAX, "message")
    algorithm = algorithm or _default_algorithm(app, key, "MacAlgorithms", "HMAC_SHA_256")
    respond(app, app.kms().generate_mac(KeyId=key, Message=message, MacAlgorithm=algorithm), "Mac", b64)


@click.command("verify-mac")
@key_option
@click.option(
    "--mac", "mac_path", required=True, metavar="FILE", type=click.Path(dir_okay=False), help="The MAC, raw or base64."
)
@mac_algorithm_option
@input_argument
@click.pass_obj
def verify_mac(app: App, key: str, mac_path: str, algorithm: str | None, input_path: str) -> None:
    """Check an HMAC of INPUT (VerifyMac). Exit 0 if it verifies, 1 if not.

    Text columns: MacValid KeyId MacAlgorithm.
    """
    mac = decode_blob(read_input(mac_path, BLOB_READ_MAX, "MAC"), what="MAC")
    message = read_input(input_path, model.PLAINTEXT_MAX, "message")
    algorithm = algorithm or _default_algorithm(app, key, "MacAlgorithms", "HMAC_SHA_256")
    out = app.kms().verify_mac(KeyId=key, Message=message, Mac=mac, MacAlgorithm=algorithm)
    _verdict(app, out, ["MacValid", "KeyId", "MacAlgorithm"])


@click.command("public-key")
@click.argument("key", metavar="KEY")
@click.option(
    "--format",
    "fmt",
    type=AwsChoice(["pem", "der"]),
    default="pem",
    show_default=True,
    help="PEM text or DER bytes, both X.509 SubjectPublicKeyInfo.",
)
@base64_option
@click.pass_obj
def public_key(app: App, key: str, fmt: str, b64: bool) -> None:
    """The public key of an asymmetric key (GetPublicKey).

    \b
    kmsctl public-key alias/release > release.pem
    openssl dgst -sha256 -verify release.pem -signature f.sig f
    """
    out = app.kms().get_public_key(KeyId=key)
    if app.output == "json":
        emit(app, out, columns=[], rows=[])
    elif fmt.lower() == "der":
        write_binary(app, out["PublicKey"], b64)
    else:
        app.write_text(to_pem(out["PublicKey"]))


@click.command("data-key-pair")
@key_option
@click.option(
    "--spec",
    required=True,
    type=AwsChoice(model.DATA_KEY_PAIR_SPECS),
    help="The kind of key pair (SM2 is refused, and ML_KEM_512 while pyca/cryptography lacks it).",
)
@context_option
@click.option("--no-plaintext", is_flag=True, help="No plaintext private key (GenerateDataKeyPairWithoutPlaintext).")
@click.pass_obj
def data_key_pair(app: App, key: str, spec: str, context: tuple[str, ...], no_plaintext: bool) -> None:
    """Make a key pair for use outside kmsctl; its private key also comes
    encrypted under the symmetric KEY (GenerateDataKeyPair).

    The private key is DER PKCS#8, the public key DER SubjectPublicKeyInfo.
    Decrypt PrivateKeyCiphertextBlob later with `kmsctl decrypt` and the same -c.

    Text columns: PrivateKeyCiphertextBlob PrivateKeyPlaintext PublicKey KeyId
    KeyPairSpec (blobs in base64; no PrivateKeyPlaintext with --no-plaintext).
    """
    args: dict[str, Any] = {"KeyId": key, "KeyPairSpec": spec}
    if context:
        args["EncryptionContext"] = parse_pairs(context, "--context")
    kms = app.kms()
    make = kms.generate_data_key_pair_without_plaintext if no_plaintext else kms.generate_data_key_pair
    out = make(**args)
    columns = ["PrivateKeyCiphertextBlob", "PrivateKeyPlaintext", "PublicKey", "KeyId", "KeyPairSpec"]
    columns = [c for c in columns if c in out]
    emit(app, out, columns=columns, rows=[[out[c] for c in columns]], vertical=True)


@click.command("derive-shared-secret")
@key_option
@click.option(
    "--public-key",
    "public_key_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The peer's public key on the same curve: PEM or DER SubjectPublicKeyInfo.",
)
@base64_option
@click.pass_obj
def derive_shared_secret(app: App, key: str, public_key_path: str, b64: bool) -> None:
    """ECDH with a KEY_AGREEMENT key and a peer's public key (DeriveSharedSecret).

    The result is the raw shared secret (the x-coordinate): feed it to a KDF.
    """
    peer = from_pem_or_der(read_input(public_key_path, PUBLIC_KEY_READ_MAX, "public key"))
    out = app.kms().derive_shared_secret(KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    respond(app, out, "SharedSecret", b64)
