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
from contextlib import contextmanager, suppress
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
    """stdout, or ``path`` written all-or-nothing: a temporary file in the same
    folder (O_EXCL, 0600), fsynced and renamed into place only when the body of
    the ``with`` succeeded, removed on any failure, Ctrl-C and SIGTERM included.
    A device or FIFO is written directly: renaming over it would replace it."""
    if path is None:
        yield raw_stdout(app)
        return
    if _is_special(path):  # nothing to rename over, and nothing left behind on failure
        try:
            special = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise ValidationException(f"cannot write {path}: {exc.strerror}") from None
        with special:
            yield special
        return
    final = os.path.realpath(path)  # through a symlink to the file it names, as a shell redirection
    folder, name = os.path.split(final)
    tmp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.kmsctl-tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise ValidationException(f"cannot write {path}: {exc.strerror}") from None
    f = open(fd, "wb", buffering=0)  # noqa: SIM115 - closed on both paths below
    restore = _terminate_as_interrupt()
    try:
        yield f
        os.fsync(fd)
        f.close()
        _publish(tmp, final, path, force)
    except BaseException:
        f.close()
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        restore()


def _publish(tmp: str, final: str, shown: str, force: bool) -> None:
    try:
        if force:
            if _is_special(final):
                raise UsageError(f"{shown} became a device or FIFO; not replacing it")
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)  # atomic and never replaces: a file made meanwhile is not clobbered
            except FileExistsError:
                raise UsageError(f"{shown} exists", hint="use --force to replace it") from None
            except OSError:  # a file system without hard links
                if os.path.lexists(final):
                    raise UsageError(f"{shown} exists", hint="use --force to replace it") from None
                os.rename(tmp, final)
            else:
                os.unlink(tmp)
    except OSError as exc:
        raise ValidationException(f"cannot write {shown}: {exc.strerror}") from None
    with suppress(OSError):  # make the rename itself durable
        dirfd = os.open(os.path.dirname(final), os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


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
