"""Import of key material (BYOK): import params, import material, import delete."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.io import decode_blob, key_id_for_management, read_input
from kmsctl.cli.options import AwsChoice
from kmsctl.render import emit

WRAPPING_ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]
WRAPPING_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096"]
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FILE_MAX = 16384


def parse_valid_to(app: App, text: str) -> datetime:
    """ISO 8601 (2027-06-30, 2027-06-30T12:00:00Z; UTC unless it says
    otherwise) or a duration from now (90d, 12h, 30m, 45s)."""
    m = _DURATION.fullmatch(text.strip())
    if m:
        return datetime.fromtimestamp(int(app.clock()) + int(m.group(1)) * _UNITS[m.group(2)], UTC)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected a time like 2027-06-30T12:00:00Z or a duration like 90d, got {text!r}", param_hint="--valid-to"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _write(path: str, data: bytes) -> None:
    from kmsctl.outfile import atomic_file

    with atomic_file(path, replace=True) as f:
        f.write(data)


@click.group("import")
def import_() -> None:
    """Bring your own key material into a key made with --origin EXTERNAL.

    \b
    kmsctl create --origin EXTERNAL            # KeyState PendingImport
    kmsctl import params KEY                   # WrappingPublicKey.pem/.der, ImportToken.bin
    openssl ...                                # wrap the material (README: the commands)
    kmsctl import material KEY --material EncryptedKeyMaterial.bin \\
        --import-token ImportToken.bin --valid-to 365d   # or --no-expiry

    Material that expires takes the key back to PendingImport (no daemon
    needed); importing the same material again brings it back, and old
    ciphertexts decrypt. Different material is refused.
    """


@import_.command("params")
@click.argument("key", metavar="KEY")
@click.option(
    "--wrapping-algorithm",
    type=AwsChoice(WRAPPING_ALGORITHMS),
    default="RSA_AES_KEY_WRAP_SHA_256",
    show_default=True,
    help="How the material will be wrapped; RSA and ECC private keys need an RSA_AES_KEY_WRAP_* one.",
)
@click.option(
    "--wrapping-spec",
    type=AwsChoice(WRAPPING_SPECS),
    default="RSA_3072",
    show_default=True,
    help="The size of the RSA wrapping key.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write WrappingPublicKey.pem, WrappingPublicKey.der and ImportToken.bin (replaced if there).",
)
@click.pass_obj
def import_params(app: App, key: str, wrapping_algorithm: str, wrapping_spec: str, out_dir: str) -> None:
    """Get a wrapping public key and an import token, valid 24 hours (GetParametersForImport).

    Text output: the key ID, ParametersValidTo, and the three files written.
    """
    from kmsctl.crypto import primitives_pk as PK

    if not os.path.isdir(out_dir):
        raise click.BadParameter(f"{out_dir} is not a folder", param_hint="--out-dir")
    out = app.kms().get_parameters_for_import(
        KeyId=key_id_for_management(app, key), WrappingAlgorithm=wrapping_algorithm, WrappingKeySpec=wrapping_spec
    )
    files = {
        "WrappingPublicKey.pem": PK.public_pem(out["PublicKey"]),
        "WrappingPublicKey.der": out["PublicKey"],
        "ImportToken.bin": out["ImportToken"],
    }
    for name, data in files.items():
        _write(os.path.join(out_dir, name), data)
    app.info(f"kmsctl: wrap the material for {wrapping_algorithm}; the token is valid until {out['ParametersValidTo']}")
    paths = [os.path.join(out_dir, n) for n in files]
    emit(
        app,
        out,
        columns=["KeyId", "ParametersValidTo", "Files"],
        rows=[[out["KeyId"].rsplit("/", 1)[-1], out["ParametersValidTo"], " ".join(paths)]],
    )


@import_.command("material")
@click.argument("key", metavar="KEY")
@click.option(
    "--material", "material_file", required=True, metavar="FILE", help="The wrapped key material (raw or base64)."
)
@click.option(
    "--import-token", "token_file", required=True, metavar="FILE", help="ImportToken.bin from 'import params'."
)
@click.option(
    "--valid-to", metavar="WHEN", help="When the material expires: ISO 8601 or a duration (90d), at most 365d."
)
@click.option("--no-expiry", is_flag=True, help="The material never expires (KEY_MATERIAL_DOES_NOT_EXPIRE).")
@click.option(
    "--import-type",
    type=AwsChoice(["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"]),
    help="Symmetric keys: NEW_KEY_MATERIAL for new material to rotate to; default NEW the first time, EXISTING after.",
)
@click.option("--key-material-id", metavar="ID", help="Reimport this KeyMaterialId (EXISTING_KEY_MATERIAL).")
@click.option("--description", metavar="TEXT", help="KeyMaterialDescription, up to 256 characters.")
@click.pass_obj
def import_material(
    app: App,
    key: str,
    material_file: str,
    token_file: str,
    valid_to: str | None,
    no_expiry: bool,
    import_type: str | None,
    key_material_id: str | None,
    description: str | None,
) -> None:
    """Import wrapped key material (ImportKeyMaterial); the key becomes Enabled.

    Text output: the key ID and the KeyMaterialId.
    """
    from kmsctl.errors import InvalidCiphertextException, InvalidImportTokenException

    if (valid_to is None) == (not no_expiry):
        raise click.UsageError("give exactly one of --valid-to WHEN and --no-expiry")
    wrapped = decode_blob(
        read_input(material_file, FILE_MAX, "wrapped key material"),
        what="wrapped key material",
        error=InvalidCiphertextException,
    )
    token = decode_blob(
        read_input(token_file, FILE_MAX, "import token"), what="import token", error=InvalidImportTokenException
    )
    args: dict[str, Any] = {
        "KeyId": key_id_for_management(app, key),
        "ImportToken": token,
        "EncryptedKeyMaterial": wrapped,
    }
    if no_expiry:
        args["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    else:
        assert valid_to is not None
        args["ExpirationModel"] = "KEY_MATERIAL_EXPIRES"
        args["ValidTo"] = parse_valid_to(app, valid_to)
    for field, value in (
        ("ImportType", import_type),
        ("KeyMaterialId", key_material_id),
        ("KeyMaterialDescription", description),
    ):
        if value is not None:
            args[field] = value
    out = app.kms().import_key_material(**args)
    app.info(f"kmsctl: key material imported into {key}")
    emit(app, out, columns=["KeyId", "KeyMaterialId"], rows=[[out["KeyId"].rsplit("/", 1)[-1], out["KeyMaterialId"]]])


@import_.command("delete")
@click.argument("key", metavar="KEY")
@click.option("--key-material-id", metavar="ID", help="Delete this material only (default: the current one).")
@click.pass_obj
def import_delete(app: App, key: str, key_material_id: str | None) -> None:
    """Delete imported key material (DeleteImportedKeyMaterial): the key goes
    to PendingImport until the same material is imported again.

    Text output: the key ID and the KeyMaterialId deleted.
    """
    args: dict[str, Any] = {"KeyId": key_id_for_management(app, key)}
    if key_material_id:
        args["KeyMaterialId"] = key_material_id
    out = app.kms().delete_imported_key_material(**args)
    app.info(f"kmsctl: imported key material of {key} deleted")
    emit(
        app,
        out,
        columns=["KeyId", "KeyMaterialId"],
        rows=[[out["KeyId"].rsplit("/", 1)[-1], out.get("KeyMaterialId", "")]],
    )
