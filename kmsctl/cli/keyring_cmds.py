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
HARDWARE_LOSS_WARNING = (
    "kmsctl: WARNING: losing the token (or its key) loses this keyring: keep a backup (kmsctl backup) you can restore"
)
TTL_DEFAULT = "1h"
_REGION = re.compile(r"^([a-z]+-){2,3}\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
PIN_FILE_HELP = "Read the token PIN from this file (else KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN, a prompt)."


def _check(pattern: re.Pattern[str], what: str) -> Any:
    def callback(_ctx: click.Context, param: click.Parameter, value: str) -> str:
        if not pattern.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not {what}")
        return value

    return callback


def passphrase_client(
    app: App,
    pass_file: str | None,
    prompt: str = "Keyring passphrase: ",
    name: str = "Unlock",
    pin_file: str | None = None,
) -> LocalKMS:
    """A KMS client that unlocks with the passphrase (and the token, when the
    keyring has one), never a session: unlock and passwd require it (a
    session cannot extend itself)."""
    from kmsctl.service import LocalKMS

    keyring = app.keyring()
    sources = app.sources()
    if pass_file:
        sources.passphrase_file = pass_file

    if pin_file:
        sources.pin_file = pin_file

    def unlocker() -> None:
        from kmsctl.keyring.unlock import unlock_with_factors

        # the token first when there is one; a mistyped passphrase may be
        # typed again, each refused try recorded; without a passphrase,
        # refused when a credential was offered
        unlock_with_factors(keyring, sources, prompt, on_wrong=lambda exc: kms.record_failed_try(exc, name))

    kms = LocalKMS(keyring, clock=app.clock, unlocker=unlocker)
    return kms


def _enroller(app: App, uri_text: str, pin_file: str | None) -> tuple[Any, dict[str, str]]:
    from kmsctl.keyring.root import enroller, enrolment_uri

    sources = app.sources()
    sources.pin_file = pin_file
    uri = enrolment_uri(uri_text, sources, token=app.setting("pkcs11.token")[0])
    return enroller(uri, sources)


def _token_fields(token: dict[str, str]) -> dict[str, str]:
    """What an audit record says of a token: its label, serial and module (never a PIN)."""
    return {k: token[k] for k in ("Label", "Serial", "Module") if k in token}


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
@click.option(
    "--pkcs11",
    "pkcs11_uri",
    metavar="URI",
    help="A PKCS#11 token as second factor (RFC 7512 URI, e.g. pkcs11:token=NAME?module-path=/path/module.so).",
)
@click.option("--pin-file", type=click.Path(dir_okay=False), help=PIN_FILE_HELP)
@click.pass_obj
def init(
    app: App,
    pass_file: str | None,
    no_passphrase: bool,
    region: str,
    account: str,
    pkcs11_uri: str | None,
    pin_file: str | None,
) -> None:
    """Create a keyring in --home, protected by a passphrase (and a token).

    The passphrase comes from --passphrase-file, KMSCTL_PASSPHRASE_FILE,
    KMSCTL_PASSPHRASE, or is asked twice on the terminal. With --pkcs11 URI,
    a key generated in that PKCS#11 token is needed too (with
    --no-passphrase: the token alone); its PIN comes from --pin-file,
    KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN or a prompt, never the
    command line. Text output: the keyring folder.
    """
    import os

    from kmsctl.keyring import keyring as kr

    if no_passphrase and (pass_file or app.passphrase_file):
        raise click.UsageError("--no-passphrase and --passphrase-file exclude each other")
    if pin_file and not pkcs11_uri:
        raise click.UsageError("--pin-file needs --pkcs11")
    if os.path.exists(kr.db_path(app.home)):  # said before any passphrase is asked for
        raise AlreadyExistsException(
            f"a keyring already exists at {kr.db_path(app.home)}", hint="use it, or pick another --home"
        )
    from kmsctl.keyring.home import check_path

    check_path(app.home, "the keyring folder")  # refused before any passphrase is asked for
    enrol, token = _enroller(app, pkcs11_uri, pin_file) if pkcs11_uri else (None, {})  # a bad URI before a passphrase
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
    kr.create(app.home, passphrase, region=region, account=account, created=_iso(app.clock()), kdf=kdf, enrol=enrol)
    app.info(f"kmsctl: created keyring in {app.home}")
    if token:
        # the audit trail's first record says which token guards the keyring
        passphrase_client(app, pass_file, name="UpdateRootOfTrust", pin_file=pin_file).update_root_of_trust(
            Action="InitToken", Token=_token_fields(token)
        )
        app.info(f"kmsctl: the keyring needs token {token['Label']!r} (serial {token['Serial']}) to unlock")
        app.warn(HARDWARE_LOSS_WARNING)
    elif passphrase is None:
        app.warn(UNPROTECTED_WARNING)
    if app.mode() == "text":
        app.write_text(app.home + "\n")
        return
    payload: dict[str, Any] = {"Home": app.home, "Region": region, "AWSAccountId": account}
    payload["Protected"] = passphrase is not None
    if token:
        payload["Token"] = _token_fields(token)
    emit(
        app,
        payload,
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
@click.option("--pin-file", type=click.Path(dir_okay=False), help=PIN_FILE_HELP + " For a keyring with a token.")
@click.option("--shell", is_flag=True, help="Print 'export KMSCTL_SESSION=...' for eval.")
@click.pass_obj
def unlock(app: App, ttl: str | None, pass_file: str | None, pin_file: str | None, shell: bool) -> None:
    """Start a session: later commands with KMSCTL_SESSION set skip the passphrase.

    \b
    eval "$(kmsctl unlock --shell)"          # this shell, for an hour
    export KMSCTL_SESSION=$(kmsctl unlock)   # the same, by hand

    The token is useless without this keyring's files, and 'kmsctl lock' ends
    every session. The passphrase itself is always required here: a session
    cannot extend itself; so is the keyring's PKCS#11 token if it has one
    (the session then works without it). Text output: the token. With --shell, a failure
    prints 'false' on stdout as well, so that the eval fails (and 'set -e'
    stops the script).
    """
    from kmsctl.config import duration_seconds

    try:
        seconds = duration_seconds(ttl if ttl is not None else app.setting("session_ttl")[0])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    out = passphrase_client(app, pass_file, pin_file=pin_file).unlock(TtlSeconds=seconds)
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
@click.option(
    "--add-pkcs11",
    "add_uri",
    metavar="URI",
    help="Make a PKCS#11 token a second factor (RFC 7512 URI); the passphrase stays.",
)
@click.option("--remove-pkcs11", is_flag=True, help="Stop needing the keyring's token (its key stays in the token).")
@click.option("--pin-file", type=click.Path(dir_okay=False), help=PIN_FILE_HELP)
@click.pass_obj
def passwd(
    app: App, old_file: str | None, new_file: str | None, add_uri: str | None, remove_pkcs11: bool, pin_file: str | None
) -> None:
    """Change the keyring passphrase, or add or remove its token. Every session ends; keys are untouched.

    The current passphrase is required (a session is not enough), and the
    keyring's token if it has one; the new passphrase comes from
    --new-passphrase-file or is asked twice on the terminal. --add-pkcs11 URI
    generates a key in that token and makes the token a second factor;
    --remove-pkcs11 makes the passphrase alone enough again. The token PIN
    comes from --pin-file, KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN or a
    prompt. The header is rewritten at once, in one transaction.
    """
    from kmsctl import config as cfg

    if add_uri and remove_pkcs11:
        raise click.UsageError("--add-pkcs11 and --remove-pkcs11 exclude each other")
    if (add_uri or remove_pkcs11) and new_file:
        raise click.UsageError("change the passphrase and the token in two steps")
    if add_uri or remove_pkcs11:
        _passwd_token(app, old_file, add_uri, pin_file)
        return
    sources = app.sources()
    # the stored Argon2id cost is kept; config.toml's kdf.* raise it where higher
    configured = {k: app.config()[f"kdf.{k}"] for k in cfg.KDF_BOUNDS if f"kdf.{k}" in app.config()}
    kms = passphrase_client(app, old_file, "Current passphrase: ", "ChangePassphrase", pin_file=pin_file)
    # the new passphrase is asked for once the current one has unlocked
    kms.change_passphrase(NewPassphrase=lambda: sources.new_passphrase(new_file), Kdf=configured)
    app.info("kmsctl: passphrase changed; every session has ended")


def _passwd_token(app: App, old_file: str | None, add_uri: str | None, pin_file: str | None) -> None:
    """passwd --add-pkcs11 / --remove-pkcs11: both factors unlock first."""
    keyring = app.keyring()
    if add_uri and keyring.token_stanza is not None:
        raise AlreadyExistsException("the keyring already has a token", hint="remove it first: passwd --remove-pkcs11")
    if not add_uri and keyring.token_stanza is None:
        from kmsctl.errors import NotFoundException

        raise NotFoundException("the keyring has no token to remove")
    if not add_uri and not keyring.protected:
        from kmsctl.errors import ValidationException

        raise ValidationException(
            "the token is this keyring's only protection: removing it would leave it UNPROTECTED",
            hint="set a passphrase first (kmsctl passwd), then remove the token",
        )
    enrol, token = _enroller(app, add_uri, pin_file) if add_uri else (None, {})
    name = "UpdateRootOfTrust"
    kms = passphrase_client(app, old_file, "Current passphrase: ", name, pin_file=pin_file)
    if add_uri:
        # the token's fields are known once it has made its key: the record has them in its response
        kms.update_root_of_trust(Action="AddToken", Enrol=enrol, Token=token)
        app.info(f"kmsctl: the keyring now needs token {token['Label']!r} (serial {token['Serial']}) too")
        app.warn(HARDWARE_LOSS_WARNING)
    else:
        from kmsctl.keyring.root import describe

        old = describe(keyring) or {}
        kms.update_root_of_trust(Action="RemoveToken", Token=_token_fields(old))
        app.info(f"kmsctl: the keyring no longer needs token {old.get('Label')!r}; its key stays in the token")
    app.info("kmsctl: every session has ended")


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
    if not out["Protected"] and out["Token"] is None:
        app.warn(UNPROTECTED_WARNING)
    payload = {"Home": app.home, **out}
    columns = ["Home", "FormatVersion", "Protected", "State", "SessionExpires", "Keys", "Aliases", "Token"]
    token = out["Token"]
    shown = f"{token['Label']} (serial {token['Serial']}, {token['Module']})" if token else None
    emit(app, payload, columns=columns, rows=[[*(payload[c] for c in columns[:-1]), shown]], vertical=True)
