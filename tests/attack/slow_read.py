"""Slow readers with pipelining: 200 HTTP/1.1 connections each send 20 GETs of the site's
largest file at once, then read at 64 B/s, or never. Every response servy writes waits in
its socket buffers, and a reader that slow would hold them for hours. Expected: servy
abandons such a connection within the send window ([limits] send_window) and closes it;
at worst within two, when bytes the socket took just before a window opened count in it
(seen once in the smoke stage: 199 of 200 closed at 5 s, the last one later)."""

import socket
import time

import harness
from harness import Attack, close_all, wait_all_closed

CONNECTIONS = 200
PIPELINED = 20
READ_RATE = 64  # bytes per second per connection
RCVBUF = 64 * 1024  # the attacker's receive buffer, kept small so the host's memory is not the test
GRACE_S = 6  # past the window: room for the second window the docstring allows


def slow_read(target, rate: int) -> tuple[bool, str]:
    request = f"GET {target.big_path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode() * PIPELINED
    socks = []
    for _ in range(CONNECTIONS):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.settimeout(5)
        s.connect((target.host, target.http_port))
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
    tick_s = 0.25
    last = [time.monotonic()]

    def read_slowly():
        if not rate or time.monotonic() - last[0] < tick_s:
            return
        last[0] = time.monotonic()
        for s in socks:
            try:
                s.recv(int(rate * tick_s))
            except OSError:
                pass

    window = target.send_window_s
    limit = min(harness.MAX_WAIT_S, (window if window is not None else 10) + GRACE_S)
    start = time.monotonic()
    still_open, took = wait_all_closed(socks, limit, tick=read_slowly)
    close_all(socks)
    asked = CONNECTIONS * PIPELINED * target.big_size / 2**20
    what = f"{CONNECTIONS}x{PIPELINED} GET {target.big_path} ({asked:.0f} MiB asked)"
    if still_open:
        return False, f"{what}; {still_open}/{CONNECTIONS} still open after {took:.1f} s"
    return True, f"{what}; all closed {time.monotonic() - start:.1f} s in"


ATTACKS = [
    Attack("h1_slow_read_pipelined__closed_within_send_window", lambda t: slow_read(t, READ_RATE)),
    Attack("h1_never_read_pipelined__closed_within_send_window", lambda t: slow_read(t, 0)),
]
