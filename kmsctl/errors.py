"""AWS-named exceptions and the one table that maps them to exit codes and HTTP statuses.

Every error kmsctl raises on purpose is a ``KMSError``; the CLI's single error
boundary turns it into ``kmsctl: <Name>: <message>`` and the exit code below
(the exit code table in README.md). The server (``kmsctl serve``) answers with ``http_status``.
"""

from __future__ import annotations


class KMSError(Exception):
    """Base of every expected error. ``code`` is the AWS error name."""

    exit_code = 70
    http_status = 400
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    @property
    def code(self) -> str:
        return type(self).__name__

    def __str__(self) -> str:
        return self.message


# 1: a negative verdict
class KMSInvalidSignatureException(KMSError):
    exit_code = 1


class KMSInvalidMacException(KMSError):
    exit_code = 1


# 2: bad usage or invalid input
class ValidationException(KMSError):
    exit_code = 2


class InvalidAliasNameException(KMSError):
    exit_code = 2


class InvalidArnException(KMSError):
    exit_code = 2


class InvalidMarkerException(KMSError):
    exit_code = 2


class MalformedPolicyDocumentException(KMSError):
    exit_code = 2


class TagException(KMSError):
    exit_code = 2


class InvalidKeyUsageException(KMSError):
    exit_code = 2


class UsageError(KMSError):
    exit_code = 2


class CloudHsmClusterNotRelatedException(KMSError):
    exit_code = 2


# 3: not found
class NotFoundException(KMSError):
    exit_code = 3
    http_status = 404


class InvalidGrantIdException(KMSError):
    exit_code = 3


class CustomKeyStoreNotFoundException(KMSError):
    exit_code = 3


class CloudHsmClusterNotFoundException(KMSError):
    exit_code = 3


# 4: the key's state forbids it
class DisabledException(KMSError):
    exit_code = 4
    http_status = 409


class KMSInvalidStateException(KMSError):
    exit_code = 4
    http_status = 409


class UnsupportedOperationException(KMSError):
    exit_code = 4


class CustomKeyStoreInvalidStateException(KMSError):
    exit_code = 4


class CustomKeyStoreHasCMKsException(KMSError):
    exit_code = 4


# 5: locked, wrong passphrase, expired session, access denied
class AccessDeniedException(KMSError):
    exit_code = 5


class InvalidGrantTokenException(KMSError):
    exit_code = 5


# 6: ciphertext rejected
class InvalidCiphertextException(KMSError):
    exit_code = 6


class IncorrectKeyException(KMSError):
    exit_code = 6


class InvalidImportTokenException(KMSError):
    exit_code = 6


class ExpiredImportTokenException(KMSError):
    exit_code = 6


class IncorrectKeyMaterialException(KMSError):
    exit_code = 6


# 7: conflict or limit
class AlreadyExistsException(KMSError):
    exit_code = 7
    http_status = 409


class LimitExceededException(KMSError):
    exit_code = 7


class ConflictException(KMSError):
    exit_code = 7
    http_status = 409


class CustomKeyStoreNameInUseException(KMSError):
    exit_code = 7


class CloudHsmClusterInUseException(KMSError):
    exit_code = 7


# 8: integrity of the keyring or a sealed file
class IntegrityError(KMSError):
    exit_code = 8
    http_status = 500


# not reachable from the CLI (it never sends DryRun), kept for boto3 fidelity
class DryRunOperationException(KMSError):
    exit_code = 0
    http_status = 412

    def __init__(self, message: str = "The request would have succeeded, but the DryRun flag is set.") -> None:
        super().__init__(message)


class KMSInternalException(KMSError):
    exit_code = 70
    http_status = 500


# the AWS JSON protocol's own errors (``kmsctl serve``): the request itself, before any operation
class SerializationException(KMSError):
    exit_code = 2


class UnknownOperationException(KMSError):
    exit_code = 2


class RequestEntityTooLargeException(KMSError):
    exit_code = 2
    http_status = 413


class RequestTimeoutException(KMSError):
    """kmsctl serve: the request body stopped arriving (408, which the AWS SDKs retry)."""

    exit_code = 69
    http_status = 408


# authentication (AWS Signature Version 4) failures: nothing is served
class MissingAuthenticationTokenException(KMSError):
    exit_code = 5


class IncompleteSignatureException(KMSError):
    exit_code = 5


class InvalidSignatureException(KMSError):
    exit_code = 5


class UnrecognizedClientException(KMSError):
    exit_code = 5


# 69: the KMS endpoint is unavailable (remote backend: cannot connect, timed out, 5xx)
class EndpointUnavailable(KMSError):
    """kmsctl's own: the remote endpoint could not be reached or answered in time."""

    exit_code = 69
    http_status = 503


class DependencyTimeoutException(KMSError):
    exit_code = 69
    http_status = 503


class KeyUnavailableException(KMSError):
    exit_code = 69
    http_status = 500


# 5: the remote backend's credential chain found no credentials
class MissingCredentials(KMSError):
    """kmsctl's own: the AWS credential chain found no credentials."""

    exit_code = 5


# 2: the remote backend has no region to sign for
class MissingRegion(KMSError):
    """kmsctl's own: no --region, AWS_REGION, config region or profile region."""

    exit_code = 2


def validation_error(value: object, field: str, constraint: str) -> KMSError:
    """AWS's wording: ``1 validation error detected: Value 'x' at 'f' failed ...``."""
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )


def by_name(name: str) -> type[KMSError]:
    """The exception class for an AWS error name (``NotFoundException``)."""
    obj = globals().get(name)
    if isinstance(obj, type) and issubclass(obj, KMSError):
        return obj
    return KMSInternalException
