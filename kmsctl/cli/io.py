"""Data in and out (cli.md section 4): INPUT files and stdin, raw or base64
blobs, binary results, K=V pairs, durations, and resolving KEY for the
operations that AWS lets take only a key ID or ARN."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import click

from kmsctl.errors import ValidationException

if TYPE_CHECKING:
    from kmsctl.cli.app import App

_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/=_\-\s]*$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def read_input(path: str, limit: int, what: str = "input") -> bytes:
    """Read INPUT (a path, or - for stdin), at most ``limit`` bytes: one more
    byte than that is read so that an oversized input is refused, not cut."""
    try:
        if path == "-":
            data: bytes = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise ValidationException(f"cannot read {what} {path}: {exc.strerror}") from None
    return data


def decode_blob(data: bytes, marker: int | None = None) -> bytes:
    """Raw or base64, told apart without guessing: a raw kmsctl blob starts with
    a byte that no base64 text can (``marker``); anything made only of base64
    characters is decoded as base64."""
    if marker is not None and data[:1] == bytes([marker]):
        return data
    if data and _B64_CHARS.fullmatch(data):
        import base64
        import binascii

        text = b"".join(data.split())
        try:
            if b"-" in text or b"_" in text:
                return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
            return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationException(f"input looks like base64 but does not decode ({len(data)} bytes)") from None
    return data


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


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``8h``, ``7d`` -> seconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m or int(m.group(1)) == 0:
        raise click.BadParameter(f"expected a duration like 30m, 8h or 7d, got {text!r}", param_hint="--ttl")
    return int(m.group(1)) * _UNITS[m.group(2)]


def key_metadata(app: App, ref: str) -> dict[str, Any]:
    """A key's metadata for filling in a default: DescribeKey, or, when acting as
    another principal (--principal), a lookup that needs no kms:DescribeKey."""
    if app.principal is None:
        out: dict[str, Any] = app.kms().describe_key(KeyId=ref)["KeyMetadata"]
        return out
    return app.kms().peek_metadata(ref) or {"KeyId": ref, "Arn": ref}


def key_id_for_management(app: App, ref: str) -> str:
    """AWS's management operations take a key ID or ARN only; the CLI takes any
    KEY (cli.md section 2), so an alias is resolved first."""
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
