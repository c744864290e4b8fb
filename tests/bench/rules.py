#!/usr/bin/env python3
"""What the site's rule files cost per request: servy built with a generated site, and
built with the same site plus a 20-rule _headers and a 50-rule _redirects, loaded in
turn by wrk over the same paths and aliases. Everything else is bench.py's default run
(request log off, servy on one CPU, wrk on the other).

The rules are resolved at build time and at start-up, so a request should cost what it
did: the script fails when the median CPU per request with the rules is more than 3 %
above the median without them (issue 13's bound).

    tests/bench/rules.py                       # scale 0.2, 5 rounds of 10 s
    tests/bench/rules.py --rounds 3 --duration 5

What the rules do to the load: the _headers rule for /* adds four security headers to
every response (that is what a site ships them for); the other 19 rules match a few
sections or nothing. No _redirects rule names a path of the site or an alias, so every
request gets the same status in both builds, but each alias now first misses the exact
rule map, and each rule with a pattern is compiled and waiting behind the short links.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import statistics
import sys
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import report  # noqa: E402
from bench import build, log  # noqa: E402
from measure import Meter  # noqa: E402
from servers import Servy, Stub, settle  # noqa: E402

LIMIT = 1.03

HEADERS_EVERY_PATH = """/*
  Content-Security-Policy: default-src 'self'; img-src 'self' data:; base-uri 'self'; frame-ancestors 'self'
  Referrer-Policy: strict-origin-when-cross-origin
  X-Frame-Options: SAMEORIGIN
  Permissions-Policy: camera=(), microphone=(), geolocation=()
"""


def headers_file() -> str:
    """20 rules: one for every path, a few sections, and the rest for paths the site lacks."""
    rules = [HEADERS_EVERY_PATH]
    rules += [
        "/posts/*\n  X-Section: posts\n",
        "/posts/:slug\n  Link: </css/>; rel=preload; as=style\n",
        "/tags/*\n  X-Robots-Tag: noindex\n",
        "/categories/*\n  X-Robots-Tag: noindex\n",
        "/images/*\n  Cross-Origin-Resource-Policy: same-origin\n",
        "/index.xml\n  X-Feed: rss\n",
    ]
    rules += [f"/archive-{i}/:year/:slug\n  X-Archive: {i}\n" for i in range(13)]
    assert len(rules) == 20
    return "\n".join(rules)


def redirects_file() -> str:
    """50 rules: 25 exact, 15 with a splat, 10 with placeholders; none names a served path."""
    lines = [f"/old-page-{i}  /posts/  301" for i in range(25)]
    lines += [f"/old-section-{i}/*  /posts/:splat  301" for i in range(15)]
    lines += [f"/p{i}/:year/:slug  /posts/:slug/  302" for i in range(10)]
    assert len(lines) == 50
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description="CPU per request with and without _headers/_redirects.")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--out", type=Path, help="output dir (default tests/out/rules-<timestamp>)")
    args = ap.parse_args()

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"rules-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    gen = out / "site"
    if not (gen / "manifest.json").exists():
        subprocess.run([sys.executable, str(REPO / "tests/sitegen/sitegen.py"), "--out", str(gen),
                        "--scale", str(args.scale), "--seed", str(args.seed)], check=True, stdout=subprocess.DEVNULL)
    plain = gen / "site"
    ruled = out / "site-rules"
    if ruled.exists():
        shutil.rmtree(ruled)
    shutil.copytree(plain, ruled)
    (ruled / "_headers").write_text(headers_file())
    (ruled / "_redirects").write_text(redirects_file())
    request_paths = out / "requests.txt"
    request_paths.write_text((gen / "paths.txt").read_text() + (gen / "aliases.txt").read_text())

    variants = {}
    for name, site in (("without rules", plain), ("with rules", ruled)):
        servy_bin, stub_bin = build(site, out / "bin" / name.replace(" ", "-"))
        variants[name] = servy_bin
    stub = Stub(stub_bin, gen / "redirects.txt", out, args.client_cpu)
    source = stub.start()
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    failed = 0
    try:
        for rnd in range(args.rounds):
            names = list(variants)
            order = names if rnd % 2 == 0 else names[::-1]
            for name in order:
                server = Servy(out / name.replace(" ", "-"), args.server_cpu, variants[name], source, False)
                server.start()
                settle(1.0)
                try:
                    with Meter(server.pid) as meter:
                        result = loads.wrk(server.url, request_paths, args.connections, args.duration,
                                           args.client_cpu, out / "runs" / f"r{rnd + 1}-{name.replace(' ', '-')}")
                    run = dict(result, cpu_s=meter.usage.cpu_s, rss_anon_peak_kib=0, rss_peak_kib=0)
                    d = report.derive(run)
                    cpu[name].append(d["cpu_us_per_req"])
                    failed += run["failed"] + (0 if run["requests"] else 1)
                    log(f"round {rnd + 1} {name}: {d['req_per_s']:,.0f} req/s, CPU {d['cpu_us_per_req']:.2f} µs/req, "
                        f"failed {run['failed']}")
                finally:
                    server.stop()
                settle()
    finally:
        stub.stop()

    base = statistics.median(cpu["without rules"])
    with_rules = statistics.median(cpu["with rules"])
    ratio = with_rules / base
    print(f"| build | CPU µs/request (median of {args.rounds}) | runs |")
    print("|---|---|---|")
    for name in variants:
        runs = ", ".join(f"{c:.2f}" for c in cpu[name])
        print(f"| {name} | {statistics.median(cpu[name]):.2f} | {runs} |")
    print(f"\nwith/without: {ratio:.3f} (limit {LIMIT})")
    if failed:
        log(f"FAILED: {failed} failed requests or empty runs")
        return 1
    if ratio > LIMIT:
        log(f"FAILED: the rules cost {100 * (ratio - 1):.1f} % CPU per request (limit {100 * (LIMIT - 1):.0f} %)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
