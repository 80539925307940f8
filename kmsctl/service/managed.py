"""AWS managed keys: the key behind ``alias/aws/NAME`` that kmsctl creates on first use.

As AWS does for its services' keys: ``KeyManager`` AWS, rotated every year,
and a fixed policy that lets every principal of the account use the key for
encryption (the service decides who may use the service) and the account
read its metadata, and nothing else: every management operation (DisableKey,
ScheduleKeyDeletion, PutKeyPolicy, TagResource, CreateAlias, rotation
settings ...) is refused by that policy with AccessDeniedException, as AWS
refuses it, and ``policy reset`` with UnsupportedOperationException.
kmsctl has no service endpoint that ``kms:ViaService`` could name, so the
policy has no such condition (docs/POLICY.md).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from kmsctl import errors as E
from kmsctl.crypto import keygen
from kmsctl.service.access import AccessBase
from kmsctl.service.base import DAY, operation

MANAGED_ROTATION_DAYS = 365
DESCRIPTIONS = {"kmsctl": "Default key that protects my kmsctl sealed files when no other key is defined"}


def managed_key_policy(account: str, service: str) -> str:
    """The fixed policy of an AWS managed key, in the shape of AWS's own (``auto-<service>-1``)."""
    doc = {
        "Version": "2012-10-17",
        "Id": f"auto-{service}-1",
        "Statement": [
            {
                "Sid": f"Allow access through {service} for all principals in the account that are authorized "
                f"to use {service}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*",
            },
        ],
    }
    return json.dumps(doc, indent=2)


class ManagedKeyOps(AccessBase):
    @operation("CreateManagedKey", writes=True)
    def create_managed_key(self, *, Service: str) -> dict[str, Any]:
        """The AWS managed key ``alias/aws/<Service>``, made now if it does not exist yet.

        kmsctl's own operation, made on behalf of a kmsctl feature (``seal``
        without a key), so it needs no permission of the caller, as AWS creates
        a service's managed key whoever first uses the service."""
        if Service not in DESCRIPTIONS:
            raise E.ValidationException(f"kmsctl has no AWS managed key for {Service!r}")
        name = f"alias/aws/{Service}"
        alias = self._alias(name)
        if alias is not None:
            return {"KeyMetadata": self._metadata(self._key(alias["TargetKeyId"])), "Created": False}
        now = self.clock()
        key_id = str(uuid.uuid4())
        doc: dict[str, Any] = {
            "KeyId": key_id,
            "CreationDate": now,
            "Description": DESCRIPTIONS[Service],
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "Origin": "AWS_KMS",
            "KeyState": "Enabled",
            "DeletionDate": None,
            "Tags": {},
            "KeyManager": "AWS",
            "Policy": managed_key_policy(self.account, Service),
            "Rotation": {
                "PeriodDays": MANAGED_ROTATION_DAYS,
                "Base": now,
                "NextRotation": now + MANAGED_ROTATION_DAYS * DAY,
            },
        }
        doc["CurrentKeyMaterialId"] = self._add_material(key_id, keygen.generate("SYMMETRIC_DEFAULT"))
        self._save_key(doc)
        self._save_alias({"AliasName": name, "TargetKeyId": key_id, "CreationDate": now, "LastUpdatedDate": now})
        return {"KeyMetadata": self._metadata(doc), "Created": True}
