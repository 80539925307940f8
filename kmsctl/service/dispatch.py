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
from contextlib import contextmanager, nullcontext, suppress
from typing import Any, Literal, NamedTuple, TypeVar

from kmsctl import errors as E
from kmsctl.keyring.audit import AuditTrail
from kmsctl.keyring.keyring import Keyring
from kmsctl.text import first_non_text

F = TypeVar("F", bound=Callable[..., Any])
Clock = Callable[[], float]
Observer = Callable[[str, dict[str, Any], "dict[str, Any] | None", "E.KMSError | None"], None]
Unlocker = Callable[[], None]
Audited = Literal["always", "success", "never"]


class Declared(NamedTuple):
    """How an operation is dispatched (see ``operation``)."""

    writes: bool = False
    maintenance: bool = False
    unlock: bool = True
    keyring: bool = False
    transaction: bool = True
    audited: Audited = "always"
    unlogged: frozenset[str] = frozenset()


def operation(
    name: str,
    *,
    writes: bool = False,
    maintenance: bool = False,
    unlock: bool = True,
    keyring: bool = False,
    transaction: bool = True,
    audited: Audited = "always",
    unlogged: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Declare an operation: keyword arguments only, dispatched centrally.
    ``maintenance`` operations do the keyring's due work themselves; ``unlock``
    False ones (GenerateRandom) run on a locked keyring. kmsctl's own
    operations on the keyring rather than its keys (sessions, the passphrase,
    the audit trail, status) say ``keyring``: no due work runs before them.
    ``transaction`` False: the operation takes its own transactions, since it
    asks for a passphrase or derives a key first, which must not hold the
    write lock; its record follows. ``audited``: "always" (a record of every
    call), "success" (none of a failure: AuditPrune leaves a trail that fails
    its check as it found it) or "never" (reading the trail itself, status).
    ``unlogged``: request parameters and response fields no record shows."""
    declared = Declared(writes, maintenance, unlock, keyring, transaction, audited, frozenset(unlogged))

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(self: DispatchBase, *args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{fn.__name__}() takes keyword arguments only, as boto3 does")
            return self._dispatch(name, fn, sig, kwargs, declared)

        wrapper.operation_name = name  # type: ignore[attr-defined]
        wrapper.declared = declared  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


def _check_text(kwargs: dict[str, Any]) -> None:
    """Every string of a request must be Unicode text before anything encodes
    it: a command-line argument that was not UTF-8 arrives with lone surrogates."""
    for field, value in kwargs.items():
        where = first_non_text(value, field[:1].lower() + field[1:])
        if where:
            raise E.ValidationException(
                f"1 validation error detected: Value at '{where}' failed to satisfy constraint: "
                "Member must be valid Unicode text (it holds bytes that are not UTF-8)"
            )


def _internal(exc: Exception) -> E.KMSError:
    """What the audit trail keeps of an unexpected error: its type, never its
    text (which could quote data)."""
    return E.KMSInternalException(f"internal error ({type(exc).__name__})")


def _logged(data: dict[str, Any] | None, unlogged: frozenset[str]) -> dict[str, Any] | None:
    if data is None or not unlogged:
        return data
    return {k: v for k, v in data.items() if k not in unlogged}


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
        self._internal = 0  # depth of internal_reads()
        self._due_after: tuple[tuple[int, int], float] | None = None  # see LocalKMSBase._next_due
        self._opened_access_keys: dict[tuple[Any, ...], tuple[str, str]] = {}  # see PrincipalOps

    # ----- several operations at once (the CLI's create --alias, list) -----
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several operations that land together or not at all."""
        self._ensure_unlocked_or_record()
        self._due_work(dry_run=False)
        try:
            with self.db.write():
                yield
        except BaseException:
            self._flush_deferred()
            raise
        self._flush_deferred(strict=True)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Several reads that see one consistent state."""
        self._ensure_unlocked_or_record()
        self._due_work(dry_run=False)
        try:
            with self.db.read():
                yield
        except BaseException:
            self._flush_deferred()
            raise
        self._flush_deferred(strict=True)

    @contextmanager
    def internal_reads(self) -> Iterator[None]:
        """Reads a client makes for itself, not as its user's act: the key's
        algorithms before an Encrypt, the aliases and tags beside each key of
        a listing. Local to kmsctl (no AWS operation does this). Inside, a
        read that succeeds makes no audit record: the operation the user
        asked for makes its own. A read that fails is still recorded, since
        its failure ends the user's command; writes are recorded as always."""
        self._internal += 1
        try:
            yield
        finally:
            self._internal -= 1

    # ----- unlocking -----
    def _ensure_unlocked(self) -> None:
        if self.keyring.unlocked:
            return
        if self.unlocker is None:
            raise E.AccessDeniedException("the keyring is locked")
        self.unlocker()
        self._trail = None

    def record_failed_try(self, error: E.KMSError, name: str = "Unlock") -> None:
        """A credential tried and refused that the caller then asks for again
        (a passphrase mistyped at the prompt): recorded as the failure of
        ``name`` would be, so that each failed try leaves its record."""
        self._record_failure(name, {}, error, self.clock())

    def _ensure_unlocked_or_record(self) -> None:
        try:
            self._ensure_unlocked()
        except E.KMSError as exc:
            self._record("Unlock", {}, None, exc, self.clock())
            raise
        except Exception as exc:
            with suppress(Exception):
                self._record("Unlock", {}, None, _internal(exc), self.clock())
            raise

    # ----- the dispatch point -----
    def _dispatch(
        self,
        name: str,
        fn: Callable[..., Any],
        sig: inspect.Signature,
        kwargs: dict[str, Any],
        declared: Declared,
    ) -> Any:
        response: dict[str, Any] | None = None
        error: E.KMSError | None = None
        when = self.clock()
        request = _logged(kwargs, declared.unlogged)

        def record() -> None:
            if declared.audited != "never":
                self._record(name, request or {}, _logged(response, declared.unlogged), None, when)

        try:
            try:
                sig.bind(self, **kwargs)
            except TypeError as exc:
                raise E.ValidationException(f"{name}: {exc}") from None
            _check_text(kwargs)
            kwargs = self._client_defaults(sig, kwargs)
            if declared.unlock:
                self._ensure_unlocked()
            due = not (declared.maintenance or declared.keyring)
            if due and self.keyring.unlocked and not self.db.in_transaction:
                self._due_work(dry_run=False)  # an outer transaction did it already
            if not declared.transaction:
                with self.db.read():
                    self._authorize(name, kwargs)
                response = fn(self, **kwargs)
                with self.db.write() if declared.writes else nullcontext():
                    record()  # a change's record as durable as the change
            elif declared.writes:
                with self.db.write():
                    self._authorize(name, kwargs)  # in the same snapshot the operation sees
                    response = fn(self, **kwargs)
                    record()  # in the change's own transaction
            else:
                with self.db.read():
                    self._authorize(name, kwargs)
                    response = fn(self, **kwargs)
                if not self._internal:
                    record()
            return response
        except E.KMSError as exc:
            error = exc
            if response is None and declared.audited == "always":  # the operation failed, not its record
                self._record_failure(name, request or {}, exc, when)
            raise
        except Exception as exc:  # a defect: still recorded, then exit 70 at the CLI's boundary
            with suppress(Exception):  # the defect is the error to report, not a failing record
                self._record(name, request or {}, None, _internal(exc), when)
            raise
        finally:
            for observe in self.observers:
                observe(name, kwargs, response, error)

    # ----- the audit trail -----
    def _audit_trail(self) -> AuditTrail:
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
        if self.db.read_only:  # --read-only: no record (the CLI says so once)
            return
        trail = self._audit_trail()
        if self.db.in_transaction:
            with self.db.write():
                trail.append(event, when)
            return
        # a read-only operation's record alone: no fsync wait (WAL, synchronous
        # NORMAL); a crash may lose the newest records, never corrupt the chain
        # the audit trail alone (state=False): the rows a server keeps (Database.cached) stay valid
        with self.db.relaxed_durability(), self.db.write(state=False):
            trail.append(event, when)

    def _flush_deferred(self, strict: bool = False) -> None:
        """Append the records kept while a transaction was open. ``strict``
        (the block succeeded): a record that cannot be written fails the
        command, as any read's record does; else the block's own error is
        the one to report."""
        if self.db.in_transaction:
            return
        deferred, self._deferred = self._deferred, []
        failed: E.KMSError | None = None
        for event, when in deferred:
            try:
                self._append(event, when)
            except E.KMSError as exc:
                failed = failed or exc
        if strict and failed is not None:
            raise failed

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
