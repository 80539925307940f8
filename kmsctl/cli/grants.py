"""Grant commands: grant create|list|list-retirable|retire|revoke."""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import key_id_for_management, key_metadata, parse_pairs
from kmsctl.errors import UsageError
from kmsctl.render import emit

GRANT_COLUMNS = [
    "GrantId",
    "GranteePrincipal",
    "Operations",
    "RetiringPrincipal",
    "Name",
    "CreationDate",
    "Constraints",
    "KeyId",
]
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Only check that the request would succeed (DryRun); change nothing."
)


def _arn(app: App, ref: str, key: str | None = None) -> str:
    from kmsctl.service.access import principal_arn

    if not app.remote:
        return principal_arn(ref, app.keyring().account)
    if ref.startswith("arn:"):
        return principal_arn(ref, "")
    if key is None:  # the aws backend knows no account of its own (no STS call)
        raise UsageError(f"on the aws backend, give the principal {ref!r} as an ARN")
    return principal_arn(ref, str(key_metadata(app, key)["AWSAccountId"]))  # the key's account


def _constraints(entry: dict[str, Any]) -> str:
    out = []
    for kind, pairs in (entry.get("Constraints") or {}).items():
        word = "equals" if kind == "EncryptionContextEquals" else "subset"
        out.append(word + ":" + ",".join(f"{k}={v}" for k, v in sorted(pairs.items())))
    return " ".join(out)


def _show(app: App, out: dict[str, Any]) -> None:
    rows = [[g.get(c) if c != "Constraints" else _constraints(g) for c in GRANT_COLUMNS] for g in out["Grants"]]
    if out.get("NextMarker") and app.mode() != "json":
        app.info(f"kmsctl: more grants follow: --marker {out['NextMarker']}")
    emit(app, out, columns=GRANT_COLUMNS, rows=rows, table_columns=GRANT_COLUMNS[:5])


def _dry(app: App, dry_run: bool) -> None:
    if dry_run:
        app.dry_run = True
        app.kms().dry_run = True


@click.group()
def grant() -> None:
    """Grants: let a principal use one key for some operations (CreateGrant, ...)."""


@grant.command("create")
@click.argument("key", metavar="KEY")
@click.option("--grantee", required=True, metavar="P", help="Who may use the key (a name or any principal ARN).")
@click.option(
    "--operation",
    "operations",
    multiple=True,
    required=True,
    metavar="OP",
    help="An operation the grant allows (Encrypt, Decrypt, ...); repeat, or separate with commas.",
)
@click.option("--retiring", metavar="P", help="Who may retire the grant besides the issuing account.")
@click.option("--context-equals", multiple=True, metavar="K=V", help="Allow only this exact encryption context.")
@click.option("--context-subset", multiple=True, metavar="K=V", help="Allow only contexts holding these pairs.")
@click.option("--name", metavar="N", help="A name: retrying with the same name and parameters makes no new grant.")
@dry_run_option
@click.pass_obj
def grant_create(
    app: App,
    key: str,
    grantee: str,
    operations: tuple[str, ...],
    retiring: str | None,
    context_equals: tuple[str, ...],
    context_subset: tuple[str, ...],
    name: str | None,
    dry_run: bool,
) -> None:
    """Create a grant on KEY (CreateGrant). Text: GrantId and GrantToken, tab-separated, one line."""
    _dry(app, dry_run)
    ops = [op.strip() for item in operations for op in item.split(",") if op.strip()]
    args: dict[str, Any] = {"KeyId": key_id_for_management(app, key), "GranteePrincipal": _arn(app, grantee, key)}
    args["Operations"] = ops
    if retiring:
        args["RetiringPrincipal"] = _arn(app, retiring, key)
    if context_equals and context_subset:
        raise click.UsageError("give --context-equals or --context-subset, not both")
    if context_equals:
        args["Constraints"] = {"EncryptionContextEquals": parse_pairs(context_equals, "--context-equals")}
    if context_subset:
        args["Constraints"] = {"EncryptionContextSubset": parse_pairs(context_subset, "--context-subset")}
    if name:
        args["Name"] = name
    out = app.kms().create_grant(**args)
    if app.mode() == "text":
        app.write_text(f"{out['GrantId']}\t{out['GrantToken']}\n")
        return
    emit(app, out, columns=["GrantId", "GrantToken"], rows=[[out["GrantId"], out["GrantToken"]]], vertical=True)


@grant.command("list")
@click.argument("key", metavar="KEY")
@click.option("--grant-id", metavar="ID", help="Only this grant.")
@click.option("--grantee", metavar="P", help="Only the grants of this grantee.")
@click.option("--limit", type=int, help="At most N grants (1-100, default 50).")
@click.option("--marker", metavar="M", help="Continue from the NextMarker of an earlier page.")
@click.pass_obj
def grant_list(
    app: App, key: str, grant_id: str | None, grantee: str | None, limit: int | None, marker: str | None
) -> None:
    """List the grants of KEY (ListGrants).

    Text columns: GrantId GranteePrincipal Operations RetiringPrincipal Name CreationDate Constraints KeyId.
    """
    args: dict[str, Any] = {"KeyId": key_id_for_management(app, key)}
    if grant_id:
        args["GrantId"] = grant_id
    if grantee:
        args["GranteePrincipal"] = _arn(app, grantee, key)
    if limit is not None:
        args["Limit"] = limit
    if marker:
        args["Marker"] = marker
    _show(app, app.kms().list_grants(**args))


@grant.command("list-retirable")
@click.option("--retiring", required=True, metavar="P", help="The retiring principal.")
@click.option("--limit", type=int, help="At most N grants (1-100, default 50).")
@click.option("--marker", metavar="M", help="Continue from the NextMarker of an earlier page.")
@click.pass_obj
def grant_list_retirable(app: App, retiring: str, limit: int | None, marker: str | None) -> None:
    """List the grants P may retire, on every key (ListRetirableGrants). Text columns as grant list."""
    args: dict[str, Any] = {"RetiringPrincipal": _arn(app, retiring)}
    if limit is not None:
        args["Limit"] = limit
    if marker:
        args["Marker"] = marker
    _show(app, app.kms().list_retirable_grants(**args))


@grant.command("retire")
@click.argument("key", metavar="[KEY GRANT_ID]", required=False)
@click.argument("grant_id", metavar="", required=False)
@click.option("--token", metavar="T", help="The grant's token (instead of KEY GRANT_ID).")
@dry_run_option
@click.pass_obj
def grant_retire(app: App, key: str | None, grant_id: str | None, token: str | None, dry_run: bool) -> None:
    """Retire a grant: by --token, or by KEY and GRANT_ID (RetireGrant).

    The retiring principal, the grantee (if the grant has RetireGrant) and
    the issuing account may retire a grant.
    """
    _dry(app, dry_run)
    if token and not key:
        app.kms().retire_grant(GrantToken=token)
    elif key and grant_id and not token:
        app.kms().retire_grant(KeyId=key_id_for_management(app, key), GrantId=grant_id)
    else:
        raise click.UsageError("give --token T, or KEY and GRANT_ID")
    app.info("kmsctl: the grant is retired")


@grant.command("revoke")
@click.argument("key", metavar="KEY")
@click.argument("grant_id", metavar="GRANT_ID")
@dry_run_option
@click.pass_obj
def grant_revoke(app: App, key: str, grant_id: str, dry_run: bool) -> None:
    """Revoke a grant of KEY (RevokeGrant; needs kms:RevokeGrant on the key)."""
    _dry(app, dry_run)
    app.kms().revoke_grant(KeyId=key_id_for_management(app, key), GrantId=grant_id)
    app.info("kmsctl: the grant is revoked")
