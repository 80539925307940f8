"""Hints that fix: when an operation fails in a way that has a known way out,
the error line ends with ``(hint: ...)`` naming it. Each hint is attached
where its trigger is known for certain (the input's size, a sealed file's
magic), never guessed from an error's wording."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from kmsctl import model
from kmsctl.errors import InvalidCiphertextException, KMSError, ValidationException

_SIGN_HASH = re.compile(r"^(?:RSASSA_PSS|RSASSA_PKCS1_V1_5|ECDSA)_SHA_(256|384|512)$")


@contextmanager
def hint_when(
    condition: bool, hint: str | None, errors: tuple[type[KMSError], ...] = (ValidationException,)
) -> Iterator[None]:
    """Give a failing operation's error ``hint`` if ``condition`` holds and the
    error is one of ``errors`` (a locked keyring keeps its own hint): the
    trigger is certain, so it replaces a generic hint the error may carry."""
    try:
        yield
    except errors as exc:
        if condition and hint:
            exc.hint = hint
        raise


def encrypt_too_long(plaintext: bytes) -> AbstractContextManager[None]:
    """Encrypt takes at most 4096 bytes; files of any size are for seal."""
    return hint_when(
        len(plaintext) > model.PLAINTEXT_MAX,
        f"Encrypt takes at most {model.PLAINTEXT_MAX} bytes; for a file of any size use "
        "'kmsctl seal -k KEY FILE > FILE.sealed' and 'kmsctl unseal'",
    )


def sign_too_long(
    message: bytes, message_type: str, algorithm: str | None, key: str, verify: bool
) -> AbstractContextManager[None]:
    """Sign and Verify take at most 4096 bytes of message; a digest of any file fits."""
    m = _SIGN_HASH.match(algorithm or "")
    hint = None
    if m:
        bits = m.group(1)
        command = f"kmsctl verify -k {key} --signature SIG" if verify else f"kmsctl sign -k {key}"
        hint = (
            f"a message over {model.PLAINTEXT_MAX} bytes is signed by its digest: "
            f"openssl dgst -sha{bits} -binary FILE | {command} --message-type DIGEST"
        )
    return hint_when(message_type == "RAW" and len(message) > model.PLAINTEXT_MAX, hint)


def decrypt_sealed(data: bytes) -> AbstractContextManager[None]:
    """A sealed file given to decrypt: unseal reads it."""
    from kmsctl.crypto.sealed_header import MAGIC

    return hint_when(
        data.startswith(MAGIC),
        "this is a sealed file (from 'kmsctl seal'): use 'kmsctl unseal FILE'",
        (InvalidCiphertextException, ValidationException),
    )
