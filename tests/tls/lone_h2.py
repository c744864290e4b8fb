#!/usr/bin/env python3
"""A lone HTTP/2 response is written at once, not held back for a batch.

servy may gather the frames of many streams into few writes (a busy connection), but a
single request on an idle connection must get its whole response without the client
sending anything more: no SETTINGS acknowledgement, no WINDOW_UPDATE, no second request
that would wake the connection and flush what waits. Over h2c (prior knowledge, on the
plain listener) and over TLS (ALPN h2), the client sends its preface, SETTINGS and one
GET in one write, then only reads; the complete response (status 200, the file's bytes,
END_STREAM) must arrive within --bound seconds (generous: an unbatched answer takes
milliseconds; a held one waits for a timer or the connection's keep-alive PING).

    tests/tls/lone_h2.py --servy server/target/release/servy --site server/demo-site

Exits 0 when both hold, 1 when one does not (saying which, and what arrived), 2 on setup
errors. Needs: python3 with h2 (pip h2), openssl.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events

# Below the initial flow-control window (65,535), so no WINDOW_UPDATE is needed.
MAX_BODY = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"servy exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"servy did not listen on {port} within {timeout} s")


def lone_request(sock: socket.socket, path: str, bound: float) -> tuple[int | None, bytes, bool, float]:
    """One GET on a fresh connection; reads until END_STREAM or the bound. Returns the
    status, the body, whether the stream ended and the seconds it took."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "https" if isinstance(sock, ssl.SSLSocket) else "http"),
                          (":authority", "localhost"), (":path", path), ("accept-encoding", "identity")],
                      end_stream=True)
    start = time.monotonic()
    sock.sendall(conn.data_to_send())
    status, body, ended = None, b"", False
    deadline = start + bound
    while not ended and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            break
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == 1:
                status = int(dict(event.headers)[":status"])
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == 1:
                body += event.data
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == 1:
                ended = True
        # What the library would answer (SETTINGS ACK, WINDOW_UPDATE) is never sent.
        conn.data_to_send()
    return status, body, ended, time.monotonic() - start


def check(label: str, sock: socket.socket, path: str, expected: bytes, bound: float) -> bool:
    with sock:
        status, body, ended, took = lone_request(sock, path, bound)
    if status == 200 and ended and body == expected:
        print(f"lone_h2: {label}: GET {path}: 200, {len(body)} bytes, complete in {took * 1000:.1f} ms")
        return True
    print(f"lone_h2: {label}: GET {path}: FAILED after {took:.2f} s: status {status}, {len(body)} of "
          f"{len(expected)} bytes, stream {'ended' if ended else 'not ended'}", file=sys.stderr)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servy", type=Path, required=True)
    ap.add_argument("--site", type=Path, required=True, help="the site embedded in that servy (for the bytes)")
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--bound", type=float, default=2.0, help="seconds the whole response may take")
    args = ap.parse_args()
    if not shutil.which("openssl"):
        print("lone_h2: openssl not found", file=sys.stderr)
        return 2
    expected = (args.site / args.path.lstrip("/")).read_bytes()
    if len(expected) > MAX_BODY:
        print(f"lone_h2: {args.path} is over {MAX_BODY} bytes; pick a smaller file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lone-h2-") as tmp:
        work = Path(tmp)
        cert, key = work / "cert.pem", work / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        plain, tls, metrics = free_port(), free_port(), free_port()
        while len({plain, tls, metrics}) < 3:
            tls, metrics = free_port(), free_port()
        config = work / "servy.toml"
        config.write_text(f"""[http]
listen = ["127.0.0.1:{plain}"]
[metrics]
listen = ["127.0.0.1:{metrics}"]
[https]
listen = ["127.0.0.1:{tls}"]
[[https.certificates]]
cert = "{cert}"
key = "{key}"
""")
        log = open(work / "servy.log", "wb")
        proc = subprocess.Popen([str(args.servy), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(plain, proc, 10)
            wait_port(tls, proc, 10)
            ok = check("h2c", socket.create_connection(("127.0.0.1", plain)), args.path, expected, args.bound)
            context = ssl.create_default_context(cafile=str(cert))
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(socket.create_connection(("127.0.0.1", tls)), server_hostname="localhost")
            if sock.selected_alpn_protocol() != "h2":
                print(f"lone_h2: TLS: ALPN chose {sock.selected_alpn_protocol()!r}, not h2", file=sys.stderr)
                sock.close()
                ok = False
            else:
                ok = check("h2 over TLS", sock, args.path, expected, args.bound) and ok
        except RuntimeError as e:
            print(f"lone_h2: {e}", file=sys.stderr)
            print((work / "servy.log").read_text(errors="replace")[-2000:], file=sys.stderr)
            return 2
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
