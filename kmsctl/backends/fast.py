"""The aws backend's short path for the hot operations (encrypt, decrypt, data
keys, sign, MACs, DescribeKey): one AWS JSON 1.1 request, signed by
botocore's own SigV4Auth, over http.client. A botocore client costs about
0.4 s of imports and model loading a process; this path imports only
botocore.auth, so a kmsctl call in a shell loop costs a fraction of the aws
CLI's.

It is taken only where it gives the very answer the botocore client would:
an explicit endpoint URL, credentials in the environment (the first link of
botocore's credential chain, so the chain would find the same), a region
from the flag, the environment or config.toml, and an operation listed in
OPERATIONS, whose blob and timestamp members are those of botocore's model
(a test checks them against it). Anything else takes the botocore client.
The timeouts, the retry (once, on a connection failure, a 5xx or
throttling, after a jittered pause under a second) and the errors are the
client's: errors go through the same mapping. One difference: -o json lists
members in the endpoint's order rather than botocore's model order (the
same members, the same values).
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kmsctl import errors as E


class Operation(NamedTuple):
    api: str
    blobs: frozenset[str]  # output members that are blobs (base64 on the wire), dotted paths
    timestamps: frozenset[str]  # output members that are timestamps (epoch seconds on the wire)
    grant_tokens: bool  # takes GrantTokens
    dry_run: bool  # takes DryRun


def _op(api: str, blobs: str = "", timestamps: str = "", grant_tokens: bool = True, dry_run: bool = True) -> Operation:
    return Operation(api, frozenset(blobs.split()), frozenset(timestamps.split()), grant_tokens, dry_run)


OPERATIONS: dict[str, Operation] = {
    "encrypt": _op("Encrypt", "CiphertextBlob"),
    "decrypt": _op("Decrypt", "Plaintext CiphertextForRecipient"),
    "re_encrypt": _op("ReEncrypt", "CiphertextBlob"),
    "generate_data_key": _op("GenerateDataKey", "CiphertextBlob Plaintext CiphertextForRecipient"),
    "generate_data_key_without_plaintext": _op("GenerateDataKeyWithoutPlaintext", "CiphertextBlob"),
    "sign": _op("Sign", "Signature"),
    "verify": _op("Verify"),
    "generate_mac": _op("GenerateMac", "Mac"),
    "verify_mac": _op("VerifyMac"),
    "generate_random": _op("GenerateRandom", "Plaintext CiphertextForRecipient", grant_tokens=False, dry_run=False),
    "describe_key": _op(
        "DescribeKey", timestamps="KeyMetadata.CreationDate KeyMetadata.DeletionDate KeyMetadata.ValidTo", dry_run=False
    ),
}

_RETRYABLE = frozenset(
    {"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException", "KMSInternalException"}
)


class _Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> _Credentials:  # what SigV4Auth reads
        return self


def credentials_from_env(env: Mapping[str, str]) -> _Credentials | None:
    """botocore's EnvProvider: both keys set and not empty, or nothing."""
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return None
    return _Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None)


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any, op: Operation, path: str = "") -> Any:
    if isinstance(value, dict):  # a null member is left out, as botocore's parser does
        return {k: _decode(v, op, f"{path}{k}") if not isinstance(v, dict) else _decode(v, op, f"{path}{k}.")
                for k, v in value.items() if v is not None}  # fmt: skip
    if path in op.blobs and isinstance(value, str):
        return base64.b64decode(value)
    if path in op.timestamps and isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return value


class FastKMS:
    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        credentials: _Credentials,
        connect_s: float,
        read_s: float,
        attempts: int,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self.connect_s, self.read_s, self.attempts = connect_s, read_s, attempts
        parts = urllib.parse.urlsplit(endpoint_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path or "/"

    def call(self, op: Operation, params: dict[str, Any]) -> dict[str, Any]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = json.dumps(_encode(params)).encode()
        for attempt in range(self.attempts):
            request = AWSRequest(
                method="POST",
                url=self.endpoint_url,
                data=body,
                headers={
                    "Content-Type": "application/x-amz-json-1.1",
                    "X-Amz-Target": f"TrentService.{op.api}",
                    "User-Agent": "kmsctl app/kmsctl",
                },
            )
            SigV4Auth(self.credentials, "kms", self.region).add_auth(request)
            last = attempt == self.attempts - 1
            try:
                status, data = self._send(dict(request.headers.items()), body)
            except TimeoutError as exc:
                if last:
                    raise E.EndpointUnavailable(
                        f"{self.endpoint_url} did not answer in time ({exc or 'timed out'})"
                    ) from None
            except (OSError, http.client.HTTPException) as exc:
                if last:
                    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                    raise E.EndpointUnavailable(f"cannot reach {self.endpoint_url}: {reason}") from None
            else:
                if status < 300:
                    return dict(_decode(json.loads(data or b"{}"), op))
                code, message = _error(data)
                if last or not (status >= 500 or code in _RETRYABLE):
                    from kmsctl.backends.aws import client_error

                    raise client_error(code, message, status, self.endpoint_url, retried=attempt > 0)
            time.sleep(random.random() * (2**attempt))  # noqa: S311 (jitter, not a secret)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        connection: http.client.HTTPConnection
        if self._https:
            import os

            from botocore.httpsession import get_cert_path  # botocore's CA bundle, AWS_CA_BUNDLE aside

            context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True))
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.connect_s, context=context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.connect_s)
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(self.read_s)
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def _error(data: bytes) -> tuple[str, str]:
    """(code, message) of an AWS JSON error body; ('', '') for anything else (an HTML page)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    code = str(doc.get("__type") or doc.get("code") or doc.get("Code") or "").rpartition("#")[2]
    return code.partition(":")[0], str(doc.get("message") or doc.get("Message") or "")
