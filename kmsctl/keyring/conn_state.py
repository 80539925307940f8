"""What a database connection keeps between transactions: the rows it has read
(``Database.cached``) and its durability setting (``relaxed_durability``).

A ``kmsctl serve`` worker reads the same few rows for every request: the
access key that signed it, its principal, the key, its grants and material.
They are kept, per connection, for as long as nothing can have changed them:
SQLite's ``PRAGMA data_version`` moves whenever another connection commits
(another process's included: the command line, another worker), and
``_generation`` whenever this connection writes, except for the audit
trail's own transactions (``Database.write(state=False)``), which touch no
row kept here. The first cached read of a snapshot checks both; the PRAGMA
also begins the snapshot, so the rows it vouches for are those it reads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

MAX_ROWS = 4096  # queries kept; then all are dropped (a server uses a handful)


def busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock."""
    return "locked" in str(exc) or "busy" in str(exc)


class ConnectionState:
    """Mixed into ``Database``, which provides ``_exec``, ``query`` and the transaction state."""

    _depth: int
    _writing: bool
    conn: sqlite3.Connection
    path: str
    busy_timeout_s: float

    def _init_state(self) -> None:
        self._relaxed = False  # synchronous=NORMAL is set (relaxed_durability), FULL not yet restored
        self._relaxing = False  # inside relaxed_durability()
        self._rows: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}
        self._rows_token: tuple[int, int] | None = None
        self._generation = 0  # this connection's writes that may change rows
        self._checked = False  # the token is checked in the read snapshot in progress

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        raise NotImplementedError

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    @contextmanager
    def relaxed_durability(self) -> Iterator[None]:
        """synchronous=NORMAL for what follows (WAL: no fsync at commit, still
        atomic); for records whose loss in a power cut costs no key. FULL is
        restored before this connection's next write outside such a block
        (``_durable``), not at once: a server appending one read's record after
        another switches once, not twice a request."""
        if not self._relaxed:
            self._exec("PRAGMA synchronous=NORMAL")
            self._relaxed = True
        self._relaxing = True
        try:
            yield
        finally:
            self._relaxing = False

    def _durable(self) -> None:
        """synchronous=FULL again before a write that is not relaxed."""
        if self._relaxed and not self._relaxing:
            self._exec("PRAGMA synchronous=FULL")
            self._relaxed = False

    def _begin_immediate(self) -> None:
        """BEGIN IMMEDIATE, waiting for another writer in short steps (0.1 ms,
        growing to 2 ms) for up to self.busy_timeout_s. SQLite's own busy handler
        sleeps 1, 2, 5, 10 ms and more between tries: long beside the
        sub-millisecond transactions of kmsctl serve's workers, whose cores then
        sit idle (bench/bench_server.py, 2 workers: 14% more Encrypts a second, a lower p99)."""
        try:
            self.conn.execute("PRAGMA busy_timeout = 0")
            delay, deadline = 0.0001, time.monotonic() + self.busy_timeout_s
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not busy(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(delay)
                delay = min(delay * 1.5, 0.002)
        except sqlite3.OperationalError as exc:
            from kmsctl.errors import ConflictException, IntegrityError

            if busy(exc):
                raise ConflictException(f"the keyring is busy: {exc}", hint="retry") from exc
            raise IntegrityError(f"{self.path}: {exc}") from exc
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            from kmsctl.errors import IntegrityError

            raise IntegrityError(f"{self.path}: {exc}") from exc
        finally:
            with suppress(sqlite3.DatabaseError):
                self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")

    def state_token(self) -> tuple[int, int]:
        """What changes whenever a commit may have changed rows: SQLite's data_version
        (another connection's commits) and this connection's own write count. Equal
        tokens: nothing committed in between. Taken outside a transaction, it is
        the newest committed state's."""
        return int(self._exec("PRAGMA data_version").fetchone()[0]), self._generation

    def cached(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """``query`` for a read snapshot, its rows kept by this connection for
        the next snapshots while nothing has committed since: the first cached
        read of a snapshot asks SQLite's ``PRAGMA data_version`` (which also
        begins the snapshot, so the rows it vouches for are the ones it reads),
        and a change committed by any other connection, or a change by this one
        (``write``), drops every kept row. Outside a read snapshot (a write
        transaction's own changes, autocommit) it is ``query``. The rows are
        shared: callers must not change them (they are tuples)."""
        if not self._depth or self._writing:
            return self.query(sql, args)
        if not self._checked:
            token = self.state_token()
            if token != self._rows_token:
                self._rows.clear()
                self._rows_token = token
            self._checked = True
        key = (sql, args)
        rows = self._rows.get(key)
        if rows is None:
            rows = self.query(sql, args)
            if len(self._rows) >= MAX_ROWS:
                self._rows.clear()
            self._rows[key] = rows
        return rows
