#!/usr/bin/env python3
"""Hold N idle keep-alive connections to a server, then time one fresh request.

    idleconns.py URL N HOLD_SECONDS READY_FILE

Opens N connections from 8 threads, each connection sending one `GET <path>` and
reading the response before the thread opens its next (so at most 8 requests are in
flight: idle connections are the point, not a burst), then writes READY_FILE (so the
caller can read the server's memory) and holds them idle for HOLD_SECONDS. Then it times
a GET on a new connection and prints one line:
`held <connections still open> of <N> fresh_ms <ms> failed <count> opened_s <seconds>`.
Exits 1 if any request failed. Bounded: every socket has a 10 s timeout.
"""

from __future__ import annotations

import resource
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit


def get(s: socket.socket, host: str, path: str) -> int:
    """One keep-alive GET on s, which must answer 200; returns the response's bytes.
    The benchmark runner's conns load uses it too (tests/bench/loads.py)."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    length = next((int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed mid-body")
        body += chunk
    return len(head) + 4 + len(body)


def still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main() -> int:
    url, n, hold, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    held: list[socket.socket] = []
    failures = [0]
    lock = threading.Lock()

    def open_some(count: int) -> None:
        for _ in range(count):
            try:
                s = socket.create_connection((host, port), timeout=10)
            except OSError:
                with lock:
                    failures[0] += 1
                continue
            try:
                get(s, host, path)
                with lock:
                    held.append(s)
            except OSError:
                with lock:
                    failures[0] += 1
                s.close()

    started = time.monotonic()
    threads = [threading.Thread(target=open_some, args=(n // 8 + (i < n % 8),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    opened_s = time.monotonic() - started
    failed = failures[0]
    ready.write_text(f"{len(held)}\n")
    time.sleep(hold)
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=10) as fresh:
            get(fresh, host, path)
        fresh_ms = (time.monotonic() - start) * 1000
    except OSError:
        failed += 1
        fresh_ms = float("inf")
    open_now = sum(still_open(s) for s in held)
    for s in held:
        s.close()
    print(f"held {open_now} of {n} fresh_ms {fresh_ms:.1f} failed {failed} opened_s {opened_s:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
