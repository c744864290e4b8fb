"""TLS handshakes that never finish: 100 connections that send nothing, and 100 that send
half a ClientHello and stop. Expected: servy closes each one when the handshake timeout
([https] handshake_timeout) runs out."""

import socket
import ssl
import time

from harness import Attack, close_all, wait_all_closed

CONNECTIONS = 100
GRACE_S = 2


def client_hello(target) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = target.tls_context(["h2", "http/1.1"]).wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def stalled_handshakes(target, first_bytes: bytes) -> tuple[bool, str]:
    socks = []
    for _ in range(CONNECTIONS):
        s = socket.create_connection((target.host, target.https_port), timeout=5)
        if first_bytes:
            s.sendall(first_bytes)
        socks.append(s)
    limit = target.handshake_timeout_s + GRACE_S
    start = time.monotonic()
    still_open, took = wait_all_closed(socks, limit)
    close_all(socks)
    if still_open:
        return False, f"{still_open}/{CONNECTIONS} still open after {took:.1f} s"
    return True, f"{CONNECTIONS}/{CONNECTIONS} closed {time.monotonic() - start:.1f} s in"


def half_hello(target) -> tuple[bool, str]:
    hello = client_hello(target)
    return stalled_handshakes(target, hello[:len(hello) // 2])


ATTACKS = [
    Attack("tls_silent__closed_at_handshake_timeout", lambda t: stalled_handshakes(t, b"")),
    Attack("tls_half_client_hello__closed_at_handshake_timeout", half_hello),
]
