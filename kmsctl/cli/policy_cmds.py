"""Key policy commands: policy get|put|list|reset|simulate."""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import key_id_for_management, parse_pairs
from kmsctl.cli.principals import read_policy
from kmsctl.render import emit

REASON_COLUMNS = ["Source", "Sid", "Effect", "StatementIndex", "PolicyName"]


@click.group()
def policy() -> None:
    """Key policies: who may use and manage a key (PutKeyPolicy, GetKeyPolicy, ...)."""


@policy.command("get")
@click.argument("key", metavar="KEY")
@click.pass_obj
def policy_get(app: App, key: str) -> None:
    """Print the key policy document itself (GetKeyPolicy; -o json: its response shape)."""
    out = app.kms().get_key_policy(KeyId=key_id_for_management(app, key))
    if app.mode() == "json":
        emit(app, out, columns=[], rows=[])
        return
    text = out["Policy"]
    app.write_text(text if text.endswith("\n") else text + "\n")


@policy.command("put")
@click.argument("key", metavar="KEY")
@click.argument("policy_file", metavar="FILE")
@click.option(
    "--bypass-policy-lockout-safety-check",
    "bypass",
    is_flag=True,
    help="Accept a policy that would not let you change it later.",
)
@click.pass_obj
def policy_put(app: App, key: str, policy_file: str, bypass: bool) -> None:
    """Replace the key policy with FILE (- for stdin) (PutKeyPolicy).

    The policy is checked first (JSON, grammar, principals that exist, 32 KB,
    and that it still lets you call PutKeyPolicy); on any error the old
    policy stays in force.
    """
    text = read_policy(policy_file)
    app.kms().put_key_policy(KeyId=key_id_for_management(app, key), Policy=text, BypassPolicyLockoutSafetyCheck=bypass)
    app.info(f"kmsctl: the policy of {key} is replaced")


@policy.command("list")
@click.argument("key", metavar="KEY")
@click.pass_obj
def policy_list(app: App, key: str) -> None:
    """List the key's policy names: always default (ListKeyPolicies). Text column: PolicyName."""
    out = app.kms().list_key_policies(KeyId=key_id_for_management(app, key))
    emit(app, out, columns=["PolicyName"], rows=[[n] for n in out["PolicyNames"]])


@policy.command("reset")
@click.argument("key", metavar="KEY")
@click.pass_obj
def policy_reset(app: App, key: str) -> None:
    """Put AWS's default key policy back (the account root only, on the local keyring).

    The way out of a lockout: whoever holds the keyring's passphrase is the
    account root and may always do this; it is audited as ResetKeyPolicy.
    """
    app.kms().reset_key_policy(KeyId=key_id_for_management(app, key))
    app.info(f"kmsctl: {key} has the default key policy again")


@policy.command("simulate")
@click.argument("key", metavar="KEY")
@click.option("--action", required=True, metavar="kms:OP", help="The action to decide, e.g. kms:Decrypt.")
@click.option("--principal", "who", metavar="P", help="Who asks; default the acting principal (--principal).")
@click.option("-c", "--context", "context", multiple=True, metavar="K=V", help="Encryption context pair; repeatable.")
@click.option(
    "--request",
    "request",
    multiple=True,
    metavar="K=V",
    help="A request value: a parameter (EncryptionAlgorithm=...), RequestAlias=alias/x, "
    "or a condition key (aws:SourceIp=10.0.0.1); repeatable.",
)
@click.pass_obj
def policy_simulate(
    app: App, key: str, action: str, who: str | None, context: tuple[str, ...], request: tuple[str, ...]
) -> None:
    """Decide a request without making it, and say why (exit 0 allowed, 1 denied).

    Every statement, grant and identity policy that allowed or denied is listed.
    Text: the decision on the first line, then one line per reason:
    Source Sid(or GrantId) Effect StatementIndex PolicyName.
    """
    args: dict[str, Any] = {"KeyId": key, "Action": action}
    if who:
        args["Principal"] = who
    if context:
        args["EncryptionContext"] = parse_pairs(context, "-c")
    if request:
        args["Request"] = parse_pairs(request, "--request")
    out = app.kms().simulate_policy(**args)
    reasons = out["Reasons"]
    rows = [
        [r.get("Source"), r.get("Sid", r.get("GrantId")), r.get("Effect"), r.get("StatementIndex"), r.get("PolicyName")]
        for r in reasons
    ]
    mode = app.mode()
    if mode == "json":
        emit(app, {"Decision": out["Decision"], "Reasons": reasons}, columns=[], rows=[])
    elif mode == "text":
        app.write_text(out["Decision"] + "\n")
        emit(app, out, columns=REASON_COLUMNS, rows=rows)
    else:
        emit(
            app,
            out,
            columns=REASON_COLUMNS,
            rows=rows,
            title=f"{out['Decision']}: {out['Action']} by {out['Principal']}",
        )
    if out.get("Message"):
        app.info(f"kmsctl: {out['Message']}")
    if out["Decision"] != "Allowed":
        raise click.exceptions.Exit(1)
