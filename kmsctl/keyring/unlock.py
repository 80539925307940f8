"""Where an unlock comes from, first to last:
KMSCTL_SESSION, --passphrase-file, KMSCTL_PASSPHRASE_FILE, KMSCTL_PASSPHRASE,
then a hidden prompt on the terminal when there is one. A keyring with a
PKCS#11 token as second factor needs the token too (its PIN from --pin-file,
KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN or the prompt), except through a session. Never a hang: with no
terminal and no other source, or with prompting turned off (--no-input,
KMSCTL_NO_INPUT, CI), the caller gets exit 5 and a hint at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from kmsctl.errors import AccessDeniedException, IntegrityError, ValidationException
from kmsctl.keyring.keyring import Keyring

Prompt = Callable[[str], str]
Warn = Callable[[str], None]
LOCKED_HINT = (
    "unlock with 'eval \"$(kmsctl unlock --shell)\"', or give --passphrase-file, "
    "KMSCTL_PASSPHRASE_FILE or KMSCTL_PASSPHRASE"
)
PASSPHRASE_MAX = 1024
PASSPHRASE_SHORT = 8  # characters; shorter ones are warned about when set (init, passwd)
TRIES = 3  # at the prompt: a mistyped passphrase may be typed again, as sudo and ssh allow
PROMPT_SOURCE = "the prompt"


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def strip_newline(text: str) -> str:
    """One trailing line ending off, as a passphrase file's first line has none:
    ``KMSCTL_PASSPHRASE="$(cat f)"`` and ``KMSCTL_PASSPHRASE=$'pw\\n'`` mean the same."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _warn_if_readable(path: str, fd: int, warn: Warn, what: str = "passphrase") -> None:
    """A passphrase file others can read is a passphrase others know (ssh
    refuses such keys; kmsctl warns). Pipes and devices (``<(...)``) are not files."""
    import stat

    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o044:
        mode = stat.S_IMODE(st.st_mode)
        warn(f"kmsctl: WARNING: {what} file {path} is readable by others (mode {mode:04o}); chmod 600 {path}")


def read_passphrase_file(path: str, warn: Warn | None = None, what: str = "passphrase") -> bytes:
    """The file's first line, without its line ending (as ssh-askpass files
    are). ``what`` names the secret in messages (the token PIN files too)."""
    try:
        with open(path, "rb") as f:
            if warn is not None:
                _warn_if_readable(path, f.fileno(), warn, what)
            data = f.read(PASSPHRASE_MAX + 2)
    except OSError as exc:
        raise ValidationException(f"cannot read {what} file {path}: {exc.strerror}") from None
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise ValidationException(f"{what} file {path} is empty")
    if len(line) > PASSPHRASE_MAX:
        raise ValidationException(f"{what} in {path} is longer than {PASSPHRASE_MAX} bytes")
    return line


def _utf8(text: str, source: str) -> bytes:
    """A passphrase given as text must be UTF-8 (a file may hold any bytes):
    one that is not would otherwise mean different bytes to different tools."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise ValidationException(
            f"{source} is not UTF-8 text", hint="give the passphrase in a file (--passphrase-file) instead"
        ) from None


def terminal_prompt(text: str) -> str:
    """A hidden prompt on the controlling terminal; AccessDenied if there is none.
    Ctrl-C ends the prompt's line before the error line is printed."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise AccessDeniedException("the keyring is locked and there is no terminal to ask", hint=LOCKED_HINT) from None
    import getpass

    try:
        return getpass.getpass(text)
    except EOFError:
        raise AccessDeniedException("no passphrase given", hint=LOCKED_HINT) from None
    except KeyboardInterrupt:
        with suppress(OSError):
            os.write(fd, b"\n")
        raise
    finally:
        os.close(fd)


@dataclass
class UnlockSources:
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    passphrase_file: str | None = None
    prompt: Prompt = terminal_prompt
    # why prompting is off ("--no-input", "KMSCTL_NO_INPUT", "CI=true"), or None
    no_input: str | None = None
    warn: Warn = _stderr
    source: str | None = None  # where the last passphrase came from, for the wrong-passphrase hint
    pin_file: str | None = None  # the token PIN's --pin-file
    # config pkcs11.module (KMSCTL_PKCS11_MODULE): where the token's module is; asked only for a token
    pkcs11_module: Callable[[], str | None] = lambda: None
    _warned: set[str] = field(default_factory=set)

    def ask(self, text: str) -> str:
        """The prompt, unless prompting is off: then exit 5 at once, never a wait."""
        if self.no_input:
            raise AccessDeniedException(
                f"the keyring is locked and prompting is off ({self.no_input})", hint=LOCKED_HINT
            )
        return self.prompt(text)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)

    def passphrase(self, text: str = "Keyring passphrase: ") -> bytes:
        """The passphrase from the first source that has one (sessions aside)."""
        path = self.passphrase_file or self.env.get("KMSCTL_PASSPHRASE_FILE")
        if path:
            self.source = f"--passphrase-file {path}" if self.passphrase_file else f"KMSCTL_PASSPHRASE_FILE={path}"
            return read_passphrase_file(path, self._warn_once)
        if self.env.get("KMSCTL_PASSPHRASE"):
            self.source = "KMSCTL_PASSPHRASE"
            return _limited(
                _utf8(strip_newline(self.env["KMSCTL_PASSPHRASE"]), "KMSCTL_PASSPHRASE"), "KMSCTL_PASSPHRASE"
            )
        self.source = PROMPT_SOURCE
        value = self.ask(text)
        if not value:
            raise AccessDeniedException("empty passphrase", hint=LOCKED_HINT)
        return _limited(_utf8(value, "the passphrase typed"), "the passphrase")

    def pin(self, what: str) -> bytes:
        """The token PIN (kmsctl.hsm.pin.read_pin), the prompt only when prompting is on."""
        from kmsctl.hsm.pin import read_pin

        return read_pin(
            self.pin_file,
            prompt_ok=not self.no_input,
            what=what,
            env=self.env,
            warn=self._warn_once,
            prompt=self.prompt,
        )

    def has_passphrase_source(self) -> bool:
        return bool(self.passphrase_file or self.env.get("KMSCTL_PASSPHRASE_FILE") or self.env.get("KMSCTL_PASSPHRASE"))

    def offered(self) -> str | None:
        """The credential given without a prompt (session or passphrase source), if any."""
        if self.env.get("KMSCTL_SESSION"):
            return "KMSCTL_SESSION"
        return self.offered_passphrase()

    def offered_passphrase(self) -> str | None:
        if self.passphrase_file:
            return "--passphrase-file"
        for name in ("KMSCTL_PASSPHRASE_FILE", "KMSCTL_PASSPHRASE"):
            if self.env.get(name):
                return name
        return None

    def new_passphrase(self, path: str | None, prompt: Prompt | None = None) -> bytes:
        """A new passphrase: from ``path``, else asked twice on the terminal
        (again, up to TRIES times, when the two entries differ)."""
        if path:
            new = read_passphrase_file(path, self._warn_once)
        else:
            if self.no_input and prompt is None:
                raise AccessDeniedException(
                    f"a new passphrase is needed and prompting is off ({self.no_input})",
                    hint="give it in a file: passwd --new-passphrase-file F, init --passphrase-file F",
                )
            ask = prompt or self.ask
            for attempt in range(1, TRIES + 1):
                first = ask("New passphrase: ")
                if not first:
                    raise ValidationException("empty passphrase; use --no-passphrase for an unprotected keyring")
                if ask("Repeat passphrase: ") == first:
                    break
                if attempt == TRIES:
                    raise ValidationException(f"the two passphrases differ ({TRIES} tries)")
                self.warn("kmsctl: the two passphrases differ; try again")
            new = _limited(_utf8(first, "the passphrase typed"), "the passphrase")
        self.check_strength(new)
        return new

    def check_strength(self, passphrase: bytes) -> None:
        """A warning, not a refusal, for a passphrase under PASSPHRASE_SHORT characters."""
        if len(passphrase.decode("utf-8", "replace")) < PASSPHRASE_SHORT:
            self.warn(
                f"kmsctl: WARNING: the passphrase is shorter than {PASSPHRASE_SHORT} characters; "
                "a few random words are much harder to guess"
            )


def _limited(passphrase: bytes, what: str) -> bytes:
    if len(passphrase) > PASSPHRASE_MAX:
        raise ValidationException(f"{what} is longer than {PASSPHRASE_MAX} bytes")
    return passphrase


def refuse_if_unprotected_with_credential(keyring: Keyring, sources: UnlockSources) -> None:
    """A keyring the user unlocks with a passphrase or a session, whose header
    says it has none, had its protection removed (a replaced header): using it
    would seal new keys under a master key someone else knows. Exit 8. (A
    keyring guarded by its token alone takes sessions, not a passphrase.)"""
    offered = sources.offered() if not keyring.protected else None
    if offered == "KMSCTL_SESSION" and keyring.token_stanza is not None:
        offered = None if not sources.has_passphrase_source() else sources.offered_passphrase()
    if offered:
        raise IntegrityError(
            f"{keyring.home}: the keyring header says the keyring is unprotected, but {offered} offers a "
            "credential: its protection may have been removed behind your back (a replaced header)",
            hint="if you made it with --no-passphrase yourself, unset KMSCTL_SESSION, KMSCTL_PASSPHRASE_FILE "
            "and KMSCTL_PASSPHRASE and drop --passphrase-file",
        )


def unlock_unprotected(keyring: Keyring, sources: UnlockSources) -> None:
    """No passphrase: the files alone, or the token alone when the header names one."""
    refuse_if_unprotected_with_credential(keyring, sources)
    keyring.unlock_unprotected(token_share(keyring, sources))


def token_share(keyring: Keyring, sources: UnlockSources) -> bytes | None:
    """The share the keyring's token unwraps (None for a keyring without one)."""
    if keyring.token_stanza is None:
        return None
    from kmsctl.keyring.root import open_share

    return open_share(keyring, sources)


def wrong_passphrase_hint(source: str | None) -> str:
    if source == PROMPT_SOURCE:
        return "it was typed at the prompt; check the keyring folder (--home, KMSCTL_HOME) too"
    return f"it came from {source}; check it, and the keyring folder (--home, KMSCTL_HOME)"


def unlock_with_passphrase(
    keyring: Keyring,
    sources: UnlockSources,
    text: str = "Keyring passphrase: ",
    on_wrong: Callable[[AccessDeniedException], None] | None = None,
) -> None:
    """Unlock with the passphrase. Typed at the prompt, a wrong one may be
    typed again (TRIES in all); each failed try but the last goes to
    ``on_wrong`` (the audit trail), the last is raised. The error's hint names
    the source the passphrase came from. The token, when the keyring has
    one, is asked first (once): without it no passphrase is worth typing."""
    share = token_share(keyring, sources)
    for attempt in range(1, TRIES + 1):
        passphrase = sources.passphrase(text)
        try:
            keyring.unlock_with_passphrase(passphrase, share)
            return
        except AccessDeniedException as exc:
            exc.hint = wrong_passphrase_hint(sources.source)
            if sources.source != PROMPT_SOURCE or attempt == TRIES:
                if sources.source == PROMPT_SOURCE:
                    exc.message = f"{exc.message} ({TRIES} tries)"
                raise
            if on_wrong is not None:
                on_wrong(exc)
            sources.warn("kmsctl: wrong passphrase; try again")


def unlock_with_factors(
    keyring: Keyring,
    sources: UnlockSources,
    text: str = "Keyring passphrase: ",
    on_wrong: Callable[[AccessDeniedException], None] | None = None,
) -> None:
    """The passphrase and/or the token, as the header asks, never a session."""
    if keyring.protected:
        unlock_with_passphrase(keyring, sources, text, on_wrong=on_wrong)
    else:
        unlock_unprotected(keyring, sources)  # refused when a passphrase was offered


def unlock(
    keyring: Keyring,
    sources: UnlockSources,
    now: float,
    on_wrong: Callable[[AccessDeniedException], None] | None = None,
) -> None:
    if not keyring.needs_credential:
        unlock_unprotected(keyring, sources)
        return
    session = sources.env.get("KMSCTL_SESSION")
    if session:
        try:
            keyring.unlock_with_session(session, now)
            return
        except AccessDeniedException:
            if not keyring.protected or not sources.has_passphrase_source():
                raise
    unlock_with_factors(keyring, sources, on_wrong=on_wrong)
