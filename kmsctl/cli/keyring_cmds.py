"""Keyring commands: init, unlock, lock, passwd, status."""

from __future__ import annotations

import re
import sys
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from kmsctl import model
from kmsctl.cli.app import App
from kmsctl.errors import AccessDeniedException, AlreadyExistsException
from kmsctl.render import emit

if TYPE_CHECKING:
    from kmsctl.service import LocalKMS

UNPROTECTED_WARNING = (
    "kmsctl: WARNING: UNPROTECTED keyring: it has NO passphrase; anyone who can read its files can use its keys"
)
TTL_DEFAULT = "1h"
_REGION = re.compile(r"^([a-z]+-){2,3}\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")


def _check(pattern: re.Pattern[str], what: str) -> Any:
    def callback(_ctx: click.Context, param: click.Parameter, value: str) -> str:
        if not pattern.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not {what}")
        return value

    return callback


def passphrase_client(
    app: App, pass_file: str | None, prompt: str = "Keyring passphrase: ", name: str = "Unlock"
) -> LocalKMS:
    """A KMS client that unlocks with the passphrase alone, never a session:
    unlock and passwd require it (a session cannot extend itself)."""
    from kmsctl.service import LocalKMS

    keyring = app.keyring()
    sources = app.sources()
    if pass_file:
        sources.passphrase_file = pass_file

    def unlocker() -> None:
        if keyring.protected:
            from kmsctl.keyring.unlock import unlock_with_passphrase

            # a mistyped passphrase may be typed again; each refused try is recorded
            unlock_with_passphrase(keyring, sources, prompt, on_wrong=lambda exc: kms.record_failed_try(exc, name))
        else:
            from kmsctl.keyring.unlock import unlock_unprotected

            unlock_unprotected(keyring, sources)  # refused when a credential was offered

    kms = LocalKMS(keyring, clock=app.clock, unlocker=unlocker)
    return kms


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@click.command()
@click.option(
    "--passphrase-file", "pass_file", type=click.Path(dir_okay=False), help="Read the new passphrase from this file."
)
@click.option("--no-passphrase", is_flag=True, help="Create an UNPROTECTED keyring (the files alone open it).")
@click.option(
    "--region",
    default=model.DEFAULT_REGION,
    show_default=True,
    callback=_check(_REGION, "a region like us-east-1"),
    help="Region written into this keyring's ARNs.",
)
@click.option(
    "--account",
    default=model.DEFAULT_ACCOUNT,
    show_default=True,
    callback=_check(_ACCOUNT, "a 12-digit account ID"),
    help="Account ID written into this keyring's ARNs.",
)
@click.pass_obj
def init(app: App, pass_file: str | None, no_passphrase: bool, region: str, account: str) -> None:
    """Create a keyring in --home, protected by a passphrase.

    The passphrase comes from --passphrase-file, KMSCTL_PASSPHRASE_FILE,
    KMSCTL_PASSPHRASE, or is asked twice on the terminal. Text output: the
    keyring folder.
    """
    import os

    from kmsctl.keyring import keyring as kr

    if no_passphrase and (pass_file or app.passphrase_file):
        raise click.UsageError("--no-passphrase and --passphrase-file exclude each other")
    if os.path.exists(kr.db_path(app.home)):  # said before any passphrase is asked for
        raise AlreadyExistsException(
            f"a keyring already exists at {kr.db_path(app.home)}", hint="use it, or pick another --home"
        )
    from kmsctl.keyring.home import check_path

    check_path(app.home, "the keyring folder")  # refused before any passphrase is asked for
    passphrase: bytes | None = None
    if not no_passphrase:
        sources = app.sources()
        if pass_file:
            sources.passphrase_file = pass_file
        if sources.has_passphrase_source():
            passphrase = sources.passphrase()
            sources.check_strength(passphrase)
        else:
            try:
                passphrase = sources.new_passphrase(None)
            except AccessDeniedException:
                why = f"prompting is off ({app.no_input})" if app.no_input else "no terminal to ask for one"
                raise AccessDeniedException(
                    f"no passphrase given and {why}",
                    hint="give --passphrase-file, KMSCTL_PASSPHRASE_FILE or KMSCTL_PASSPHRASE, "
                    "or --no-passphrase for an unprotected keyring",
                ) from None
    from kmsctl.cli.config_cmds import new_keyring_kdf  # kdf.* in config.toml

    kdf = new_keyring_kdf(app) if passphrase is not None else None
    kr.create(app.home, passphrase, region=region, account=account, created=_iso(app.clock()), kdf=kdf)
    app.info(f"kmsctl: created keyring in {app.home}")
    if passphrase is None:
        app.warn(UNPROTECTED_WARNING)
    if app.mode() == "text":
        app.write_text(app.home + "\n")
        return
    emit(
        app,
        {"Home": app.home, "Region": region, "AWSAccountId": account, "Protected": passphrase is not None},
        columns=["Home", "Region", "AWSAccountId", "Protected"],
        rows=[[app.home, region, account, passphrase is not None]],
        vertical=True,
    )


class _ShellUnlock(click.Command):
    """``unlock --shell`` that fails for any reason (a wrong passphrase, a
    usage error, Ctrl-C) prints ``false`` on stdout besides its error on
    stderr, so that ``eval "$(kmsctl unlock --shell)"`` fails under ``set -e``
    instead of evaluating nothing and carrying on."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        cmd_args = args[1] if len(args) > 1 else kwargs.get("args", [])
        shell = "--shell" in cmd_args
        try:
            ctx = super().make_context(*args, **kwargs)
        except BaseException as exc:
            if shell:
                _say_false(exc)
            raise
        ctx.meta["kmsctl.shell"] = shell
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            if ctx.meta.get("kmsctl.shell"):
                _say_false(exc)
            raise


def _say_false(exc: BaseException) -> None:
    if isinstance(exc, click.exceptions.Exit) and exc.exit_code == 0:  # --help
        return
    with suppress(OSError, ValueError):
        sys.stdout.write("false\n")
        sys.stdout.flush()


@click.command(cls=_ShellUnlock)
@click.option(
    "--ttl",
    help=f"Session lifetime: 90s, 15m, 8h, 7d (at most 30d) [default: config session_ttl, else {TTL_DEFAULT}].",
)
@click.option(
    "--passphrase-file", "pass_file", type=click.Path(dir_okay=False), help="Read the passphrase from this file."
)
@click.option("--shell", is_flag=True, help="Print 'export KMSCTL_SESSION=...' for eval.")
@click.pass_obj
def unlock(app: App, ttl: str | None, pass_file: str | None, shell: bool) -> None:
    """Start a session: later commands with KMSCTL_SESSION set skip the passphrase.

    \b
    eval "$(kmsctl unlock --shell)"          # this shell, for an hour
    export KMSCTL_SESSION=$(kmsctl unlock)   # the same, by hand

    The token is useless without this keyring's files, and 'kmsctl lock' ends
    every session. The passphrase itself is always required here: a session
    cannot extend itself. Text output: the token. With --shell, a failure
    prints 'false' on stdout as well, so that the eval fails (and 'set -e'
    stops the script).
    """
    from kmsctl.config import duration_seconds

    try:
        seconds = duration_seconds(ttl if ttl is not None else app.setting("session_ttl")[0])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    out = passphrase_client(app, pass_file).unlock(TtlSeconds=seconds)
    token, expires = out["SessionToken"], out["Expires"]
    app.info(f"kmsctl: unlocked until {expires.isoformat()}")
    if shell:
        app.write_text(f"export KMSCTL_SESSION={token}\n")
        return
    if app.mode() == "text":
        app.write_text(token + "\n")
        return
    emit(
        app,
        {"SessionToken": token, "Expires": expires},
        columns=["SessionToken", "Expires"],
        rows=[[token, expires.isoformat()]],
        vertical=True,
    )


@click.command()
@click.pass_obj
def lock(app: App) -> None:
    """End every session of this keyring at once (no passphrase needed)."""
    ended = app.kms().lock()["SessionsEnded"]
    app.info(f"kmsctl: locked; {ended} session(s) ended")


@click.command()
@click.option(
    "--passphrase-file", "old_file", type=click.Path(dir_okay=False), help="Read the current passphrase from this file."
)
@click.option(
    "--new-passphrase-file", "new_file", type=click.Path(dir_okay=False), help="Read the new passphrase from this file."
)
@click.pass_obj
def passwd(app: App, old_file: str | None, new_file: str | None) -> None:
    """Change the keyring passphrase. Every session ends; keys are untouched.

    The current passphrase is required (a session is not enough); the new one
    comes from --new-passphrase-file or is asked twice on the terminal.
    """
    from kmsctl import config as cfg

    sources = app.sources()
    # the stored Argon2id cost is kept; config.toml's kdf.* raise it where higher
    configured = {k: app.config()[f"kdf.{k}"] for k in cfg.KDF_BOUNDS if f"kdf.{k}" in app.config()}
    kms = passphrase_client(app, old_file, "Current passphrase: ", "ChangePassphrase")
    # the new passphrase is asked for once the current one has unlocked
    kms.change_passphrase(NewPassphrase=lambda: sources.new_passphrase(new_file), Kdf=configured)
    app.info("kmsctl: passphrase changed; every session has ended")


@click.command()
@click.pass_obj
def status(app: App) -> None:
    """Where the keyring is, whether it is locked, what it holds.

    Needs no passphrase. Text output, one line: home, format version,
    protected, lock state, session expiry, key count, alias count. On the aws
    backend: backend, endpoint, region, profile, the access key ID the
    credential chain found and where (no request is made).
    """
    if app.remote:
        remote = app.aws()
        identity = remote.identity()
        payload = {
            "Backend": "aws",
            "Endpoint": remote.endpoint_url or remote.default_endpoint(),
            "Region": remote.region,
            "Profile": remote.profile or "default",
            **identity,
        }
        emit(app, payload, columns=list(payload), rows=[list(payload.values())], vertical=True)
        return
    from kmsctl.keyring.unlock import refuse_if_unprotected_with_credential

    refuse_if_unprotected_with_credential(app.keyring(), app.sources())
    out = app.kms().keyring_status(SessionToken=app.env.get("KMSCTL_SESSION"))
    if not out["Protected"]:
        app.warn(UNPROTECTED_WARNING)
    payload = {"Home": app.home, **out}
    columns = ["Home", "FormatVersion", "Protected", "State", "SessionExpires", "Keys", "Aliases"]
    emit(app, payload, columns=columns, rows=[[payload[c] for c in columns]], vertical=True)
