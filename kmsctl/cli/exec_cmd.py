"""``kmsctl exec``: run a command with secrets from env files in its environment.

An env file is either ``NAME=<base64 kmsctl ciphertext>`` lines, or a sealed
file whose plaintext is a dotenv (``NAME=value`` lines). Every value is
decrypted in memory, all of them before CMD starts (one failure and CMD never
runs), then kmsctl closes the keyring and replaces itself with CMD
(``execvpe``): CMD's exit status and signals are its own, and no plaintext is
ever written to a file.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import parse_pairs, read_input
from kmsctl.errors import KMSError, ValidationException

ENV_FILE_MAX = 1 << 20  # more than any environment can hold (Linux: 2 MiB for argv and environment together)
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b'"': b'"', b"\\": b"\\", b"$": b"$"}


class CommandNotFound(KMSError):
    """CMD is not on PATH: 127, as the shell and env(1) exit."""

    exit_code = 127


class CommandNotExecutable(KMSError):
    """CMD exists but cannot be run: 126, as the shell and env(1) exit."""

    exit_code = 126


def replace_process(argv: list[str], env: dict[bytes, bytes]) -> None:
    """Become CMD. Tests replace this; nothing after it runs when it succeeds."""
    os.execvpe(argv[0], argv, env)  # noqa: S606 - running the user's command is the point


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="NAME=<base64 ciphertext> lines, or a sealed dotenv; repeat for more (later files win).",
)
@click.option(
    "-c",
    "--context",
    "context",
    multiple=True,
    metavar="K=V",
    help="Encryption context of every ciphertext line; repeat for more.",
)
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
@click.pass_obj
def exec_(app: App, env_files: tuple[str, ...], context: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run CMD with the variables of the env FILEs set, decrypted in memory.

    A FILE holds NAME=<base64 kmsctl ciphertext> lines ('export NAME=...'
    accepted; '#' comments and blank lines skipped), or is a sealed file
    (kmsctl seal) of a dotenv with plain NAME=value lines. Nothing is decrypted
    to disk. kmsctl then becomes CMD: the exit status is CMD's (127 if it is
    not found, 126 if it cannot run).

    \b
    printf %s "$DB_PASSWORD" | kmsctl encrypt -k alias/app --base64 | sed 's/^/DB_PASSWORD=/' >> app.env
    kmsctl exec --env-file app.env -- ./server --port 8080
    """
    pairs = parse_pairs(context, "--context") if context else None
    values: dict[bytes, bytes] = {}
    for path in env_files:
        values.update(_read_env_file(app, path, pairs))
    env = dict(os.environb)
    env.update(values)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    store = sys.modules.get("kmsctl.keyring.store")
    if store is not None:
        store.close_all()  # committed and closed: CMD inherits no keyring descriptor
    try:
        replace_process(list(command), env)
    except FileNotFoundError:
        raise CommandNotFound(f"{command[0]}: command not found") from None
    except OSError as exc:
        raise CommandNotExecutable(f"cannot run {command[0]}: {exc.strerror or exc}") from None


def _read_env_file(app: App, path: str, pairs: dict[str, str] | None) -> dict[bytes, bytes]:
    data = read_input(path, ENV_FILE_MAX, "env file")
    if len(data) > ENV_FILE_MAX:
        raise ValidationException(f"env file {path} is larger than {ENV_FILE_MAX >> 20} MiB")
    from kmsctl.crypto.sealed_header import MAGIC

    if data.startswith(MAGIC):
        return dict((name, value) for _n, name, value in _dotenv(path, _unseal(app, data), plain=True))
    from kmsctl.cli.lines import b64decode_strict

    out: dict[bytes, bytes] = {}
    for number, name, value in _dotenv(path, data, plain=False):
        where = f"{path} line {number} ({name.decode()})"
        try:
            blob = b64decode_strict(value, "the value")
            args: dict[str, Any] = {"EncryptionContext": pairs} if pairs else {}
            plaintext: bytes = app.kms().decrypt(CiphertextBlob=blob, **args)["Plaintext"]
        except KMSError as exc:
            hint = exc.hint
            if isinstance(exc, ValidationException):
                hint = "values are base64 kmsctl ciphertexts; plain values belong in a sealed dotenv (kmsctl seal)"
            raise type(exc)(f"{where}: {exc.message}", hint=hint) from None
        out[name] = _checked(plaintext, where)
    return out


def _unseal(app: App, data: bytes) -> bytes:
    """The sealed file's plaintext, in memory only."""
    from kmsctl.cli.seal import _data_key
    from kmsctl.crypto import sealed

    src = io.BytesIO(data)
    header = sealed.read_header(src)
    dst = io.BytesIO()
    sealed.Opener(header, _data_key(app, header)).stream(src, dst)
    return dst.getvalue()


def _checked(value: bytes, where: str) -> bytes:
    if b"\0" in value:
        raise ValidationException(f"{where}: the value holds a NUL byte, which no environment variable can")
    return value


def _dotenv(path: str, data: bytes, *, plain: bool) -> Iterator[tuple[int, bytes, bytes]]:
    """(line number, NAME, value) of each assignment. ``plain`` values (a sealed
    dotenv) may be quoted: '...' as is, "..." with backslash escapes; unquoted,
    a ' #' starts a comment."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.removesuffix(b"\r").strip()
        if not line or line.startswith(b"#"):
            continue
        if line.startswith((b"export ", b"export\t")):
            line = line[7:].lstrip()
        name, sep, value = line.partition(b"=")
        name, value = name.rstrip(), value.strip()
        if not sep or not _NAME.fullmatch(name):
            # the line itself is not shown: in a sealed dotenv it may be a secret
            raise ValidationException(f"{path} line {number}: expected NAME=VALUE, NAME a variable name")
        if plain:
            value = _checked(_unquote(value, f"{path} line {number}"), f"{path} line {number} ({name.decode()})")
        elif len(value) >= 2 and value[:1] == value[-1:] and value[:1] in (b'"', b"'"):
            value = value[1:-1]
        yield number, name, value


def _unquote(value: bytes, where: str) -> bytes:
    if value[:1] == b"'":
        if len(value) < 2 or not value.endswith(b"'"):
            raise ValidationException(f"{where}: unterminated '")
        return value[1:-1]
    if value[:1] == b'"':
        out, i = bytearray(), 1
        while i < len(value):
            c = value[i : i + 1]
            if c == b'"':
                if value[i + 1 :].strip() and not value[i + 1 :].lstrip().startswith(b"#"):
                    raise ValidationException(f'{where}: text after the closing "')
                return bytes(out)
            if c == b"\\" and i + 1 < len(value):
                nxt = value[i + 1 : i + 2]
                out += _ESCAPES.get(nxt, b"\\" + nxt)
                i += 2
                continue
            out += c
            i += 1
        raise ValidationException(f'{where}: unterminated "')
    comment = re.search(rb"\s#", value)
    return value[: comment.start()].rstrip() if comment else value
