#!/usr/bin/env python3
"""CPU and write syscalls per request, by protocol: servy, h2o, nginx and the hyper floor
over HTTP/2 and HTTP/1.1, with and without TLS, on the same bytes.

h2load sends -n requests over -c 10 connections with -m 10 streams each (HTTP/1.1:
pipelined 10 deep) cycling over the demo site's 7 main paths, the 158 KB search index
included, with `accept-encoding: identity`, so every server sends the same bytes (the
floor answers 4 KiB from memory: the cost of the stack alone). Each server runs pinned
to one CPU (one process or one thread: nginx one worker, h2o `num-threads: 1`, the floor
on tokio's current-thread runtime; servy as shipped, its runtime sized by the one CPU
it is given), h2load on the other. Per request: user and kernel CPU time of the server's
whole process tree (/proc/PID/stat) and its write syscalls (`syscw`, /proc/PID/io).

    cargo build --release -p servy --bin servy --example hyper_floor
    tests/bench/protocols.py [--requests 50000] [--rounds 2]

`--baseline BIN` adds `servy-base`, a servy built from another commit, run right after
servy in every round, so a change is compared in one run. `--accept-encoding 'br, gzip'`
loads the compressed variants instead (each server then sends what it chooses), and
`--connections 100 --streams 100` a heavier load; each run also prints the 99th
percentile of h2load's request times (from its --log-file).

Logs are off everywhere (servy `log.requests = false`, nginx `access_log off`, h2o
without `access-log`). nginx-light serves no h2c, and h2load's pipelined HTTP/1.1 is the
same load for all. Prints a Markdown table (also report.md in --out); exits 1 if any
request failed, 2 on setup errors. Needs: h2load (nghttp2-client), nginx, h2o, openssl,
taskset.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from bench import log  # noqa: E402
from https import NginxTls, ServyTls  # noqa: E402
from measure import cpu_seconds, process_tree  # noqa: E402
from servers import Floor, H2o, Nginx, Servy, precompress, settle  # noqa: E402

PATHS = ["/", "/blog/", "/blog/first-post/", "/style.css", "/assets/app.3f2a9c1e.css", "/assets/site.js",
         "/search-index.json"]
# (label, TLS, HTTP/1.1): the table's columns.
PROTOCOLS = [("HTTP/2 over TLS", True, False), ("HTTP/1.1 over TLS", True, True), ("h2c", False, False),
             ("HTTP/1.1, pipelined", False, True)]
SERVERS = ["servy", "servy-base", "h2o", "nginx", "floor"]


def writes(pid: int) -> int:
    """Write syscalls so far (syscw) of pid's process tree."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                total += int(re.search(r"^syscw: (\d+)", f.read(), re.M).group(1))
        except OSError:
            continue
    return total


def h2load(url: str, h1: bool, requests: int, cpu: int, args: argparse.Namespace) -> tuple[int, str, float]:
    """Failed requests, the protocol h2load negotiated, and the p99 request time in ms."""
    fd, log_file = tempfile.mkstemp(prefix="h2load-", suffix=".log")
    os.close(fd)
    cmd = ["taskset", "-c", str(cpu), "h2load", "-n", str(requests), "-c", str(args.connections),
           "-m", str(args.streams), "-H", f"accept-encoding: {args.accept_encoding}", "--log-file", log_file
           ] + (["--h1"] if h1 else []) + [url + p for p in PATHS]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        # One line per request: start (µs since the epoch), status, time taken (µs).
        with open(log_file) as f:
            took = sorted(int(line.split()[2]) for line in f if line.strip())
    finally:
        os.unlink(log_file)
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", proc.stdout)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"h2load failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}{proc.stderr[-500:]}")
    protocol = re.search(r"Application protocol: (\S+)", proc.stdout)
    done, ok = int(m.group(1)), int(m.group(2))
    p99 = took[min(len(took) - 1, len(took) * 99 // 100)] / 1000 if took else float("nan")
    return done - ok, protocol.group(1) if protocol else "?", p99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servy", type=Path, default=REPO / "server" / "target" / "release" / "servy")
    ap.add_argument("--baseline", type=Path, help="servy built from another commit: adds servy-base")
    ap.add_argument("--accept-encoding", default="identity")
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--streams", type=int, default=10, help="per connection (HTTP/1.1: pipelined)")
    ap.add_argument("--floor", type=Path, default=REPO / "server" / "target" / "release" / "examples" / "hyper_floor")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--requests", type=int, default=50000, help="per run (HTTP/1.1 runs send half)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    for tool in ("h2load", "nginx", "h2o", "openssl", "taskset"):
        if not shutil.which(tool):
            log(f"{tool} not found")
            return 2
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.baseline and "servy-base" not in servers:
        servers.insert(servers.index("servy") + 1 if "servy" in servers else 0, "servy-base")
    if "servy-base" in servers and not args.baseline:
        ap.error("servy-base needs --baseline BIN")
    if set(servers) - set(SERVERS):
        ap.error(f"unknown server: {', '.join(set(servers) - set(SERVERS))}")
    args.servy, args.floor = args.servy.resolve(), args.floor.resolve()
    if args.baseline:
        args.baseline = args.baseline.resolve()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"protocols-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    cert, key = out / "cert.pem", out / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    site = out / "site"
    if not site.exists():
        precompress(REPO / "server" / "demo-site", site)

    def make(name: str, tls: bool):
        workdir = out / f"{name}-{'tls' if tls else 'plain'}"
        cpu = args.server_cpu
        if name in ("servy", "servy-base"):
            binary = args.servy if name == "servy" else args.baseline
            if tls:
                return ServyTls(workdir, cpu, binary, "", False, "", False, cert=cert, key=key)
            return Servy(workdir, cpu, binary, "", False, request_log=False)
        if name == "nginx":
            return NginxTls(workdir, cpu, site, [], cert=cert, key=key) if tls else Nginx(workdir, cpu, site, [])
        if name == "h2o":
            return H2o(workdir, cpu, site, [], tls=(cert, key) if tls else None)
        return Floor(workdir, cpu, args.floor, "current-thread", (cert, key) if tls else None)

    results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    failed = 0
    for rnd in range(args.rounds):
        for name in servers:
            for label, tls, h1 in PROTOCOLS:
                if name == "nginx" and not tls and not h1:
                    continue  # nginx-light serves no h2c on a plain listener shared with HTTP/1.1
                server = make(name, tls)
                server.start()
                settle(0.5)
                try:
                    url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{server.port}"
                    n = args.requests // 2 if h1 else args.requests
                    h2load(url, h1, min(n, 2000), args.client_cpu, args)  # warm-up
                    user0, sys0 = cpu_seconds(server.pid)
                    w0 = writes(server.pid)
                    bad, protocol, p99 = h2load(url, h1, n, args.client_cpu, args)
                    user1, sys1 = cpu_seconds(server.pid)
                    w1 = writes(server.pid)
                finally:
                    server.stop()
                failed += bad
                row = ((user1 - user0) / n * 1e6, (sys1 - sys0) / n * 1e6, (w1 - w0) / n, p99)
                log(f"r{rnd + 1} {name} {label} ({protocol}): user {row[0]:.1f} µs, kernel {row[1]:.1f} µs, "
                    f"{row[2]:.2f} writes per request, p99 {p99:.2f} ms, {bad} failed")
                results.setdefault((name, label), []).append(row)
                settle(0.5)

    md = [f"# CPU per request by protocol, {stamp}", "",
          f"h2load -n {args.requests} (HTTP/1.1: {args.requests // 2}) -c {args.connections} -m {args.streams} "
          f"over {len(PATHS)} paths, accept-encoding: {args.accept_encoding}; server on CPU {args.server_cpu}, h2load on CPU {args.client_cpu}; "
          f"{args.rounds} round(s), lowest and highest shown. Cells: total µs (user + kernel) per request "
          "[writes per request].", "",
          "| server | " + " | ".join(p[0] for p in PROTOCOLS) + " |", "|---|" + "---:|" * len(PROTOCOLS)]
    for name in servers:
        cells = []
        for label, _, _ in PROTOCOLS:
            rows = results.get((name, label))
            if not rows:
                cells.append("–")
                continue
            totals = sorted(u + k for u, k, _, _ in rows)
            span = f"{totals[0]:.1f}" if len(totals) == 1 else f"{totals[0]:.1f}–{totals[-1]:.1f}"
            user = min(u for u, _, _, _ in rows)
            kernel = min(k for _, k, _, _ in rows)
            cells.append(f"{span} ({user:.1f} + {kernel:.1f}) [{min(w for _, _, w, _ in rows):.2f}]")
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    md += ["", "p99 of h2load's request times, ms (range over the rounds):", "",
           "| server | " + " | ".join(p[0] for p in PROTOCOLS) + " |", "|---|" + "---:|" * len(PROTOCOLS)]
    for name in servers:
        cells = []
        for label, _, _ in PROTOCOLS:
            p99s = sorted(r[3] for r in results.get((name, label), []))
            cells.append("–" if not p99s else f"{p99s[0]:.2f}" if len(p99s) == 1 else f"{p99s[0]:.2f}–{p99s[-1]:.2f}")
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    md += ["", "(user + kernel) are the lowest of the rounds; servy and nginx with logs off, h2o without "
           "access-log; the floor answers 4 KiB from memory."]
    (out / "report.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
