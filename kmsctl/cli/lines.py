"""Many operations in one process: line mode (``--lines``) and ``--out-dir``.

A shell loop pays the interpreter's start-up and the unlock for every call;
these two modes pay them once.

Line mode: each input line is one operation and each result one output line,
in order. Values (plaintexts, messages) are the line's text, or base64 with
``--base64``; blobs (ciphertexts, signatures) are always base64. An empty line
gives an empty result and no operation. A failed line gives an empty line,
``kmsctl: line N: Name: message`` on stderr, and the run goes on; the exit
code is the first failure's.

``--out-dir DIR`` takes several INPUTs and writes one file per input into DIR,
each all-or-nothing (a temporary file renamed into place), mode 0600, an
existing one replaced only with ``--force``. The command's own body runs once
per input, so the files hold exactly what ``kmsctl CMD INPUT > FILE`` writes.

Both hook onto an existing command (``@many(...)`` above ``@click.command``)
without changing its body. Light on purpose: click and the standard library.
"""

from __future__ import annotations

import functools
import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from typing import TYPE_CHECKING, Any

import click

from kmsctl.errors import KMSError, UsageError, ValidationException

if TYPE_CHECKING:
    from kmsctl.cli.app import App

LINE_MAX = 16384  # one line: a plaintext of up to 4096 bytes, or a blob of up to 6144 as base64, and more

_B64 = re.compile(rb"[A-Za-z0-9+/_-]*={0,2}")
_URLSAFE = bytes.maketrans(b"-_", b"+/")

# command -> the --lines help: what a line holds, what a result is
LINE_HELP = {
    "encrypt": "One plaintext per input line (its text; base64 with --base64), one base64 ciphertext per output line.",
    "decrypt": "One base64 ciphertext per input line, its plaintext per output line (base64 with --base64).",
    "re-encrypt": "One base64 ciphertext per input line, one base64 ciphertext per output line.",
    "sign": "One message per input line (its text; base64 with --base64), one base64 signature per output line.",
    "verify": "Input lines 'MESSAGE<TAB>SIGNATURE' (signature in base64), 'true' per output line; no --signature.",
    "hmac": "One message per input line (its text; base64 with --base64), one base64 MAC per output line.",
    "random": "Read byte counts from stdin, one per line; one base64 result per output line.",
}
# command -> suffix of the file --out-dir writes, and the suffix it strips instead
OUT_NAMES = {
    "encrypt": (".enc", None),
    "decrypt": (".out", ".enc"),
    "seal": (".sealed", None),
    "unseal": (".out", ".sealed"),
}


def b64decode_strict(text: bytes, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional; anything else is refused."""
    import base64
    import binascii

    if not _B64.fullmatch(text):
        raise ValidationException(f"{what} is not base64")
    try:
        return base64.b64decode(text.translate(_URLSAFE) + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationException(f"{what} is not valid base64 ({len(text)} characters)") from None


def report(where: str, exc: KMSError) -> None:
    """One error line for one failed item, as the CLI's boundary prints them."""
    message = " ".join((exc.message + (f" (hint: {exc.hint})" if exc.hint else "")).split())
    sys.stderr.write(f"kmsctl: {where}: {exc.code}: {message}\n")
    sys.stderr.flush()


def _unlock_first(app: App) -> None:
    """Unlock (or fail) once, before the first item: a locked keyring is one
    error for the run, not one prompt and one error per line."""
    with app.kms().snapshot():
        pass


# ----- the hook -----
def many(
    *, lines: bool = False, out_dir: bool = False, per_line: str | None = None
) -> Callable[[click.Command], click.Command]:
    """Give a command ``--lines`` and/or ``INPUT... --out-dir DIR``. ``per_line``
    names a required option that line mode takes from each line instead
    (verify's --signature); such a command also gets ``--base64`` for its values."""

    def deco(command: click.Command) -> click.Command:
        callback = command.callback
        assert callback is not None and command.name is not None
        name = command.name
        added_force = out_dir and "force" not in {p.name for p in command.params}
        if lines:
            command.params.append(click.Option(["--lines"], is_flag=True, help=LINE_HELP[name]))
        if per_line:
            _optional(command, per_line).help += " Not with --lines."  # type: ignore[operator]
            command.params.append(
                click.Option(["--base64", "b64"], is_flag=True, help="With --lines: messages in base64.")
            )
        if out_dir:
            _several_inputs(command)
            suffix, strip = OUT_NAMES[name]
            named = f"'{strip}' stripped or '{suffix}' added" if strip else f"'{suffix}' added"
            command.params.append(
                click.Option(
                    ["--out-dir"],
                    metavar="DIR",
                    type=click.Path(file_okay=False),
                    help=f"Several INPUTs: one file each in the folder DIR, named as the INPUT with {named}.",
                )
            )
        if added_force:
            command.params.append(
                click.Option(["--force"], is_flag=True, help="With --out-dir: replace files that exist.")
            )

        def wrapper(**kwargs: Any) -> Any:
            from kmsctl.cli.app import App

            ctx = click.get_current_context()
            line_mode = bool(kwargs.pop("lines", False))
            folder = kwargs.pop("out_dir", None)
            force = bool(kwargs.pop("force", False) if added_force else kwargs.get("force", False))
            if per_line:
                _check_per_line(ctx, per_line, line_mode, kwargs)
            if (
                name == "random"
                and line_mode
                and (ctx.get_parameter_source("nbytes") is _COMMANDLINE or kwargs.get("count") is not None)
            ):
                raise click.UsageError("with --lines each line is a byte count: drop N and --bytes")
            if out_dir:
                inputs: tuple[str, ...] = kwargs.pop("input_path")
                if folder is not None:
                    if line_mode:
                        raise click.UsageError("--lines and --out-dir exclude each other")
                    app = ctx.find_object(App)
                    assert app is not None
                    return _run_out_dir(app, name, callback, kwargs, inputs, folder, force)
                if len(inputs) > 1:
                    raise click.UsageError("several INPUTs need --out-dir DIR")
                if added_force and force:
                    raise click.UsageError("--force is for --out-dir")
                kwargs["input_path"] = inputs[0] if inputs else "-"
            if line_mode:
                app = ctx.find_object(App)
                assert app is not None
                return _run_lines(app, name, kwargs)
            return callback(**kwargs)

        command.callback = functools.update_wrapper(wrapper, callback)
        return command

    return deco


_COMMANDLINE = click.core.ParameterSource.COMMANDLINE


def _optional(command: click.Command, name: str) -> click.Parameter:
    for param in command.params:
        if param.name == name:
            param.required = False
            return param
    raise AssertionError(f"{command.name} has no {name}")


def _check_per_line(ctx: click.Context, name: str, line_mode: bool, kwargs: dict[str, Any]) -> None:
    param = next(p for p in ctx.command.params if p.name == name)
    if line_mode and kwargs[name] is not None:
        raise click.UsageError(f"{param.opts[0]} is not for --lines: each line carries its own")
    if not line_mode:
        if kwargs[name] is None:
            raise click.MissingParameter(ctx=ctx, param=param)
        if kwargs.pop("b64"):
            raise click.UsageError("--base64 is for --lines")


def _several_inputs(command: click.Command) -> None:
    for i, param in enumerate(command.params):
        if isinstance(param, click.Argument) and param.name == "input_path":
            command.params[i] = click.Argument(["input_path"], nargs=-1, metavar="[INPUT]...", type=param.type)
            return
    raise AssertionError(f"{command.name} has no INPUT argument")


# ----- --out-dir -----
def out_name(command: str, path: str) -> str:
    suffix, strip = OUT_NAMES[command]
    base = os.path.basename(path)
    if strip and base.endswith(strip) and len(base) > len(strip):
        return base[: -len(strip)]
    return base + suffix


def _run_out_dir(
    app: App,
    command: str,
    callback: Callable[..., Any],
    kwargs: dict[str, Any],
    inputs: tuple[str, ...],
    folder: str,
    force: bool,
) -> None:
    if not inputs:
        raise click.UsageError("--out-dir needs INPUT files")
    if "-" in inputs:
        raise click.UsageError("--out-dir needs INPUT files, not - (stdin has no name)")
    if kwargs.get("out") is not None:
        raise click.UsageError("--out and --out-dir exclude each other")
    if not os.path.isdir(folder):
        raise UsageError(f"{folder} is not a folder", hint="make it first (mkdir -p)")
    targets = [os.path.join(folder, out_name(command, path)) for path in inputs]
    seen: dict[str, str] = {}
    for path, target in zip(inputs, targets, strict=True):
        if os.path.realpath(target) in seen:
            raise click.UsageError(f"{seen[os.path.realpath(target)]} and {path} would both write {target}")
        seen[os.path.realpath(target)] = path
    _unlock_first(app)
    first = 0
    for path, target in zip(inputs, targets, strict=True):
        try:
            _one_file(app, callback, dict(kwargs, input_path=path), target, force)
        except KMSError as exc:
            report(path, exc)
            first = first or exc.exit_code
    if first:
        raise click.exceptions.Exit(first)


def _one_file(app: App, callback: Callable[..., Any], kwargs: dict[str, Any], target: str, force: bool) -> None:
    from kmsctl.cli.streams import output, refuse_existing

    refuse_existing(target, force)
    if "out" in kwargs:  # seal, unseal: their own --out, already all-or-nothing
        callback(**dict(kwargs, out=target))
        return
    with output(app, target, force) as f, _stdout_to(f):
        callback(**kwargs)


@contextmanager
def _stdout_to(raw: Any) -> Iterator[None]:
    """The command's stdout into ``raw`` (not a terminal: raw bytes, as with ``> FILE``)."""
    buffered = io.BufferedWriter(raw)
    text = io.TextIOWrapper(buffered, write_through=True)
    try:
        with redirect_stdout(text):
            yield
    finally:
        text.detach()  # flushes; neither wrapper may close the file output() fsyncs
        buffered.detach()


# ----- --lines -----
def _run_lines(app: App, command: str, params: dict[str, Any]) -> None:
    from kmsctl.cli.streams import input_stream, io_errors

    if command != "random":
        _unlock_first(app)
    from kmsctl.cli.line_ops import MAKERS

    one = MAKERS[command](app, params)
    json_lines = app.output == "json"
    first = 0
    with input_stream(params.get("input_path", "-")) as src, io_errors():
        reader = src if isinstance(src, io.BufferedIOBase) else io.BufferedReader(src)
        for number, line in enumerate(_lines(reader), 1):
            out = b""
            try:
                if line is None:
                    raise ValidationException(f"the line is longer than {LINE_MAX} bytes")
                if line:
                    out = one(line, json_lines)
            except KMSError as exc:
                report(f"line {number}", exc)
                first = first or exc.exit_code
            app.write(out + b"\n")  # flushed: a co-process reading results line by line never waits
    if first:
        raise click.exceptions.Exit(first)


def _lines(reader: Any) -> Iterator[bytes | None]:
    """Each line without its LF or CRLF; None for one longer than LINE_MAX."""
    while True:
        line: bytes = reader.readline(LINE_MAX + 2)
        if not line:
            return
        if not line.endswith(b"\n") and len(line) == LINE_MAX + 2:
            while line and not line.endswith(b"\n"):  # skip the rest of it
                line = reader.readline(65536)
            yield None
            continue
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        yield None if len(line) > LINE_MAX else line
