"""Where a token PIN comes from: --pin-file, KMSCTL_PKCS11_PIN_FILE,
KMSCTL_PKCS11_PIN, then a hidden prompt on the terminal when allowed. Never
argv (kmsctl.hsm.uri refuses pin-value). No python-pkcs11 here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from kmsctl.errors import AccessDeniedException, ValidationException

PIN_SOURCES = "--pin-file, KMSCTL_PKCS11_PIN_FILE or KMSCTL_PKCS11_PIN"
PIN_MAX = 256


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _prompt(text: str) -> str:
    import getpass

    fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)  # OSError: no terminal
    try:
        return getpass.getpass(text)
    finally:
        os.close(fd)


def read_pin(
    pin_file: str | None,
    *,
    prompt_ok: bool,
    what: str,
    env: Mapping[str, str] | None = None,
    warn: Callable[[str], None] = _stderr,
    prompt: Callable[[str], str] = _prompt,
) -> bytes:
    """The PIN for the token ``what`` names, from the first source that has one.
    Files are read as passphrase files are (the first line; a warning when
    others can read the file). None at all: AccessDeniedException (exit 5)."""
    from kmsctl.keyring.unlock import read_passphrase_file, strip_newline

    env = os.environ if env is None else env
    path = pin_file or env.get("KMSCTL_PKCS11_PIN_FILE")
    if path:
        return read_passphrase_file(path, warn, "PIN")
    if env.get("KMSCTL_PKCS11_PIN"):
        pin = strip_newline(env["KMSCTL_PKCS11_PIN"])
        try:
            raw = pin.encode()
        except UnicodeEncodeError:
            raise ValidationException(
                "KMSCTL_PKCS11_PIN is not UTF-8 text", hint="use KMSCTL_PKCS11_PIN_FILE"
            ) from None
        if len(raw) > PIN_MAX:
            raise ValidationException(f"KMSCTL_PKCS11_PIN is longer than {PIN_MAX} bytes")
        return raw
    missing = AccessDeniedException(f"no PIN for token {what}: {PIN_SOURCES}")
    if not prompt_ok:
        raise missing
    try:
        typed = prompt(f"PIN for token {what}: ")
    except (OSError, EOFError, AccessDeniedException):  # no terminal
        raise missing from None
    if not typed:
        raise AccessDeniedException(f"empty PIN for token {what}")
    return typed.encode()
