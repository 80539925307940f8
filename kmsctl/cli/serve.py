"""``kmsctl serve``: the keyring over the AWS KMS protocol (AWS JSON 1.1 with SigV4)."""

from __future__ import annotations

import importlib.util
import ipaddress
import os

import click

from kmsctl.cli.app import App
from kmsctl.errors import UsageError

DEFAULT_PORT = 4599  # kmsctl's own: local-kms uses 8080, moto 5000, LocalStack 4566
INSTALL = "pip install 'kmsctl[server]'"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; ``:PORT`` or ``PORT`` for loopback)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {value!r}: give HOST:PORT, the port a number from 0 to 65535")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--listen", metavar="HOST:PORT", help=f"Address to listen on (default 127.0.0.1:{DEFAULT_PORT}).")
@click.option("--unix-socket", metavar="PATH", help="Listen on a Unix socket (mode 0600) instead of TCP.")
@click.option("--tls-cert", metavar="FILE", help="TLS certificate (PEM) for HTTPS; needs --tls-key.")
@click.option("--tls-key", metavar="FILE", help="TLS private key (PEM) for --tls-cert.")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes (up to the cores)."
)
@click.option(
    "--auth",
    type=click.Choice(["sigv4", "none"]),
    default="sigv4",
    show_default=True,
    help="sigv4: every request signed by a principal's access key; none: all as the account root (loopback only).",
)
@click.option("--insecure-listen", is_flag=True, help="Allow a non-loopback address without TLS.")
@click.pass_obj
def serve(
    app: App,
    listen: str | None,
    unix_socket: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    workers: int,
    auth: str,
    insecure_listen: bool,
) -> None:
    """Serve the keyring over the AWS KMS protocol (AWS JSON 1.1), for boto3, the aws CLI and the AWS SDKs.

    Point a client at it with --endpoint-url or AWS_ENDPOINT_URL_KMS, with the
    access key of a principal (principal access-key create) and the keyring's
    region. Every request must carry a valid AWS Signature Version 4 by that
    key, within 5 minutes of this machine's clock, and runs as its principal:
    key policies, identity policies, grants and conditions (aws:SourceIp,
    aws:SecureTransport, aws:UserAgent, aws:CurrentTime) apply, and each request
    is audited with the principal, access key, source address, user agent and
    request ID. The keyring is unlocked once at start (the usual ways) and
    stays unlocked in memory until the server stops; clients never see the
    passphrase. Keys, principals and policies changed with the CLI take effect
    on the next request.

    Listens on 127.0.0.1:4599 by default; any other address needs --tls-cert
    and --tls-key, or --insecure-listen. Prints 'kmsctl: listening on URL' on
    stderr when ready, answers GET /health, and stops on SIGTERM or SIGINT
    after the requests in flight. A client that sends nothing for 10 s in the
    middle of a request is disconnected (a stalled body gets 408
    RequestTimeoutException). Needs the server extra (gunicorn, botocore):
    pip install 'kmsctl[server]'.
    """
    missing = [m for m in ("gunicorn", "botocore") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"kmsctl serve needs {' and '.join(missing)}: {INSTALL}")
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    binds: list[str] = []
    local = True
    if unix_socket:
        binds.append(f"unix:{os.path.abspath(unix_socket)}")
    if listen is not None or not unix_socket:
        host, port = parse_listen(listen or f"127.0.0.1:{DEFAULT_PORT}")
        local = is_loopback(host)
        if not local and not tls_cert and not insecure_listen:
            raise UsageError(f"listening on {host} (not loopback) needs --tls-cert and --tls-key, or --insecure-listen")
        binds.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if auth == "none" and not local:
        raise UsageError("--auth none runs every request as the account root: only on loopback or a Unix socket")
    for path in (tls_cert, tls_key):
        if path and not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")

    from kmsctl.keyring.unlock import unlock
    from kmsctl.server.app import ServerApp
    from kmsctl.server.run import run

    kms = app.kms()
    keyring = app.keyring()
    unlock(keyring, app.sources(), app.clock(), kms.record_failed_try)
    server = ServerApp(keyring, auth=auth)  # loads the protocol model once, before the workers fork
    keyring.close()  # no database connection crosses a fork: each worker opens its own

    def ready(urls: list[str]) -> None:
        if auth == "none":
            app.warn("kmsctl: --auth none: every request runs as the account root, unauthenticated")
        for url in urls:
            app.warn(f"kmsctl: listening on {url}")

    tls = (tls_cert, tls_key) if tls_cert and tls_key else None
    code = run(server, binds=binds, workers=workers, tls=tls, ready=ready)
    raise click.exceptions.Exit(code)
