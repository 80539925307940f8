"""What the root group adds to click: the `aws kms` command names as hidden
aliases, a suggestion for a mistyped command, the overview bare ``kmsctl``
prints, and the global options accepted after the command too.

Imports click and nothing heavy: it is loaded with every command.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from kmsctl.cli.app import App

# `aws kms` command names, as hidden aliases: the words each one stands for.
# Only the command name maps; options stay kmsctl's (-k KEY, not --key-id).
AWS_COMMANDS: dict[str, str] = {
    "cancel-key-deletion": "cancel-delete",
    "connect-custom-key-store": "keystore connect",
    "create-custom-key-store": "keystore create",
    "create-alias": "alias create",
    "create-grant": "grant create",
    "create-key": "create",
    "delete-alias": "alias delete",
    "delete-custom-key-store": "keystore delete",
    "delete-imported-key-material": "import delete",
    "describe-custom-key-stores": "keystore list",
    "describe-key": "describe",
    "disconnect-custom-key-store": "keystore disconnect",
    "disable-key": "disable",
    "disable-key-rotation": "rotation disable",
    "enable-key": "enable",
    "enable-key-rotation": "rotation enable",
    "generate-data-key": "data-key",
    "generate-data-key-pair": "data-key-pair",
    "generate-data-key-pair-without-plaintext": "data-key-pair --no-plaintext",
    "generate-data-key-without-plaintext": "data-key --no-plaintext",
    "generate-mac": "hmac",
    "generate-random": "random",
    "get-key-policy": "policy get",
    "get-key-rotation-status": "rotation status",
    "get-parameters-for-import": "import params",
    "get-public-key": "public-key",
    "import-key-material": "import material",
    "list-aliases": "alias list",
    "list-grants": "grant list",
    "list-key-policies": "policy list",
    "list-key-rotations": "rotation list",
    "list-keys": "list",
    "list-resource-tags": "tag list",
    "list-retirable-grants": "grant list-retirable",
    "put-key-policy": "policy put",
    "retire-grant": "grant retire",
    "revoke-grant": "grant revoke",
    "rotate-key-on-demand": "rotate",
    "schedule-key-deletion": "schedule-delete",
    "tag-resource": "tag add",
    "untag-resource": "tag remove",
    "update-alias": "alias update",
    "update-custom-key-store": "keystore update",
    "update-key-description": "update-description",
}

# bare `kmsctl`: the commands by what they are for (names not in COMMANDS are
# left out, and so is a group left empty; a command in no group goes last)
OVERVIEW: dict[str, str] = {
    "Keyring": "init unlock lock passwd status check",
    "Keys": "create describe list enable disable update-description schedule-delete cancel-delete "
    "rotate rotation alias tag maintain keystore",
    "Crypto": "encrypt decrypt re-encrypt sign verify hmac verify-mac random data-key data-key-pair "
    "public-key derive-shared-secret encapsulate decapsulate",
    "Files": "seal unseal inspect exec",
    "In and out": "import seed backup restore",
    "Access": "policy grant principal serve",
    "Audit": "audit",
    "Shell": "config completion help",
}


# commands that only make sense for the local keyring: refused on the aws backend
LOCAL_ONLY = frozenset(
    {"init", "unlock", "lock", "passwd", "check", "maintain", "audit", "principal", "backup", "restore", "seed"}
    | {"keystore"}
    | {"policy reset", "policy simulate"}
)


def refuse_local_only(ctx: click.Context) -> None:
    """Exit 2 before a local-only command does anything, on the aws backend."""
    words = ctx.command_path.split()[1:]
    for n in range(1, len(words) + 1):
        if " ".join(words[:n]) in LOCAL_ONLY:
            app = ctx.find_object(App)
            if app is not None:
                app.refuse_remote(f"kmsctl {' '.join(words)}")


def overview() -> str:
    """The short grouped overview bare ``kmsctl`` prints."""
    import textwrap

    from kmsctl.cli import COMMANDS

    groups = {title: [n for n in names.split() if n in COMMANDS] for title, names in OVERVIEW.items()}
    grouped = {n for names in groups.values() for n in names}
    groups["Other"] = [n for n in COMMANDS if n not in grouped]
    width = max(len(t) for t in groups) + 2
    lines = ["kmsctl: AWS KMS keys, operations and semantics on one machine.", ""]
    for title, names in groups.items():
        if names:
            body = textwrap.wrap("  ".join(names), 78 - width, break_on_hyphens=False)
            lines += [f"{title:<{width}}{body[0]}", *(" " * width + more for more in body[1:])]
    lines += [
        "",
        "'kmsctl COMMAND --help' for a command, 'kmsctl --help' for the global options,",
        "'man kmsctl' for the manual.",
    ]
    return "\n".join(lines) + "\n"


def _late_home(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:  # parsed before the command's body opens the keyring
        ctx.find_object(App).home = os.path.abspath(value)  # type: ignore[union-attr]


def _late_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(App)
    if value and app is not None:
        app._no_color, app.flags["color"] = True, False


def _late_passphrase_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(App).passphrase_file = value  # type: ignore[union-attr]


def _late_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).debug = True  # type: ignore[union-attr]


def _late_no_input(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).no_input_flag = True  # type: ignore[union-attr]


def remote_options(command: Callable[..., None]) -> Callable[..., None]:
    """The root's remote backend options: --backend, --endpoint-url, --profile, --region."""
    for option in reversed(
        [
            click.option(
                "--backend",
                type=click.Choice(["local", "aws"], case_sensitive=False),
                help="local: the keyring in --home (the default); aws: an AWS KMS endpoint through boto3, "
                "the same commands and outputs [env KMSCTL_BACKEND; config backend].",
            ),
            click.option(
                "--endpoint-url",
                metavar="URL",
                help="The AWS KMS endpoint, such as a kmsctl serve; implies --backend aws "
                "[env KMSCTL_ENDPOINT_URL; config endpoint_url].",
            ),
            click.option(
                "--profile", metavar="NAME", help="AWS profile, for the aws backend [env AWS_PROFILE; config profile]."
            ),
            click.option(
                "--region",
                metavar="REGION",
                help="AWS region, for the aws backend [env AWS_REGION, AWS_DEFAULT_REGION; config region].",
            ),
        ]
    ):
        command = option(command)
    return command


def remote_flags(**given: str | None) -> dict[str, str]:
    """The remote backend's flags (--backend, --endpoint-url, --profile, --region),
    checked as config.toml's values are, for App.flags."""
    from kmsctl import config

    out = {}
    for name, value in given.items():
        if value is not None:
            try:
                out[name] = config.SETTINGS[name].check(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--" + name.replace("_", "-")) from None
    return out


def _late_remote(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    app = ctx.find_object(App)
    if value is not None and app is not None and param.name:
        app.flags.update(remote_flags(**{param.name: value}))


def late_globals() -> list[click.Option]:
    """The other global options, accepted after the command too and hidden
    from its help (the root's --help and man kmsctl describe them)."""
    path = click.Path(dir_okay=False)
    return [
        click.Option(["--home"], type=click.Path(file_okay=False), expose_value=False, callback=_late_home),
        click.Option(["--no-color"], is_flag=True, expose_value=False, callback=_late_no_color),
        click.Option(["--passphrase-file"], type=path, expose_value=False, callback=_late_passphrase_file),
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_late_debug),
        click.Option(["--no-input"], is_flag=True, expose_value=False, callback=_late_no_input),
        click.Option(
            ["--backend"], type=click.Choice(["local", "aws"], case_sensitive=False), expose_value=False,
            callback=_late_remote,
        ),
        click.Option(["--endpoint-url"], expose_value=False, callback=_late_remote),
        click.Option(["--profile"], expose_value=False, callback=_late_remote),
        click.Option(["--region"], expose_value=False, callback=_late_remote),
    ]  # fmt: skip


def no_such_command(ctx: click.Context, name: str, candidates: list[str]) -> None:
    """A usage error for a mistyped command, with the closest name if one is close."""
    import difflib

    close = difflib.get_close_matches(name, candidates, n=1)
    ctx.fail(f"No such command {name!r}." + (f" Did you mean {close[0]}?" if close else ""))


def suggest_subcommands(group: click.Group) -> None:
    """``kmsctl alias lsit`` gets a suggestion, as ``kmsctl lsit`` does."""
    resolve = group.resolve_command

    def resolve_command(ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and not ctx.resilient_parsing and not args[0].startswith("-") and args[0] not in group.commands:
            no_such_command(ctx, args[0], list(group.commands))
        return resolve(ctx, args)

    group.resolve_command = resolve_command  # type: ignore[method-assign]
