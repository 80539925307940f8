"""ML-KEM commands: encapsulate, decapsulate.

A peer who has the public key (``kmsctl public-key``) encapsulates a fresh
32-byte shared secret with any FIPS 203 implementation and sends the
ciphertext; ``decapsulate`` recovers the secret with the private key, which
never leaves the keyring. ``encapsulate`` does the peer's half with the
key's own public key. -o json prints AWS's response shape.
"""

from __future__ import annotations

import click

from kmsctl import model
from kmsctl.cli.app import App
from kmsctl.cli.crypto import BLOB_READ_MAX, base64_option, key_option
from kmsctl.cli.io import decode_blob, read_input, write_binary
from kmsctl.cli.options import AwsChoice, input_argument
from kmsctl.render import emit

algorithm_option = click.option(
    "--algorithm",
    type=AwsChoice(model.ENCAPSULATION_ALGORITHMS),
    default="ML_KEM",
    show_default=True,
    metavar="A",
    help="Key encapsulation algorithm; ML_KEM is the only one.",
)


@click.command()
@key_option
@algorithm_option
@click.pass_obj
def encapsulate(app: App, key: str, algorithm: str) -> None:
    """Make a shared secret and its ciphertext with an ML-KEM key's public key (Encapsulate).

    Send SharedSecretCiphertextBlob to the key's holder, who recovers the
    same SharedSecret with `kmsctl decapsulate`. The secret is 32 random
    bytes: use it as key material or feed it to a KDF.

    Text columns: SharedSecretCiphertextBlob SharedSecret KeyId
    EncapsulationAlgorithm (blobs in base64).

    \b
    kmsctl -o json encapsulate -k alias/kem > encapsulated.json
    jq -r .SharedSecretCiphertextBlob encapsulated.json | kmsctl decapsulate -k alias/kem --base64
    """
    out = app.kms().encapsulate(KeyId=key, EncapsulationAlgorithm=algorithm)
    columns = ["SharedSecretCiphertextBlob", "SharedSecret", "KeyId", "EncapsulationAlgorithm"]
    emit(app, out, columns=columns, rows=[[out[c] for c in columns]], vertical=True)


@click.command()
@key_option
@algorithm_option
@base64_option
@input_argument
@click.pass_obj
def decapsulate(app: App, key: str, algorithm: str, b64: bool, input_path: str) -> None:
    """Recover the shared secret from an ML-KEM ciphertext, raw or base64, in INPUT (Decapsulate).

    A ciphertext of the wrong size for the key's spec is refused (exit 6).
    Any other ciphertext gives a 32-byte secret, even one altered or made for
    another key (ML-KEM's implicit rejection): confirm that both sides hold
    the same secret before relying on it, e.g. with a MAC under a key
    derived from it.

    \b
    kmsctl decapsulate -k alias/kem ciphertext.bin > shared.bin
    """
    ciphertext = decode_blob(read_input(input_path, BLOB_READ_MAX, "ciphertext"))
    out = app.kms().decapsulate(KeyId=key, SharedSecretCiphertextBlob=ciphertext, EncapsulationAlgorithm=algorithm)
    if app.output == "json":
        emit(app, out, columns=[], rows=[])
    else:
        write_binary(app, out["SharedSecret"], b64)
