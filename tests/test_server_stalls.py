"""Clients that stop in the middle of a request do not take `kmsctl serve` down,
and keep-alive connections do not stay with one worker for good.

gunicorn reads requests on blocking sockets without a time limit; kmsctl's
worker gives each connection REQUEST_TIMEOUT_S. More stalled clients than a
worker has threads, some stopped inside the headers and some inside the
body, must not stop the server answering others, and a body that stops
arriving gets AWS-style 408 RequestTimeoutException, never a 500.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest
from server_helpers import make_served_keyring, start_server, stop_server

from kmsctl.server.run import REQUEST_TIMEOUT_S, REQUESTS_PER_CONNECTION, THREADS

pytest.importorskip("gunicorn", reason="gunicorn not installed: pip install 'kmsctl[server]'")


@pytest.mark.slow
def test_stalled_clients_are_disconnected_and_others_served(tmp_path: Path) -> None:
    home, passfile, _ = make_served_keyring(tmp_path, {})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0", "--workers", "1", "--auth", "none")
    port = int(url.rsplit(":", 1)[1])
    stalled = []
    try:
        body_start = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 99\r\n\r\n{"
        for i in range(THREADS + 2):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(body_start if i % 2 == 0 else b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar")
            stalled.append(s)
        time.sleep(0.5)
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S * 3)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
        assert time.monotonic() - started < REQUEST_TIMEOUT_S * 2.5
        # a stalled body: 408 RequestTimeoutException (the SDKs retry it), and the connection ends
        s = stalled[0]
        s.settimeout(REQUEST_TIMEOUT_S * 3)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), head
        assert json.loads(payload)["__type"] == "RequestTimeoutException"
    finally:
        for s in stalled:
            s.close()
        assert stop_server(proc) == 0
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in log and "internal error" not in log, log
    assert f"a client sent nothing for {REQUEST_TIMEOUT_S} s in the middle of a request: disconnected" in log


def test_a_connection_is_closed_after_its_share_of_requests(tmp_path: Path) -> None:
    """After REQUESTS_PER_CONNECTION requests the answer says "Connection: close"
    and the server closes it, so clients reconnect and spread over the workers."""
    home, passfile, _ = make_served_keyring(tmp_path, {})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0", "--auth", "none")
    port = int(url.rsplit(":", 1)[1])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        said = []
        for _ in range(REQUESTS_PER_CONNECTION):
            conn.request("GET", "/health")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b'{"status":"ok"}'
            said.append(resp.getheader("Connection"))
        assert said[:-1] == ["keep-alive"] * (REQUESTS_PER_CONNECTION - 1)
        assert said[-1] == "close"
        conn.close()
        again = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection is served
        again.request("GET", "/health")
        assert again.getresponse().status == 200
        again.close()
    finally:
        assert stop_server(proc) == 0
