#!/usr/bin/env python3
"""Hostile clients against a release servy: every attack in tests/attack/, each against a
fresh servy on loopback while a legitimate HTTP/1.1 client and a legitimate HTTP/2 (TLS)
client keep requesting `/`. Prints a table and exits non-zero if any attack fails.

usage: tests/attack/run.py SERVY [--only SUBSTRING ...] [--out DIR] [--shipped-timers]

--shipped-timers keeps servy's default timers (10 s header and handshake timeouts, 60 s
send window) and lets an attack wait past them, instead of the suite's shorter ones.

An attack passes when: the legitimate clients saw 0 failures, p99 < 50 ms and max < 250 ms;
servy is alive afterwards; its RSS grew by less than RSS_BOUND_MIB; and the attacker got
the outcome its name states (after `__`).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import continuation  # noqa: E402
import control_flood  # noqa: E402
import hpack_bomb  # noqa: E402
import rapid_reset  # noqa: E402
import slow_read  # noqa: E402
import slowloris  # noqa: E402
import smuggling  # noqa: E402
import streams  # noqa: E402
import tls_handshake  # noqa: E402
import zero_window  # noqa: E402
import harness  # noqa: E402
from harness import (REPO, LegitHttp1, LegitHttp2, Sampler, Servy, Target, accepts_send_window,  # noqa: E402
                     cpu_seconds, find_big_path, make_certificate, rss_bytes, SUITE_HTTPS, SUITE_LIMITS,
                     SUITE_SEND_WINDOW_S)

ALL = [a for m in (rapid_reset, continuation, control_flood, zero_window, streams, hpack_bomb, tls_handshake,
                   slow_read, slowloris, smuggling) for a in m.ATTACKS]

P99_MS, MAX_MS = 50, 250
# servy answers from memory it already holds (the embedded site) and keeps per connection
# only hyper's and h2's buffers (a few tens of KiB). The largest attacks hold 200
# connections: 32 MiB is ~160 KiB for each, room for buffers and allocator slack, and far
# below what holding the attackers' responses would cost (200 x 20 x 158 KB = 600 MiB).
RSS_BOUND_MIB = 32
SETTLE_S = 0.5  # legitimate traffic before and after each attack


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_one(attack, binary: Path, out: Path, certs: Path, send_window: bool, big: tuple[str, int],
            shipped: bool) -> dict:
    servy = Servy(binary, out / attack.name, certs, send_window, shipped)
    servy.start()
    pid = servy.proc.pid
    timers = dict(harness.SHIPPED_TIMERS_S) if shipped else {
        "header_read_timeout": float(SUITE_LIMITS["header_read_timeout"].strip('"s')),
        "handshake_timeout": float(SUITE_HTTPS["handshake_timeout"].strip('"s')),
        "send_window": float(SUITE_SEND_WINDOW_S)}
    target = Target("127.0.0.1", servy.http_port, servy.https_port, certs / "ca.pem", big[0], big[1],
                    header_timeout_s=timers["header_read_timeout"],
                    handshake_timeout_s=timers["handshake_timeout"],
                    send_window_s=timers["send_window"] if send_window else None, pid=pid)
    stop, stop_sampler = threading.Event(), threading.Event()
    legit = [LegitHttp1(target, stop), LegitHttp2(target, stop)]
    for c in legit:
        c.start()
    time.sleep(SETTLE_S)
    rss0, cpu0 = rss_bytes(pid), cpu_seconds(pid)
    sampler = Sampler(pid, (servy.http_port, servy.https_port), stop_sampler)
    sampler.start()
    start = time.monotonic()
    try:
        ok, outcome = attack.run(target)
    except Exception as e:  # an attack that breaks is a failed test, with the reason
        ok, outcome = False, f"attack raised {type(e).__name__}: {e}"
    attack_s = time.monotonic() - start
    time.sleep(SETTLE_S)
    stop.set()
    for c in legit:
        c.join(timeout=5)
    stop_sampler.set()
    sampler.join(timeout=5)
    alive = servy.alive()
    cpu = cpu_seconds(pid) - cpu0 if alive else float("nan")
    rss_delta = (max(sampler.peak_rss, rss_bytes(pid) if alive else 0) - rss0) / 2**20
    servy.stop()
    latencies = [x for c in legit for x in c.stats.latencies]
    failures = [f for c in legit for f in c.stats.failures]
    p99, worst = percentile(latencies, 99) * 1000, max(latencies, default=float("nan")) * 1000
    reasons = []
    if failures:
        reasons.append(f"{len(failures)} legit failures ({failures[0]})")
    if not p99 < P99_MS:
        reasons.append(f"legit p99 {p99:.0f} ms")
    if not worst < MAX_MS:
        reasons.append(f"legit max {worst:.0f} ms")
    if not alive:
        reasons.append("servy died")
    if not rss_delta < RSS_BOUND_MIB:
        reasons.append(f"RSS +{rss_delta:.0f} MiB")
    if not ok:
        reasons.append("attacker outcome")
    return {"attack": attack.name, "p99_ms": p99, "max_ms": worst, "requests": len(latencies),
            "failures": len(failures), "rss_delta_mib": rss_delta, "sendq_peak_mib": sampler.peak_sendq / 2**20,
            "cpu_s": cpu, "attack_s": attack_s, "outcome": outcome, "passed": not reasons, "reasons": reasons}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("servy", type=Path, help="a release servy binary")
    ap.add_argument("--only", nargs="*", default=[], help="run attacks whose name contains one of these")
    ap.add_argument("--out", type=Path, default=REPO / "tests/out/attack", help="logs and results.json")
    ap.add_argument("--shipped-timers", action="store_true", help="servy's default timers, not the suite's")
    args = ap.parse_args()
    if args.shipped_timers:
        harness.MAX_WAIT_S = harness.SHIPPED_TIMERS_S["send_window"] + 15
    binary = args.servy.resolve()
    attacks = [a for a in ALL if not args.only or any(s in a.name for s in args.only)]
    if not attacks:
        print(f"attack: no attack matches {args.only}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    certs = make_certificate(out / "certs")
    suite_start = time.monotonic()
    send_window = accepts_send_window(binary, out, certs)
    probe = Servy(binary, out / "probe", certs, send_window, args.shipped_timers)
    probe.start()
    big = find_big_path("127.0.0.1", probe.http_port)
    probe.stop()
    timers = ("servy's defaults" if args.shipped_timers else
              f"header_read_timeout and handshake_timeout 4 s, send_window {SUITE_SEND_WINDOW_S} s in this suite")
    print(f"attack: {binary}; largest file {big[0]} ({big[1]} bytes); timers: {timers}"
          f"{'' if send_window else '; limits.send_window unknown to this servy'}")
    results = []
    for attack in attacks:
        r = run_one(attack, binary, out, certs, send_window, big, args.shipped_timers)
        results.append(r)
        mark = "ok" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        print(f"  {attack.name}: {r['outcome']} ({r['attack_s']:.1f} s) {mark}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print()
    print("| attack | legit p99 / max ms | legit reqs, fails | RSS Δ MiB | send-q peak MiB | CPU s | attacker outcome | result |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['attack']} | {r['p99_ms']:.1f} / {r['max_ms']:.1f} | {r['requests']}, {r['failures']} "
              f"| {r['rss_delta_mib']:.1f} | {r['sendq_peak_mib']:.1f} | {r['cpu_s']:.2f} | {r['outcome']} "
              f"| {'pass' if r['passed'] else 'FAIL'} |")
    passed = sum(r["passed"] for r in results)
    print(f"\nattack: wall time {time.monotonic() - suite_start:.0f} s")
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
