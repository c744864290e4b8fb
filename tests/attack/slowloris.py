"""Slowloris: 200 connections each sending a request head a few bytes a second, never
finishing it. Expected: servy answers 408 or closes each one when the header read timeout
([limits] header_read_timeout) runs out."""

import socket
import time

from harness import Attack, close_all, wait_all_closed

CONNECTIONS = 200
GRACE_S = 2


def slowloris(target) -> tuple[bool, str]:
    socks = []
    for _ in range(CONNECTIONS):
        s = socket.create_connection((target.host, target.http_port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        socks.append(s)
    counter = [0]
    last = [time.monotonic()]

    def trickle():
        # One more header byte on each connection every half second.
        if time.monotonic() - last[0] < 0.5:
            return
        last[0] = time.monotonic()
        counter[0] += 1
        for s in socks:
            try:
                s.send(b"X-a: b\r\n"[counter[0] % 8:counter[0] % 8 + 1])
            except OSError:
                pass

    start = time.monotonic()
    still_open, took = wait_all_closed(socks, target.header_timeout_s + GRACE_S, tick=trickle)
    answered_408 = 0
    for s in socks:
        try:
            s.settimeout(0.01)
            answered_408 += s.recv(64).startswith(b"HTTP/1.1 408")
        except OSError:
            pass
    close_all(socks)
    what = f"{answered_408} got 408"
    if still_open:
        return False, f"{what}; {still_open}/{CONNECTIONS} still open after {took:.1f} s"
    return True, f"{what}; {CONNECTIONS}/{CONNECTIONS} closed {time.monotonic() - start:.1f} s in"


ATTACKS = [Attack("slowloris_headers__closed_at_header_timeout", slowloris)]
