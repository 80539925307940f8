"""Key lifecycle commands: create, describe, list, enable, disable,
update-description, schedule-delete, cancel-delete."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import click

from kmsctl import model
from kmsctl.cli.app import App
from kmsctl.cli.io import key_id_for_management, parse_pairs
from kmsctl.cli.options import AwsChoice
from kmsctl.cli.paging import Paging, fetch, finish, paging_options
from kmsctl.render import busy, emit

KEY_COLUMNS = ["KeyId", "Arn", "KeyState", "KeySpec", "KeyUsage", "CreationDate", "DeletionDate", "Description"]
LIST_COLUMNS = ["KeyId", "KeyState", "KeySpec", "KeyUsage", "Aliases", "Description"]
KEY_PAGE = 1000  # ListKeys' largest Limit: one call (one audit record) for most keyrings

key_argument = click.argument("key", metavar="KEY")


def show_key(app: App, metadata: dict[str, Any], extra: list[tuple[str, Any]] | None = None) -> None:
    """A key's metadata; on a terminal also ``extra`` (aliases, tags) and its
    algorithms; text and json stay what DescribeKey returns."""
    if app.mode() == "table":
        extra = [*(extra or []), *((f, metadata[f]) for f in model.ALGORITHM_FIELD.values() if f in metadata)]
    emit(
        app,
        {"KeyMetadata": metadata},
        columns=KEY_COLUMNS,
        rows=[[metadata.get(c) for c in KEY_COLUMNS]],
        vertical=True,
        table_extra=extra or [],
    )


def key_details(app: App, metadata: dict[str, Any]) -> list[tuple[str, Any]]:
    """Aliases, tags and rotation of a key, for a person: read for the
    table only, and not as the user's act (no audit record of their own)."""
    kms = app.kms()
    key_id = metadata["KeyId"]
    out: list[tuple[str, Any]] = []
    with kms.internal_reads():
        out.append(("Aliases", [a["AliasName"] for a in kms.list_aliases(KeyId=key_id, Limit=100)["Aliases"]]))
        out.append(("Tags", [f"{t['TagKey']}={t['TagValue']}" for t in kms.list_resource_tags(KeyId=key_id)["Tags"]]))
        rotatable = metadata.get("KeySpec") == "SYMMETRIC_DEFAULT" and metadata.get("Origin") == "AWS_KMS"
        if rotatable and metadata.get("KeyState") in ("Enabled", "Disabled"):
            rotation = kms.get_key_rotation_status(KeyId=key_id)
            out.append(("KeyRotationEnabled", rotation["KeyRotationEnabled"]))
            out += [(f, rotation.get(f)) for f in ("RotationPeriodInDays", "NextRotationDate")]
    return out


@click.command()
@click.option(
    "--key-spec",
    default="SYMMETRIC_DEFAULT",
    show_default=True,
    type=AwsChoice(model.KEY_SPECS),
    help="What kind of key.",
)
@click.option(
    "--key-usage",
    type=AwsChoice(model.KEY_USAGES),
    help="What it is for; needed only where the spec allows more than one usage.",
)
@click.option("--description", default="", help="Free text, up to 8192 characters.")
@click.option("--alias", "alias_name", metavar="alias/NAME", help="Also create this alias, in the same transaction.")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="A tag; repeat for more.")
@click.option(
    "--origin",
    default="AWS_KMS",
    show_default=True,
    type=AwsChoice(["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM"]),
    help="EXTERNAL: key material to be imported; AWS_CLOUDHSM: in the --custom-key-store.",
)
@click.option(
    "--custom-key-store",
    "custom_key_store",
    metavar="NAME|ID",
    help="Make the key inside this custom key store's token (Origin AWS_CLOUDHSM; symmetric only).",
)
@click.option(
    "--policy", "policy_file", metavar="FILE", help="The key policy, from FILE; default AWS's default policy."
)
@click.option(
    "--bypass-policy-lockout-safety-check",
    "bypass",
    is_flag=True,
    help="Accept a --policy that would not let you change it later.",
)
@click.pass_obj
def create(
    app: App,
    key_spec: str,
    key_usage: str | None,
    description: str,
    alias_name: str | None,
    tags: tuple[str, ...],
    origin: str,
    custom_key_store: str | None,
    policy_file: str | None,
    bypass: bool,
) -> None:
    """Create a KMS key (CreateKey).

    Text output: the new key ID, so that KEY=$(kmsctl -o text create) works.
    """
    usages = model.SPEC_USAGES[key_spec]
    if key_usage is None and len(usages) == 1:
        key_usage = next(iter(usages))
    args: dict[str, Any] = {"KeySpec": key_spec, "Description": description, "Origin": origin}
    if key_usage:
        args["KeyUsage"] = key_usage
    if tags:
        args["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in parse_pairs(tags, "--tag").items()]
    if policy_file:
        from kmsctl.cli.principals import read_policy

        args["Policy"] = read_policy(policy_file)
    if bypass:
        args["BypassPolicyLockoutSafetyCheck"] = True
    kms = app.kms()
    if custom_key_store:
        from kmsctl.cli.keystores import store_id

        args.update(Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id(app, custom_key_store))
    slow = key_spec in ("RSA_3072", "RSA_4096")  # a second or two of prime search
    with busy(app, f"kmsctl: creating a {key_spec} key") if slow else nullcontext(), kms.transaction():
        # the key and its alias land together or not at all
        metadata = kms.create_key(**args)["KeyMetadata"]
        if alias_name:
            kms.create_alias(AliasName=alias_name, TargetKeyId=metadata["KeyId"])
    if app.mode() == "text":
        app.write_text(metadata["KeyId"] + "\n")
    else:
        echo = [
            ("Aliases", [alias_name] if alias_name else []),
            ("Tags", [f"{t['TagKey']}={t['TagValue']}" for t in args.get("Tags", [])]),
        ]
        show_key(app, metadata, echo)


@click.command()
@key_argument
@click.pass_obj
def describe(app: App, key: str) -> None:
    """Show a key's metadata (DescribeKey).

    Text columns: KeyId Arn KeyState KeySpec KeyUsage CreationDate DeletionDate Description.
    """
    metadata = app.kms().describe_key(KeyId=key)["KeyMetadata"]
    show_key(app, metadata, key_details(app, metadata) if app.mode() == "table" else None)


@click.command("list")
@click.option(
    "--state",
    type=AwsChoice(model.KEY_STATES),
    help="Only keys in this state.",
)
@click.option(
    "--key-spec",
    type=AwsChoice(model.KEY_SPECS),
    help="Only keys of this spec.",
)
@click.option("--tag", "tag", metavar="K=V", help="Only keys with this tag.")
@click.option("--alias-prefix", metavar="P", help="Only keys with an alias starting with P (e.g. alias/prod-).")
@paging_options("keys", KEY_PAGE)
@click.pass_obj
def list_(
    app: App,
    state: str | None,
    key_spec: str | None,
    tag: str | None,
    alias_prefix: str | None,
    paging: Paging,
) -> None:
    """List keys (ListKeys), with their state, spec, usage and aliases: all
    of them unless --max-items caps them.

    Text columns: KeyId KeyState KeySpec KeyUsage Aliases(comma-separated) Description.
    With --max-items, stderr says which --starting-token continues.
    """
    kms = app.kms()
    args: dict[str, Any] = {}
    if state:
        args["FilterKeyState"] = state
    if key_spec:
        args["FilterKeySpec"] = key_spec
    if tag:
        ((k, v),) = parse_pairs((tag,), "--tag").items()
        args["FilterTag"] = {"TagKey": k, "TagValue": v}
    if alias_prefix:
        args["FilterAliasPrefix"] = alias_prefix
    with kms.snapshot():
        keys, token = fetch(kms.list_keys, "Keys", paging, KEY_PAGE, **args)
        entries = []
        with kms.internal_reads():  # the listing is the user's act: one ListKeys record a page
            for item in keys:
                md = kms.describe_key(KeyId=item["KeyId"])["KeyMetadata"]
                aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=item["KeyId"], Limit=100)["Aliases"]]
                entries.append({**item, **{c: md.get(c) for c in KEY_COLUMNS[2:]}, "Aliases": aliases})
    payload = finish(app, {"Keys": entries}, token, "keys", paging)
    emit(
        app,
        payload,
        columns=LIST_COLUMNS,
        rows=[[e.get(c) for c in LIST_COLUMNS] for e in entries],
        table_columns=["KeyId", "KeyState", "KeySpec", "KeyUsage", "Aliases", "Description"],
    )


@click.command()
@key_argument
@click.pass_obj
def enable(app: App, key: str) -> None:
    """Enable a disabled key (EnableKey)."""
    app.kms().enable_key(KeyId=key_id_for_management(app, key))
    app.info(f"kmsctl: enabled {key}")


@click.command()
@key_argument
@click.pass_obj
def disable(app: App, key: str) -> None:
    """Disable a key: every cryptographic use fails until it is enabled (DisableKey)."""
    app.kms().disable_key(KeyId=key_id_for_management(app, key))
    app.info(f"kmsctl: disabled {key}")


@click.command("update-description")
@key_argument
@click.argument("text")
@click.pass_obj
def update_description(app: App, key: str, text: str) -> None:
    """Replace a key's description (UpdateKeyDescription)."""
    app.kms().update_key_description(KeyId=key_id_for_management(app, key), Description=text)


@click.command("schedule-delete")
@key_argument
@click.option(
    "--days",
    type=int,
    default=model.PENDING_WINDOW_DEFAULT,
    show_default=True,
    help="Waiting period, 7 to 30 days; cancel-delete works until then.",
)
@click.pass_obj
def schedule_delete(app: App, key: str, days: int) -> None:
    """Schedule a key's deletion (ScheduleKeyDeletion).

    The key is unusable at once and destroyed, with its aliases and material,
    when the window ends. Text columns: KeyId DeletionDate KeyState PendingWindowInDays.
    """
    out = app.kms().schedule_key_deletion(KeyId=key_id_for_management(app, key), PendingWindowInDays=days)
    app.info(f"kmsctl: {key} will be deleted on {out['DeletionDate'].isoformat()}; 'kmsctl cancel-delete' until then")
    emit(
        app,
        out,
        columns=["KeyId", "DeletionDate", "KeyState", "PendingWindowInDays"],
        rows=[
            [out["KeyId"].rsplit("/", 1)[-1], out["DeletionDate"], out.get("KeyState"), out.get("PendingWindowInDays")]
        ],
    )


@click.command("cancel-delete")
@key_argument
@click.pass_obj
def cancel_delete(app: App, key: str) -> None:
    """Cancel a scheduled deletion; the key comes back Disabled (CancelKeyDeletion)."""
    out = app.kms().cancel_key_deletion(KeyId=key_id_for_management(app, key))
    app.info(f"kmsctl: deletion cancelled; {key} is Disabled ('kmsctl enable' to use it)")
    emit(app, out, columns=["KeyId"], rows=[[out["KeyId"].rsplit("/", 1)[-1]]])
