"""The command line: the root group, lazy command loading and the one error boundary.

Start-up cost is a feature: this module imports click and nothing heavy.
Commands live in small modules loaded only when named (``COMMANDS``), and they
import the service, cryptography and rich only inside their bodies.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from typing import TYPE_CHECKING

import click

from kmsctl.cli.app import App
from kmsctl.cli.root import (
    AWS_COMMANDS,
    late_globals,
    no_such_command,
    overview,
    refuse_local_only,
    remote_flags,
    remote_options,
    suggest_subcommands,
)

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# name -> "module:attribute", in the order --help lists them
COMMANDS: dict[str, str] = {
    "init": "kmsctl.cli.keyring_cmds:init",
    "unlock": "kmsctl.cli.keyring_cmds:unlock",
    "lock": "kmsctl.cli.keyring_cmds:lock",
    "passwd": "kmsctl.cli.keyring_cmds:passwd",
    "status": "kmsctl.cli.keyring_cmds:status",
    "check": "kmsctl.cli.check:check",
    "create": "kmsctl.cli.keys:create",
    "describe": "kmsctl.cli.keys:describe",
    "list": "kmsctl.cli.keys:list_",
    "enable": "kmsctl.cli.keys:enable",
    "disable": "kmsctl.cli.keys:disable",
    "update-description": "kmsctl.cli.keys:update_description",
    "schedule-delete": "kmsctl.cli.keys:schedule_delete",
    "cancel-delete": "kmsctl.cli.keys:cancel_delete",
    "rotate": "kmsctl.cli.rotation:rotate",
    "rotation": "kmsctl.cli.rotation:rotation",
    "maintain": "kmsctl.cli.rotation:maintain",
    "alias": "kmsctl.cli.aliases:alias",
    "audit": "kmsctl.cli.audit:audit",
    "tag": "kmsctl.cli.aliases:tag",
    "encrypt": "kmsctl.cli.crypto:encrypt",
    "decrypt": "kmsctl.cli.crypto:decrypt",
    "re-encrypt": "kmsctl.cli.crypto:re_encrypt",
    "data-key": "kmsctl.cli.crypto:data_key",
    "random": "kmsctl.cli.crypto:random",
    "sign": "kmsctl.cli.sign:sign",
    "verify": "kmsctl.cli.sign:verify",
    "hmac": "kmsctl.cli.sign:hmac",
    "verify-mac": "kmsctl.cli.sign:verify_mac",
    "data-key-pair": "kmsctl.cli.sign:data_key_pair",
    "public-key": "kmsctl.cli.sign:public_key",
    "derive-shared-secret": "kmsctl.cli.sign:derive_shared_secret",
    "encapsulate": "kmsctl.cli.kem:encapsulate",
    "decapsulate": "kmsctl.cli.kem:decapsulate",
    "seal": "kmsctl.cli.seal:seal",
    "unseal": "kmsctl.cli.seal:unseal",
    "inspect": "kmsctl.cli.seal:inspect",
    "exec": "kmsctl.cli.exec_cmd:exec_",
    "import": "kmsctl.cli.imports:import_",
    "seed": "kmsctl.cli.seed:seed",
    "backup": "kmsctl.cli.backup:backup",
    "restore": "kmsctl.cli.backup:restore",
    "keystore": "kmsctl.cli.keystores:keystore",
    "principal": "kmsctl.cli.principals:principal",
    "policy": "kmsctl.cli.policy_cmds:policy",
    "grant": "kmsctl.cli.grants:grant",
    "serve": "kmsctl.cli.serve:serve",
    "config": "kmsctl.cli.config_cmds:config",
    "completion": "kmsctl.cli.complete:completion",
    "help": "kmsctl.cli.manual:help_",
}


OUTPUT_CHOICES = ["auto", "table", "json", "text"]


def _late_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(App).output = value  # type: ignore[union-attr]


def _late_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).quiet = True  # type: ignore[union-attr]


def _accept_output_options(command: click.Command) -> None:
    """Let the global options follow the command too (``kmsctl describe KEY
    -o json``, ``kmsctl list --home DIR``), as aws and gh users type them."""
    if getattr(command, "_late_options", False):
        return
    command._late_options = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        suggest_subcommands(command)
        for sub in command.commands.values():
            _accept_output_options(sub)
        return
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for option in late_globals():
        if not taken.intersection(option.opts):  # a command's own --passphrase-file (init, passwd) wins
            option.hidden = True
            option.help = "As the global option of that name."
            command.params.append(option)
    command.params.append(
        click.Option(
            ["-o", "--output"],
            type=click.Choice(OUTPUT_CHOICES, case_sensitive=False),
            expose_value=False,
            callback=_late_output,
            help="Result format, as the global -o.",
        )
    )
    command.params.append(
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_late_quiet,
            help="No informational messages, as the global -q.",
        )
    )


# commands whose operation takes AWS's DryRun (grant create/retire/revoke declare --dry-run themselves)
DRY_RUN_COMMANDS = frozenset(
    "encrypt decrypt re-encrypt data-key data-key-pair sign verify hmac verify-mac derive-shared-secret".split()  # noqa: SIM905
)


def _late_dry_run(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).dry_run = True  # type: ignore[union-attr]


def _accept_dry_run(command: click.Command) -> None:
    """--dry-run: check that the caller may, and the request would succeed; do nothing."""
    if any(p.name == "dry_run" for p in command.params):
        return
    command.params.append(
        click.Option(
            ["--dry-run"],
            is_flag=True,
            expose_value=False,
            callback=_late_dry_run,
            help="Only check that the request would succeed (DryRun): exit 0 and say so, or fail; nothing is done.",
        )
    )


def _settings_first(command: click.Command) -> None:
    """Read config.toml once a command's options are parsed (so --help never
    reads it) and before its body runs: a broken file fails the command before
    it has changed anything, not when it comes to print its result."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _settings_first(sub)
        return
    callback = command.callback
    if callback is None or getattr(callback, "_settings_first", False):
        return

    def first_settings(*args: object, **kwargs: object) -> object:
        ctx = click.get_current_context()
        app = ctx.find_object(App)
        if app is not None:
            app.config()
            refuse_local_only(ctx)
        return callback(*args, **kwargs)

    first_settings._settings_first = True  # type: ignore[attr-defined]
    command.callback = first_settings


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An `aws kms` command name stands for its kmsctl words; a mistyped
        name fails with the closest command or alias name."""
        if args and args[0] in AWS_COMMANDS:
            args = [*AWS_COMMANDS[args[0]].split(), *args[1:]]
        if args and not ctx.resilient_parsing and not args[0].startswith("-") and args[0] not in COMMANDS:
            no_such_command(ctx, args[0], [*COMMANDS, *AWS_COMMANDS])
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Commands, and the hidden `aws kms` names once no kmsctl command
        matches what is typed (``describe-<TAB>``, ``gen<TAB>``), so that
        ``desc<TAB>`` still completes to ``describe`` at once."""
        items = super().shell_complete(ctx, incomplete)
        if incomplete and not incomplete.startswith("-") and not any(n.startswith(incomplete) for n in COMMANDS):
            from click.shell_completion import CompletionItem

            items += [
                CompletionItem(name, help=f"= kmsctl {words}")
                for name, words in AWS_COMMANDS.items()
                if name.startswith(incomplete)
            ]
        return items

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        import importlib

        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        _accept_output_options(command)
        if cmd_name in DRY_RUN_COMMANDS:
            _accept_dry_run(command)
        from kmsctl.cli.complete import attach  # what TAB offers for KEY, enums, algorithms

        attach(command)
        if cmd_name not in ("completion", "help"):  # the two that never need a setting
            _settings_first(command)
        return command


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kmsctl")
    except PackageNotFoundError:
        return "0+unknown"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"kmsctl {_version()}")
        ctx.exit(0)


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--home", envvar="KMSCTL_HOME", type=click.Path(file_okay=False), help="Keyring folder [env KMSCTL_HOME]."
)
@click.option(
    "-o",
    "--output",
    envvar="KMSCTL_OUTPUT",
    type=click.Choice(OUTPUT_CHOICES, case_sensitive=False),
    default="auto",
    show_default=True,
    help="Result format: auto is a table on a terminal, text otherwise [env KMSCTL_OUTPUT; config output].",
)
@click.option("--no-color", is_flag=True, help="Plain output even on a terminal [env NO_COLOR; config color].")
@click.option("-q", "--quiet", is_flag=True, help="No informational messages on stderr.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    help="Read the keyring passphrase from this file [env KMSCTL_PASSPHRASE_FILE].",
)
@click.option(
    "--read-only",
    is_flag=True,
    envvar="KMSCTL_READ_ONLY",
    help="Open the keyring read-only: reads work and leave no audit record, writes are refused [env KMSCTL_READ_ONLY].",
)
@click.option(
    "--debug", is_flag=True, envvar="KMSCTL_DEBUG", help="Tracebacks for unexpected errors [env KMSCTL_DEBUG]."
)
@click.option(
    "--no-input",
    is_flag=True,
    help="Never prompt: what would prompt fails at once, exit 5 [env KMSCTL_NO_INPUT; implied by CI=true].",
)
@click.option(
    "--principal",
    envvar="KMSCTL_PRINCIPAL",
    metavar="P",
    help="Act as principal P (NAME, user/NAME, role/NAME or an ARN) to try policies; default the account root "
    "[env KMSCTL_PRINCIPAL].",
)
@click.option(
    "--grant-token",
    "grant_tokens",
    multiple=True,
    metavar="T",
    help="A grant token, passed as GrantTokens to the operations that take them; repeatable.",
)
@remote_options
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version, help="Show the version."
)
@click.pass_context
def cli(
    ctx: click.Context,
    home: str | None,
    output: str,
    no_color: bool,
    quiet: bool,
    passphrase_file: str | None,
    read_only: bool,
    debug: bool,
    no_input: bool,
    principal: str | None,
    grant_tokens: tuple[str, ...],
    backend: str | None,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> None:
    """kmsctl: AWS KMS keys, operations and semantics on one machine.

    Keys live in an encrypted keyring in --home. Plaintext and ciphertext come
    from INPUT (a file, or - for stdin) and never from the command line.

    \b
    Quick start:
      kmsctl init                       # asks for a passphrase
      eval "$(kmsctl unlock --shell)"   # a session for this shell
      kmsctl create --alias alias/app
      printf secret | kmsctl encrypt -k alias/app | kmsctl decrypt

    \b
    Exit codes: 0 ok, 1 does not verify, 2 bad usage or input, 3 not found,
    4 key state forbids it, 5 locked, wrong passphrase or access denied,
    6 ciphertext rejected, 7 conflict or limit, 8 integrity check failed,
    69 KMS endpoint unavailable (--backend aws), 70 internal error, 130 interrupted.

    The global options may also follow the command (kmsctl list -o json
    --home DIR). The aws kms command names work too (describe-key, list-keys,
    schedule-key-deletion, ...), with kmsctl's options.
    """
    # a flag decides here; the environment, config.toml or the default when
    # first read (App.setting), so that --help never opens config.toml
    flag_output = ctx.get_parameter_source("output") is click.core.ParameterSource.COMMANDLINE
    ctx.obj = App.from_options(
        home=home,
        output=output if flag_output else None,
        no_color=True if no_color else None,
        flags={
            "output": output if flag_output else None,
            "color": False if no_color else None,
            **remote_flags(backend=backend, endpoint_url=endpoint_url, profile=profile, region=region),
        },
        quiet=quiet,
        passphrase_file=passphrase_file,
        debug=debug,
        read_only=read_only,
        no_input=no_input,
        principal=principal or None,
        grant_tokens=list(grant_tokens),
    )
    if ctx.invoked_subcommand is None:  # bare kmsctl
        click.echo(overview(), nl=False)


def _fail(code: str, message: str, exit_code: int) -> int:
    from kmsctl.text import escape

    # one line, whatever the message held, and no control character from user input
    message = escape(" ".join(str(message).split()), backslash=False)
    try:
        sys.stderr.write(f"kmsctl: {code}: {message}\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    return exit_code


def run(args: list[str] | None = None) -> int:
    """Run the CLI and return the exit code; the single error boundary."""
    if "_KMSCTL_COMPLETE" in os.environ:  # a TAB press (kmsctl completion): candidates only
        from kmsctl.cli.complete import serve

        return serve(cli)
    from kmsctl.errors import KMSError

    debug = bool(os.environ.get("KMSCTL_DEBUG")) or "--debug" in (args if args is not None else sys.argv[1:])
    argv = list(sys.argv[1:] if args is None else args)
    if any("\x00" in a for a in argv):  # no real argv can hold one; a caller's list can
        return _fail("UsageError", "an argument holds a NUL character", 2)
    try:
        # make_context + invoke rather than cli.main: main() turns EPIPE into
        # exit 1, and 1 means only "does not verify" here
        with cli.make_context("kmsctl", argv) as ctx:
            cli.invoke(ctx)
        sys.stdout.flush()
        return 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except KMSError as exc:
        if exc.code == "DryRunOperationException":  # AWS's answer to a dry run that would succeed
            return _fail("DryRunOperation", "the request would succeed; nothing was done (--dry-run)", 0)
        message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        return _fail(exc.code, message, exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        sys.stderr.flush()
        return 2
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "kmsctl"
        return _fail("UsageError", f"{exc.format_message()} (see '{where} --help')", 2)
    except click.ClickException as exc:
        return _fail("UsageError", exc.format_message(), 2)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _fail("Interrupted", "interrupted", 130)
    except BrokenPipeError:
        # the reader went away (| head): end quietly, and keep Python from
        # complaining again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # the one place an unexpected error becomes exit 70
        if debug:
            import traceback

            traceback.print_exc()
        return _fail("InternalError", f"{type(exc).__name__}: {exc} (rerun with --debug for a traceback)", 70)


def main() -> None:
    """The console script. Once run() returns, everything that matters is
    committed; the keyring is closed (which folds the WAL back into
    keyring.db) and the streams flushed, and then the interpreter's teardown,
    about 40 ms of freeing modules in a process about to end anyway, is
    skipped."""
    code = run()
    store = sys.modules.get("kmsctl.keyring.store")  # opened only if a command used the keyring
    if store is not None:
        store.close_all()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code)
