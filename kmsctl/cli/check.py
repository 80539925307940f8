"""The whole-keyring check: kmsctl check."""

from __future__ import annotations

import click

from kmsctl.cli.app import App
from kmsctl.render import emit

CHECK_COLUMNS = ["Keys", "Aliases", "KeyMaterials", "AuditRecords", "CommitCounter"]


@click.command()
@click.pass_obj
def check(app: App) -> None:
    """Check the whole keyring: exit 0, or 8 naming the first problem.

    SQLite's full integrity check (every page, every index against its
    table), every key, alias and key material record (MACs, sealing, index
    columns, the links between them), the whole audit chain, and the commit
    counter in keyring.epoch (a database that lost committed changes, or an
    older copy put in place). Needs the keyring unlocked; works with
    --read-only. For cron or CI, next to 'kmsctl maintain'.

    Text output: keys, aliases, key materials, audit records, commit counter.
    """
    out = app.kms().check_keyring()
    app.info(
        f"kmsctl: keyring checks: {out['Keys']} keys, {out['Aliases']} aliases, "
        f"{out['KeyMaterials']} key materials, {out['AuditRecords']} audit records"
    )
    emit(app, out, columns=CHECK_COLUMNS, rows=[[out[c] for c in CHECK_COLUMNS]])
