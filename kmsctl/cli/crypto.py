"""Cryptographic commands: encrypt, decrypt, re-encrypt, data-key, random.

Binary results go raw to a file or pipe and as base64 to a terminal (or
anywhere with --base64); -o json prints AWS's response shape instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kmsctl import model
from kmsctl.cli import hints
from kmsctl.cli.app import App
from kmsctl.cli.io import decode_blob, key_metadata, parse_pairs, read_input, write_binary
from kmsctl.cli.lines import many
from kmsctl.cli.options import AwsChoice, input_argument
from kmsctl.render import emit

F = TypeVar("F", bound=Callable[..., Any])
BLOB_READ_MAX = 16384  # a 6144-byte blob as base64 text, with room for line breaks

key_option = click.option(
    "-k", "--key", "key", required=True, metavar="KEY", help="Key ID, key ARN, alias/NAME or alias ARN."
)
context_option = click.option(
    "-c",
    "--context",
    "context",
    multiple=True,
    metavar="K=V",
    help="Encryption context pair; repeat for more. Decrypt needs the same set.",
)
base64_option = click.option("--base64", "b64", is_flag=True, help="Write base64 text even to a file or pipe.")


def _blob_marker() -> int:
    from kmsctl.crypto.blob import MARKER

    return MARKER


def _ciphertext(input_path: str) -> bytes:
    """A ciphertext from INPUT, raw or base64: text that is neither is not
    ciphertext (InvalidCiphertextException, as AWS answers for any bad blob)."""
    from kmsctl.errors import InvalidCiphertextException

    data = read_input(input_path, BLOB_READ_MAX, "ciphertext")
    return decode_blob(data, _blob_marker(), what="ciphertext", error=InvalidCiphertextException)


def respond(app: App, out: dict[str, Any], field: str, b64: bool) -> None:
    """A binary result: AWS's response with -o json, else ``field`` raw or as base64."""
    if app.output == "json":
        emit(app, out, columns=[], rows=[])
    else:
        write_binary(app, out[field], b64)


def _rsa_default(app: App, key: str | None, algorithm: str | None) -> str | None:
    """An omitted --algorithm is the key's first, as describe lists them. AWS itself
    requires one for RSA keys, so for them the CLI fills it in."""
    if algorithm or not key:
        return algorithm
    algorithms = key_metadata(app, key).get("EncryptionAlgorithms") or []
    return str(algorithms[0]) if algorithms and algorithms[0] != "SYMMETRIC_DEFAULT" else None


def _ctx(pairs: tuple[str, ...], option: str = "--context") -> dict[str, str] | None:
    return parse_pairs(pairs, option) if pairs else None


@many(lines=True, out_dir=True)
@click.command()
@key_option
@context_option
@click.option("--algorithm", metavar="A", help="SYMMETRIC_DEFAULT or RSAES_OAEP_SHA_1/_256; default: the key's first.")
@base64_option
@input_argument
@click.pass_obj
def encrypt(app: App, key: str, context: tuple[str, ...], algorithm: str | None, b64: bool, input_path: str) -> None:
    """Encrypt up to 4096 bytes from INPUT (Encrypt).

    \b
    printf %s "$DB_PASSWORD" | kmsctl encrypt -k alias/app -c app=web > pw.enc
    C=$(kmsctl encrypt -k alias/app --base64 < secret.txt)
    """
    args: dict[str, Any] = {"KeyId": key, "Plaintext": read_input(input_path, model.PLAINTEXT_MAX, "plaintext")}
    if context:
        args["EncryptionContext"] = _ctx(context)
    algorithm = _rsa_default(app, key, algorithm)
    if algorithm:
        args["EncryptionAlgorithm"] = algorithm
    with hints.encrypt_too_long(args["Plaintext"]):
        out = app.kms().encrypt(**args)
    respond(app, out, "CiphertextBlob", b64)


@many(lines=True, out_dir=True)
@click.command()
@click.option(
    "-k", "--key", "key", metavar="KEY", help="Fail unless the ciphertext is under this key; needed for RSA keys."
)
@context_option
@click.option(
    "--algorithm", metavar="A", help="RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256 for an RSA key; default: the key's first."
)
@base64_option
@input_argument
@click.pass_obj
def decrypt(
    app: App, key: str | None, context: tuple[str, ...], algorithm: str | None, b64: bool, input_path: str
) -> None:
    """Decrypt a ciphertext blob, raw or base64, from INPUT (Decrypt).

    The blob names its key; -k only checks it. The plaintext is written as is.
    Ciphertext from an RSA key is raw RSA-OAEP output: give -k (and --algorithm
    if it is not the key's first, RSAES_OAEP_SHA_1).
    """
    data = _ciphertext(input_path)
    args: dict[str, Any] = {"CiphertextBlob": data}
    if key:
        args["KeyId"] = key
    if context:
        args["EncryptionContext"] = _ctx(context)
    with hints.decrypt_sealed(data):
        algorithm = _rsa_default(app, key, algorithm)
        if algorithm:
            args["EncryptionAlgorithm"] = algorithm
        out = app.kms().decrypt(**args)
    if app.output == "json":
        emit(app, out, columns=[], rows=[])
    elif b64:
        write_binary(app, out["Plaintext"], True)
    else:
        app.write(out["Plaintext"])


@many(lines=True)
@click.command("re-encrypt")
@click.option("-k", "--key", "key", required=True, metavar="DEST_KEY", help="The key to encrypt under now.")
@click.option("--source-key", metavar="KEY", help="Fail unless the ciphertext is under this key.")
@click.option("--source-context", multiple=True, metavar="K=V", help="The ciphertext's encryption context.")
@click.option("--source-algorithm", metavar="A", help="RSAES_OAEP_SHA_* if --source-key is an RSA key.")
@click.option("--algorithm", metavar="A", help="RSAES_OAEP_SHA_* if DEST_KEY is an RSA key.")
@context_option
@base64_option
@input_argument
@click.pass_obj
def re_encrypt(
    app: App,
    key: str,
    source_key: str | None,
    source_context: tuple[str, ...],
    source_algorithm: str | None,
    algorithm: str | None,
    context: tuple[str, ...],
    b64: bool,
    input_path: str,
) -> None:
    """Decrypt INPUT and encrypt it again under DEST_KEY, without the plaintext
    ever leaving kmsctl (ReEncrypt). -c sets the new encryption context."""
    data = _ciphertext(input_path)
    args: dict[str, Any] = {"CiphertextBlob": data, "DestinationKeyId": key}
    if source_key:
        args["SourceKeyId"] = source_key
    if source_context:
        args["SourceEncryptionContext"] = _ctx(source_context, "--source-context")
    if context:
        args["DestinationEncryptionContext"] = _ctx(context)
    source_algorithm = _rsa_default(app, source_key, source_algorithm)
    if source_algorithm:
        args["SourceEncryptionAlgorithm"] = source_algorithm
    algorithm = _rsa_default(app, key, algorithm)
    if algorithm:
        args["DestinationEncryptionAlgorithm"] = algorithm
    respond(app, app.kms().re_encrypt(**args), "CiphertextBlob", b64)


@click.command("data-key")
@key_option
@click.option("--spec", type=AwsChoice(list(model.DATA_KEY_SPECS)), help="AES_256 (default) or AES_128.")
@click.option("--bytes", "nbytes", type=int, metavar="N", help="A data key of N bytes (1-1024) instead of --spec.")
@context_option
@click.option("--no-plaintext", is_flag=True, help="Only the encrypted copy (GenerateDataKeyWithoutPlaintext).")
@click.pass_obj
def data_key(
    app: App, key: str, spec: str | None, nbytes: int | None, context: tuple[str, ...], no_plaintext: bool
) -> None:
    """Make a data key: random bytes, and a copy encrypted under KEY (GenerateDataKey).

    Text columns: CiphertextBlob Plaintext KeyId (blobs in base64; no
    Plaintext column with --no-plaintext).
    """
    if spec and nbytes is not None:
        raise click.UsageError("give --spec or --bytes, not both")
    args: dict[str, Any] = {"KeyId": key}
    if nbytes is not None:
        args["NumberOfBytes"] = nbytes
    else:
        args["KeySpec"] = (spec or "AES_256").upper()
    if context:
        args["EncryptionContext"] = _ctx(context)
    kms = app.kms()
    out = kms.generate_data_key_without_plaintext(**args) if no_plaintext else kms.generate_data_key(**args)
    columns = ["CiphertextBlob", "KeyId"] if no_plaintext else ["CiphertextBlob", "Plaintext", "KeyId"]
    emit(app, out, columns=columns, rows=[[out[c] for c in columns]], vertical=True)


@many(lines=True)
@click.command()
@click.argument("count", metavar="[N]", type=int, required=False)
@click.option("--bytes", "nbytes", type=int, metavar="N", help="How many bytes, 1-1024 [default: 32].")
@base64_option
@click.pass_obj
def random(app: App, count: int | None, nbytes: int | None, b64: bool) -> None:
    """N random bytes (1-1024, default 32) from the operating system's generator (GenerateRandom).

    \b
    kmsctl random 32 --base64
    kmsctl random --bytes 32 > key.bin
    """
    if count is not None and nbytes is not None and count != nbytes:
        raise click.UsageError("give N or --bytes N, not both")
    n = count if count is not None else nbytes if nbytes is not None else 32
    respond(app, app.kms().generate_random(NumberOfBytes=n), "Plaintext", b64)
