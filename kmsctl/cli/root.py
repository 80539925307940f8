"""What the root group adds to click: the `aws kms` command names as hidden
aliases, a suggestion for a mistyped command, the overview bare ``kmsctl``
prints, and the global options accepted after the command too.

Imports click and nothing heavy: it is loaded with every command.
"""

from __future__ import annotations

import os

import click

from kmsctl.cli.app import App

# `aws kms` command names, as hidden aliases: the words each one stands for.
# Only the command name maps; options stay kmsctl's (-k KEY, not --key-id).
AWS_COMMANDS: dict[str, str] = {
    "cancel-key-deletion": "cancel-delete",
    "create-alias": "alias create",
    "create-key": "create",
    "delete-alias": "alias delete",
    "describe-key": "describe",
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
    "delete-imported-key-material": "import delete",
    "get-key-rotation-status": "rotation status",
    "get-parameters-for-import": "import params",
    "get-public-key": "public-key",
    "import-key-material": "import material",
    "list-aliases": "alias list",
    "list-key-rotations": "rotation list",
    "list-keys": "list",
    "list-resource-tags": "tag list",
    "rotate-key-on-demand": "rotate",
    "schedule-key-deletion": "schedule-delete",
    "tag-resource": "tag add",
    "untag-resource": "tag remove",
    "update-alias": "alias update",
    "update-key-description": "update-description",
}

# bare `kmsctl`: the commands by what they are for (names not in COMMANDS are
# left out, and so is a group left empty; a command in no group goes last)
OVERVIEW: dict[str, str] = {
    "Keyring": "init unlock lock passwd status check",
    "Keys": "create describe list enable disable update-description schedule-delete cancel-delete "
    "rotate rotation alias tag maintain",
    "Crypto": "encrypt decrypt re-encrypt sign verify hmac verify-mac random data-key data-key-pair "
    "public-key derive-shared-secret encapsulate decapsulate",
    "Files": "seal unseal inspect exec",
    "In and out": "import seed backup restore",
    "Access": "policy grant principal",
    "Audit": "audit",
    "Shell": "config completion help",
}


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
    ]


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
