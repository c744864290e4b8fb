"""Request-smuggling shapes: heads that two HTTP/1.1 parsers could frame differently, each
followed by a second request (`GET /smuggled`) that a confused server would answer.
Expected: exactly one 4xx (the status the test's name says) and a close; the smuggled request is never answered."""

import socket
import time

from harness import Attack

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
SHAPES = {
    # Both framings: RFC 9112 §6.1 lets the server use Transfer-Encoding, then it must close.
    "cl_te": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_cl": b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "two_content_lengths": b"Content-Length: 0\r\nContent-Length: 44\r\n\r\n",
    "obs_fold": b"X-a: b\r\n Content-Length: 44\r\n\r\n",
    "space_before_colon": b"Content-Length : 44\r\n\r\n",
    "unknown_transfer_coding": b"Transfer-Encoding: gzip\r\n\r\n",
}
ROUNDS = 20  # each shape this many times, on fresh connections


def smuggle(target, shape: bytes, expect: str) -> tuple[bool, str]:
    statuses: dict[str, int] = {}
    bad = []
    for _ in range(ROUNDS):
        s = socket.create_connection((target.host, target.http_port), timeout=5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\n" + shape + SMUGGLED)
        data, closed, deadline = b"", False, time.monotonic() + 3
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
        s.close()
        lines = [line.decode(errors="replace") for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.")]
        for line in lines:
            statuses[line[9:12]] = statuses.get(line[9:12], 0) + 1
        if len(lines) != 1 or lines[0][9:12] != expect or not closed:
            bad.append(f"{lines or 'no response'}{'' if closed else ', left open'}")
    seen = ", ".join(f"{n}x {code}" for code, n in sorted(statuses.items()))
    if bad:
        return False, f"{seen}; {len(bad)} wrong, e.g. {bad[0]}"
    return True, f"{seen}, each closed, smuggled request never answered"


ATTACKS = [
    Attack("smuggle_cl_te__405_then_close", lambda t: smuggle(t, SHAPES["cl_te"], "405")),
    Attack("smuggle_te_cl__405_then_close", lambda t: smuggle(t, SHAPES["te_cl"], "405")),
    Attack("smuggle_two_content_lengths__400", lambda t: smuggle(t, SHAPES["two_content_lengths"], "400")),
    Attack("smuggle_obs_fold__400", lambda t: smuggle(t, SHAPES["obs_fold"], "400")),
    Attack("smuggle_space_before_colon__400", lambda t: smuggle(t, SHAPES["space_before_colon"], "400")),
    Attack("smuggle_unknown_transfer_coding__400", lambda t: smuggle(t, SHAPES["unknown_transfer_coding"], "400")),
]
