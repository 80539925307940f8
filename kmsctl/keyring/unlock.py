"""Where an unlock comes from, first to last:
KMSCTL_SESSION, --passphrase-file, KMSCTL_PASSPHRASE_FILE, KMSCTL_PASSPHRASE,
then a hidden prompt on the terminal when there is one. Never a hang: with no
terminal and no other source the caller gets exit 5 and a hint."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kmsctl.errors import AccessDeniedException, ValidationException
from kmsctl.keyring.keyring import Keyring

Prompt = Callable[[str], str]
LOCKED_HINT = (
    "unlock with 'eval \"$(kmsctl unlock --shell)\"', or give --passphrase-file, "
    "KMSCTL_PASSPHRASE_FILE or KMSCTL_PASSPHRASE"
)
PASSPHRASE_MAX = 1024


def read_passphrase_file(path: str) -> bytes:
    """The file's first line, without its line ending (as ssh-askpass files are)."""
    try:
        with open(path, "rb") as f:
            data = f.read(PASSPHRASE_MAX + 2)
    except OSError as exc:
        raise ValidationException(f"cannot read passphrase file {path}: {exc.strerror}") from None
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise ValidationException(f"passphrase file {path} is empty")
    if len(line) > PASSPHRASE_MAX:
        raise ValidationException(f"passphrase in {path} is longer than {PASSPHRASE_MAX} bytes")
    return line


def terminal_prompt(text: str) -> str:
    """A hidden prompt on the controlling terminal; AccessDenied if there is none."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise AccessDeniedException("the keyring is locked and there is no terminal to ask", hint=LOCKED_HINT) from None
    os.close(fd)
    import getpass

    try:
        return getpass.getpass(text)
    except EOFError:
        raise AccessDeniedException("no passphrase given", hint=LOCKED_HINT) from None


@dataclass
class UnlockSources:
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    passphrase_file: str | None = None
    prompt: Prompt = terminal_prompt

    def passphrase(self, text: str = "Keyring passphrase: ") -> bytes:
        """The passphrase from the first source that has one (sessions aside)."""
        path = self.passphrase_file or self.env.get("KMSCTL_PASSPHRASE_FILE")
        if path:
            return read_passphrase_file(path)
        if self.env.get("KMSCTL_PASSPHRASE"):
            return self.env["KMSCTL_PASSPHRASE"].encode()
        value = self.prompt(text)
        if not value:
            raise AccessDeniedException("empty passphrase", hint=LOCKED_HINT)
        return value.encode()

    def has_passphrase_source(self) -> bool:
        return bool(self.passphrase_file or self.env.get("KMSCTL_PASSPHRASE_FILE") or self.env.get("KMSCTL_PASSPHRASE"))

    def new_passphrase(self, path: str | None, prompt: Prompt | None = None) -> bytes:
        """A new passphrase: from ``path``, else asked twice on the terminal."""
        if path:
            return read_passphrase_file(path)
        ask = prompt or self.prompt
        first = ask("New passphrase: ")
        if not first:
            raise ValidationException("empty passphrase; use --no-passphrase for an unprotected keyring")
        if ask("Repeat passphrase: ") != first:
            raise ValidationException("the two passphrases differ")
        return first.encode()


def unlock(keyring: Keyring, sources: UnlockSources, now: float) -> None:
    if not keyring.protected:
        keyring.unlock_unprotected()
        return
    token = sources.env.get("KMSCTL_SESSION")
    if token:
        try:
            keyring.unlock_with_session(token, now)
            return
        except AccessDeniedException:
            if not sources.has_passphrase_source():
                raise
    keyring.unlock_with_passphrase(sources.passphrase())
