"""The one dispatch point every operation passes through.

Operations are methods named like boto3's (``schedule_key_deletion``) taking
AWS's keyword arguments and returning AWS's response dicts. Each is declared
with ``@operation``; ``DispatchBase._dispatch`` then does, in order: argument
checking, unlocking the keyring if the operation needs it, the due work of
time (deletions, rotations), the access check (``kmsctl.service.access``) and
the operation in one transaction, and one audit record, successful or not.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from kmsctl import errors as E
from kmsctl.keyring.audit import AuditTrail
from kmsctl.keyring.keyring import Keyring

F = TypeVar("F", bound=Callable[..., Any])
Clock = Callable[[], float]
Observer = Callable[[str, dict[str, Any], "dict[str, Any] | None", "E.KMSError | None"], None]
Unlocker = Callable[[], None]


def operation(name: str, *, writes: bool = False, maintenance: bool = False, unlock: bool = True) -> Callable[[F], F]:
    """Declare an AWS operation: keyword arguments only, dispatched centrally.
    ``maintenance`` operations do the keyring's due work themselves; ``unlock``
    False ones (GenerateRandom) run on a locked keyring."""

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(self: DispatchBase, *args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{fn.__name__}() takes keyword arguments only, as boto3 does")
            return self._dispatch(name, fn, sig, kwargs, writes=writes, maintenance=maintenance, unlock=unlock)

        wrapper.operation_name = name  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


class DispatchBase:
    def __init__(self, keyring: Keyring, clock: Clock = time.time, unlocker: Unlocker | None = None) -> None:
        self.keyring = keyring
        self.db = keyring.db
        self.clock = clock
        self.unlocker = unlocker
        self.region = keyring.region
        self.account = keyring.account
        self.observers: list[Observer] = []
        self._trail: AuditTrail | None = None
        self._deferred: list[tuple[dict[str, Any], float]] = []

    # ----- several operations at once (the CLI's create --alias, list) -----
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several operations that land together or not at all."""
        self._ensure_unlocked_or_record()
        self._due_work(dry_run=False)
        try:
            with self.db.write():
                yield
        finally:
            self._flush_deferred()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Several reads that see one consistent state."""
        self._ensure_unlocked_or_record()
        self._due_work(dry_run=False)
        try:
            with self.db.read():
                yield
        finally:
            self._flush_deferred()

    # ----- unlocking -----
    def _ensure_unlocked(self) -> None:
        if self.keyring.unlocked:
            return
        if self.unlocker is None:
            raise E.AccessDeniedException("the keyring is locked")
        self.unlocker()
        self._trail = None

    def _ensure_unlocked_or_record(self) -> None:
        try:
            self._ensure_unlocked()
        except E.KMSError as exc:
            self._record("Unlock", {}, None, exc, self.clock())
            raise

    # ----- the dispatch point -----
    def _dispatch(
        self,
        name: str,
        fn: Callable[..., Any],
        sig: inspect.Signature,
        kwargs: dict[str, Any],
        *,
        writes: bool,
        maintenance: bool,
        unlock: bool,
    ) -> Any:
        response: dict[str, Any] | None = None
        error: E.KMSError | None = None
        when = self.clock()
        try:
            try:
                sig.bind(self, **kwargs)
            except TypeError as exc:
                raise E.ValidationException(f"{name}: {exc}") from None
            kwargs = self._client_defaults(sig, kwargs)
            if unlock:
                self._ensure_unlocked()
            if not maintenance and self.keyring.unlocked and not self.db.in_transaction:
                self._due_work(dry_run=False)  # an outer transaction did it already
            if writes:
                with self.db.write():
                    self._authorize(name, kwargs)  # in the same snapshot the operation sees
                    response = fn(self, **kwargs)
                    self._record(name, kwargs, response, None, when)  # in the change's own transaction
            else:
                with self.db.read():
                    self._authorize(name, kwargs)
                    response = fn(self, **kwargs)
                self._record(name, kwargs, response, None, when)
            return response
        except E.KMSError as exc:
            error = exc
            if response is None:  # the operation failed, not its record
                self._record_failure(name, kwargs, exc, when)
            raise
        finally:
            for observe in self.observers:
                observe(name, kwargs, response, error)

    # ----- the audit trail -----
    def trail(self) -> AuditTrail:
        if self._trail is None or (self._trail.key is None and self.keyring.unlocked):
            key = self.keyring.derive(b"audit") if self.keyring.unlocked else None
            self._trail = AuditTrail(self.db, key)
        return self._trail

    def _record(
        self, name: str, request: dict[str, Any], response: dict[str, Any] | None, error: E.KMSError | None, when: float
    ) -> None:
        from kmsctl.service.audit import build_event, key_of

        event = build_event(
            name,
            request,
            response,
            error,
            when=when,
            region=self.region,
            account=self.account,
            key_arn=key_of(self, request, response),
        )
        self._annotate(event, error)  # the acting principal, the action refused
        if self.db.in_transaction and (error is not None or not self.db.in_write_transaction):
            # a failure inside the caller's transaction, which may still roll
            # back, or any record inside a read snapshot: written after it ends
            self._deferred.append((event, when))
            return
        self._append(event, when)

    def _record_failure(self, name: str, request: dict[str, Any], error: E.KMSError, when: float) -> None:
        with suppress(E.KMSError):  # the operation's own error is the one to report
            self._record(name, request, None, error, when)

    def _append(self, event: dict[str, Any], when: float) -> None:
        trail = self.trail()
        if self.db.in_transaction:
            with self.db.write():
                trail.append(event, when)
            return
        # a read-only operation's record alone: no fsync wait (WAL, synchronous
        # NORMAL); a crash may lose the newest records, never corrupt the chain
        with self.db.relaxed_durability(), self.db.write():
            trail.append(event, when)

    def _flush_deferred(self) -> None:
        if self.db.in_transaction:
            return
        deferred, self._deferred = self._deferred, []
        for event, when in deferred:
            with suppress(E.KMSError):
                self._append(event, when)

    # ----- access control (kmsctl.service.access overrides these) -----
    def _client_defaults(self, sig: inspect.Signature, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The client's own defaults for a request (grant tokens, dry run)."""
        return kwargs

    def _authorize(self, name: str, kwargs: dict[str, Any]) -> None:
        """Raise AccessDeniedException unless the caller may make this request."""

    def _annotate(self, event: dict[str, Any], error: E.KMSError | None) -> None:
        """Add the caller's identity to an audit event."""

    def _check_key_policy(self, text: Any, key: dict[str, Any], bypass: Any) -> None:
        """Validate a key policy for ``key`` (CreateKey, PutKeyPolicy)."""
        raise NotImplementedError

    # ----- provided by LocalKMSBase -----
    def _due_work(self, dry_run: bool) -> dict[str, list[dict[str, Any]]]:
        raise NotImplementedError

    def _parse_ref(self, ref: Any, field: str = "keyId") -> tuple[str, str]:
        raise NotImplementedError

    def key_arn(self, key_id: str) -> str:
        raise NotImplementedError
