"""kmsctl's own operations: BackupKeyring (a consistent snapshot, sealed) and
RestoreKeyring (the checks a snapshot passes before it is put in place).

The file format is ``kmsctl.keyring.backup`` (docs/FORMAT.md, "Backup file").
"""

from __future__ import annotations

from typing import Any

from kmsctl import errors as E
from kmsctl.keyring import backup as B
from kmsctl.service.base import to_datetime
from kmsctl.service.check import CheckOps
from kmsctl.service.dispatch import operation


class BackupOps(CheckOps):
    @operation("BackupKeyring", keyring=True, transaction=False)
    def backup_keyring(self, *, Destination: str, Force: bool = False) -> dict[str, Any]:
        """Write a snapshot of the whole keyring to ``Destination`` (made
        whole or not at all); an existing file needs ``Force``."""
        from kmsctl.outfile import atomic_file

        mac_key = self.keyring.derive(B.DERIVE_LABEL)
        image, info = B.snapshot(self.db.conn)
        header = {
            "created": to_datetime(self.clock()).isoformat(),
            "keyring_id": self.keyring.keyring_id,
            "epoch": info["epoch"],
            "schema_version": info["schema_version"],
            "keys": info["keys"],
        }
        data = B.pack(header, image, mac_key)
        try:
            with atomic_file(Destination, replace=bool(Force)) as f:
                f.write(data)
        except FileExistsError:
            raise E.UsageError(f"{Destination} exists", hint="use --force to replace it") from None
        return {
            "Destination": Destination,
            "KeyringId": self.keyring.keyring_id,
            "Keys": info["keys"],
            "CommitCounter": info["epoch"],
            "Bytes": len(data),
        }

    @operation("RestoreKeyring", writes=True, keyring=True, unlogged=("Backup",))
    def restore_keyring(self, *, Backup: bytes, Source: str) -> dict[str, Any]:
        """Run on the snapshot itself, opened from a staging folder and unlocked:
        the backup's MAC under this keyring's master key, then everything
        ``check`` verifies. Its record is the restored trail's newest."""
        header, _image = B.unpack(Backup, Source)
        B.verify_mac(Backup, self.keyring.derive(B.DERIVE_LABEL), Source)
        if header.get("keyring_id") != self.keyring.keyring_id:
            raise E.IntegrityError(f"{Source}: the backup's header names another keyring than the one it holds")
        counts = self._check_all()
        return {"Source": Source, "KeyringId": self.keyring.keyring_id, "Created": header.get("created"), **counts}
