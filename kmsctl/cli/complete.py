"""Shell completion: ``kmsctl completion bash|zsh|fish``, the values TAB
completes, and the path that serves a TAB press.

The scripts are click's: they run kmsctl again with ``_KMSCTL_COMPLETE`` set,
and ``run()`` hands such a process to ``serve`` before anything else. Values:
commands and options (click), key specs, usages, states and algorithms (their
AWS names, typed in any case), config keys, and key IDs and alias names
wherever KEY is taken. Key names come from the keyring only while a session is
active (a valid ``KMSCTL_SESSION``), read by kmsctl.keyring.names: no
passphrase prompt, no audit record, no output but candidates, and any error
(no keyring, an expired session, a busy database) completes nothing. On the
aws backend key names are not completed (boto3 could not answer in time).

This module imports click and nothing heavy: it is loaded with every command.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # click.shell_completion is imported only when completing
    from click.shell_completion import CompletionItem

COMPLETE_VAR = "_KMSCTL_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
FILES = {"bash": "kmsctl.bash", "zsh": "_kmsctl", "fish": "kmsctl.fish"}
MAX_CANDIDATES = 200  # a keyring may hold 100,000 keys: offer a screenful, filtered by prefix
DEADLINE_S = 0.5  # key names are a convenience: never hold up a TAB press longer than this

Completer = Callable[[click.Context, click.Parameter, str], list["CompletionItem"]]


def _item(value: str, help: str | None = None) -> CompletionItem:
    from click.shell_completion import CompletionItem

    return CompletionItem(value, help=help)


def script(shell: str) -> str:
    """The completion script for ``shell``, as click writes it for kmsctl."""
    from click.shell_completion import get_completion_class

    from kmsctl.cli import cli

    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"no completion for {shell!r}", param_hint="SHELL")
    return cls(cli, {}, "kmsctl", COMPLETE_VAR).source()


def serve(command: click.Command) -> int:
    """Answer one TAB press (``_KMSCTL_COMPLETE`` is set): candidates on
    stdout, nothing on stderr, exit 0 whatever happens."""
    from click.shell_completion import shell_complete

    try:
        shell_complete(command, {}, "kmsctl", COMPLETE_VAR, os.environ.get(COMPLETE_VAR, ""))
        sys.stdout.flush()
    except Exception:  # noqa: S110 - a broken completion must not print a traceback into the prompt
        pass
    return 0


# ----- key IDs and alias names, from the keyring -----


def _home(ctx: click.Context) -> str:
    home = ctx.find_root().params.get("home") or os.environ.get("KMSCTL_HOME")
    if home:
        return os.path.abspath(home)
    from kmsctl.cli.app import default_home

    return default_home(os.environ)


def _remote(ctx: click.Context) -> bool:
    """The aws backend is chosen (a flag on the line being completed, the
    environment or config.toml): key names are not completed there, since
    boto3's start-up alone takes most of DEADLINE_S."""
    root = ctx.find_root().params
    words = os.environ.get("COMP_WORDS", "").split()
    if root.get("endpoint_url") or str(root.get("backend") or "").lower() == "aws" or "--endpoint-url" in words:
        return True
    if any(a == "--backend" and b.lower() == "aws" for a, b in itertools.pairwise(words)):
        return True
    if os.environ.get("KMSCTL_ENDPOINT_URL") or os.environ.get("KMSCTL_BACKEND", "").lower() == "aws":
        return True
    try:
        from kmsctl import config

        values = config.load(_home(ctx))
    except Exception:
        return False
    return values.get("backend") == "aws" or bool(values.get("endpoint_url"))


def key_names(ctx: click.Context, incomplete: str, *, keys: bool = True) -> list[CompletionItem]:
    """Alias names (and key IDs unless ``keys`` is false) starting with
    ``incomplete``; [] without a valid session, on any error, or when the
    keyring does not answer within DEADLINE_S (a database locked by another
    process would otherwise hold the prompt for SQLite's 30 s busy timeout)."""
    token = os.environ.get("KMSCTL_SESSION")
    if not token or _remote(ctx):
        return []
    import threading
    import time

    try:
        from kmsctl.keyring.keyring import Keyring  # imported here, not in the thread that may be abandoned
        from kmsctl.keyring.names import key_names as read_names

        home = _home(ctx)
    except Exception:
        return []
    found: list[list[CompletionItem]] = []

    def read() -> None:
        try:
            keyring = Keyring(home)
            try:
                keyring.unlock_with_session(token, time.time())  # raises unless the session is valid
                names = read_names(keyring, incomplete, keys=keys, limit=MAX_CANDIDATES)
                found.append([_item(name, help=about) for name, about in names])
            finally:
                keyring.close()
        except Exception:  # noqa: S110 - no keyring, an ended session, a damaged file: complete nothing
            pass

    worker = threading.Thread(target=read, name="kmsctl-complete", daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    return found[0] if found else []


def complete_keys(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return key_names(ctx, incomplete)


def complete_aliases(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return key_names(ctx, incomplete, keys=False)


# ----- fixed values -----


def choices(values: Iterable[str]) -> Completer:
    """Complete from ``values``, matching in any case (AWS enums are accepted in any case)."""
    fixed = list(values)

    def complete(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        low = incomplete.lower()
        return [_item(v) for v in fixed if v.lower().startswith(low)]

    return complete


def _encryption_algorithms(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from kmsctl import model

    supported = [a for a in model.ENCRYPTION_ALGORITHMS if a != "SM2PKE"]  # SM2 is China-only, not here
    return choices(supported)(ctx, param, incomplete)


def complete_config_keys(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from kmsctl.config import SETTINGS

    return [_item(s.name, help=s.help) for s in SETTINGS.values() if s.name.startswith(incomplete)]


def complete_config_value(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from kmsctl.config import OUTPUTS

    name = ctx.params.get("name")
    if name == "output":
        return choices(OUTPUTS)(ctx, param, incomplete)
    if name == "color":
        return choices(["true", "false"])(ctx, param, incomplete)
    if name == "seal.key":
        return key_names(ctx, incomplete)
    return []


def complete_command_words(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """For ``kmsctl help COMMAND...``: a command, then a subcommand of a group."""
    from kmsctl.cli import COMMANDS, cli

    words = list(ctx.params.get(param.name or "", ()) or ())
    if not words:
        return [_item(name) for name in COMMANDS if name.startswith(incomplete)]
    group = cli.get_command(ctx, words[0]) if len(words) == 1 else None
    if isinstance(group, click.Group):
        return [_item(name) for name in group.list_commands(ctx) if name.startswith(incomplete)]
    return []


# ----- attaching the completers to the command tree -----


def completer_for(command: click.Command, param: click.Parameter) -> Completer | None:
    """The completer a parameter of ``command`` gets, by what it takes."""
    from kmsctl.cli.options import AwsChoice

    metavar = getattr(param, "metavar", None)
    if metavar in ("KEY", "DEST_KEY") or param.name in ("key", "source_key"):
        return complete_keys
    if (metavar == "alias/NAME" and command.name in ("update", "delete")) or param.name == "alias_prefix":
        return complete_aliases
    if isinstance(param.type, AwsChoice):
        return choices(str(c) for c in param.type.choices)
    if param.name in ("algorithm", "source_algorithm") and not isinstance(param.type, click.Choice):
        return _encryption_algorithms
    return None


def attach(command: click.Command) -> None:
    """Give every KEY, alias, enum and algorithm parameter under ``command``
    its completer (once; parameters that have one keep it)."""
    if getattr(command, "_kmsctl_completers", False):
        return
    command._kmsctl_completers = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            attach(sub)
    for param in command.params:
        if param._custom_shell_complete is None:
            param._custom_shell_complete = completer_for(command, param)


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    TAB then completes commands, options, key specs, usages and algorithms,
    and, while a session is active (KMSCTL_SESSION), key IDs and alias names.

    \b
    bash:  eval "$(kmsctl completion bash)"            # in ~/.bashrc
    zsh:   kmsctl completion zsh > "${fpath[1]}/_kmsctl"
    fish:  kmsctl completion fish > ~/.config/fish/completions/kmsctl.fish

    A package install puts the same scripts where bash-completion, zsh and
    fish look for them (share/bash-completion/completions,
    share/zsh/site-functions, share/fish/vendor_completions.d).
    """
    click.echo(script(shell), nl=False)
