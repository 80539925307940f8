"""``kmsctl help COMMAND...``: the command's manual page, through man(1).

The pages are installed with the package under ``<prefix>/share/man`` (see
pyproject.toml); a source checkout has them in ``man/``. Without man, or
without the page, the command's --help is printed instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kmsctl.cli.complete import complete_command_words

SOURCE_MAN = Path(__file__).resolve().parents[2] / "man"


def page_file(page: str, section: str = "1") -> tuple[Path, bool] | None:
    """(file, installed) for a page: the installed copy first, then the source tree's."""
    installed = Path(sys.prefix, "share", "man", f"man{section}", f"{page}.{section}")
    if installed.is_file():
        return installed, True
    source = SOURCE_MAN / f"{page}.{section}"
    if source.is_file():
        return source, False
    return None


def _resolve(ctx: click.Context, words: tuple[str, ...]) -> click.Command:
    command: click.Command = ctx.find_root().command
    for i, word in enumerate(words):
        sub = command.get_command(ctx, word) if isinstance(command, click.Group) else None
        if sub is None:
            where = " ".join(["kmsctl", *words[:i]])
            raise click.UsageError(f"'{where}' has no command {word!r}")
        command = sub
    return command


@click.command("help")
@click.argument("words", metavar="[COMMAND]...", nargs=-1, shell_complete=complete_command_words)
@click.pass_context
def help_(ctx: click.Context, words: tuple[str, ...]) -> None:
    """Open the manual page of COMMAND, or kmsctl(1) without one.

    \b
    kmsctl help                 # kmsctl(1): every command, exit codes, environment
    kmsctl help encrypt         # kmsctl-encrypt(1)
    kmsctl help alias create    # kmsctl-alias-create(1)

    The page comes from man(1), with the pages installed beside kmsctl (or the
    source tree's man/ folder); without man, the command's --help is printed.
    """
    import shutil
    import subprocess

    command = _resolve(ctx, words)
    found = page_file("-".join(["kmsctl", *words]))
    man = shutil.which("man")
    if found is not None and man is not None:
        path, installed = found
        env = dict(os.environ)
        if installed:  # man's own search, with kmsctl's prefix first (pipx and venv installs)
            env["MANPATH"] = f"{path.parent.parent}:{env.get('MANPATH', '')}"
            args = [man, "1", path.stem]
        else:
            args = [man, "-l", str(path)]
        sys.stdout.flush()
        code = subprocess.run(args, env=env, check=False).returncode  # noqa: S603 - man, found on PATH
        if code == 0:
            return
    info = " ".join(["kmsctl", *words])
    click.echo(command.get_help(click.Context(command, info_name=info)))
