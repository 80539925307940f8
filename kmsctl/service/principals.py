"""Principals: IAM users and roles of the keyring's account or another, their tags,
their identity policy and their access keys.

kmsctl's own operations, shaped after IAM's (CreateUser/CreateRole become
CreatePrincipal, PutUserPolicy/PutRolePolicy PutPrincipalPolicy, ...), with
IAM's response fields (``User``/``Role`` with ``Arn``, ``UserName`` or
``RoleName``, ``Path``, ``CreateDate``, ``Tags``; ``AccessKey`` with
``AccessKeyId`` and ``SecretAccessKey``). Each is authorized as the IAM
action it stands for (``iam:CreateUser`` ...). A principal is one MACed
document; an access key's secret is sealed with AES-256-GCM under a key of
its own, its metadata bound as associated data, as key material is.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl.keyring.store import as_blob, dumps
from kmsctl.service.access import _ARN_RE, AccessBase, parse_policy, principal_arn
from kmsctl.service.base import operation, to_datetime

if TYPE_CHECKING:
    pass

_AAD_ACCESS_KEY = b"kmsctl access key v1\x00"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
MAX_TAGS = 50
ACCESS_KEYS_PER_PRINCIPAL = 2  # IAM's quota


def _random_id(prefix: str, n: int) -> str:
    from kmsctl.crypto.primitives import random_bytes

    return prefix + "".join(_B32[b % 32] for b in random_bytes(n))


def _iam_tags(tags: Any) -> dict[str, str]:
    """IAM's Tags ([{Key, Value}]) -> {Key: Value}."""
    if tags is None:
        return {}
    if not isinstance(tags, list):
        raise E.ValidationException("Tags must be a list of {Key, Value}")
    out: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict) or set(tag) - {"Key", "Value"} or not isinstance(tag.get("Key"), str):
            raise E.ValidationException("each tag must be {Key, Value}")
        key, value = tag["Key"], tag.get("Value", "")
        if not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            raise E.TagException(f"Tag key {key!r} must be 1 to 128 characters and its value at most 256")
        if key.lower().startswith("aws:"):
            raise E.TagException(f"Tag key {key!r} uses the reserved prefix 'aws:'")
        out[key] = value
    return out


def iam_resource(kms: AccessBase, name: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    """(User|Role, principal ARN) an operation on a principal is authorized against."""
    if name == "ListPrincipals":
        return "User", "*"
    ref = kwargs.get("Principal", kwargs.get("Name"))
    try:
        arn = principal_arn(ref, kwargs.get("Account") or kms.account) if isinstance(ref, str) else "*"
    except E.KMSError:
        return "User", "*"
    return ("Role" if ":role/" in arn else "User"), arn


class PrincipalOps(AccessBase):
    def _require_principal(self, ref: Any) -> dict[str, Any]:
        doc = self._find_principal(ref)
        if doc.get("Kind") == "root":
            raise E.ValidationException("the account root is not a stored principal")
        return doc

    def _shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        """IAM's User or Role structure."""
        user = doc["Kind"] == "user"
        out: dict[str, Any] = {
            "Path": "/",
            "UserName" if user else "RoleName": doc["Name"],
            "UserId" if user else "RoleId": doc["Id"],
            "Arn": doc["Arn"],
            "CreateDate": to_datetime(doc["CreateDate"]),
        }
        if doc.get("Tags"):
            out["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(doc["Tags"].items())]
        return out

    def _wrapped(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {"User" if doc["Kind"] == "user" else "Role": self._shape(doc)}

    @operation("CreatePrincipal", writes=True)
    def create_principal(
        self,
        *,
        Name: str,
        Account: str | None = None,
        Tags: list[dict[str, str]] | None = None,
        Policy: str | None = None,
        PolicyName: str = "inline",
    ) -> dict[str, Any]:
        account = Account or self.account
        if not isinstance(account, str) or not (len(account) == 12 and account.isdigit()):
            raise E.ValidationException(f"Account must be a 12-digit AWS account ID, not {account!r}")
        if not isinstance(Name, str) or Name.startswith("arn:"):
            raise E.ValidationException("Name is NAME, user/NAME or role/NAME; --account gives the account")
        arn = principal_arn(Name, account)
        if not _ARN_RE.fullmatch(arn):
            raise E.ValidationException(f"{Name!r} names no user or role")
        tags = _iam_tags(Tags)
        if len(tags) > MAX_TAGS:
            raise E.LimitExceededException(f"a principal can have at most {MAX_TAGS} tags")
        if Policy is not None:
            parse_policy(Policy, "identity", PolicyName)
        if self._principal(arn) is not None:
            raise E.AlreadyExistsException(f"The principal {arn} already exists")
        kind, name = arn.split(":", 5)[5].split("/", 1)
        doc: dict[str, Any] = {
            "Arn": arn,
            "Account": account,
            "Kind": kind,
            "Name": name,
            "Id": _random_id("AIDA" if kind == "user" else "AROA", 17),
            "CreateDate": self.clock(),
            "Tags": tags,
        }
        if Policy is not None:
            doc.update(Policy=Policy, PolicyName=PolicyName)
        self._save_principal(doc)
        return self._wrapped(doc)

    @operation("GetPrincipal")
    def get_principal(self, *, Principal: str) -> dict[str, Any]:
        doc = self._require_principal(Principal)
        out = self._wrapped(doc)
        out["PolicyNames"] = [doc["PolicyName"]] if doc.get("Policy") else []
        return out

    @operation("ListPrincipals")
    def list_principals(self) -> dict[str, Any]:
        users: list[dict[str, Any]] = []
        roles: list[dict[str, Any]] = []
        for (arn,) in self.db.query("SELECT arn FROM principals ORDER BY arn"):
            doc = self._principal(arn)
            if doc is not None:
                (users if doc["Kind"] == "user" else roles).append(self._shape(doc))
        return {"Users": users, "Roles": roles}

    @operation("DeletePrincipal", writes=True)
    def delete_principal(self, *, Principal: str) -> dict[str, Any]:
        """Deletes the principal with its policy and access keys (IAM asks for those first);
        grants naming it stay, as in AWS, and match nobody until it is made again."""
        doc = self._require_principal(Principal)
        self.db.execute("DELETE FROM access_keys WHERE arn = ?", (doc["Arn"],))
        self.db.execute("DELETE FROM principals WHERE arn = ?", (doc["Arn"],))
        return {}

    @operation("TagPrincipal", writes=True)
    def tag_principal(self, *, Principal: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        doc = self._require_principal(Principal)
        merged = {**doc.get("Tags", {}), **_iam_tags(Tags)}
        if len(merged) > MAX_TAGS:
            raise E.LimitExceededException(f"a principal can have at most {MAX_TAGS} tags")
        doc["Tags"] = merged
        self._save_principal(doc)
        return {}

    @operation("UntagPrincipal", writes=True)
    def untag_principal(self, *, Principal: str, TagKeys: list[str]) -> dict[str, Any]:
        if not isinstance(TagKeys, list) or not all(isinstance(k, str) for k in TagKeys):
            raise E.ValidationException("TagKeys must be a list of tag keys")
        doc = self._require_principal(Principal)
        doc["Tags"] = {k: v for k, v in doc.get("Tags", {}).items() if k not in TagKeys}
        self._save_principal(doc)
        return {}

    @operation("PutPrincipalPolicy", writes=True)
    def put_principal_policy(
        self, *, Principal: str, PolicyDocument: str, PolicyName: str = "inline"
    ) -> dict[str, Any]:
        if not isinstance(PolicyName, str) or not 1 <= len(PolicyName) <= 128:
            raise E.ValidationException("PolicyName must be 1 to 128 characters")
        parse_policy(PolicyDocument, "identity", PolicyName)  # MalformedPolicyDocumentException, LimitExceeded
        doc = self._require_principal(Principal)
        doc.update(Policy=PolicyDocument, PolicyName=PolicyName)
        self._save_principal(doc)
        return {}

    @operation("GetPrincipalPolicy")
    def get_principal_policy(self, *, Principal: str) -> dict[str, Any]:
        doc = self._require_principal(Principal)
        if not doc.get("Policy"):
            raise E.NotFoundException(f"The principal {doc['Arn']} has no identity policy")
        name_field = "UserName" if doc["Kind"] == "user" else "RoleName"
        return {name_field: doc["Name"], "PolicyName": doc["PolicyName"], "PolicyDocument": doc["Policy"]}

    @operation("DeletePrincipalPolicy", writes=True)
    def delete_principal_policy(self, *, Principal: str) -> dict[str, Any]:
        doc = self._require_principal(Principal)
        if not doc.get("Policy"):
            raise E.NotFoundException(f"The principal {doc['Arn']} has no identity policy")
        doc.pop("Policy")
        doc.pop("PolicyName", None)
        self._save_principal(doc)
        return {}

    # ----- access keys -----
    def _access_key_wrap(self) -> bytes:
        return self.keyring.derive(b"access key wrap")

    @operation("CreateAccessKey", writes=True)
    def create_access_key(self, *, Principal: str) -> dict[str, Any]:
        """A new AccessKeyId and SecretAccessKey; the secret is returned this once."""
        from kmsctl.crypto import primitives as P

        doc = self._require_principal(Principal)
        count = self.db.query("SELECT count(*) FROM access_keys WHERE arn = ?", (doc["Arn"],))[0][0]
        if count >= ACCESS_KEYS_PER_PRINCIPAL:
            raise E.LimitExceededException(
                f"{doc['Arn']} already has {ACCESS_KEYS_PER_PRINCIPAL} access keys", hint="delete one first"
            )
        akid = _random_id("AKIA", 16)
        secret = base64.b64encode(P.random_bytes(30)).decode()  # 40 characters
        meta = {"AccessKeyId": akid, "Arn": doc["Arn"], "Status": "Active", "CreateDate": self.clock()}
        raw = dumps(meta)
        nonce, sealed = P.gcm_seal(self._access_key_wrap(), secret.encode(), _AAD_ACCESS_KEY + raw)
        self.db.execute(
            "INSERT INTO access_keys(access_key_id, arn, doc, nonce, sealed) VALUES (?, ?, ?, ?, ?)",
            (akid, doc["Arn"], raw, nonce, sealed),
        )
        key = {**self._key_entry(doc, meta), "SecretAccessKey": secret}
        return {"AccessKey": key}

    def _key_entry(self, doc: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "UserName" if doc["Kind"] == "user" else "RoleName": doc["Name"],
            "AccessKeyId": meta["AccessKeyId"],
            "Status": meta["Status"],
            "CreateDate": to_datetime(meta["CreateDate"]),
        }

    def _access_key_secret(self, access_key_id: str) -> tuple[str, str] | None:
        """(principal ARN, secret) of an access key, verified, for a server checking signatures."""
        rows = self.db.cached(
            "SELECT arn, doc, nonce, sealed FROM access_keys WHERE access_key_id = ?", (access_key_id,)
        )
        if not rows:
            return None
        arn, doc, nonce, sealed = rows[0]
        what = f"access key {access_key_id}"
        raw = as_blob(doc, what)
        # opened once per exact row (this client's, like the rows Database.cached keeps): a
        # server checks one signature after another with the same few access keys
        row = (access_key_id, arn, raw, as_blob(nonce, what), as_blob(sealed, what))
        opened = self._opened_access_keys.get(row)
        if opened is None:
            opened = self._open_access_key(*row)
            if len(self._opened_access_keys) >= 256:
                self._opened_access_keys.clear()
            self._opened_access_keys[row] = opened
        return opened

    def _open_access_key(
        self, access_key_id: str, arn: Any, raw: bytes, nonce: bytes, sealed: bytes
    ) -> tuple[str, str]:
        from kmsctl.crypto import primitives as P

        what = f"access key {access_key_id}"
        try:
            secret = P.gcm_open(self._access_key_wrap(), nonce, sealed, _AAD_ACCESS_KEY + raw)
        except P.AuthenticationFailed:
            raise E.IntegrityError(f"{self.keyring.path}: {what} fails its integrity check") from None
        import json

        meta = json.loads(raw)
        if (meta.get("AccessKeyId"), meta.get("Arn")) != (access_key_id, arn):
            raise E.IntegrityError(f"{self.keyring.path}: {what} fails its integrity check")
        return arn, secret.decode()

    def signing_secret(self, access_key_id: str) -> tuple[str, str] | None:
        """(principal ARN, secret) of an access key, for ``kmsctl serve`` checking a
        request's signature; None for a key this keyring does not have. Local to kmsctl
        (no AWS operation gives a secret back) and not an operation: it makes no record,
        the request it authenticates (or refuses) makes one. Never returned to a client."""
        if not isinstance(access_key_id, str) or not 16 <= len(access_key_id) <= 128 or not access_key_id.isalnum():
            return None
        self._ensure_unlocked()
        with self.db.read():
            return self._access_key_secret(access_key_id)

    @operation("ListAccessKeys")
    def list_access_keys(self, *, Principal: str) -> dict[str, Any]:
        import json

        doc = self._require_principal(Principal)
        out = []
        for (akid,) in self.db.query(
            "SELECT access_key_id FROM access_keys WHERE arn = ? ORDER BY rowid", (doc["Arn"],)
        ):
            self._access_key_secret(akid)  # verified (the secret itself is dropped at once)
            raw = self.db.query("SELECT doc FROM access_keys WHERE access_key_id = ?", (akid,))[0][0]
            out.append(self._key_entry(doc, json.loads(raw)))
        return {"AccessKeyMetadata": out, "IsTruncated": False}

    @operation("DeleteAccessKey", writes=True)
    def delete_access_key(self, *, Principal: str, AccessKeyId: str) -> dict[str, Any]:
        doc = self._require_principal(Principal)
        if not self.db.execute(
            "DELETE FROM access_keys WHERE access_key_id = ? AND arn = ?", (AccessKeyId, doc["Arn"])
        ):
            raise E.NotFoundException(f"The access key {AccessKeyId} of {doc['Arn']} does not exist")
        return {}
