"""The WSGI application: one HTTP request in, one LocalKMS call, one response out.

Nothing here decides anything about keys or policies: a request is read
(size-limited), authenticated (``kmsctl.server.sigv4``), then made through the
client's dispatch point as the principal whose access key signed it, with its
source address, user agent, transport and request ID, so that policies,
grants, conditions and the audit record apply as on the command line. A
request refused before it reaches an operation (its signature, its JSON, an
operation this server does not have) is recorded in the audit trail too,
without its body.

Each process has one client, on a database connection of its own opened
after the fork; its threads take turns on it (a lock): the client keeps the
caller of the request in progress.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from kmsctl import errors as E
from kmsctl.server import protocol, sigv4

if TYPE_CHECKING:
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
MAX_BODY = 1 << 20  # KMS's largest member is a 32 KB policy; 1 MiB leaves room and bounds memory
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict"}
_REASONS |= {412: "Precondition Failed", 413: "Payload Too Large", 500: "Internal Server Error"}
_REASONS |= {408: "Request Timeout", 503: "Service Unavailable"}


class ServerApp:
    """``ServerApp(keyring, auth="sigv4")`` is a WSGI callable. ``keyring`` is unlocked; each
    process reopens it (``Keyring.reopened``) before its first request."""

    def __init__(self, keyring: Keyring, *, auth: str = "sigv4", clock: Callable[[], float] = time.time) -> None:
        if auth not in ("sigv4", "none"):
            raise E.UsageError(f"--auth must be sigv4 or none, not {auth!r}")
        self.keyring = keyring
        self.auth = auth
        self.clock = clock
        self.operations = protocol.operations()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._kms: LocalKMS | None = None

    def open(self) -> LocalKMS:
        """This process's client (made on first use, and again after a fork)."""
        if self._kms is None or self._pid != os.getpid():
            from kmsctl.service import LocalKMS

            self._kms = LocalKMS(self.keyring.reopened(), clock=self.clock)
            self._pid = os.getpid()
        return self._kms

    # ----- WSGI -----
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        try:
            status, body, extra = self._handle(environ, request_id)
        except Exception as exc:  # a defect: the client gets AWS's retryable internal error
            sys.stderr.write(f"kmsctl serve: internal error ({type(exc).__name__}) in request {request_id}\n")
            status, code, body = protocol.error_body(E.KMSInternalException("internal error"))
            extra = [("x-amzn-ErrorType", code)]
        headers = [
            ("Content-Type", protocol.CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", request_id),
            *extra,
        ]
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]

    def _handle(self, environ: dict[str, Any], request_id: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "") or "/"
        if path in ("/health", "/healthz") and method in ("GET", "HEAD"):
            return 200, b'{"status":"ok"}', []
        headers = _headers(environ)
        operation = protocol.operation_of(headers.get("x-amz-target"))
        transport = {
            "source_ip": environ.get("REMOTE_ADDR") or None,
            "user_agent": headers.get("user-agent"),
            "secure_transport": environ.get("wsgi.url_scheme") == "https",
            "request_id": request_id,
            "local": False,
        }
        if path != "/" or method != "POST":
            status = 404 if path != "/" else 405
            _, code, body = protocol.error_body(
                E.UnknownOperationException(f"{method[:16]} {path[:128]}: KMS takes POST / only")
            )
            return status, body, [("x-amzn-ErrorType", code)]
        # the body read and parsed before the lock: a slow client holds no other request up.
        # Its errors are reported in the order they always were: size, signature, operation, JSON
        body = b""
        unread: E.KMSError | None = None
        try:
            body = _read_body(environ)
        except E.KMSError as exc:
            unread = exc
        kwargs: dict[str, Any] = {}
        unparsed: E.KMSError | None = None
        if unread is None and operation is not None and operation in self.operations:
            try:
                kwargs = protocol.request_members(operation, protocol.parse_body(body))
            except E.KMSError as exc:
                unparsed = exc
        with self._lock:
            kms = self.open()
            try:
                if unread is not None:
                    raise unread
                with kms.db.read():  # one snapshot: the access key, and the principal it belongs to
                    principal = self._authenticate(kms, environ, headers, body, transport)
                    kms.act_as(principal, **transport)
                    with suppress(E.KMSError):  # a principal not found is the operation's error, recorded by it
                        _ = kms.caller
                if operation is None or operation not in self.operations:
                    raise E.UnknownOperationException(
                        f"The operation {str(headers.get('x-amz-target'))[:128]!r} is not known to this server"
                    )
                if unparsed is not None:
                    raise unparsed
            except E.KMSError as exc:  # refused before any operation: recorded here, without the body
                kms.act_as(None, **{"authenticated": False, **transport})
                _ = kms.caller
                kms.record_failed_try(exc, operation or "UnknownOperation")
                return _error(exc)
            try:
                response = getattr(kms, self.operations[operation])(**kwargs)
            except E.KMSError as exc:  # the operation's own error, recorded by the dispatch point
                return _error(exc)
            finally:
                kms.act_as(None)
        return 200, protocol.response_body(response), []

    def _authenticate(
        self, kms: LocalKMS, environ: dict[str, Any], headers: dict[str, str], body: bytes, transport: dict[str, Any]
    ) -> str | None:
        """The principal ARN a request runs as (None: the account root, ``--auth none``)."""
        if self.auth == "none":
            return None
        with suppress(E.KMSError):  # reported by verify below
            transport["access_key_id"] = sigv4.parse_authorization(headers.get("authorization")).access_key_id[:128]
        query = environ.get("QUERY_STRING") or ""
        url = f"http://{headers.get('host', 'localhost')}{environ.get('PATH_INFO') or '/'}" + (
            f"?{query}" if query else ""
        )
        akid, arn = sigv4.verify(
            method=environ.get("REQUEST_METHOD", ""),
            url=url,
            headers=headers,
            body=body,
            region=kms.region,
            now=self.clock(),
            lookup=kms.signing_secret,
        )
        transport["access_key_id"] = akid
        return arn


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers, names lowercase (WSGI's HTTP_X_AMZ_DATE -> x-amz-date)."""
    out = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            out[name] = str(environ[key])
    return out


def _read_body(environ: dict[str, Any]) -> bytes:
    raw = environ.get("CONTENT_LENGTH") or ""
    too_large = E.RequestEntityTooLargeException(f"The request body is larger than {MAX_BODY} bytes")
    if raw:
        if not raw.isdigit():
            raise E.SerializationException("Content-Length is not a number")
        if int(raw) > MAX_BODY:
            raise too_large
        length = int(raw)
    else:
        length = MAX_BODY + 1  # chunked: read up to the limit
    stream = environ.get("wsgi.input")
    try:
        data = stream.read(length) if stream is not None and length else b""
    except TimeoutError:  # the worker's socket timeout (kmsctl.server.run.REQUEST_TIMEOUT_S)
        raise E.RequestTimeoutException("The request body stopped arriving before its end") from None
    if len(data) > MAX_BODY:
        raise too_large
    if raw and len(data) != length:
        raise E.SerializationException("The request body is shorter than its Content-Length")
    return bytes(data)


def _error(exc: E.KMSError) -> tuple[int, bytes, list[tuple[str, str]]]:
    status, code, body = protocol.error_body(exc)
    return status, body, [("x-amzn-ErrorType", code)]
