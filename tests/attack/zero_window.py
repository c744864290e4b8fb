"""Zero-window streams: a client that advertises a window of 0, asks for the largest file
on many streams and never opens the window, yet answers PINGs, so the connection looks
alive. Expected: servy abandons the stalled responses and closes within the send window."""

import time

import harness
from harness import (GOAWAY, HEADERS, PING, PREFACE, ACK, END_HEADERS, END_STREAM, Attack, FrameReader,
                     ERROR_NAMES, closed_by_peer, frame, goaway_code, h2c_connect, hpack_get, settings)

STREAMS = 20  # their HEADERS alone (~80 B each) stay under the 5 KiB a 5 s window needs
GRACE_S = 3


def zero_window(target) -> tuple[bool, str]:
    sock = h2c_connect(target)
    reader = FrameReader(sock)
    block = hpack_get(target.big_path)
    # SETTINGS_INITIAL_WINDOW_SIZE = 0: no stream may carry DATA until a WINDOW_UPDATE.
    out = PREFACE + settings({4: 0})
    out += b"".join(frame(HEADERS, END_HEADERS | END_STREAM, s, block) for s in range(1, 2 * STREAMS, 2))
    sock.sendall(out)
    window = target.send_window_s
    limit = min(harness.MAX_WAIT_S, (window if window is not None else 10) + GRACE_S)
    start, code, headers = time.monotonic(), None, 0
    while time.monotonic() - start < limit:
        alive = reader.feed(0.2)
        for kind, flags, stream, payload in reader.frames():
            if kind == GOAWAY:
                code = goaway_code(payload)
            elif kind == HEADERS:
                headers += 1
            elif kind == PING and not flags & ACK:
                sock.sendall(frame(PING, ACK, 0, payload))
        if not alive or closed_by_peer(sock):
            break
    took = time.monotonic() - start
    closed = reader.closed or closed_by_peer(sock)
    sock.close()
    what = f"{headers}/{STREAMS} responses started"
    if code is not None:
        what += f", GOAWAY {ERROR_NAMES.get(code, code)}"
    if closed:
        return True, f"{what}; closed {took:.1f} s in"
    return False, f"{what}; still open {took:.0f} s in"


ATTACKS = [Attack("zero_window_streams__closed_within_send_window", zero_window)]
