"""Envelope encryption of files of any size: seal, unseal, inspect.

The format is docs/SEALED-FORMAT.md; the crypto is kmsctl.crypto.sealed,
imported inside the commands so that ``kmsctl --help`` stays light. The KMS
client is used for exactly one call each: GenerateDataKey (seal) and Decrypt
of the data key (unseal); inspect uses none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from kmsctl.canonical import canonical_json
from kmsctl.cli.app import App
from kmsctl.cli.io import parse_pairs, stdin_is_tty
from kmsctl.cli.lines import many
from kmsctl.cli.options import input_argument
from kmsctl.cli.streams import input_stream, io_errors, output, progress_bar, refuse_existing, remaining_size
from kmsctl.errors import InvalidCiphertextException, UsageError
from kmsctl.render import emit

if TYPE_CHECKING:
    from kmsctl.crypto.sealed_header import Header

out_option = click.option(
    "--out",
    "out",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write to FILE instead of stdout; it appears (mode 0600) only when complete.",
)
force_option = click.option("--force", is_flag=True, help="Replace FILE if it exists.")


def _note_terminal_input(app: App, input_path: str) -> None:
    if input_path == "-" and stdin_is_tty():
        app.info("kmsctl: reading INPUT from the terminal; end it with Ctrl-D")


def _refuse_terminal_input(input_path: str) -> None:
    """A sealed file is binary: nobody types one."""
    if input_path == "-" and stdin_is_tty():
        raise UsageError("INPUT is the terminal", hint="give a sealed file as INPUT, or pipe one in")


@many(out_dir=True)
@click.command()
@click.option(
    "-k",
    "--key",
    "key",
    metavar="KEY",
    help="Key ID, key ARN, alias/NAME or alias ARN [default: config seal.key, else the AWS managed key "
    "alias/aws/kmsctl, made on first use].",
)
@click.option(
    "-c",
    "--context",
    "context",
    multiple=True,
    metavar="K=V",
    help="Encryption context pair, bound to the data key and shown by inspect; repeat for more.",
)
@out_option
@force_option
@input_argument
@click.pass_obj
def seal(app: App, key: str | None, context: tuple[str, ...], out: str | None, force: bool, input_path: str) -> None:
    """Encrypt INPUT, of any size, into a sealed file (GenerateDataKey, then AES-256-GCM).

    A fresh data key encrypts INPUT in authenticated 64 KiB chunks, streamed in
    constant memory; KEY encrypts only the data key, which the file's header
    carries. Raw sealed bytes are not written to a terminal: use --out or a pipe.

    \b
    kmsctl seal -k alias/backup -c db=main --out dump.sealed dump.sql
    pg_dump main | kmsctl seal -k alias/backup > dump.sealed
    """
    key = key or app.setting("seal.key")[0]  # kmsctl config set seal.key alias/NAME
    pairs = parse_pairs(context, "--context")
    if out is None and app.stdout_is_tty():
        raise UsageError("refusing to write a sealed file to the terminal", hint="use --out FILE or a pipe")
    refuse_existing(out, force)
    with input_stream(input_path) as src, io_errors():
        from kmsctl.crypto import sealed

        if not key and app.remote:
            raise UsageError("seal needs -k KEY or config seal.key on the aws backend (the managed key is local)")
        if not key:  # the AWS managed key, made on first use
            key = "alias/aws/kmsctl"
            app.kms().create_managed_key(Service="kmsctl")
        made = app.kms().generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=pairs)
        _note_terminal_input(app, input_path)
        with output(app, out, force) as dst, progress_bar(app, src, "sealing") as progress:
            sealed.seal(
                src,
                dst,
                key_id=made["KeyId"],
                context=pairs,
                encrypted_data_key=made["CiphertextBlob"],
                data_key=made.pop("Plaintext"),  # kept nowhere but here
                progress=progress,
            )


@many(out_dir=True)
@click.command()
@click.option(
    "-c",
    "--context",
    "context",
    multiple=True,
    metavar="K=V",
    help="Require exactly this encryption context in the header; repeat for more.",
)
@out_option
@force_option
@input_argument
@click.pass_obj
def unseal(app: App, context: tuple[str, ...], out: str | None, force: bool, input_path: str) -> None:
    """Decrypt a sealed file from INPUT (Decrypt of its data key, then every chunk).

    The key and the encryption context come from the header; -c pairs, when
    given, must equal the header's. Each chunk is authenticated before its
    plaintext is written. With --out, FILE appears only once all of INPUT
    authenticated. To stdout, a failure part-way leaves the chunks before it
    written and exits 6: check the exit status (set -o pipefail) or use --out.

    \b
    kmsctl unseal --out dump.sql dump.sealed
    kmsctl unseal < dump.sealed | psql main
    """
    pairs = parse_pairs(context, "--context") if context else None
    refuse_existing(out, force)
    _refuse_terminal_input(input_path)
    with input_stream(input_path) as src, io_errors():
        from kmsctl.crypto import sealed

        header = sealed.read_header(src)
        if pairs is not None and pairs != header.context:
            raise InvalidCiphertextException("the encryption context given with -c does not match the sealed file's")
        opener = sealed.Opener(header, _data_key(app, header))
        with output(app, out, force) as dst, progress_bar(app, src, "unsealing") as progress:
            opener.stream(src, dst, progress)


def _data_key(app: App, header: Header) -> bytes:
    from kmsctl.crypto.sealed_header import header_error

    try:
        out = app.kms().decrypt(CiphertextBlob=header.encrypted_data_key, EncryptionContext=header.context)
    except InvalidCiphertextException as exc:
        raise header_error(f"its data key does not decrypt ({exc.message})") from None
    if out["KeyId"] != header.key_id:
        raise header_error(f"its data key is under {out['KeyId']}, not its KeyId")
    plaintext: bytes = out.pop("Plaintext")
    return plaintext


@click.command()
@input_argument
@click.pass_obj
def inspect(app: App, input_path: str) -> None:
    """Show a sealed file's header: key, encryption context, algorithm and sizes.

    Needs no unlock: the header is read, not authenticated (unseal does that).
    PlaintextSize follows from the file's length, or from reading INPUT
    through when it is a pipe. -o json gives the same fields as an object.

    Text columns: KeyId EncryptionContext (canonical JSON) Algorithm ChunkSize
    HeaderSize PlaintextSize.
    """
    _refuse_terminal_input(input_path)
    with input_stream(input_path) as src, io_errors():
        from kmsctl.crypto import sealed_header as sealed  # keyless: no cryptography, no keyring

        header = sealed.read_header(src)
        body = remaining_size(src)
        size = sealed.plaintext_size(header, sealed.count_bytes(src) if body is None else body)
    payload: dict[str, Any] = {
        "KeyId": header.key_id,
        "EncryptionContext": header.context,
        "Algorithm": header.algorithm,
        "ChunkSize": header.chunk_size,
        "HeaderSize": header.size,
        "PlaintextSize": size,
    }
    context = canonical_json(header.context).decode()
    row = [context if name == "EncryptionContext" else value for name, value in payload.items()]
    emit(app, payload, columns=list(payload), rows=[row], vertical=True)
