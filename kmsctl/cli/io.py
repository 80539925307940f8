"""Data in and out: INPUT files and stdin, raw or base64
blobs, binary results, K=V pairs, and resolving KEY for the
operations that AWS lets take only a key ID or ARN."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import click

from kmsctl.errors import KMSError, ValidationException

if TYPE_CHECKING:
    from kmsctl.cli.app import App

_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/=_\-\s]*$")
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")


def read_input(path: str, limit: int, what: str = "input") -> bytes:
    """Read INPUT (a path, or - for stdin), at most ``limit`` bytes: one more
    byte than that is read so that an oversized input is refused, not cut."""
    if path == "-":
        refuse_terminal_stdin(what)
    try:
        if path == "-":
            data: bytes = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise ValidationException(f"cannot read {what} {path}: {exc.strerror}") from None
    return data


def refuse_terminal_stdin(what: str) -> None:
    """With prompting off (--no-input, CI), reading INPUT from a terminal
    would wait for typing that never comes (docker run -t, a CI PTY): fail at once."""
    if not stdin_is_tty():
        return
    from kmsctl.cli.app import App

    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(App) if ctx is not None else None
    if app is not None and app.no_input:
        raise click.UsageError(
            f"the {what} would be read from the terminal, and prompting is off ({app.no_input}): "
            "give INPUT as a file, or pipe it in"
        )


def decode_blob(
    data: bytes, marker: int | None = None, *, what: str = "input", error: type[KMSError] = ValidationException
) -> bytes:
    """Raw or base64, told apart without guessing: a raw kmsctl blob starts with
    a byte that no base64 text can (``marker``); anything made only of base64
    characters and whitespace must be strict base64 (``strict_base64``), else
    ``error``; anything else is passed on raw."""
    if marker is not None and data[:1] == bytes([marker]):
        return data
    if data and _B64_CHARS.fullmatch(data):
        decoded, problem = strict_base64(b"".join(data.split()))
        if problem:
            raise error(f"the {what} is made of base64 characters but is not base64: {problem}")
        return decoded
    return data


def strict_base64(text: bytes) -> tuple[bytes, str | None]:
    """Decode base64 with one spelling per value: one alphabet (standard or
    URL-safe, never both), padding optional but only at the end and only to
    complete the last group, and no stray bits in the last character (RFC 4648
    section 3.5). -> (bytes, None), or (b"", what is wrong)."""
    import base64
    import binascii

    body = text.rstrip(b"=")
    pad = len(text) - len(body)
    if b"=" in body:
        return b"", "'=' before the end (padding is allowed only at the end, with nothing after it)"
    if pad and (pad > 2 or len(text) % 4):
        return b"", "wrong padding"
    if len(body) % 4 == 1:
        return b"", "its length is not that of any base64 text"
    urlsafe, standard = bool(re.search(rb"[-_]", body)), bool(re.search(rb"[+/]", body))
    if urlsafe and standard:
        return b"", "it mixes the standard (+/) and URL-safe (-_) alphabets"
    std = body.translate(_URLSAFE_TO_STD) if urlsafe else body
    try:
        decoded = base64.b64decode(std + b"=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b"", "it does not decode"
    if base64.b64encode(decoded).rstrip(b"=") != std:
        return b"", "its last character has stray bits (not the canonical spelling)"
    return decoded, None


def write_binary(app: App, data: bytes, force_base64: bool) -> None:
    """Raw bytes to a file or pipe; base64 text on a terminal or with --base64."""
    if force_base64 or app.stdout_is_tty():
        import base64

        app.write_text(base64.b64encode(data).decode() + "\n")
    else:
        app.write(data)


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected K=V, got {pair!r}", param_hint=option)
        if key in out:
            raise click.BadParameter(f"{key!r} is given twice", param_hint=option)
        out[key] = value
    return out


def key_metadata(app: App, ref: str) -> dict[str, Any]:
    """A key's metadata for filling in a default: DescribeKey read for the
    client itself (no audit record of its own), or, when acting as another
    principal (--principal), a lookup that needs no kms:DescribeKey."""
    if app.principal is None:
        return app.kms().key_metadata(ref)
    return app.kms().peek_metadata(ref) or {"KeyId": ref, "Arn": ref}


def key_id_for_management(app: App, ref: str) -> str:
    """AWS's management operations take a key ID or ARN only; the CLI takes any
    KEY form (key ID, key ARN, alias name, alias ARN), so an alias is resolved first."""
    if ref.startswith("alias/") or ":alias/" in ref:
        meta = key_metadata(app, ref)
        # another account's principal must name the key by ARN (a key ID resolves in its own account)
        return str(meta["Arn"] if app.principal else meta["KeyId"])
    return ref


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False
