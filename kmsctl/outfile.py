"""Files kmsctl writes (``--out``, config.toml): all or nothing, and no
plaintext left behind by a crash.

``atomic_file(path)`` writes into an unnamed file (``O_TMPFILE``) in the
destination's folder, fsyncs it and links it into place only when the caller's
block succeeded. A process killed midway (SIGKILL, a power cut) leaves
nothing: the kernel frees an unnamed file with its last descriptor. Where the
file system has no ``O_TMPFILE`` (or ``/proc`` is not mounted), a named
temporary file ``.NAME.XXXXXXXX.kmsctl-tmp`` (mode 0600) takes its place,
locked while it is written; one that a killed process left behind is removed
by the next ``atomic_file`` in that folder, if it is a regular file of this
user's, untouched for STALE_S and locked by no one.

The destination path itself is never opened: the new file is linked to its
name, which fails if the name exists, or (``replace``) renamed over it, which
replaces a symbolic link there rather than the file the link names.

No click: config.py uses it as the CLI does.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from kmsctl.errors import ValidationException

TMP_SUFFIX = ".kmsctl-tmp"
STALE_S = 3600.0  # a live writer holds its lock; the age is a second guard (locks on NFS)
_TMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.kmsctl-tmp", re.DOTALL)
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
# what open(O_TMPFILE) answers where the file system or kernel lacks it
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL, errno.ENOENT}


def temp_name(name: str) -> str:
    """A named temporary file's name for destination ``name``."""
    return f".{name[:64]}.{os.urandom(4).hex()}{TMP_SUFFIX}"


class _Temp:
    """The file being written: unnamed (``name`` None) or named, in ``dirfd``."""

    def __init__(self, dirfd: int, dest: str, *, unnamed: bool = True) -> None:
        self.dirfd, self.dest, self.name = dirfd, dest, None
        self.fd = self._unnamed() if unnamed else None
        if self.fd is None:
            self.name = temp_name(dest)
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(self.name, flags, 0o600, dir_fd=dirfd)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # a sweeper leaves a locked file alone

    def _unnamed(self) -> int | None:
        if not _O_TMPFILE:
            return None
        try:
            fd = os.open(".", os.O_RDWR | os.O_CLOEXEC | _O_TMPFILE, 0o600, dir_fd=self.dirfd)
        except OSError as exc:
            if exc.errno in _NO_TMPFILE:
                return None
            raise
        if os.path.exists(self._proc(fd)):  # what names it at the end
            return fd
        os.close(fd)
        return None

    @staticmethod
    def _proc(fd: int) -> str:
        return f"/proc/self/fd/{fd}"

    def _link_named(self) -> None:
        """Give the unnamed file a temporary name (before a rename over the destination)."""
        assert self.fd is not None
        for _ in range(16):
            name = temp_name(self.dest)
            try:
                # linkat(AT_FDCWD, "/proc/self/fd/N", dirfd, name, AT_SYMLINK_FOLLOW)
                os.link(self._proc(self.fd), name, dst_dir_fd=self.dirfd)
            except FileExistsError:
                continue
            self.name = name
            return
        raise FileExistsError(errno.EEXIST, "no free temporary name", self.dest)

    def _copy_named(self) -> None:
        """The unnamed file's bytes into a named one: for a system that refuses
        the link through /proc."""
        assert self.fd is not None
        source = self.fd
        copy = _Temp(self.dirfd, self.dest, unnamed=False)
        assert copy.fd is not None
        offset = 0
        while chunk := os.pread(source, 1 << 20, offset):
            offset += os.write(copy.fd, chunk)
        os.fsync(copy.fd)
        self.fd, self.name = copy.fd, copy.name
        os.close(source)

    def publish(self, replace: bool) -> None:
        """Name the complete file ``dest``: replacing what is there, or
        FileExistsError if anything is (and nothing changes)."""
        assert self.fd is not None
        if self.name is None and not replace:
            try:
                os.link(self._proc(self.fd), self.dest, dst_dir_fd=self.dirfd)
                return
            except FileExistsError:
                raise
            except OSError:
                self._copy_named()
        if self.name is None:
            try:
                self._link_named()
            except FileExistsError:
                raise
            except OSError:
                self._copy_named()
        assert self.name is not None
        at = {"src_dir_fd": self.dirfd, "dst_dir_fd": self.dirfd}
        if replace:
            os.replace(self.name, self.dest, **at)
        else:
            try:
                os.link(self.name, self.dest, follow_symlinks=False, **at)  # atomic, and never replaces
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if _lexists(self.dirfd, self.dest):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), self.dest) from None
                os.rename(self.name, self.dest, **at)
            else:
                os.unlink(self.name, dir_fd=self.dirfd)
        self.name = None

    def discard(self) -> None:
        if self.name is not None:
            with suppress(OSError):
                os.unlink(self.name, dir_fd=self.dirfd)
            self.name = None


def _lexists(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@contextmanager
def atomic_file(path: str, *, replace: bool) -> Iterator[io.FileIO]:
    """An unbuffered binary file that becomes ``path`` only if the block
    succeeds (after fsync, and the folder's fsync); on any failure, Ctrl-C
    included, nothing appears and nothing stays. ``replace`` False: the file
    appears only if ``path`` does not exist by then, else FileExistsError. A
    folder or file system that refuses is ValidationException."""
    folder, dest = os.path.split(os.path.abspath(path))
    try:
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        sweep(dirfd)
        try:
            temp = _Temp(dirfd, dest)
        except OSError as exc:
            raise _cannot(path, exc) from None
        try:
            assert temp.fd is not None
            with open(temp.fd, "wb", buffering=0, closefd=False) as f:
                yield f
            try:
                os.fsync(temp.fd)
                temp.publish(replace)
            except FileExistsError:
                raise
            except OSError as exc:
                raise _cannot(path, exc) from None
        except BaseException:
            temp.discard()
            raise
        finally:
            if temp.fd is not None:
                os.close(temp.fd)
        with suppress(OSError):  # make the new name itself durable
            os.fsync(dirfd)
    finally:
        os.close(dirfd)


def _cannot(path: str, exc: OSError) -> ValidationException:
    return ValidationException(f"cannot write {path}: {exc.strerror or exc}")


def sweep(dirfd: int, now: float | None = None) -> int:
    """Remove the temporary files that killed kmsctl processes left in this
    folder: names of kmsctl's pattern, regular files (not links) owned by
    this user, unmodified for STALE_S and not locked by a live writer.
    Returns how many; never fails."""
    limit = (time.time() if now is None else now) - STALE_S
    uid, removed = os.getuid(), 0
    try:
        names = [e.name for e in os.scandir(dirfd) if e.name.endswith(TMP_SUFFIX) and _TMP_NAME.fullmatch(e.name)]
    except OSError:
        return 0
    for name in names:
        with suppress(OSError):
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != uid or st.st_mtime > limit:
                continue
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer has it
                now_st = os.fstat(fd)
                if (now_st.st_dev, now_st.st_ino) == (st.st_dev, st.st_ino):
                    os.unlink(name, dir_fd=dirfd)
                    removed += 1
            finally:
                os.close(fd)
    return removed
