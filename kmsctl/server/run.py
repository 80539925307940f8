"""Running the application under gunicorn, embedded (the ``server`` extra).

gunicorn's gthread worker: pre-forked processes (``--workers``), a few
threads each for connections and keep-alive. The keyring is unlocked in the
master before any worker is forked; each worker opens its own database
connection when it starts. SIGTERM and SIGINT both stop gracefully: no new
connections, requests in flight finish (up to ``GRACEFUL_S``).

gunicorn reads a request on a blocking socket with no time limit: a client
that stops sending in the middle of one (a partial header, a body shorter
than its Content-Length) would hold a worker thread for good, and a few of
them the whole worker. Each connection's socket therefore gets
``REQUEST_TIMEOUT_S``: a client silent that long mid-request (or not reading
its answer) is disconnected, with one line in the log.

Workers share one listening socket, and a keep-alive connection stays with
the worker that accepted it: clients that open their connections at once
(an SDK's pool, a load generator) could all land on one worker and leave the
others idle for as long as they keep them. After REQUESTS_PER_CONNECTION
requests a connection is answered with "Connection: close", so clients
reconnect now and then and the connections spread over the workers (the
idle one is the likelier to accept).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from kmsctl.server.app import ServerApp

THREADS = 4
GRACEFUL_S = 20
REQUEST_TIMEOUT_S = 10
REQUESTS_PER_CONNECTION = 100


def _worker_class() -> type:
    """gunicorn's gthread worker, each connection's socket given REQUEST_TIMEOUT_S
    once gunicorn has made it blocking (its ``init``, run before every request),
    and each connection closed after REQUESTS_PER_CONNECTION requests."""
    from gunicorn.workers.gthread import ThreadWorker

    class TimedThreadWorker(ThreadWorker):  # type: ignore[misc]
        def handle(self, conn: Any) -> Any:
            if not getattr(conn, "kmsctl_timed", False):
                init = conn.init

                def init_with_timeout() -> None:
                    init()
                    conn.sock.settimeout(REQUEST_TIMEOUT_S)

                conn.init = init_with_timeout
                conn.kmsctl_timed = True
            return super().handle(conn)

        def handle_request(self, req: Any, conn: Any) -> Any:
            conn.kmsctl_served = getattr(conn, "kmsctl_served", 0) + 1
            if conn.kmsctl_served >= REQUESTS_PER_CONNECTION:
                req.must_close = True  # "Connection: close"; the client opens another
            return super().handle_request(req, conn)

    return TimedThreadWorker


class _StalledClients(logging.Filter):
    """gunicorn logs a socket timeout as a traceback ("Socket error processing
    request."): one line instead, naming what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError):
            record.msg = f"a client sent nothing for {REQUEST_TIMEOUT_S} s in the middle of a request: disconnected"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def run(
    app: ServerApp,
    *,
    binds: list[str],
    workers: int,
    tls: tuple[str, str] | None,
    ready: Callable[[list[str]], None],
) -> int:
    """Serve ``app`` until stopped; ``ready`` gets the URLs listened on. The exit status."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    def when_ready(server: Any) -> None:
        urls = []
        for listener in server.LISTENERS:
            name = listener.sock.getsockname()
            if isinstance(name, str):
                urls.append(f"unix:{name}")
            else:
                host = f"[{name[0]}]" if ":" in name[0] else name[0]
                urls.append(f"{'https' if tls else 'http'}://{host}:{name[1]}")
        ready(urls)

    def post_worker_init(worker: Any) -> None:
        signal.signal(signal.SIGINT, worker.handle_exit)  # Ctrl-C reaches every process: finish, then stop
        logging.getLogger("gunicorn.error").addFilter(_StalledClients())
        app.open()  # this worker's own connection, before its first request

    options: dict[str, Any] = {
        "bind": binds,
        "workers": workers,
        "worker_class": _worker_class(),
        "threads": THREADS,
        "preload_app": True,
        "graceful_timeout": GRACEFUL_S,
        "timeout": 60,
        "keepalive": 5,
        "loglevel": "warning",
        "accesslog": None,
        "errorlog": "-",
        "umask": 0o177,  # a Unix socket only its owner can connect to
        "proc_name": "kmsctl-serve",
        "when_ready": when_ready,
        "post_worker_init": post_worker_init,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 16384,
    }
    if tls:
        options["certfile"], options["keyfile"] = tls

    class Embedded(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> ServerApp:
            return app

    class GracefulArbiter(Arbiter):  # type: ignore[misc]
        def handle_int(self) -> None:  # SIGINT as SIGTERM: in-flight requests finish
            raise StopIteration

    try:
        GracefulArbiter(Embedded()).run()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    sys.stderr.flush()
    return 0
