"""Principal commands: principal create|list|describe|delete|tag|untag, principal policy
put|get|delete, principal access-key create|list|delete."""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import parse_pairs, read_input
from kmsctl.render import emit

PRINCIPAL_COLUMNS = ["Arn", "Type", "Name", "Path", "CreateDate", "Tags"]
ACCESS_KEY_COLUMNS = ["AccessKeyId", "Status", "CreateDate"]
POLICY_LIMIT = 131072  # read past 32 KB so that an oversized policy gets its LimitExceededException


def read_policy(path: str) -> str:
    data = read_input(path, POLICY_LIMIT, "policy file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        from kmsctl.errors import MalformedPolicyDocumentException

        raise MalformedPolicyDocumentException(f"the policy file {path} is not UTF-8 text") from None


def _row(entry: dict[str, Any]) -> list[Any]:
    kind = "user" if "UserName" in entry else "role"
    tags = ",".join(f"{t['Key']}={t['Value']}" for t in entry.get("Tags", []))
    return [
        entry["Arn"],
        kind,
        entry.get("UserName") or entry.get("RoleName"),
        entry["Path"],
        entry["CreateDate"],
        tags,
    ]


def _show(app: App, out: dict[str, Any]) -> None:
    entry = out.get("User") or out.get("Role") or {}
    emit(app, out, columns=PRINCIPAL_COLUMNS, rows=[_row(entry)], vertical=True)


@click.group()
def principal() -> None:
    """IAM users and roles of this keyring's account or another, to try policies with."""


@principal.command("create")
@click.argument("name", metavar="NAME")
@click.option("--account", metavar="ACCOUNT", help="Another account's principal (cross-account access).")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="A principal tag; repeat for more.")
@click.option("--policy", "policy_file", metavar="FILE", help="Its identity (IAM) policy, from FILE.")
@click.pass_obj
def principal_create(app: App, name: str, account: str | None, tags: tuple[str, ...], policy_file: str | None) -> None:
    """Create a principal: NAME is user/X, role/X, or X for user/X (CreatePrincipal).

    Text columns: Arn Type Name Path CreateDate Tags.
    """
    args: dict[str, Any] = {"Name": name}
    if account:
        args["Account"] = account
    if tags:
        args["Tags"] = [{"Key": k, "Value": v} for k, v in parse_pairs(tags, "--tag").items()]
    if policy_file:
        args["Policy"] = read_policy(policy_file)
    _show(app, app.kms().create_principal(**args))


@principal.command("list")
@click.pass_obj
def principal_list(app: App) -> None:
    """List principals (ListPrincipals). Text columns: Arn Type Name Path CreateDate Tags."""
    out = app.kms().list_principals()
    rows = [_row(e) for e in out["Users"] + out["Roles"]]
    rows.sort(key=lambda r: str(r[0]))
    emit(app, out, columns=PRINCIPAL_COLUMNS, rows=rows)


@principal.command("describe")
@click.argument("who", metavar="P")
@click.pass_obj
def principal_describe(app: App, who: str) -> None:
    """Show a principal (GetPrincipal). Text columns: Arn Type Name Path CreateDate Tags."""
    _show(app, app.kms().get_principal(Principal=who))


@principal.command("delete")
@click.argument("who", metavar="P")
@click.pass_obj
def principal_delete(app: App, who: str) -> None:
    """Delete a principal with its identity policy and access keys (DeletePrincipal)."""
    app.kms().delete_principal(Principal=who)
    app.info(f"kmsctl: deleted {who}")


@principal.command("tag")
@click.argument("who", metavar="P")
@click.argument("pairs", metavar="K=V...", nargs=-1, required=True)
@click.pass_obj
def principal_tag(app: App, who: str, pairs: tuple[str, ...]) -> None:
    """Add or overwrite principal tags, seen as aws:PrincipalTag/K (TagPrincipal)."""
    tags = [{"Key": k, "Value": v} for k, v in parse_pairs(pairs, "K=V").items()]
    app.kms().tag_principal(Principal=who, Tags=tags)


@principal.command("untag")
@click.argument("who", metavar="P")
@click.argument("tag_keys", metavar="K...", nargs=-1, required=True)
@click.pass_obj
def principal_untag(app: App, who: str, tag_keys: tuple[str, ...]) -> None:
    """Remove principal tags by key (UntagPrincipal)."""
    app.kms().untag_principal(Principal=who, TagKeys=list(tag_keys))


@principal.group("policy")
def principal_policy() -> None:
    """A principal's identity (IAM) policy: one a principal."""


@principal_policy.command("put")
@click.argument("who", metavar="P")
@click.argument("policy_file", metavar="FILE")
@click.pass_obj
def principal_policy_put(app: App, who: str, policy_file: str) -> None:
    """Set P's identity policy from FILE (- for stdin), replacing any (PutPrincipalPolicy)."""
    app.kms().put_principal_policy(Principal=who, PolicyDocument=read_policy(policy_file))


@principal_policy.command("get")
@click.argument("who", metavar="P")
@click.pass_obj
def principal_policy_get(app: App, who: str) -> None:
    """Print P's identity policy document (GetPrincipalPolicy; -o json: its response)."""
    out = app.kms().get_principal_policy(Principal=who)
    if app.mode() == "json":
        emit(app, out, columns=[], rows=[])
    else:
        text = out["PolicyDocument"]
        app.write_text(text if text.endswith("\n") else text + "\n")


@principal_policy.command("delete")
@click.argument("who", metavar="P")
@click.pass_obj
def principal_policy_delete(app: App, who: str) -> None:
    """Remove P's identity policy (DeletePrincipalPolicy)."""
    app.kms().delete_principal_policy(Principal=who)


@principal.group("access-key")
def access_key() -> None:
    """Access keys (AccessKeyId and secret) a principal signs requests with."""


@access_key.command("create")
@click.argument("who", metavar="P")
@click.option("--shell", is_flag=True, help="Print export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...")
@click.pass_obj
def access_key_create(app: App, who: str, shell: bool) -> None:
    """Make an access key for P; the secret is shown this once (CreateAccessKey).

    Text columns: AccessKeyId SecretAccessKey.
    """
    out = app.kms().create_access_key(Principal=who)
    key = out["AccessKey"]
    if shell:
        app.write_text(
            f"export AWS_ACCESS_KEY_ID={key['AccessKeyId']} AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n"
        )
        return
    emit(
        app,
        out,
        columns=["AccessKeyId", "SecretAccessKey"],
        rows=[[key["AccessKeyId"], key["SecretAccessKey"]]],
        vertical=True,
    )
    app.info("kmsctl: the secret access key is shown only now; store it safely")


@access_key.command("list")
@click.argument("who", metavar="P")
@click.pass_obj
def access_key_list(app: App, who: str) -> None:
    """List P's access keys, never their secrets (ListAccessKeys). Text columns: AccessKeyId Status CreateDate."""
    out = app.kms().list_access_keys(Principal=who)
    rows = [[k[c] for c in ACCESS_KEY_COLUMNS] for k in out["AccessKeyMetadata"]]
    emit(app, out, columns=ACCESS_KEY_COLUMNS, rows=rows)


@access_key.command("delete")
@click.argument("who", metavar="P")
@click.argument("akid", metavar="AKID")
@click.pass_obj
def access_key_delete(app: App, who: str, akid: str) -> None:
    """Delete one of P's access keys (DeleteAccessKey)."""
    app.kms().delete_access_key(Principal=who, AccessKeyId=akid)
    app.info(f"kmsctl: deleted {akid}")
