"""The remote backend: an AWS KMS endpoint (AWS KMS itself, or a ``kmsctl serve``)
through boto3's botocore, wrapped only so that its errors become kmsctl's AWS-named
exceptions (one error boundary, the same exit codes as the local keyring) and
its answers carry what ``LocalKMS`` answers: no ``ResponseMetadata``, dates in
UTC.

botocore is imported here only, and this module only when the
aws backend is chosen: local start-up never pays for them.

The CLI also calls a few names that are not AWS operations; those whose
meaning carries over are here (``key_metadata`` is DescribeKey; the keyring's
``transaction``/``snapshot``/``internal_reads`` scopes are no-ops: each call
is its own request, and the endpoint keeps its own trail). Any other local
name (sessions, audit, principals, maintenance) is refused as local-only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kmsctl import errors as E

if TYPE_CHECKING:
    from kmsctl.backends.fast import FastKMS

# a dead endpoint fails within about CONNECT_TIMEOUT_S x MAX_ATTEMPTS plus one
# backoff (under a second): well within 5 s; a live one may take READ_TIMEOUT_S
# to answer one attempt (RSA 4096 key generation on a small server)
CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 2  # botocore's "standard" retry mode: the first try and one retry

# AWS errors that mean the endpoint, not the request, failed
_UNAVAILABLE = frozenset(
    {"KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException", "ThrottlingException"}
)


# AWS errors that mean the credentials were refused: exit 5, whatever the HTTP status
_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_VERDICTS: dict[str, tuple[str, type[E.KMSError]]] = {
    "verify": ("SignatureValid", E.KMSInvalidSignatureException),
    "verify_mac": ("MacValid", E.KMSInvalidMacException),
}


class RemoteError(E.KMSError):
    """An error the endpoint named that kmsctl has no class of its own for:
    its AWS name is kept, its exit code follows its kind."""

    def __init__(self, code: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self._code = code
        self.exit_code = exit_code

    @property
    def code(self) -> str:
        return self._code


def local_only(what: str) -> E.KMSError:
    return E.UsageError(
        f"{what} works on the local keyring only, and the backend is aws",
        hint="drop --backend/--endpoint-url (or KMSCTL_BACKEND, KMSCTL_ENDPOINT_URL, config backend)",
    )


def _clean(value: Any) -> Any:
    """A boto3 answer as LocalKMS gives it: no ResponseMetadata, datetimes in UTC."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def client_error(code: str, message: str, status: int, endpoint: str, *, retried: bool = False) -> E.KMSError:
    """kmsctl's exception for an error the endpoint answered."""
    if not code or code.isdigit():  # a page that is not KMS's JSON (a proxy, an HTML 500)
        code = "KMSInternalException" if status >= 500 else "ValidationException"
        message = message or f"{endpoint} answered HTTP {status} without a KMS error"
    message = message or f"{endpoint} gave {code} without a message"
    if retried:
        message += f" (after {MAX_ATTEMPTS} attempts)"
    if code in _UNAVAILABLE or status >= 500:
        return RemoteError(code, message, 69)
    if code in _CREDENTIALS:
        return RemoteError(code, message, 5)
    known = getattr(E, code, None)
    if isinstance(known, type) and issubclass(known, E.KMSError) and code.endswith("Exception"):
        return known(message)
    return RemoteError(code, message, 5 if status in (401, 403) else 2)


def map_error(exc: Exception, endpoint: str) -> E.KMSError | None:
    """kmsctl's exception for a botocore one, or None for an error that is not botocore's."""
    from botocore import exceptions as B

    if isinstance(exc, B.ClientError):
        error = exc.response.get("Error") or {}
        meta = exc.response.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 400)
        return client_error(
            str(error.get("Code") or ""),
            str(error.get("Message") or ""),
            status,
            endpoint,
            retried=bool(meta.get("MaxAttemptsReached")),
        )
    if isinstance(exc, (B.NoCredentialsError, B.PartialCredentialsError, B.CredentialRetrievalError)):
        return E.MissingCredentials(
            f"no usable AWS credentials for {endpoint}: {exc}",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile NAME with credentials",
        )
    if isinstance(exc, B.ProfileNotFound):
        return E.MissingCredentials(str(exc), hint="the profiles are in ~/.aws/config and ~/.aws/credentials")
    if isinstance(exc, B.TokenRetrievalError | B.SSOError):
        return E.MissingCredentials(f"{exc}", hint="aws sso login, or other credentials")
    if isinstance(exc, B.NoRegionError):
        return no_region()
    if isinstance(exc, (B.ConnectTimeoutError, B.ReadTimeoutError)):
        return E.EndpointUnavailable(f"{endpoint} did not answer in time ({_reason(exc)})")
    if isinstance(exc, (B.ConnectionError, B.HTTPClientError)):
        return E.EndpointUnavailable(f"cannot reach {endpoint}: {_reason(exc)}")
    if isinstance(exc, B.ParamValidationError):
        return E.ValidationException(" ".join(str(exc).split()))
    return None


def _reason(exc: Exception) -> str:
    """The last cause's words: 'Connection refused', not urllib3's object reprs."""
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    text = str(getattr(inner, "strerror", None) or inner).strip()
    if "] " in text and text.startswith("<"):  # "<urllib3...>: Failed to ... [Errno 111] Connection refused"
        text = text.rpartition("] ")[2]
    elif ": " in text:
        text = text.rpartition(": ")[2]
    return text or type(exc).__name__


def no_region() -> E.KMSError:
    return E.MissingRegion(
        "no AWS region for the aws backend",
        hint="give --region, AWS_REGION, 'kmsctl config set region NAME', or a region in the AWS profile",
    )


def _share_the_aws_cli_cache(session: Any) -> None:
    """Assume-role credentials (and their MFA prompt) are cached where the aws
    CLI caches them, ~/.aws/cli/cache, so that neither asks again while they last."""
    import os

    from botocore.credentials import JSONFileCache

    cache = JSONFileCache(os.path.join(os.path.expanduser("~"), ".aws", "cli", "cache"))
    providers = session.get_component("credential_provider")
    for name in ("assume-role", "assume-role-with-web-identity"):
        try:
            providers.get_provider(name).cache = cache
        except Exception:  # noqa: S112 - a botocore without that provider: no cache for it
            continue


class AwsKMS:
    """A boto3 KMS client that speaks kmsctl's errors; made on first use."""

    backend = "aws"

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        profile: str | None,
        region: str | None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.profile = profile
        self._region = region
        self._fast: FastKMS | None = None
        if endpoint_url and region and not profile and env is not None:  # kmsctl.backends.fast: when it may
            from kmsctl.backends import fast

            credentials = fast.credentials_from_env(env)
            if credentials is not None:
                self._fast = fast.FastKMS(
                    endpoint_url=endpoint_url,
                    region=region,
                    credentials=credentials,
                    connect_s=CONNECT_TIMEOUT_S,
                    read_s=READ_TIMEOUT_S,
                    attempts=MAX_ATTEMPTS,
                )
        self._client: Any = None
        self._session: Any = None
        self.grant_tokens: list[str] = []
        self.dry_run = False
        self._wrapped: dict[str, Callable[..., dict[str, Any]]] = {}

    @property
    def endpoint(self) -> str:
        """The endpoint, as error messages name it."""
        if self.endpoint_url:
            return self.endpoint_url
        return f"AWS KMS in {self._region}" if self._region else "AWS KMS"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except E.KMSError:
            raise
        except Exception as exc:
            mapped = map_error(exc, self.endpoint)
            if mapped is None:
                if isinstance(exc, ValueError) and "endpoint" in str(exc).lower():  # botocore: Invalid endpoint
                    raise E.ValidationException(f"--endpoint-url: {exc}") from None
                raise
            raise mapped from None

    def session(self) -> Any:
        """botocore's session, as boto3.Session wraps it (the same credential chain,
        profiles and config files), without boto3's own import of s3transfer,
        which costs a fifth of a second and serves only S3."""
        if self._session is None:
            with self._errors():
                import botocore.session

                session = botocore.session.Session(profile=self.profile)
                if self.profile is not None:
                    session.get_scoped_config()  # an unknown profile fails here, as boto3.Session does
                _share_the_aws_cli_cache(session)
                self._session = session
        return self._session

    @property
    def region(self) -> str | None:
        if self._region:
            return self._region
        with self._errors():
            return self.session().get_config_variable("region") or None

    def client(self) -> Any:
        if self._client is None:
            session = self.session()
            region = self.region
            if not region:
                raise no_region()
            self._region = region
            with self._errors():
                from botocore.config import Config

                config = Config(
                    connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=READ_TIMEOUT_S,
                    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                    user_agent_appid="kmsctl",
                )
                self._client = session.create_client(
                    "kms", region_name=region, endpoint_url=self.endpoint_url, config=config
                )
        return self._client

    def default_endpoint(self) -> str | None:
        """The endpoint boto3 chose for the region (AWS_ENDPOINT_URL, the profile's
        endpoint_url or AWS's own), None without a region."""
        try:
            return str(self.client().meta.endpoint_url)
        except E.KMSError:
            return None

    def identity(self) -> dict[str, Any]:
        """What is known of the caller without asking the endpoint (no STS):
        the access key ID the credential chain found, and where it found it."""
        with self._errors():
            credentials = self.session().get_credentials()
        if credentials is None:
            return {"AccessKeyId": None, "CredentialSource": None}
        return {"AccessKeyId": credentials.access_key, "CredentialSource": getattr(credentials, "method", None)}

    # ----- the AWS operations -----
    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrap(name)
            self._wrapped[name] = wrapped
        return wrapped

    def _wrap(self, name: str) -> Callable[..., dict[str, Any]]:
        verdict = _VERDICTS.get(name)
        if self._fast is not None:
            from kmsctl.backends.fast import OPERATIONS

            op = OPERATIONS.get(name)
            if op is not None:
                fast = self._fast

                def fast_call(**kwargs: Any) -> dict[str, Any]:
                    if self.grant_tokens and op.grant_tokens:
                        kwargs.setdefault("GrantTokens", self.grant_tokens)
                    if self.dry_run and op.dry_run:
                        kwargs.setdefault("DryRun", True)
                    out = fast.call(op, kwargs)
                    if verdict and out.get(verdict[0]) is False:
                        raise verdict[1](f"the endpoint answered {verdict[0]}: false")
                    return out

                return fast_call
        client = self.client()
        api = client.meta.method_to_api_mapping.get(name)
        if api is None:
            raise local_only(name.replace("_", " "))
        members = client.meta.service_model.operation_model(api).input_shape.members
        method = getattr(client, name)

        def call(**kwargs: Any) -> dict[str, Any]:
            if self.grant_tokens and "GrantTokens" in members:
                kwargs.setdefault("GrantTokens", self.grant_tokens)
            if self.dry_run and "DryRun" in members:
                kwargs.setdefault("DryRun", True)
            with self._errors():
                out = dict(_clean(method(**kwargs)))
            if verdict and out.get(verdict[0]) is False:  # AWS answers an error, never false; some servers do
                raise verdict[1](f"the endpoint answered {verdict[0]}: false")
            return out

        call.__name__ = name
        return call

    # ----- the local names whose meaning carries over -----
    def key_metadata(self, ref: str) -> dict[str, Any]:
        return dict(self.describe_key(KeyId=ref)["KeyMetadata"])

    def peek_metadata(self, ref: str) -> dict[str, Any] | None:
        try:
            return self.key_metadata(ref)
        except E.NotFoundException:
            return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._errors():
            self.client()  # credentials and region fail once, before the first item
        yield

    @contextlib.contextmanager
    def internal_reads(self) -> Iterator[None]:
        yield
