"""CONTINUATION floods: a header block that never ends, in large frames (memory) or in
empty ones (CPU). Expected: servy ends the connection with a GOAWAY."""

import time

from harness import (CONTINUATION, GOAWAY, HEADERS, PREFACE, Attack, ERROR_NAMES, FrameReader, frame, goaway_code, h2c_connect,
                     hpack_get, hpack_len, settings, wait_for_goaway)

SECONDS = 8
MAX_FRAMES = 200_000


def continuation_flood(target, frame_bytes: int) -> tuple[bool, str]:
    sock = h2c_connect(target)
    reader = FrameReader(sock)
    sock.sendall(PREFACE + settings() + frame(HEADERS, 0, 1, hpack_get()))
    # One literal header field, never indexed, of 'a's, filling the frame.
    chunk = b""
    if frame_bytes:
        value = frame_bytes - 8
        chunk = b"\x10" + hpack_len(1) + b"a" + hpack_len(value) + b"a" * value
    one = frame(CONTINUATION, 0, 1, chunk)
    batch = one * max(1, 65536 // len(one))
    sent, start, code = 0, time.monotonic(), None
    sent_bytes = 0
    try:
        while time.monotonic() - start < SECONDS and sent < MAX_FRAMES:
            sock.sendall(batch)
            sent += len(batch) // len(one)
            sent_bytes += len(batch)
            if not reader.feed(0.001):
                break
            codes = [goaway_code(p) for k, _, _, p in reader.frames() if k == GOAWAY]
            if codes:
                code = codes[0]
                break
    except OSError as e:
        reader.close_reason = type(e).__name__  # what servy sent before closing may still be unread
    state = f"closed: {reader.close_reason}"
    if code is None:
        code, state = wait_for_goaway(reader, 3)
    took = time.monotonic() - start
    sock.close()
    what = f"after {sent} frames ({sent_bytes // 1024} KiB) in {took:.1f} s"
    if code is not None:
        return True, f"GOAWAY {ERROR_NAMES.get(code, code)} {what}"
    return False, f"no GOAWAY {what}, {state}"


ATTACKS = [
    Attack("continuation_flood_large__goaway", lambda t: continuation_flood(t, 16384)),
    Attack("continuation_flood_empty__goaway", lambda t: continuation_flood(t, 0)),
]
