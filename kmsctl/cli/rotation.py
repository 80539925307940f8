"""Rotation commands: rotate, rotation enable|disable|status|list, and maintain."""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import key_id_for_management
from kmsctl.cli.paging import Paging, fetch, finish, paging_options
from kmsctl.render import emit

ROTATION_COLUMNS = ["KeyMaterialId", "KeyMaterialState", "RotationType", "RotationDate"]
ROTATION_PAGE = 1000  # ListKeyRotations' largest Limit


@click.command()
@click.argument("key", metavar="KEY")
@click.pass_obj
def rotate(app: App, key: str) -> None:
    """Rotate a key now: new key material for new ciphertext, the old kept for
    decrypting (RotateKeyOnDemand; at most 25 times a key). Text output: the
    new current KeyMaterialId."""
    kms = app.kms()
    key_id = key_id_for_management(app, key)
    with kms.transaction():
        kms.rotate_key_on_demand(KeyId=key_id)
        metadata = kms.key_metadata(key_id)
    app.info(f"kmsctl: rotated {key}")
    emit(
        app,
        {"KeyId": metadata["Arn"], "CurrentKeyMaterialId": metadata.get("CurrentKeyMaterialId")},
        columns=["CurrentKeyMaterialId"],
        rows=[[metadata.get("CurrentKeyMaterialId")]],
    )


@click.group()
def rotation() -> None:
    """Automatic rotation of symmetric keys, and their rotation history.

    A key with rotation enabled gets new key material every period (90-2560
    days). No daemon is needed: the first command after a rotation falls due
    performs it, once however late, and the next one falls due one period
    after that. 'kmsctl maintain' does the same for the whole keyring.
    """


@rotation.command("enable")
@click.argument("key", metavar="KEY")
@click.option("--period-days", type=int, default=None, help="Days between rotations, 90-2560 [default: 365].")
@click.pass_obj
def rotation_enable(app: App, key: str, period_days: int | None) -> None:
    """Turn on automatic rotation, or change its period (EnableKeyRotation)."""
    args: dict[str, Any] = {"KeyId": key_id_for_management(app, key)}
    if period_days is not None:
        args["RotationPeriodInDays"] = period_days
    app.kms().enable_key_rotation(**args)
    app.info(f"kmsctl: automatic rotation enabled for {key}")


@rotation.command("disable")
@click.argument("key", metavar="KEY")
@click.pass_obj
def rotation_disable(app: App, key: str) -> None:
    """Turn off automatic rotation; existing material stays (DisableKeyRotation)."""
    app.kms().disable_key_rotation(KeyId=key_id_for_management(app, key))
    app.info(f"kmsctl: automatic rotation disabled for {key}")


@rotation.command("status")
@click.argument("key", metavar="KEY")
@click.pass_obj
def rotation_status(app: App, key: str) -> None:
    """Is automatic rotation on, how often, and when next (GetKeyRotationStatus).

    Text columns: KeyRotationEnabled RotationPeriodInDays NextRotationDate.
    """
    out = app.kms().get_key_rotation_status(KeyId=key_id_for_management(app, key))
    columns = ["KeyRotationEnabled", "RotationPeriodInDays", "NextRotationDate"]
    emit(app, out, columns=columns, rows=[[out.get(c) for c in columns]], vertical=True)


@rotation.command("list")
@click.argument("key", metavar="KEY")
@click.option("--all-material", is_flag=True, help="Include the original key material (ALL_KEY_MATERIAL).")
@paging_options("entries", ROTATION_PAGE)
@click.pass_obj
def rotation_list(app: App, key: str, all_material: bool, paging: Paging) -> None:
    """A key's rotations, oldest first, all of them unless --max-items caps
    them (ListKeyRotations).

    Text columns: KeyMaterialId KeyMaterialState RotationType RotationDate.
    """
    args: dict[str, Any] = {"KeyId": key_id_for_management(app, key)}
    if all_material:
        args["IncludeKeyMaterial"] = "ALL_KEY_MATERIAL"
    rotations, token = fetch(app.kms().list_key_rotations, "Rotations", paging, ROTATION_PAGE, **args)
    out = finish(app, {"Rotations": rotations}, token, "rotations", paging)
    emit(app, out, columns=ROTATION_COLUMNS, rows=[[r.get(c) for c in ROTATION_COLUMNS] for r in rotations])


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what is due; change nothing.")
@click.pass_obj
def maintain(app: App, dry_run: bool) -> None:
    """Do what time has made due, for the whole keyring: destroy keys whose
    deletion window has passed and rotate keys whose rotation is due.

    Every command already does this first; maintain is for cron or a CI
    schedule, so that the work happens at a known time and is reported.

    \b
    Text output, one line per action: deleted|rotated KeyId Date [KeyMaterialId].
    """
    out = app.kms().maintain(DryRun=dry_run)
    rows = [["deleted", d["KeyId"], d["DeletionDate"], ""] for d in out["DeletedKeys"]]
    rows += [["rotated", r["KeyId"], r["RotationDate"], r.get("KeyMaterialId", "")] for r in out["RotatedKeys"]]
    verb = "would do" if dry_run else "did"
    app.info(f"kmsctl: maintain {verb} {len(out['DeletedKeys'])} deletion(s), {len(out['RotatedKeys'])} rotation(s)")
    emit(app, out, columns=["Action", "KeyId", "Date", "KeyMaterialId"], rows=rows)
