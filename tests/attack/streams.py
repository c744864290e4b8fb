"""More streams than advertised: 300 streams opened before servy's SETTINGS could be read,
each left half-open (no END_STREAM), past SETTINGS_MAX_CONCURRENT_STREAMS (128).
Expected: the excess streams are refused with RST_STREAM REFUSED_STREAM."""

import time

from harness import (END_HEADERS, GOAWAY, HEADERS, PREFACE, RST_STREAM, SETTINGS, Attack, ERROR_NAMES,
                     FrameReader, frame, goaway_code, h2c_connect, hpack_get, settings)

STREAMS = 300


def too_many_streams(target) -> tuple[bool, str]:
    sock = h2c_connect(target)
    reader = FrameReader(sock)
    block = hpack_get()
    out = PREFACE + settings()
    out += b"".join(frame(HEADERS, END_HEADERS, s, block) for s in range(1, 2 * STREAMS, 2))
    sock.sendall(out)
    refused, resets, responses, code, limit = 0, 0, 0, None, None
    start = time.monotonic()
    while time.monotonic() - start < 5 and refused + responses < STREAMS and code is None:
        if not reader.feed(0.2):
            break
        for kind, flags, stream, payload in reader.frames():
            if kind == RST_STREAM:
                resets += 1
                refused += int.from_bytes(payload, "big") == 7
            elif kind == HEADERS:
                responses += 1
            elif kind == SETTINGS and payload:
                for i in range(0, len(payload), 6):
                    if int.from_bytes(payload[i:i + 2], "big") == 3:
                        limit = int.from_bytes(payload[i + 2:i + 6], "big")
            elif kind == GOAWAY:
                code = goaway_code(payload)
    sock.close()
    what = f"advertised {limit}; {responses} answered, {refused} REFUSED_STREAM of {resets} resets"
    if code is not None:
        what += f", GOAWAY {ERROR_NAMES.get(code, code)}"
    ok = limit is not None and refused >= STREAMS - limit and responses <= limit
    return ok, what


ATTACKS = [Attack("streams_over_max_concurrent__rst_refused_stream", too_many_streams)]
