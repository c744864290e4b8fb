"""The hostile-client suite's shared part: a release servy on ephemeral ports (HTTP, HTTPS
with a throwaway certificate, metrics), two legitimate clients that keep requesting `/`
while an attack runs (HTTP/1.1 on the plain port, HTTP/2 over TLS), a sampler of servy's
RSS, CPU and socket send queues from /proc, and raw HTTP/2 frame helpers for attackers.

An attack is a function `fn(target) -> (ok, outcome)`; run.py starts a fresh servy for
each one, so RSS and CPU deltas belong to that attack alone.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h2.config
import h2.connection
import h2.events

REPO = Path(__file__).resolve().parents[2]
EXIT_CONFIG = 78

# Timers the suite shortens so that every attack fits in 15 s; each one is a real key
# with its shipped default in brackets. send_window only exists once servy bounds slow
# readers; an older servy refuses the key, and the suite then runs it with its defaults.
SUITE_LIMITS = {
    "header_read_timeout": '"4s"',  # [10 s] slowloris, HTTP/2 keep-alive pings
}
SUITE_HTTPS = {"handshake_timeout": '"4s"'}  # [10 s] silent or half-sent ClientHellos
SUITE_SEND_WINDOW_S = 5  # [60 s] limits.send_window: slow readers, never-reading floods
# The shipped defaults of the same timers, for run.py --shipped-timers.
SHIPPED_TIMERS_S = {"header_read_timeout": 10.0, "handshake_timeout": 10.0, "send_window": 60.0}
# How long an attack waits for its outcome at most; --shipped-timers raises it.
MAX_WAIT_S = 14.0


@dataclass
class Attack:
    """One attack; its name ends with the expected outcome after `__`."""

    name: str
    run: Callable[["Target"], tuple[bool, str]]
    doc: str = ""


@dataclass
class Target:
    """What an attacker needs to know about the servy under attack."""

    host: str
    http_port: int
    https_port: int
    ca: Path
    big_path: str
    big_size: int
    header_timeout_s: float
    handshake_timeout_s: float
    send_window_s: float | None  # None: this servy has no send window
    pid: int = 0

    def tls_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(directory: Path) -> Path:
    """A throwaway CA and a leaf for localhost/127.0.0.1 (tests/tls/mkcert.sh)."""
    if not (directory / "fullchain.pem").exists():
        subprocess.run(["bash", str(REPO / "tests/tls/mkcert.sh"), str(directory), "localhost", "127.0.0.1"],
                       check=True)
    return directory


class Servy:
    """One servy process on three ephemeral ports."""

    def __init__(self, binary: Path, workdir: Path, certs: Path, send_window: bool, shipped: bool = False):
        self.binary, self.workdir, self.certs = binary, workdir, certs
        self.send_window, self.shipped = send_window, shipped
        self.proc: subprocess.Popen | None = None

    def config(self) -> str:
        limits = {} if self.shipped else dict(SUITE_LIMITS)
        if self.send_window and not self.shipped:
            limits["send_window"] = f'"{SUITE_SEND_WINDOW_S}s"'
        lines = ["[http]", f'listen = ["127.0.0.1:{self.http_port}"]',
                 "[https]", f'listen = ["127.0.0.1:{self.https_port}"]']
        lines += [f"{k} = {v}" for k, v in ({} if self.shipped else SUITE_HTTPS).items()]
        lines += ["[[https.certificates]]", f'cert = "{self.certs / "fullchain.pem"}"',
                  f'key = "{self.certs / "key.pem"}"',
                  "[metrics]", f'listen = ["127.0.0.1:{self.metrics_port}"]',
                  "[log]", 'format = "text"', "[limits]"]
        lines += [f"{k} = {v}" for k, v in limits.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.http_port, self.https_port, self.metrics_port = sorted(ports)
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "servy.toml"
        conf.write_text(self.config())
        self.log = open(self.workdir / "servy.log", "ab")
        self.proc = subprocess.Popen([str(self.binary), "--config", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"servy exited with {self.proc.returncode} (log: {self.workdir / 'servy.log'})")
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("servy did not start listening within 10 s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def accepts_send_window(binary: Path, workdir: Path, certs: Path) -> bool:
    """Whether this servy knows limits.send_window (an older one exits with EXIT_CONFIG)."""
    probe = Servy(binary, workdir / "probe", certs, send_window=True)
    try:
        probe.start()
    except RuntimeError:
        if probe.proc is not None and probe.proc.returncode == EXIT_CONFIG:
            return False
        raise
    finally:
        probe.stop()
    return True


# ---- legitimate clients -------------------------------------------------------------------

LEGIT_INTERVAL_S = 0.05  # each client asks for `/` 20 times a second
LEGIT_TIMEOUT_S = 2.0


@dataclass
class LegitStats:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class LegitHttp1(threading.Thread):
    """HTTP/1.1 keep-alive on the plain port; a failed request is counted and reconnects."""

    def __init__(self, target: Target, stop: threading.Event):
        super().__init__(daemon=True)
        self.target, self.stop, self.stats = target, stop, LegitStats()

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.target.host, self.target.http_port, timeout=LEGIT_TIMEOUT_S)
                conn.request("GET", "/", headers={"Host": "localhost"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}")
                self.stats.latencies.append(time.monotonic() - start)
            except Exception as e:  # any failure a user would see
                self.stats.failures.append(f"h1: {type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
            self.stop.wait(LEGIT_INTERVAL_S)
        if conn is not None:
            conn.close()


class LegitHttp2(threading.Thread):
    """HTTP/2 over TLS (ALPN h2) on one connection, one request at a time."""

    def __init__(self, target: Target, stop: threading.Event):
        super().__init__(daemon=True)
        self.target, self.stop, self.stats = target, stop, LegitStats()

    def connect(self):
        raw = socket.create_connection((self.target.host, self.target.https_port), timeout=LEGIT_TIMEOUT_S)
        sock = self.target.tls_context(["h2"]).wrap_socket(raw, server_hostname="localhost")
        assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        return sock, conn

    def request(self, sock, conn) -> None:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                                (":path", "/")], end_stream=True)
        sock.sendall(conn.data_to_send())
        status = None
        deadline = time.monotonic() + LEGIT_TIMEOUT_S
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by servy")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = dict(ev.headers).get(b":status")
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    raise ConnectionError(f"stream reset {ev.error_code}")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise ConnectionError(f"GOAWAY {ev.error_code}")
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    sock.sendall(conn.data_to_send())
                    if status != b"200":
                        raise RuntimeError(f"status {status!r}")
                    return
            sock.sendall(conn.data_to_send())

    def run(self) -> None:
        sock = conn = None
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                if sock is None:
                    sock, conn = self.connect()
                self.request(sock, conn)
                self.stats.latencies.append(time.monotonic() - start)
            except Exception as e:
                self.stats.failures.append(f"h2: {type(e).__name__}: {e}")
                if sock is not None:
                    sock.close()
                sock = conn = None
            self.stop.wait(LEGIT_INTERVAL_S)
        if sock is not None:
            sock.close()


# ---- what servy costs ------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def send_queue_bytes(ports: tuple[int, ...]) -> int:
    """Bytes queued for sending on servy's side of its connections (/proc/net/tcp tx_queue)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if int(cols[1].rsplit(":", 1)[1], 16) in ports:
                        total += int(cols[4].split(":")[0], 16)
        except FileNotFoundError:
            pass
    return total


class Sampler(threading.Thread):
    """servy's peak RSS and peak send queues, every 100 ms."""

    def __init__(self, pid: int, ports: tuple[int, ...], stop: threading.Event):
        super().__init__(daemon=True)
        self.pid, self.ports, self.stop = pid, ports, stop
        self.peak_rss = 0
        self.peak_sendq = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))
                self.peak_sendq = max(self.peak_sendq, send_queue_bytes(self.ports))
            except OSError:
                return
            self.stop.wait(0.1)


# ---- attacker helpers -------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
               8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
               12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(pairs: dict[int, int] | None = None, ack: bool = False) -> bytes:
    body = b"".join(struct.pack(">HI", k, v) for k, v in (pairs or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, body)


def hpack_get(path: str = "/", scheme: str = "http") -> bytes:
    """A GET's header block in HPACK without Huffman: static-table indices and literals."""
    block = b"\x82" + (b"\x87" if scheme == "https" else b"\x86")
    block += b"\x84" if path == "/" else b"\x04" + hpack_len(len(path)) + path.encode()
    return block + b"\x01" + hpack_len(9) + b"localhost"  # :authority, literal, not indexed


def hpack_len(n: int, prefix_bits: int = 7, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) with a prefix of prefix_bits, ORed into first."""
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([first | n])
    out = [first | top]
    n -= top
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class FrameReader:
    """Parses frames from a socket (blocking with a deadline) or from bytes."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.closed = sock, b"", False
        self.close_reason = ""

    def feed(self, timeout: float) -> bool:
        """Reads what arrives within timeout; False once the peer closed or reset."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
            self.closed, self.close_reason = True, type(e).__name__
            return False
        if not data:
            self.closed, self.close_reason = True, "EOF"
            return False
        self.buf += data
        return True

    def frames(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            kind, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            yield kind, flags, stream, payload


def goaway_code(payload: bytes) -> int:
    return int.from_bytes(payload[4:8], "big")


def wait_for_goaway(reader: FrameReader, seconds: float, on_frame=None) -> tuple[int | None, str]:
    """Reads until a GOAWAY or a close; returns (error code or None, 'closed: EOF' etc.)."""
    deadline = time.monotonic() + seconds
    code = None
    while time.monotonic() < deadline:
        alive = reader.feed(min(0.2, max(0.01, deadline - time.monotonic())))
        for kind, flags, stream, payload in reader.frames():
            if kind == GOAWAY:
                code = goaway_code(payload)
            elif on_frame:
                on_frame(kind, flags, stream, payload)
        if not alive:
            return code, f"closed: {reader.close_reason}"
        if code is not None:
            # The close that follows a GOAWAY, briefly.
            end = time.monotonic() + 1
            while time.monotonic() < end and reader.feed(0.2):
                list(reader.frames())
            return code, "closed" if reader.closed else "open"
    return code, "open"


def h2c_connect(target: Target, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect((target.host, target.http_port))
    return sock


def h2_tls_connect(target: Target) -> ssl.SSLSocket:
    raw = socket.create_connection((target.host, target.https_port), timeout=5)
    sock = target.tls_context(["h2"]).wrap_socket(raw, server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2"
    return sock


TCP_STATES = {1: "ESTABLISHED", 7: "CLOSE", 8: "CLOSE_WAIT"}


def tcp_state(sock: socket.socket) -> int:
    """The socket's TCP state from TCP_INFO: tells a close by servy without reading."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return tcp_state(sock) in (7, 8)  # CLOSE (reset) or CLOSE_WAIT (FIN received)
    except OSError:
        return True


def wait_all_closed(socks: list[socket.socket], seconds: float, tick=None) -> tuple[int, float]:
    """Waits until servy closed every socket (without reading them); returns (still open, s)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if tick:
            tick()
        if all(closed_by_peer(s) for s in socks):
            break
        time.sleep(0.1)
    return sum(not closed_by_peer(s) for s in socks), time.monotonic() - start


def close_all(socks) -> None:
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass


def find_big_path(host: str, port: int) -> tuple[str, int]:
    """The largest file of the usual candidates the embedded site has (the search index)."""
    best = ("/", 0)
    for path in ("/search-index.json", "/index.json", "/"):
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", path, headers={"Host": "localhost"})
        resp = conn.getresponse()
        size = len(resp.read())
        conn.close()
        if resp.status == 200 and size > best[1]:
            best = (path, size)
    return best
