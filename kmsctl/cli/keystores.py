"""Custom key store commands: keystore create|list|connect|disconnect|update|delete.

A store is a PKCS#11 token (AWS's CloudHSM key store type); its PIN is read
from --pin-file, KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN or a prompt, never
from the command line, and kept sealed in the keyring.
"""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.render import emit

STORE_COLUMNS = [
    "CustomKeyStoreId",
    "CustomKeyStoreName",
    "ConnectionState",
    "ConnectionErrorCode",
    "CloudHsmClusterId",
    "CreationDate",
    "Pkcs11Uri",
]
PAGE = 1000  # DescribeCustomKeyStores' largest Limit

pin_file_option = click.option(
    "--pin-file",
    type=click.Path(dir_okay=False),
    metavar="F",
    help="Read the token's PIN from F (its first line) [else KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN, a prompt].",
)


def read_store_pin(app: App, pin_file: str | None, what: str) -> bytes:
    """The PIN from --pin-file, KMSCTL_PKCS11_PIN_FILE, KMSCTL_PKCS11_PIN, or a hidden prompt."""
    from kmsctl.hsm.pin import read_pin
    from kmsctl.keyring.unlock import terminal_prompt

    return read_pin(
        pin_file,
        prompt_ok=app.no_input is None,
        what=what,
        env=app.env,
        warn=app.warn,
        prompt=app.prompt or terminal_prompt,
    )


def store_id(app: App, ref: str) -> str:
    """A store's ID from its name or ID (NAME|ID)."""
    if app.remote:
        if ref.startswith("cks-"):
            return ref
        found = app.kms().describe_custom_key_stores(CustomKeyStoreName=ref)["CustomKeyStores"]
        return str(found[0]["CustomKeyStoreId"])
    return str(app.kms().store_by_name_or_id(ref)["CustomKeyStoreId"])


def _rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
    return [[e.get(c) for c in STORE_COLUMNS] for e in entries]


def _show(app: App, entry: dict[str, Any], payload: dict[str, Any] | None = None) -> None:
    emit(app, payload or {"CustomKeyStores": [entry]}, columns=STORE_COLUMNS, rows=_rows([entry]), vertical=True)


@click.group()
def keystore() -> None:
    """Custom key stores: keys generated and used inside a PKCS#11 token (AWS's CloudHSM key stores)."""


@keystore.command("create")
@click.argument("name", metavar="NAME")
@click.option("--pkcs11", "uri", required=True, metavar="URI", help="The token, as an RFC 7512 PKCS#11 URI.")
@pin_file_option
@click.pass_obj
def keystore_create(app: App, name: str, uri: str, pin_file: str | None) -> None:
    """Create a custom key store on the token URI names (CreateCustomKeyStore).

    The token is opened once to check it and its PIN; the store starts
    DISCONNECTED, as AWS's do: 'kmsctl keystore connect NAME' next.
    Text columns: CustomKeyStoreId CustomKeyStoreName ConnectionState
    ConnectionErrorCode CloudHsmClusterId CreationDate Pkcs11Uri.
    """
    from kmsctl.hsm import uri as U

    parsed = U.parse(uri)
    pin = read_store_pin(app, pin_file or U.pin_file(parsed), parsed.describe())
    kms = app.kms()
    out = kms.create_custom_key_store(CustomKeyStoreName=name, Pkcs11Uri=uri, KeyStorePassword=pin)
    entry = kms.store_by_name_or_id(out["CustomKeyStoreId"])
    if app.mode() == "text":
        app.write_text("\t".join(str(c) for c in _rows([entry])[0]) + "\n")
    else:
        _show(app, entry, out if app.mode() == "json" else None)
    app.info(f"kmsctl: created custom key store {name} ({out['CustomKeyStoreId']}); 'kmsctl keystore connect {name}'")


@keystore.command("list")
@click.argument("ref", metavar="[NAME|ID]", required=False)
@click.pass_obj
def keystore_list(app: App, ref: str | None) -> None:
    """List custom key stores and their connection state (DescribeCustomKeyStores).

    Text columns: CustomKeyStoreId CustomKeyStoreName ConnectionState
    ConnectionErrorCode CloudHsmClusterId CreationDate Pkcs11Uri.
    """
    kms = app.kms()
    if ref:
        if ref.startswith("cks-"):
            out = kms.describe_custom_key_stores(CustomKeyStoreId=ref)
        else:
            out = kms.describe_custom_key_stores(CustomKeyStoreName=ref)
    else:
        entries: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = kms.describe_custom_key_stores(Limit=PAGE, **({"Marker": marker} if marker else {}))
            entries += page["CustomKeyStores"]
            marker = page.get("NextMarker")
            if not page.get("Truncated") or not marker:
                break
        out = {"CustomKeyStores": entries, "Truncated": False}
    emit(
        app,
        out,
        columns=STORE_COLUMNS,
        rows=_rows(out["CustomKeyStores"]),
        table_columns=STORE_COLUMNS[:5],
    )


@keystore.command("connect")
@click.argument("ref", metavar="NAME|ID")
@click.pass_obj
def keystore_connect(app: App, ref: str) -> None:
    """Connect a store: open its token with the PIN it keeps (ConnectCustomKeyStore).

    A store that fails to connect is FAILED with AWS's ConnectionErrorCode
    (exit 4): 'kmsctl keystore disconnect', fix it ('keystore update --pin-file'), connect again.
    """
    from kmsctl.errors import CustomKeyStoreInvalidStateException
    from kmsctl.service.keystore_rules import ERROR_MEANINGS

    kms = app.kms()
    sid = store_id(app, ref)
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    entry = kms.store_by_name_or_id(sid)
    if entry["ConnectionState"] == "FAILED":
        code = entry.get("ConnectionErrorCode", "INTERNAL_ERROR")
        raise CustomKeyStoreInvalidStateException(
            f"custom key store {ref} failed to connect: {code} ({ERROR_MEANINGS.get(code, 'the token failed')})",
            hint=f"kmsctl keystore disconnect {ref}, fix it (keystore update --pin-file F), connect again",
        )
    app.info(f"kmsctl: custom key store {ref} is {entry['ConnectionState']}")


@keystore.command("disconnect")
@click.argument("ref", metavar="NAME|ID")
@click.pass_obj
def keystore_disconnect(app: App, ref: str) -> None:
    """Disconnect a store: its keys stay listed but are unusable until it is connected (DisconnectCustomKeyStore)."""
    app.kms().disconnect_custom_key_store(CustomKeyStoreId=store_id(app, ref))
    app.info(f"kmsctl: custom key store {ref} is DISCONNECTED")


@keystore.command("update")
@click.argument("ref", metavar="NAME|ID")
@click.option("--new-name", metavar="N", help="A new name (allowed while connected).")
@pin_file_option
@click.pass_obj
def keystore_update(app: App, ref: str, new_name: str | None, pin_file: str | None) -> None:
    """Rename a store, or change the PIN it keeps: --pin-file F (the store must be disconnected) (UpdateCustomKeyStore).

    The PIN is not changed on the token: this tells kmsctl the token's current PIN.
    """
    if new_name is None and pin_file is None:
        raise click.UsageError("give --new-name N, --pin-file F or both")
    kms = app.kms()
    sid = store_id(app, ref)
    args: dict[str, Any] = {"CustomKeyStoreId": sid}
    if new_name is not None:
        args["NewCustomKeyStoreName"] = new_name
    if pin_file is not None:
        args["KeyStorePassword"] = read_store_pin(app, pin_file, f"of custom key store {ref}")
    kms.update_custom_key_store(**args)
    app.info(f"kmsctl: updated custom key store {new_name or ref}")


@keystore.command("delete")
@click.argument("ref", metavar="NAME|ID")
@click.pass_obj
def keystore_delete(app: App, ref: str) -> None:
    """Delete a disconnected store that holds no keys, not even keys pending deletion (DeleteCustomKeyStore).

    The token and anything left on it are not touched.
    """
    app.kms().delete_custom_key_store(CustomKeyStoreId=store_id(app, ref))
    app.info(f"kmsctl: deleted custom key store {ref}")
