"""Where an unlock comes from, in the contract's order (cli.md section 6):
KMSCTL_SESSION, --passphrase-file, KMSCTL_PASSPHRASE_FILE, KMSCTL_PASSPHRASE,
then a hidden prompt on the terminal when there is one. Never a hang: with no
terminal and no other source the caller gets exit 5 and a hint."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kmsctl.errors import AccessDeniedException, IntegrityError, ValidationException
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
            return _limited(self.env["KMSCTL_PASSPHRASE"].encode(), "KMSCTL_PASSPHRASE")
        value = self.prompt(text)
        if not value:
            raise AccessDeniedException("empty passphrase", hint=LOCKED_HINT)
        return _limited(value.encode(), "the passphrase")

    def has_passphrase_source(self) -> bool:
        return bool(self.passphrase_file or self.env.get("KMSCTL_PASSPHRASE_FILE") or self.env.get("KMSCTL_PASSPHRASE"))

    def offered(self) -> str | None:
        """The credential given without a prompt (session or passphrase source), if any."""
        if self.env.get("KMSCTL_SESSION"):
            return "KMSCTL_SESSION"
        if self.passphrase_file:
            return "--passphrase-file"
        for name in ("KMSCTL_PASSPHRASE_FILE", "KMSCTL_PASSPHRASE"):
            if self.env.get(name):
                return name
        return None

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
        return _limited(first.encode(), "the passphrase")


def _limited(passphrase: bytes, what: str) -> bytes:
    if len(passphrase) > PASSPHRASE_MAX:
        raise ValidationException(f"{what} is longer than {PASSPHRASE_MAX} bytes")
    return passphrase


def refuse_if_unprotected_with_credential(keyring: Keyring, sources: UnlockSources) -> None:
    """A keyring the user unlocks with a passphrase or a session, whose header
    says it has none, had its protection removed (a replaced header): using it
    would seal new keys under a master key someone else knows. Exit 8."""
    offered = sources.offered() if not keyring.protected else None
    if offered:
        raise IntegrityError(
            f"{keyring.home}: the keyring header says the keyring is unprotected, but {offered} offers a "
            "credential: its protection may have been removed behind your back (a replaced header)",
            hint="if you made it with --no-passphrase yourself, unset KMSCTL_SESSION, KMSCTL_PASSPHRASE_FILE "
            "and KMSCTL_PASSPHRASE and drop --passphrase-file",
        )


def unlock_unprotected(keyring: Keyring, sources: UnlockSources) -> None:
    refuse_if_unprotected_with_credential(keyring, sources)
    keyring.unlock_unprotected()


def unlock(keyring: Keyring, sources: UnlockSources, now: float) -> None:
    if not keyring.protected:
        unlock_unprotected(keyring, sources)
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
