"""HPACK bomb: one 4 KB header put in the dynamic table, then referenced by a one-byte
index thousands of times: a 16 KB frame that decodes to tens of MB. Expected: servy
refuses the header list (431, a reset or a GOAWAY) without decoding it into memory."""

import time

from harness import (END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, RST_STREAM, Attack, ERROR_NAMES,
                     FrameReader, frame, goaway_code, h2c_connect, hpack_get, hpack_len, settings)

VALUE_BYTES = 4000  # name + value + 32 fits the default 4096-byte table
REFERENCES = 16_000


def hpack_bomb(target) -> tuple[bool, str]:
    sock = h2c_connect(target)
    reader = FrameReader(sock)
    block = hpack_get()
    # Literal with incremental indexing, new name: becomes dynamic entry 62.
    block += b"\x40" + hpack_len(6) + b"x-bomb" + hpack_len(VALUE_BYTES) + b"b" * VALUE_BYTES
    first = block
    refs = b"\xbe" * REFERENCES  # indexed field 62 (0x80 | 62)
    # One HEADERS frame of at most 16 KB, then CONTINUATIONs of the references.
    out = PREFACE + settings() + frame(HEADERS, END_STREAM, 1, first)
    for i in range(0, len(refs), 16_000):
        last = i + 16_000 >= len(refs)
        out += frame(9, END_HEADERS if last else 0, 1, refs[i:i + 16_000])
    sock.sendall(out)
    outcome, start = None, time.monotonic()
    while time.monotonic() - start < 5 and outcome is None:
        if not reader.feed(0.2):
            outcome = f"closed: {reader.close_reason}"
            break
        for kind, flags, stream, payload in reader.frames():
            if kind == GOAWAY:
                outcome = f"GOAWAY {ERROR_NAMES.get(goaway_code(payload))}"
            elif kind == RST_STREAM:
                outcome = f"RST_STREAM {ERROR_NAMES.get(int.from_bytes(payload, 'big'))}"
            elif kind == HEADERS and stream == 1:
                # :status as the first byte: 0x88 = 200 (static), else a literal.
                outcome = "answered 200" if payload[:1] == b"\x88" else f"answered {payload[:8]!r}"
    sock.close()
    decoded_mb = REFERENCES * (VALUE_BYTES + 6) / 1e6
    outcome = outcome or "no answer in 5 s"
    ok = not outcome.startswith(("answered 200", "no answer"))
    return ok, f"{outcome} ({decoded_mb:.0f} MB if decoded)"


ATTACKS = [Attack("hpack_bomb__refused", hpack_bomb)]
