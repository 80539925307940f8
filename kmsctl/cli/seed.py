"""Seeding test fixtures from local-kms's seed YAML: kmsctl seed."""

from __future__ import annotations

import click

from kmsctl.cli.app import App
from kmsctl.render import emit


@click.command()
@click.argument("file", metavar="FILE")
@click.pass_obj
def seed(app: App, file: str) -> None:
    """Create keys with fixed key IDs and known material, and aliases, from
    FILE: local-kms's seed YAML, so that its users move over unchanged.

    \b
    Keys:
      Symmetric:
        Aes:
          - Metadata: {KeyId: bc436485-5092-42b8-92a3-0aa8b93536dc}
            BackingKeys: [5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9]
      Asymmetric:
        Rsa: [{Metadata: {KeyId: ..., KeyUsage: SIGN_VERIFY}, PrivateKeyPem: ...}]
        Ecc: [{Metadata: {KeyId: ..., KeyUsage: SIGN_VERIFY}, PrivateKeyPem: ...}]
    Aliases:
      - {AliasName: alias/testing, TargetKeyId: bc436485-5092-42b8-92a3-0aa8b93536dc}

    Several BackingKeys are past rotations (the last is current); Origin
    EXTERNAL makes a key with imported material (or PendingImport without
    any); NextKeyRotation turns automatic rotation on. kmsctl also takes
    Tags: [{TagKey, TagValue}] on a key. Keys and aliases that exist are left
    as they are, so seeding twice changes nothing; a key that exists with
    other material is refused (exit 7). A wrong entry is named (exit 2).
    Needs PyYAML: pip install 'kmsctl[seed]'.

    Text output, one line per entry: created|existing key|alias ID-or-name.
    """
    from kmsctl.service.seed import seed_file

    out = seed_file(app.kms(), file)
    rows = [["created", "key", k] for k in out["CreatedKeys"]]
    rows += [["existing", "key", k] for k in out["ExistingKeys"]]
    rows += [["created", "alias", a] for a in out["CreatedAliases"]]
    rows += [["existing", "alias", a] for a in out["ExistingAliases"]]
    app.info(
        f"kmsctl: seeded {len(out['CreatedKeys'])} new keys and {len(out['CreatedAliases'])} new aliases "
        f"({len(out['ExistingKeys'])} keys and {len(out['ExistingAliases'])} aliases were there)"
    )
    emit(app, out, columns=["Result", "Kind", "Name"], rows=rows)
