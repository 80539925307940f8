"""The local KMS client: ``LocalKMS(keyring)`` has boto3's KMS method names,
keyword arguments, return shapes and AWS-named exceptions."""

from __future__ import annotations

from kmsctl import errors
from kmsctl.service.asymmetric import AsymmetricOps
from kmsctl.service.audit_ops import AuditOps
from kmsctl.service.backup import BackupOps
from kmsctl.service.check import CheckOps
from kmsctl.service.crypto import CryptoOps
from kmsctl.service.grants import GrantOps
from kmsctl.service.imports import ImportOps
from kmsctl.service.kem import KemOps
from kmsctl.service.key_policy import KeyPolicyOps
from kmsctl.service.keyring_ops import KeyringOps
from kmsctl.service.keys import KeyOps
from kmsctl.service.keystore_keys import StoreKeyOps
from kmsctl.service.managed import ManagedKeyOps
from kmsctl.service.principals import PrincipalOps
from kmsctl.service.rotation import RotationOps
from kmsctl.service.seed import SeedOps
from kmsctl.service.tags import AliasTagOps


class LocalKMS(
    StoreKeyOps,
    PrincipalOps,
    KeyPolicyOps,
    GrantOps,
    ManagedKeyOps,
    KeyOps,
    ImportOps,
    SeedOps,
    AliasTagOps,
    KemOps,
    AsymmetricOps,
    CryptoOps,
    RotationOps,
    AuditOps,
    KeyringOps,
    BackupOps,
    CheckOps,
):
    """``kms.encrypt(KeyId=..., Plaintext=...)`` as with ``boto3.client("kms")``."""

    exceptions = errors


__all__ = ["LocalKMS"]
