#!/usr/bin/env python3
"""A deliberately slow HTTP/1.1 download, for the graceful-stop check.

slowget.py URL RATE OUT PROGRESS: GET URL with a tiny receive buffer and read RATE
bytes/s into OUT. PROGRESS always holds the number of body bytes received so far, so
the caller can tell how much the server still had to send when it was told to stop.
A tiny buffer matters: with the kernel's default buffers a small file would sit whole
in socket queues and the server would be done before the stop, proving nothing.
Prints `<status> <body bytes> <seconds>`; exits 1 on a short or broken response.
"""
import os
import socket
import sys
import time
from urllib.parse import urlsplit


def report(progress, received):
    """Replaces PROGRESS atomically, so a reader never sees it empty."""
    with open(progress + ".tmp", "w") as p:
        p.write(str(received))
    os.replace(progress + ".tmp", progress)


def main():
    url, rate, out, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    u = urlsplit(url)
    start = time.monotonic()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((u.hostname, u.port or 80))
    target = u.path + ("?" + u.query if u.query else "")
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())

    chunk, tick = 1024, 1024 / rate
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(chunk)
        if not part:
            print("000 0 0")
            return 1
        data += part
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split()[1]
    length = next((int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:")), None)

    received = len(body)
    with open(out, "wb") as f:
        f.write(body)
        while length is None or received < length:
            report(progress, received)
            time.sleep(tick)
            part = sock.recv(chunk)
            if not part:
                break
            f.write(part)
            received += len(part)
    report(progress, received)
    print(f"{status} {received} {time.monotonic() - start:.2f}")
    return 0 if length is not None and received == length else 1


if __name__ == "__main__":
    sys.exit(main())
