"""Alias and tag commands: alias create|update|delete|list, tag add|remove|list."""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import key_id_for_management, parse_pairs
from kmsctl.cli.paging import Paging, fetch, finish, paging_options
from kmsctl.render import emit

ALIAS_COLUMNS = ["AliasName", "TargetKeyId", "AliasArn", "CreationDate", "LastUpdatedDate"]
ALIAS_PAGE = 100  # ListAliases' largest Limit


@click.group()
def alias() -> None:
    """Friendly names for keys: alias/NAME works wherever KEY does."""


@alias.command("create")
@click.argument("name", metavar="alias/NAME")
@click.argument("key", metavar="KEY")
@click.pass_obj
def alias_create(app: App, name: str, key: str) -> None:
    """Point a new alias at KEY (CreateAlias). Text output: the alias name."""
    app.kms().create_alias(AliasName=name, TargetKeyId=key_id_for_management(app, key))
    if app.mode() == "text":
        app.write_text(name + "\n")
    else:
        app.info(f"kmsctl: {name} -> {key}")


@alias.command("update")
@click.argument("name", metavar="alias/NAME")
@click.argument("key", metavar="KEY")
@click.pass_obj
def alias_update(app: App, name: str, key: str) -> None:
    """Point an existing alias at another key of the same kind and usage (UpdateAlias)."""
    app.kms().update_alias(AliasName=name, TargetKeyId=key_id_for_management(app, key))
    app.info(f"kmsctl: {name} -> {key}")


@alias.command("delete")
@click.argument("name", metavar="alias/NAME")
@click.pass_obj
def alias_delete(app: App, name: str) -> None:
    """Delete an alias; its key is untouched (DeleteAlias)."""
    app.kms().delete_alias(AliasName=name)
    app.info(f"kmsctl: deleted {name}")


@alias.command("list")
@click.option("--key", "key", metavar="KEY", help="Only the aliases of this key.")
@paging_options("aliases", ALIAS_PAGE)
@click.pass_obj
def alias_list(app: App, key: str | None, paging: Paging) -> None:
    """List aliases, all of them unless --max-items caps them (ListAliases).

    Text columns: AliasName TargetKeyId AliasArn CreationDate LastUpdatedDate.
    """
    args: dict[str, Any] = {}
    if key:
        args["KeyId"] = key_id_for_management(app, key)
    aliases, token = fetch(app.kms().list_aliases, "Aliases", paging, ALIAS_PAGE, **args)
    out = finish(app, {"Aliases": aliases}, token, "aliases", paging)
    emit(
        app,
        out,
        columns=ALIAS_COLUMNS,
        rows=[[a.get(c) for c in ALIAS_COLUMNS] for a in aliases],
        table_columns=["AliasName", "TargetKeyId", "LastUpdatedDate"],
    )


@click.group()
def tag() -> None:
    """Key tags: up to 50 K=V pairs a key, for people and for filtering."""


@tag.command("add")
@click.argument("key", metavar="KEY")
@click.argument("pairs", metavar="K=V...", nargs=-1, required=True)
@click.pass_obj
def tag_add(app: App, key: str, pairs: tuple[str, ...]) -> None:
    """Add or overwrite tags (TagResource)."""
    tags = [{"TagKey": k, "TagValue": v} for k, v in parse_pairs(pairs, "K=V").items()]
    app.kms().tag_resource(KeyId=key_id_for_management(app, key), Tags=tags)


@tag.command("remove")
@click.argument("key", metavar="KEY")
@click.argument("tag_keys", metavar="K...", nargs=-1, required=True)
@click.pass_obj
def tag_remove(app: App, key: str, tag_keys: tuple[str, ...]) -> None:
    """Remove tags by key; absent ones are ignored (UntagResource)."""
    app.kms().untag_resource(KeyId=key_id_for_management(app, key), TagKeys=list(tag_keys))


@tag.command("list")
@click.argument("key", metavar="KEY")
@click.pass_obj
def tag_list(app: App, key: str) -> None:
    """List a key's tags (ListResourceTags). Text columns: TagKey TagValue."""
    kms = app.kms()
    key_id = key_id_for_management(app, key)
    out = kms.list_resource_tags(KeyId=key_id)
    emit(app, out, columns=["TagKey", "TagValue"], rows=[[t["TagKey"], t["TagValue"]] for t in out["Tags"]])
