#!/usr/bin/env python3
"""servy's instructions per request, counted by valgrind's callgrind: a figure that does
not move with the machine's noise, for work on servy's own (user-space) cost.

CPU time per request on a shared machine moves by several microseconds from run to run,
more than most changes to servy's code are worth; callgrind counts the instructions
servy executes, which repeat exactly for the same binary and requests. It counts user
space only: the kernel's share (most of servy's CPU, see docs/benchmarks.md "Zero-copy: the targets
and the kernel's floor") is not in it.

For each variant (the runner's `servy` and `servy-nolog` by default) it starts servy
under callgrind, warms it up, zeroes the counters, sends --requests GETs over one
keep-alive connection cycling over every embedded file (`servy --list-assets`) with a
browser's `Accept-Encoding: br, gzip`, dumps the counters and prints the instructions
per request. `report.md` in --out lists each variant's functions with the largest
inclusive share.

The same load is sent to the peers (--peers), each with and without its access log
where it has one: nginx (`access_log … buffer=64k` / `off`, sendfile, one worker) and
h2o (`num-threads: 1`, `access-log` to a file / none), serving the same files from disk
with their precompressed .gz copies; and the floor, servy's stack alone (hyper 1 + tokio
answering 4 KiB from memory with 5 fixed headers, the `hyper_floor` example) on tokio's
current-thread and multi-thread runtimes. nginx forks its worker and h2o a helper
process: callgrind follows them (--trace-children=yes) and a server's count is the sum
over its whole process tree, zeroed and dumped together. It prints, for both log
settings, servy / nginx, servy / h2o and servy − floor (the instructions that are
servy's own).

With --site-headers nginx and h2o add to every response the headers servy sends on the
demo site beyond a file server's usual ones (the `/*` block of its `_headers` and servy's
`X-Content-Type-Options: nosniff`), so that each server sends the same policy.

    cargo build --release -p servy --bin servy --example hyper_floor
    tests/bench/instructions.py --servy server/target/release/servy [--requests 3000] [--site-headers]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from bench import SERVY_VARIANTS, log  # noqa: E402
from measure import process_tree  # noqa: E402
from servers import Floor, H2o, Nginx, Server, Servy, precompress  # noqa: E402

SITE = REPO / "server" / "demo-site"

REQUEST = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: k6/1.1.0\r\nAccept-Encoding: br, gzip\r\n\r\n"


class NginxSameUser(Nginx):
    """nginx whose worker keeps the runner's user: callgrind_control cannot reach a
    worker that switched to nobody, nor can it write its dump into the runner's files."""

    def command(self) -> list[str]:
        cmd = super().command()
        if os.geteuid() == 0:
            conf = self.workdir / "nginx" / "nginx.conf"
            conf.write_text("user root;\n" + conf.read_text())
        return cmd


def site_headers() -> list[tuple[str, str]]:
    """What servy adds to every response of the demo site beyond a file server's usual
    headers: the `/*` block of the site's `_headers` and servy's own default,
    `X-Content-Type-Options: nosniff` (docs/headers-and-rules.md). With --site-headers the
    peers send them too, as an admin moving the site to them would configure."""
    headers, in_block = [], False
    for line in (SITE / "_headers").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            in_block = line.strip() == "/*"
        elif in_block:
            name, _, value = line.strip().partition(":")
            headers.append((name.strip(), value.strip()))
    if not headers:
        raise RuntimeError(f"{SITE / '_headers'} has no /* block")
    return headers + [("X-Content-Type-Options", "nosniff")]


def under_callgrind(server: Server) -> Server:
    """server, started under callgrind, which follows its forks and execs."""
    plain = server.command

    def command() -> list[str]:
        out = server.workdir / "callgrind.%p.out"
        return ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}"] + plain()

    server.command = command
    return server


def read_response(f) -> None:
    """Reads one Content-Length framed response, failing on anything but 200."""
    status = f.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response: {status!r}")
    length = 0
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    f.read(length)


def send(port: int, paths: list[str], n: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn, conn.makefile("rb") as f:
        for i in range(n):
            conn.sendall(REQUEST.format(path=paths[i % len(paths)]).encode())
            read_response(f)


def callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=60)


def under_valgrind(pid: int) -> bool:
    """Whether pid runs under callgrind: h2o's helper is a perl script that h2o spawns in
    a way valgrind does not follow; it takes no part in answering requests."""
    try:
        return "callgrind" in os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False


def measure(server: Server, paths: list[str], requests: int, warmup: int) -> tuple[int, str]:
    """Instructions counted over `requests` requests in the server's whole process tree,
    and callgrind_annotate's inclusive list of its busiest process."""
    server.start(timeout=120)
    try:
        send(server.port, paths, warmup)
        tree = [pid for pid in process_tree(server.pid) if under_valgrind(pid)]
        for pid in tree:
            callgrind_control("-z", str(pid))
        send(server.port, paths, requests)
        for pid in tree:
            callgrind_control("-d", str(pid))
    finally:
        server.stop()
    totals = {}
    for pid in tree:
        dumps = sorted(server.workdir.glob(f"callgrind.{pid}.out.*"))
        if not dumps:
            raise RuntimeError(f"{server.name}: callgrind wrote no dump for {pid} in {server.workdir}")
        text = dumps[-1].read_text(errors="replace")
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if not total:
            raise RuntimeError(f"{server.name}: no totals in {dumps[-1]}")
        totals[dumps[-1]] = int(total.group(1))
    busiest = max(totals, key=totals.get)
    annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(busiest)],
                              capture_output=True, text=True, check=True).stdout
    return sum(totals.values()), annotate


def top_functions(annotate: str, n: int) -> list[str]:
    """The first n function lines of callgrind_annotate's inclusive list (the thread and
    runtime frames every request passes through come first)."""
    rows = [l.strip() for l in annotate.splitlines() if re.match(r"\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", l)]
    rows = [r for r in rows if "PROGRAM TOTALS" not in r]
    return rows[:n]


# Each peer with its log on and off; the floor has no log, on either runtime.
PEERS = ["nginx-log", "nginx", "h2o-log", "h2o", "floor-current-thread", "floor-multi-thread"]


def comparison(counts: dict[str, float]) -> list[str]:
    """servy against each peer, for both log settings: ratios, and the difference to the floor."""
    settings = [("log on", "servy", "nginx-log", "h2o-log"), ("log off", "servy-nolog", "nginx", "h2o")]
    rows = [("servy / nginx", lambda s, n, h: counts[s] / counts[n] if n in counts else None, "{:.2f}"),
            ("servy / h2o", lambda s, n, h: counts[s] / counts[h] if h in counts else None, "{:.2f}")]
    for floor in ("floor-current-thread", "floor-multi-thread"):
        rows.append((f"servy − {floor}", lambda s, n, h, f=floor: counts[s] - counts[f] if f in counts else None,
                     "{:,.0f}"))
    md = ["", "| servy against | " + " | ".join(s[0] for s in settings) + " |", "|---|" + "---:|" * len(settings)]
    for label, value, fmt in rows:
        cells = []
        for _, s, n, h in settings:
            v = value(s, n, h) if s in counts else None
            cells.append("–" if v is None else fmt.format(v))
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servy", type=Path, default=REPO / "server" / "target" / "release" / "servy")
    ap.add_argument("--variants", default="servy,servy-nolog", help="comma list of " + ",".join(SERVY_VARIANTS))
    ap.add_argument("--peers", default=",".join(PEERS), help="comma list of " + ",".join(PEERS) + " (or none)")
    ap.add_argument("--floor", type=Path, default=REPO / "server" / "target" / "release" / "examples" / "hyper_floor")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--top", type=int, default=40, help="functions listed per variant in report.md")
    ap.add_argument("--site-headers", action="store_true",
                    help="nginx and h2o add the headers servy sends on every demo-site response (see site_headers)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    # The servers start in their own working directories.
    args.servy, args.floor = args.servy.resolve(), args.floor.resolve()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if not shutil.which(tool):
            log(f"{tool} not found (Debian: apt install valgrind)")
            return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    peers = [v.strip() for v in args.peers.split(",") if v.strip() and v.strip() != "none"]
    unknown = [v for v in variants if v not in SERVY_VARIANTS] + [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown variant: {', '.join(unknown)}")
    if not args.servy.exists():
        ap.error(f"{args.servy} does not exist: build it (cargo build --release -p servy) or pass --servy")
    if any(p.startswith("floor") for p in peers) and not args.floor.exists():
        ap.error(f"{args.floor} does not exist: cargo build --release -p servy --example hyper_floor, or pass --floor")
    for tool in {p.split("-")[0] for p in peers} - {"floor"}:
        if not shutil.which(tool):
            ap.error(f"{tool} not found (Debian: apt install {'nginx-light' if tool == 'nginx' else tool})")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"instructions-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)

    listed = subprocess.run([str(args.servy), "--list-assets"], capture_output=True, text=True, check=True).stdout
    paths = [p for p in listed.split() if p.startswith("/")]
    if not paths:
        raise RuntimeError("servy --list-assets listed no paths")

    site = out / "site"
    if any(p.startswith(("nginx", "h2o")) for p in peers) and not site.exists():
        precompress(SITE, site)

    extra = site_headers() if args.site_headers else []

    def server(name: str) -> Server:
        workdir = out / name
        if name in SERVY_VARIANTS:
            return Servy(workdir, 0, args.servy, redirects_source="", profiling=False, name=name,
                         **SERVY_VARIANTS[name])
        if name.startswith("nginx"):
            return NginxSameUser(workdir, 0, site, [], access_log=name == "nginx-log", headers=extra)
        if name.startswith("h2o"):
            return H2o(workdir, 0, site, [], access_log=name == "h2o-log", headers=extra)
        return Floor(workdir, 0, args.floor, name.removeprefix("floor-"))

    md = [f"# Instructions per request (callgrind), {stamp}", "",
          f"{args.requests} GETs over one keep-alive connection, cycling over {len(paths)} embedded files, "
          f"`Accept-Encoding: br, gzip`, after {args.warmup} to warm up. User space only; a server's "
          "whole process tree."
          + (" nginx and h2o add " + ", ".join(n for n, _ in extra) + " to every response, as servy sends."
             if extra else ""), "",
          "| server | instructions / request |", "|---|---:|"]
    details = []
    counts: dict[str, float] = {}
    for name in variants + peers:
        log(f"{name}: under callgrind")
        total, annotate = measure(under_callgrind(server(name)), paths, args.requests, args.warmup)
        counts[name] = total / args.requests
        log(f"{name}: {counts[name]:,.0f} instructions per request")
        md.append(f"| {name} | {counts[name]:,.0f} |")
        details += ["", f"## {name}: largest inclusive shares", "", "```", *top_functions(annotate, args.top), "```"]
    md += comparison(counts)
    (out / "report.md").write_text("\n".join(md + details) + "\n")
    print("\n".join(md))
    log(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
