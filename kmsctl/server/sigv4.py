"""AWS Signature Version 4, checked on the server side.

The canonical request is not rebuilt here: botocore's ``SigV4Auth`` computes
the signature the client must have made, over the request as received, with
exactly the headers the client says it signed (``SignedHeaders``). What is
checked around it, in order, each failure with AWS's error name:

1. an ``Authorization`` header (MissingAuthenticationTokenException) that
   parses as ``AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/kms/aws4_request,
   SignedHeaders=..., Signature=<64 hex>`` (IncompleteSignatureException);
2. ``X-Amz-Date`` (or a signed ``Date``) within 5 minutes of the server's clock
   (InvalidSignatureException "Signature expired ..." as AWS words it);
3. the credential scope: its date that of the request, the keyring's region,
   service ``kms``, terminator ``aws4_request`` (InvalidSignatureException);
4. ``host``, the date header, ``x-amz-target`` and ``content-type`` among the
   signed headers, each present in the request (IncompleteSignatureException);
5. the access key is one of the keyring's (UnrecognizedClientException); no
   session tokens are issued, so one sent is refused the same way;
6. ``X-Amz-Content-SHA256``, when sent, is the body's SHA-256 (botocore would
   otherwise trust it) (InvalidSignatureException);
7. the signature, compared in constant time (InvalidSignatureException).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from kmsctl import errors as E

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "kms"
MAX_SKEW_S = 300
REQUIRED_SIGNED = ("host", "x-amz-target", "content-type")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_UNRECOGNIZED = "The security token included in the request is invalid."


class Authorization(NamedTuple):
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> Authorization:
    if not value:
        raise E.MissingAuthenticationTokenException("Missing Authentication Token")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise E.IncompleteSignatureException(f"Unsupported AWS 'algorithm': '{algorithm[:64]}'")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, val = item.strip().partition("=")
        if eq:
            parts[name] = val
    missing = [
        f"Authorization header requires '{p}' parameter."
        for p in ("Credential", "Signature", "SignedHeaders")
        if p not in parts
    ]
    if missing:
        raise E.IncompleteSignatureException(" ".join(missing) + f" Authorization={algorithm}")
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise E.IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{parts['Credential'][:256]}'"
        )
    signed = tuple(parts["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(h) for h in signed):
        raise E.IncompleteSignatureException("SignedHeaders must be lowercase header names separated by ';'")
    if not _HEX64.fullmatch(parts["Signature"]):
        raise E.IncompleteSignatureException("Signature must be 64 lowercase hexadecimal characters")
    akid, date, region, service, terminator = scope
    return Authorization(akid, date, region, service, terminator, signed, parts["Signature"])


def _request_time(headers: Mapping[str, str], signed: tuple[str, ...]) -> tuple[datetime, str]:
    """(time, the time in SigV4's basic format) of a request from X-Amz-Date, else a signed Date."""
    raw = headers.get("x-amz-date")
    if raw is not None:
        if "x-amz-date" not in signed:
            raise E.IncompleteSignatureException("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
        try:
            when = datetime.strptime(raw, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise E.IncompleteSignatureException(
                f"Date must be in ISO-8601 'basic format'. Got '{raw[:64]}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ) from None
        return when, raw
    raw = headers.get("date")
    if raw is None or "date" not in signed:
        raise E.IncompleteSignatureException(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    try:
        when = parsedate_to_datetime(raw).astimezone(UTC)
    except (TypeError, ValueError, IndexError):
        raise E.IncompleteSignatureException(f"The Date header '{raw[:64]}' is not a valid HTTP date") from None
    return when, when.strftime(_AMZ_DATE)


def verify(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    region: str,
    now: float,
    lookup: Callable[[str], tuple[str, str] | None],
) -> tuple[str, str]:
    """(access key ID, principal ARN) of a correctly signed request, else the AWS error.
    ``headers`` has lowercase names; ``url`` is ``http://HOST/PATH?QUERY`` as received."""
    from kmsctl.crypto import primitives as P

    auth = parse_authorization(headers.get("authorization"))
    when, stamp = _request_time(headers, auth.signed_headers)
    server = datetime.fromtimestamp(now, UTC)
    skew = (when - server).total_seconds()
    if skew < -MAX_SKEW_S:
        raise E.InvalidSignatureException(
            f"Signature expired: {stamp} is now earlier than "
            f"{datetime.fromtimestamp(now - MAX_SKEW_S, UTC).strftime(_AMZ_DATE)} "
            f"({server.strftime(_AMZ_DATE)} - 5 min.)"
        )
    if skew > MAX_SKEW_S:
        raise E.InvalidSignatureException(
            f"Signature not yet current: {stamp} is still later than "
            f"{datetime.fromtimestamp(now + MAX_SKEW_S, UTC).strftime(_AMZ_DATE)} "
            f"({server.strftime(_AMZ_DATE)} + 5 min.)"
        )
    if auth.date != stamp[:8]:
        raise E.InvalidSignatureException(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date[:16]}' != '{stamp[:8]}', from '{stamp}'."
        )
    if auth.region != region:
        raise E.InvalidSignatureException(
            f"Credential should be scoped to a valid region, not '{auth.region[:64]}'. (this server is {region})"
        )
    if auth.service != SERVICE:
        raise E.InvalidSignatureException(f"Credential should be scoped to correct service: '{SERVICE}'. ")
    if auth.terminator != "aws4_request":
        raise E.InvalidSignatureException(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{auth.terminator[:64]}'. "
        )
    for name in REQUIRED_SIGNED:
        if name not in auth.signed_headers:
            raise E.IncompleteSignatureException(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
    absent = [h for h in auth.signed_headers if h not in headers]
    if absent:
        raise E.IncompleteSignatureException(f"the signed header '{absent[0]}' is not in the request")
    if "x-amz-security-token" in headers:
        raise E.UnrecognizedClientException(_UNRECOGNIZED)
    found = lookup(auth.access_key_id)
    if found is None:
        raise E.UnrecognizedClientException(_UNRECOGNIZED)
    arn, secret = found
    digest = P.sha256(body).hex()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and not P.bytes_eq(claimed.encode(), digest.encode()):
        raise E.InvalidSignatureException("The provided 'x-amz-content-sha256' header does not match the body.")
    expected = _signature(method, url, headers, body, auth, secret, stamp, digest)
    if not P.bytes_eq(expected.encode(), auth.signature.encode()):
        raise E.InvalidSignatureException(_MISMATCH)
    return auth.access_key_id, arn


def _signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    auth: Authorization,
    secret: str,
    stamp: str,
    digest: str | None = None,
) -> str:
    """The signature the client must have sent, by botocore's signer over exactly its signed headers.
    ``digest``: the body's SHA-256 (hex; made here if not given), the canonical request's payload
    hash. botocore takes it from an ``X-Amz-Content-SHA256`` header (one sent is checked to be it),
    else hashes the body after preparing the whole request again: given as that header (a signed
    one only if the client signed it, then with this value), the canonical request is the same."""
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from kmsctl.crypto import primitives as P

    digest = digest or P.sha256(body).hex()
    request = AWSRequest(method=method, url=url, data=body, headers={**headers, "x-amz-content-sha256": digest})
    request.context["timestamp"] = stamp
    signer = _signer_class()(Credentials(auth.access_key_id, secret), auth.service, auth.region)
    signer.signed_names = auth.signed_headers
    return str(signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request))


@functools.cache
def _signer_class() -> Any:
    """botocore's ``SigV4Auth`` signing exactly the headers the client named: stock
    ``headers_to_sign`` drops some (user-agent, expect ...) and adds ``host``."""
    from botocore.auth import SigV4Auth
    from botocore.compat import HTTPHeaders

    class ExactSigV4(SigV4Auth):  # type: ignore[misc]
        signed_names: tuple[str, ...] = ()

        def headers_to_sign(self, request: Any) -> Any:
            out = HTTPHeaders()
            for name in self.signed_names:
                out[name] = request.headers[name]
            return out

        def signature(self, string_to_sign: str, request: Any) -> str:
            # SigV4Auth.signature, with the signing key kept (_signing_key)
            day = request.context["timestamp"][0:8]
            key = _signing_key(self.credentials.secret_key, day, self._region_name, self._service_name)
            return str(self._sign(key, string_to_sign, hex=True))

    return ExactSigV4


@functools.lru_cache(maxsize=64)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's signing key, HMAC-SHA256 chained over the day, region, service and
    ``aws4_request`` from ``AWS4`` + secret: four HMACs, made once per access key
    and day rather than for every request (a server sees the same few)."""
    from kmsctl.crypto import primitives as P

    key = P.hmac_sha256(f"AWS4{secret}".encode(), day.encode())
    for part in (region, service, "aws4_request"):
        key = P.hmac_sha256(key, part.encode())
    return key
