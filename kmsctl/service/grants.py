"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

A grant lets its grantee principal perform its operations on one key, within
its constraints, as AWS KMS does; grants are effective at once (AWS's
eventual consistency is not modelled) and end with their key. Each grant is a
MACed document. A grant token is the grant's ID, a nonce and a MAC under a
key of the keyring, so a token is checked without a lookup and a forged or
altered one is InvalidGrantTokenException.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kmsctl import errors as E
from kmsctl.keyring.store import dumps
from kmsctl.policy import GRANT_OPERATIONS
from kmsctl.policy.document import role_of_session
from kmsctl.policy.evaluate import ENCRYPTION_OPERATIONS
from kmsctl.service.access import GRANT_KIND, AccessBase, principal_arn
from kmsctl.service.base import operation, to_datetime

MAX_GRANTS_PER_KEY = 50_000  # AWS's quota per KMS key
_NAME_RE = re.compile(r"[a-zA-Z0-9:/_-]{1,256}")
_GRANT_ID_RE = re.compile(r"[0-9a-f]{64}")
_PRINCIPAL_RE = re.compile(r"arn:aws:(iam::\d{12}:(root|user/.+|role/.+)|sts::\d{12}:assumed-role/.+/.+)")
_ALWAYS = ("CreateGrant", "RetireGrant", "DescribeKey")
_BY_TYPE = {
    "SYMMETRIC": ENCRYPTION_OPERATIONS,
    "ENCRYPT_DECRYPT": ("Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"),
    "SIGN_VERIFY": ("Sign", "Verify", "GetPublicKey"),
    "GENERATE_VERIFY_MAC": ("GenerateMac", "VerifyMac"),
    "KEY_AGREEMENT": ("DeriveSharedSecret", "GetPublicKey"),
}
_DRY_RUN = "The request would have succeeded, but the DryRun flag is set."


def _key_type(key: Mapping[str, Any]) -> str:
    return "SYMMETRIC" if key["KeySpec"] == "SYMMETRIC_DEFAULT" else str(key["KeyUsage"])


def _context_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise E.ValidationException(f"{field} must be a map of strings to strings")
    return dict(value)


def _narrower(child: Mapping[str, Any], parent: Mapping[str, Any]) -> bool:
    """Is a new grant at most as permissive as the grant that allowed creating it?"""
    if not set(child["Operations"]) <= set(parent["Operations"]):
        return False
    pc, cc = parent.get("Constraints") or {}, child.get("Constraints") or {}
    if "EncryptionContextEquals" in pc:
        return bool(cc.get("EncryptionContextEquals") == pc["EncryptionContextEquals"])
    if "EncryptionContextSubset" in pc:
        want = pc["EncryptionContextSubset"].items()
        have = cc.get("EncryptionContextEquals") or cc.get("EncryptionContextSubset")
        return have is not None and bool(want <= have.items())
    return True


class GrantOps(AccessBase):
    def _principal_param(self, value: Any, field: str) -> str:
        """A grantee or retiring principal: any IAM principal ARN (a name resolves in this account)."""
        if not isinstance(value, str) or not 1 <= len(value) <= 256:
            raise E.validation_error(value, field, "Member must have length between 1 and 256")
        arn = value if value.startswith("arn:") else principal_arn(value, self.account)
        if not _PRINCIPAL_RE.fullmatch(arn):
            raise E.ValidationException(f"{field} {value!r} is not a valid principal ARN")
        return arn

    def _grant(self, grant_id: Any, key_id: str | None = None) -> dict[str, Any]:
        if not isinstance(grant_id, str) or not _GRANT_ID_RE.fullmatch(grant_id):
            raise E.InvalidGrantIdException(f"Invalid grant ID {grant_id!r}: a grant ID is 64 hexadecimal digits")
        rows = self.db.query("SELECT key_id, retiring, doc, mac FROM grants WHERE grant_id = ?", (grant_id,))
        if not rows or (key_id is not None and rows[0][0] != key_id):
            where = f" on key {self.key_arn(key_id)}" if key_id else ""
            raise E.InvalidGrantIdException(f"Grant ID {grant_id} not found{where}")
        return self._check_grant(grant_id, *rows[0])

    def _entry(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "KeyId": self.key_arn(doc["KeyId"]),
            "GrantId": doc["GrantId"],
            "Name": doc.get("Name") or "",
            "CreationDate": to_datetime(doc["CreationDate"]),
            "GranteePrincipal": doc["GranteePrincipal"],
            "IssuingAccount": doc["IssuingAccount"],
            "Operations": list(doc["Operations"]),
        }
        if doc.get("RetiringPrincipal"):
            out["RetiringPrincipal"] = doc["RetiringPrincipal"]
        if doc.get("Constraints"):
            out["Constraints"] = doc["Constraints"]
        return out

    @operation("CreateGrant", writes=True)
    def create_grant(
        self,
        *,
        KeyId: str,
        Operations: list[str],
        GranteePrincipal: str | None = None,
        RetiringPrincipal: str | None = None,
        Constraints: dict[str, Any] | None = None,
        GrantTokens: list[str] | None = None,
        Name: str | None = None,
        DryRun: bool = False,
        GranteeServicePrincipal: str | None = None,
        RetiringServicePrincipal: str | None = None,
    ) -> dict[str, Any]:
        if GranteeServicePrincipal is not None or RetiringServicePrincipal is not None:
            raise E.UnsupportedOperationException("service principals are not available in a local keyring")
        if GranteePrincipal is None:
            raise E.ValidationException("GranteePrincipal is required")
        grantee = self._principal_param(GranteePrincipal, "granteePrincipal")
        retiring = None if RetiringPrincipal is None else self._principal_param(RetiringPrincipal, "retiringPrincipal")
        key = self._key(KeyId, aliases=False)
        self._require_state(key, ("Enabled",))
        allowed = _ALWAYS + _BY_TYPE[_key_type(key)]
        if not isinstance(Operations, list) or not Operations:
            raise E.ValidationException("Operations must be a non-empty list of grant operations")
        for op in Operations:
            if op not in GRANT_OPERATIONS:
                raise E.validation_error(
                    op, "operations", f"Member must satisfy enum value set: [{', '.join(sorted(GRANT_OPERATIONS))}]"
                )
            if op not in allowed:
                raise E.ValidationException(
                    f"Grant operation {op} is not valid for {self.key_arn(key['KeyId'])} "
                    f"({key['KeySpec']}, {key['KeyUsage']}); valid: {', '.join(allowed)}"
                )
        constraints: dict[str, dict[str, str]] = {}
        if Constraints is not None:
            if not isinstance(Constraints, dict) or set(Constraints) - {
                "EncryptionContextEquals",
                "EncryptionContextSubset",
            }:
                raise E.ValidationException("Constraints takes EncryptionContextEquals or EncryptionContextSubset")
            if len(Constraints) > 1:
                raise E.ValidationException(
                    "Constraints takes EncryptionContextEquals or EncryptionContextSubset, not both"
                )
            for name, value in Constraints.items():
                constraints[name] = _context_map(value, name)
            if constraints and _key_type(key) != "SYMMETRIC":
                raise E.ValidationException("Encryption context constraints apply only to symmetric encryption keys")
        if Name is not None and (not isinstance(Name, str) or not _NAME_RE.fullmatch(Name)):
            raise E.validation_error(Name, "name", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")
        doc: dict[str, Any] = {
            "KeyId": key["KeyId"],
            "Name": Name,
            "GranteePrincipal": grantee,
            "RetiringPrincipal": retiring,
            "IssuingAccount": f"arn:aws:iam::{self.account}:root",
            "Operations": sorted(set(Operations), key=Operations.index),
            "Constraints": constraints or None,
        }
        self._narrower_rule(doc)
        if Name is not None:
            same = ("GranteePrincipal", "RetiringPrincipal", "Constraints")
            for old in self._grant_docs(key["KeyId"]):
                same_ops = set(old["Operations"]) == set(doc["Operations"])
                if old.get("Name") == Name and same_ops and all(old.get(f) == doc[f] for f in same):
                    if DryRun:
                        raise E.DryRunOperationException(_DRY_RUN)
                    return {"GrantToken": self._grant_token(old["GrantId"]), "GrantId": old["GrantId"]}
        count = self.db.query("SELECT count(*) FROM grants WHERE key_id = ?", (key["KeyId"],))[0][0]
        if count >= MAX_GRANTS_PER_KEY:
            raise E.LimitExceededException(f"{self.key_arn(key['KeyId'])} already has {MAX_GRANTS_PER_KEY} grants")
        if DryRun:
            raise E.DryRunOperationException(_DRY_RUN)
        from kmsctl.crypto.primitives import random_bytes

        doc["GrantId"] = random_bytes(32).hex()
        doc["CreationDate"] = self.clock()
        raw = dumps(doc)
        self.db.execute(
            "INSERT INTO grants(grant_id, key_id, retiring, doc, mac) VALUES (?, ?, ?, ?, ?)",
            (doc["GrantId"], key["KeyId"], retiring, raw, self.keyring.mac_doc(GRANT_KIND, raw)),
        )
        return {"GrantToken": self._grant_token(doc["GrantId"]), "GrantId": doc["GrantId"]}

    def _narrower_rule(self, doc: Mapping[str, Any]) -> None:
        """A caller allowed CreateGrant only by grants may create only narrower grants."""
        decision = self._last_decision
        if decision is None or not decision.reasons or any(r.source != "Grant" for r in decision.reasons):
            return
        parents = [self._grant(r.grant_id) for r in decision.reasons if r.grant_id]
        if not any(_narrower(doc, p) for p in parents):
            exc = E.AccessDeniedException(
                f"User: {self.caller.arn} is not authorized to perform: kms:CreateGrant on resource: "
                f"{self.key_arn(doc['KeyId'])}: a grant allows creating only grants with a subset of its "
                f"operations and constraints at least as strict"
            )
            exc.denied_action = "kms:CreateGrant"  # type: ignore[attr-defined]
            raise exc

    def _list(self, op: str, where: str, args: tuple[Any, ...], limit: Any, marker: Any) -> dict[str, Any]:
        size = self._limit(op, limit)
        after = self._unmarker(op, marker, int) or 0
        rows = self.db.query(
            f"SELECT rowid, grant_id, key_id, retiring, doc, mac FROM grants WHERE rowid > ? AND {where} "
            "ORDER BY rowid LIMIT ?",
            (after, *args, size + 1),
        )
        more = len(rows) > size
        page = rows[:size]
        out: dict[str, Any] = {"Grants": [self._entry(self._check_grant(*r[1:])) for r in page], "Truncated": more}
        if more:
            out["NextMarker"] = self._marker(op, page[-1][0])
        return out

    @operation("ListGrants")
    def list_grants(
        self,
        *,
        KeyId: str,
        Limit: int | None = None,
        Marker: str | None = None,
        GrantId: str | None = None,
        GranteePrincipal: str | None = None,
    ) -> dict[str, Any]:
        key = self._key(KeyId, aliases=False)
        if GrantId is not None and (not isinstance(GrantId, str) or not _GRANT_ID_RE.fullmatch(GrantId)):
            raise E.InvalidGrantIdException(f"Invalid grant ID {GrantId!r}: a grant ID is 64 hexadecimal digits")
        out = self._list("ListGrants", "key_id = ?", (key["KeyId"],), Limit, Marker)
        grantee = None if GranteePrincipal is None else self._principal_param(GranteePrincipal, "granteePrincipal")
        out["Grants"] = [
            g
            for g in out["Grants"]
            if (GrantId is None or g["GrantId"] == GrantId) and (grantee is None or g["GranteePrincipal"] == grantee)
        ]
        return out

    @operation("ListRetirableGrants")
    def list_retirable_grants(
        self, *, RetiringPrincipal: str, Limit: int | None = None, Marker: str | None = None
    ) -> dict[str, Any]:
        retiring = self._principal_param(RetiringPrincipal, "retiringPrincipal")
        return self._list("ListRetirableGrants", "retiring = ?", (retiring,), Limit, Marker)

    @operation("RetireGrant", writes=True)
    def retire_grant(
        self,
        *,
        GrantToken: str | None = None,
        KeyId: str | None = None,
        GrantId: str | None = None,
        DryRun: bool = False,
    ) -> dict[str, Any]:
        """Retire a grant named by its token, or by KeyId and GrantId. Allowed to the
        retiring principal, the grantee when the grant has RetireGrant, and the
        account that issued the grant."""
        if GrantToken is not None:
            grant = self._grant(self._grant_of_token(GrantToken))
            if GrantId is not None and GrantId != grant["GrantId"]:
                raise E.InvalidGrantIdException("GrantId does not name the grant of the GrantToken")
        elif KeyId is not None and GrantId is not None:
            grant = self._grant(GrantId, self._key(KeyId, aliases=False)["KeyId"])
        else:
            raise E.ValidationException("RetireGrant needs GrantToken, or KeyId and GrantId")
        caller = self.caller
        who = {caller.arn, role_of_session(caller.arn) or caller.arn}
        may = (
            grant.get("RetiringPrincipal") in who
            or (grant["GranteePrincipal"] in who and "RetireGrant" in grant["Operations"])
            or (caller.is_root and grant["IssuingAccount"] == caller.arn)
        )
        if not may:
            exc = E.AccessDeniedException(
                f"User: {caller.arn} is not authorized to perform: kms:RetireGrant on grant {grant['GrantId']}: "
                f"only its retiring principal, its grantee (with RetireGrant) or its issuing account may retire it"
            )
            exc.denied_action = "kms:RetireGrant"  # type: ignore[attr-defined]
            raise exc
        if DryRun:
            raise E.DryRunOperationException(_DRY_RUN)
        self.db.execute("DELETE FROM grants WHERE grant_id = ?", (grant["GrantId"],))
        return {}

    @operation("RevokeGrant", writes=True)
    def revoke_grant(self, *, KeyId: str, GrantId: str, DryRun: bool = False) -> dict[str, Any]:
        key = self._key(KeyId, aliases=False)
        grant = self._grant(GrantId, key["KeyId"])
        if DryRun:
            raise E.DryRunOperationException(_DRY_RUN)
        self.db.execute("DELETE FROM grants WHERE grant_id = ?", (grant["GrantId"],))
        return {}
