"""The keyring folder: who owns it, who may write it, and whether it is writable.

The rules are ssh's for its own files (docs/FORMAT.md section 2.1): the home,
``keyring.db`` and its ``-wal``/``-shm`` must be owned by the current user or
by root, and writable by nobody else. Anything else is refused with
AccessDeniedException (exit 5): nothing is known to be damaged, but a keyring
that others could have replaced cannot be trusted, and the fix is the owner's
(chown/chmod). kmsctl never changes the mode of a folder it did not create.

A home kmsctl cannot write (a read-only mount, a folder without write
permission) is said plainly, also exit 5: every operation leaves an audit
record, so without ``--read-only`` kmsctl fails closed.
"""

from __future__ import annotations

import os
import stat

from kmsctl.errors import AccessDeniedException

READ_ONLY_HINT = "use --read-only (or KMSCTL_READ_ONLY=1) to read it without audit records"


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def check_path(path: str, what: str) -> None:
    """Refuse ``path`` if another user owns it or group/others can write it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AccessDeniedException(f"cannot read {what} {path}: {exc.strerror}") from None
    if not _owner_ok(st):
        raise AccessDeniedException(
            f"{what} {path} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}) or root: "
            "someone else could have replaced the keyring",
            hint="chown it, or use a home of your own (--home / KMSCTL_HOME)",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = (
            "group and others"
            if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH
            else ("its group" if st.st_mode & stat.S_IWGRP else "others")
        )
        mode = f"{stat.S_IMODE(st.st_mode):04o}"
        fix = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
        raise AccessDeniedException(
            f"{what} {path} (mode {mode}) is writable by {who}: someone else could have replaced the keyring",
            hint=f"chmod {fix} {path}",
        )


def check_home(home: str, db: str) -> None:
    """Ownership and modes of the home and the keyring files (ssh's rules)."""
    check_path(home, "the keyring folder")
    for suffix in ("", "-wal", "-shm"):
        check_path(db + suffix, "the keyring file")


def writable(home: str, db: str) -> str | None:
    """None if kmsctl can write the keyring here, else why not (for a message)."""
    for path in (home, db):
        if os.access(path, os.W_OK):
            continue
        try:
            read_only_fs = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
        except OSError:
            read_only_fs = False
        return f"{path} is on a read-only file system" if read_only_fs else f"{path}: permission denied"
    return None


def not_writable(home: str, why: str) -> AccessDeniedException:
    return AccessDeniedException(
        f"the keyring folder {home} is not writable: {why}; kmsctl records every operation in the "
        "keyring's audit trail and will not run without it",
        hint=READ_ONLY_HINT,
    )


def make_home(home: str) -> None:
    """``init``: create the home 0700 if it does not exist (its parents as the
    umask says); an existing folder is used as it is, never chmod-ed, and must
    pass ``check_path``."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(home)), exist_ok=True)
        os.mkdir(home, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise AccessDeniedException(f"cannot create the keyring folder {home}: {exc.strerror}") from None
    else:
        os.chmod(home, 0o700)  # made here: 0700 whatever the umask
        return
    if not os.path.isdir(home):
        raise AccessDeniedException(f"{home} exists and is not a folder", hint="pick another --home")
    check_path(home, "the keyring folder")
    why = writable(home, home)
    if why:
        raise not_writable(home, why)
