"""Streams for commands that move data of any size (seal, unseal, inspect):
unbuffered INPUT and stdout, output files that appear only when complete, I/O
errors as one-line errors, and a progress bar for large inputs.

Light on purpose: the standard library and click's error types only; rich is
imported when a bar is actually drawn.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from kmsctl.errors import UsageError, ValidationException

if TYPE_CHECKING:
    from kmsctl.cli.app import App

Stream = io.RawIOBase | io.BufferedIOBase
PROGRESS_MIN = 8 << 20  # below this a bar would only flicker


@contextmanager
def input_stream(path: str) -> Iterator[Stream]:
    """INPUT unbuffered (``-`` is stdin): the readers fill their own chunk
    buffers with readinto, so a second buffer would only copy."""
    if path == "-":
        if sys.stdin is None:
            raise ValidationException("there is no standard input: give INPUT")
        from kmsctl.cli.io import refuse_terminal_stdin

        refuse_terminal_stdin("input")
        stdin = cast(io.BufferedIOBase, sys.stdin.buffer)
        try:
            fd = stdin.fileno()
        except (AttributeError, OSError, ValueError):  # replaced by a test harness
            yield stdin
            return
        with open(fd, "rb", buffering=0, closefd=False) as raw:
            yield raw
        return
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below, after the caller is done
    except OSError as exc:
        raise ValidationException(f"cannot read {path}: {exc.strerror}") from None
    with f:
        yield f


def raw_stdout(app: App) -> Stream:
    stdout = cast(io.BufferedIOBase, app.stdout)
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness
        return stdout
    stdout.flush()
    return open(fd, "wb", buffering=0, closefd=False)


def _is_special(path: str) -> bool:
    """A device or FIFO (``/dev/null``, ``<(...)``): written in place, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _open_special(path: str) -> io.FileIO | None:
    """``path`` opened for writing if it is, through links as ``/dev/stdout``
    is, a device or FIFO; None for anything else, which is then replaced, never
    opened. Checked on the opened file, without O_CREAT or O_TRUNC, so that a
    regular file swapped in meanwhile is left as it is."""
    if not _is_special(path):
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValidationException(f"cannot write {path}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        os.close(fd)
        return None
    return open(fd, "wb", buffering=0)


def refuse_existing(path: str | None, force: bool) -> None:
    if path is not None and not force and os.path.lexists(path) and not _is_special(path):
        raise UsageError(f"{path} exists", hint="use --force to replace it")


@contextmanager
def io_errors() -> Iterator[None]:
    """A failing disk or device is one line (exit 2), not an internal error; a
    closed stdout pipe still reaches the CLI's boundary, which ends quietly."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ValidationException(f"I/O error: {exc.strerror or exc}{where}") from None


@contextmanager
def output(app: App, path: str | None, force: bool) -> Iterator[Stream]:
    """stdout, or ``path`` written all-or-nothing (kmsctl.outfile: an unnamed
    file in the same folder, or a named 0600 one where the file system has
    none, fsynced and linked into place only when the body of the ``with``
    succeeded; nothing left on any failure, Ctrl-C and SIGTERM included, and
    no plaintext left by SIGKILL). ``force`` replaces ``path``, or a symbolic
    link there, never the file such a link names. A device or FIFO is written
    directly: renaming over it would replace it."""
    if path is None:
        yield raw_stdout(app)
        return
    special = _open_special(path)
    if special is not None:  # nothing to rename over, and nothing left behind on failure
        with special:
            yield special
        return
    from kmsctl.outfile import atomic_file

    restore = _terminate_as_interrupt()
    try:
        with atomic_file(path, replace=force) as f:
            yield f
    except FileExistsError:
        raise UsageError(f"{path} exists", hint="use --force to replace it") from None
    finally:
        restore()


def _terminate_as_interrupt() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt while an output file is open, so that
    the temporary file is removed as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return restore


def remaining_size(src: Stream) -> int | None:
    """Bytes left in a regular file, None for a pipe or terminal."""
    try:
        st = os.fstat(src.fileno())
        if stat.S_ISREG(st.st_mode):
            return st.st_size - src.tell()
    except (AttributeError, OSError, ValueError):
        pass
    return None


def stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress_bar(app: App, src: Stream, label: str) -> Iterator[Callable[[int], None] | None]:
    """A rich bar on stderr when stderr is a terminal and INPUT is a regular
    file of at least 8 MiB; otherwise None (and nothing is imported)."""
    size = remaining_size(src)
    if app.quiet or size is None or size < PROGRESS_MIN or not stderr_is_tty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    console = Console(file=sys.stderr, no_color=app.no_color)
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=size)
        yield lambda n: bar.advance(task, n)
