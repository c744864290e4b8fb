#!/usr/bin/env python3
"""HTTP/3 as curl speaks it, and a flood of QUIC Initials that legitimate clients survive.

1. curl (the libcurl with HTTP/3 that PyPI's curl_cffi bundles), HTTP/3 only: it must
   negotiate HTTP/3, get a file byte for byte as over HTTP/1.1, with each encoding, a 304
   and a 206, on one connection, and never report a reset stream (a server that drops a
   request stream unread makes curl say "stream reset by server", hyperium/h3#321).
   Over HTTP/1.1 and HTTP/2 the same servy sends `Alt-Svc: h3=":PORT"`.
2. For --flood seconds, Initial packets of fresh QUIC connections (first flights built by
   aioquic, never continued, from a few UDP ports) while curl over HTTP/3 and a plain
   HTTP/1.1 client keep asking for `/`: every legitimate request must be answered, servy
   must send Retry packets (`servy_quic_retries_total` rises: it validates addresses once
   many handshakes are open) and stay alive.

    tests/http3/check.py --servy server/target/release/servy [--flood 3]

Exits 0 when all holds, 1 when something does not (saying what), 2 on setup errors.
Needs: python3 with curl_cffi and aioquic (tests/install-deps.sh), openssl.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from curl_cffi import CurlHttpVersion, requests

REPO = Path(__file__).resolve().parents[2]
HTTP3 = 30  # what curl reports as the version used for HTTP/3 (CURL_HTTP_VERSION_3)
FILE = "/"  # every site has one, and it is compressible


def free_ports(n: int) -> list[int]:
    """n distinct ports free for both TCP and UDP on 127.0.0.1 (servy binds UDP on the https port)."""
    ports: set[int] = set()
    while len(ports) < n:
        with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.add(port)
    return sorted(ports)


class Servy:
    def __init__(self, binary: Path, work: Path, certs: Path, log_requests: bool = False, http3: bool = True):
        self.http, self.https, self.metrics = free_ports(3)
        conf = work / "servy.toml"
        conf.write_text(
            f'[http]\nlisten = ["127.0.0.1:{self.http}"]\n'
            f'[https]\nlisten = ["127.0.0.1:{self.https}"]\n' + ("http3 = true\n" if http3 else "") +
            f'[[https.certificates]]\ncert = "{certs / "fullchain.pem"}"\nkey = "{certs / "key.pem"}"\n'
            f'[metrics]\nlisten = ["127.0.0.1:{self.metrics}"]\n'
            f'[log]\nformat = "text"\nrequests = {"true" if log_requests else "false"}\n')
        self.log = open(work / "servy.log", "wb")
        self.proc = subprocess.Popen([str(binary), "--config", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"servy exited with {self.proc.returncode}; log in {work / 'servy.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.https), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("servy did not listen within 10 s")

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def plain(servy: Servy, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", servy.http, timeout=5)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out


def curl_checks(servy: Servy, ca: Path) -> list[str]:
    problems: list[str] = []
    base = f"https://localhost:{servy.https}"
    session = requests.Session()

    def h3(path: str, headers: dict[str, str] | None = None):
        return session.get(base + path, headers=headers or {}, http_version=CurlHttpVersion.V3ONLY, verify=str(ca),
                           timeout=10, accept_encoding=None, default_headers=False)

    for coding in ("identity", "gzip", "br"):
        r = h3(FILE, {"accept-encoding": coding})
        if r.http_version != HTTP3:
            problems.append(f"curl negotiated HTTP version {r.http_version}, not HTTP/3")
        status, headers, body = plain(servy, FILE, {"accept-encoding": coding})
        if r.status_code != 200 or r.content != body:
            problems.append(f"{FILE} ({coding}) over HTTP/3: {r.status_code}, {len(r.content)} bytes "
                            f"vs {status}, {len(body)} bytes over HTTP/1.1")
        if r.headers.get("content-encoding") != headers.get("content-encoding"):
            problems.append(f"{FILE} ({coding}): content-encoding {r.headers.get('content-encoding')} "
                            f"vs {headers.get('content-encoding')}")
        gzipped = r.headers.get("content-encoding") == "gzip"
        if gzipped and gzip.decompress(r.content) != plain(servy, FILE)[2]:
            problems.append("the gzip body does not decode to the file")
    etag = h3(FILE).headers.get("etag", "")
    r = h3(FILE, {"if-none-match": etag})
    if r.status_code != 304:
        problems.append(f"If-None-Match over HTTP/3: {r.status_code}, not 304")
    r = h3(FILE, {"range": "bytes=0-99"})
    if r.status_code != 206 or r.content != plain(servy, FILE)[2][:100]:
        problems.append(f"Range over HTTP/3: {r.status_code}, {len(r.content)} bytes")
    for version, name in ((CurlHttpVersion.V1_1, "HTTP/1.1"), (CurlHttpVersion.V2TLS, "HTTP/2")):
        r = requests.get(base + "/", http_version=version, verify=str(ca), timeout=10)
        if r.headers.get("alt-svc") != f'h3=":{servy.https}"; ma=86400':
            problems.append(f"Alt-Svc over {name}: {r.headers.get('alt-svc')!r}")
    session.close()
    return problems


def first_flight(addr: tuple[str, int]) -> list[bytes]:
    """The datagrams a new QUIC client sends first (its Initial, with a ClientHello)."""
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    conn = QuicConnection(configuration=config)
    now = time.time()
    conn.connect(addr, now=now)
    return [data for data, _ in conn.datagrams_to_send(now=now)]


def flood(servy: Servy, ca: Path, seconds: float) -> list[str]:
    addr = ("127.0.0.1", servy.https)
    stop = threading.Event()
    failures: list[str] = []
    answered = {"h3": 0, "tcp": 0}
    sent = [0]

    def attacker() -> None:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        for s in socks:
            s.setblocking(False)
        i = 0
        while not stop.is_set():
            for data in first_flight(addr):
                try:
                    socks[i % len(socks)].sendto(data, addr)
                except BlockingIOError:
                    pass
            i += 1
            sent[0] = i
            for s in socks:  # drop what servy answers, so the kernel's buffers do not fill
                try:
                    while s.recv(65536):
                        pass
                except BlockingIOError:
                    pass
        for s in socks:
            s.close()

    def legit_h3() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.get(f"https://localhost:{servy.https}/", http_version=CurlHttpVersion.V3ONLY,
                                verify=str(ca), timeout=5)
                if r.status_code != 200 or r.http_version != HTTP3:
                    failures.append(f"HTTP/3: {r.status_code} over {r.http_version}")
                answered["h3"] += 1
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                failures.append(f"HTTP/3: {e}")
            # A new connection each time: a new handshake has to get through the flood.
            session.close()
            session = requests.Session()
            time.sleep(0.05)
        session.close()

    def legit_tcp() -> None:
        while not stop.is_set():
            try:
                if plain(servy, "/")[0] != 200:
                    failures.append("HTTP/1.1: not 200")
                answered["tcp"] += 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"HTTP/1.1: {e}")
            time.sleep(0.05)

    threads = [threading.Thread(target=f) for f in (attacker, legit_h3, legit_tcp)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    retries = servy.metric("servy_quic_retries_total")
    print(f"flood: {sent[0]} Initials in {seconds:.0f} s; answered {answered['h3']} over HTTP/3, "
          f"{answered['tcp']} over HTTP/1.1; {len(failures)} failures; {retries:.0f} Retry packets sent")
    problems = failures[:5]
    if answered["h3"] == 0 or answered["tcp"] == 0:
        problems.append("a legitimate client got no answer at all")
    if retries == 0:
        problems.append("servy sent no Retry under the flood")
    if servy.proc.poll() is not None:
        problems.append("servy died")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servy", type=Path, required=True)
    ap.add_argument("--flood", type=float, default=3.0, help="seconds of flood (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="servy-http3-") as tmp:
        work = Path(tmp)
        try:
            subprocess.run(["bash", str(REPO / "tests/tls/mkcert.sh"), str(work), "localhost", "127.0.0.1"],
                           check=True)
            servy = Servy(args.servy, work, work)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            print(f"http3 check: setup: {e}", file=sys.stderr)
            return 2
        try:
            problems = curl_checks(servy, work / "ca.pem")
            problems += flood(servy, work / "ca.pem", args.flood)
        finally:
            servy.stop()
    for p in problems:
        print(f"http3 check: {p}", file=sys.stderr)
    if problems:
        return 1
    print("http3 check: ok (curl over HTTP/3: bytes, encodings, 304, 206, Alt-Svc; legitimate clients through a flood)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
