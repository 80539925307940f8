"""Backup and restore of the whole keyring: kmsctl backup, kmsctl restore."""

from __future__ import annotations

import os

import click

from kmsctl.cli.app import App
from kmsctl.render import emit

BACKUP_COLUMNS = ["Destination", "KeyringId", "Keys", "CommitCounter", "Bytes"]
RESTORE_COLUMNS = ["Home", "KeyringId", "Keys", "Aliases", "KeyMaterials", "AuditRecords", "Replaced"]


@click.command()
@click.argument("file", metavar="FILE")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.pass_obj
def backup(app: App, file: str, force: bool) -> None:
    """Write a consistent snapshot of the whole keyring to FILE.

    Taken with SQLite's online backup API while other processes keep
    working; every secret in it stays sealed under the keyring's master key,
    and the file is sealed against change (a MAC under a key derived from
    the master key, and a checksum). 'kmsctl restore FILE' puts it back,
    and the same passphrase opens it. Format: docs/FORMAT.md.

    Text output: FILE, the keyring ID, keys, commit counter, bytes.
    """
    out = app.kms().backup_keyring(Destination=file, Force=force)
    app.info(f"kmsctl: backed up {out['Keys']} keys to {file} ({out['Bytes']} bytes)")
    emit(app, out, columns=BACKUP_COLUMNS, rows=[[out[c] for c in BACKUP_COLUMNS]])


@click.command()
@click.argument("file", metavar="FILE")
@click.option("--force", is_flag=True, help="Replace the keyring in --home (kept aside as keyring.db.replaced-TIME).")
@click.pass_obj
def restore(app: App, file: str, force: bool) -> None:
    """Restore a keyring from a backup FILE into --home.

    The whole snapshot is checked before anything is replaced: its checksum,
    then, opened and unlocked with the backup's passphrase (or a session of
    its keyring), its MAC, SQLite's integrity check, every record's MAC and
    the audit chain. The new keyring is written beside the old one and
    renamed into place; a home that holds a keyring needs --force (exit 7
    without), and the replaced keyring.db is kept as
    keyring.db.replaced-<UTC time>. Stop other kmsctl processes on this home
    first. Any damage or change is exit 8, with nothing replaced.

    Text output: home, keyring ID, keys, aliases, key materials, audit
    records, the replaced file (or nothing).
    """
    import shutil
    import tempfile

    from kmsctl.errors import AccessDeniedException, AlreadyExistsException, ValidationException
    from kmsctl.keyring import backup as B
    from kmsctl.keyring.home import make_home
    from kmsctl.keyring.keyring import Keyring, db_path
    from kmsctl.keyring.unlock import unlock as do_unlock
    from kmsctl.service import LocalKMS

    home = app.home
    if app.read_only:
        raise AccessDeniedException("read-only mode: restore writes the keyring", hint="run it without --read-only")
    if os.path.lexists(db_path(home)) and not force:
        raise AlreadyExistsException(
            f"a keyring already exists at {home}",
            hint="use --force to replace it (it is kept aside), or restore into another --home",
        )
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValidationException(f"cannot read {file}: {exc.strerror}") from None
    _header, image = B.unpack(data, file)  # the checksum first: damage is exit 8 before any passphrase
    make_home(home)
    staged = tempfile.mkdtemp(prefix=".kmsctl-restore-", dir=home)
    try:
        fd = os.open(db_path(staged), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as stage:
            stage.write(image)
            stage.flush()
            os.fsync(stage.fileno())
        keyring = Keyring(staged)
        try:
            kms = LocalKMS(
                keyring,
                clock=app.clock,
                unlocker=lambda: do_unlock(keyring, app.sources(), app.clock(), kms.record_failed_try),
            )
            result = kms.restore_keyring(Backup=data, Source=file)
        finally:
            keyring.close()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(db_path(staged) + suffix):
                from kmsctl.errors import ConflictException

                raise ConflictException("the restored keyring is still open elsewhere; nothing was replaced")
        replaced = B.install(staged, home, app.clock())
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    app.info(
        f"kmsctl: restored {result['Keys']} keys, {result['Aliases']} aliases and "
        f"{result['AuditRecords']} audit records into {home}" + (f"; the old keyring is {replaced}" if replaced else "")
    )
    out = {"Home": home, **result, "Replaced": replaced}
    emit(app, out, columns=RESTORE_COLUMNS, rows=[[out.get(c) or "" for c in RESTORE_COLUMNS]])
