"""SETTINGS and PING floods from a client that never reads: every frame asks for an
acknowledgement, which piles up in servy's send path. servy stops reading such a
connection (back-pressure); expected: it also closes it within the send window."""

import time

import harness
from harness import PING, PREFACE, Attack, frame, h2c_connect, settings, wait_all_closed

FLOOD_S = 4  # at most this long, or until servy stops reading
STALLED_S = 1  # a send blocked this long means servy stopped reading
GRACE_S = 3  # beyond the send window, for the timer's tick and the close


def control_flood(target, one: bytes) -> tuple[bool, str]:
    sock = h2c_connect(target, rcvbuf=4096)  # a small window: servy's replies back up fast
    sock.sendall(PREFACE + settings())
    sock.setblocking(False)
    batch = one * 1000
    sent, start, blocked_since = 0, time.monotonic(), None
    view = memoryview(b"")
    while time.monotonic() - start < FLOOD_S:
        if not view:
            view = memoryview(batch)
        try:
            n = sock.send(view)
            view, sent, blocked_since = view[n:], sent + n, None
        except BlockingIOError:
            blocked_since = blocked_since or time.monotonic()
            if time.monotonic() - blocked_since > STALLED_S:
                break
            time.sleep(0.01)
        except OSError:
            break
    flood_s = time.monotonic() - start
    stalled = blocked_since is not None
    window = target.send_window_s
    limit = (window if window is not None else 10) + GRACE_S
    still_open, waited = wait_all_closed([sock], max(0.1, min(limit, harness.MAX_WAIT_S + 1 - flood_s)))
    sock.close()
    frames = sent // len(one)
    what = f"{frames} frames sent, servy {'stopped reading' if stalled else 'kept reading'}"
    if still_open:
        return False, f"{what}; still open {flood_s + waited:.0f} s in"
    return True, f"{what}; closed {flood_s + waited:.1f} s in"


ATTACKS = [
    Attack("settings_flood_unread__closed_within_send_window", lambda t: control_flood(t, settings({1: 4096}))),
    Attack("ping_flood_unread__closed_within_send_window", lambda t: control_flood(t, frame(PING, 0, 0, b"12345678"))),
]
