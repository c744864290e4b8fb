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

    tests/bench/instructions.py --servy server/target/release/servy [--requests 3000]
"""

from __future__ import annotations

import argparse
import datetime
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
from servers import Servy  # noqa: E402

REQUEST = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: k6/1.1.0\r\nAccept-Encoding: br, gzip\r\n\r\n"


class Callgrind(Servy):
    """servy as the runner configures it, started under callgrind."""

    def __init__(self, workdir: Path, binary: Path, name: str, **variant):
        super().__init__(workdir, 0, binary, redirects_source="", profiling=False, name=name, **variant)

    def command(self) -> list[str]:
        out = self.workdir / "callgrind.%p.out"
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + super().command()


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
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def measure(server: Callgrind, paths: list[str], requests: int, warmup: int) -> tuple[int, str]:
    """Instructions counted over `requests` requests, and callgrind_annotate's inclusive list."""
    server.start(timeout=120)
    try:
        send(server.port, paths, warmup)
        callgrind_control("-z", str(server.pid))
        send(server.port, paths, requests)
        callgrind_control("-d", str(server.pid))
    finally:
        server.stop()
    dumps = sorted(server.workdir.glob("callgrind.*.out.*"))
    if not dumps:
        raise RuntimeError(f"{server.name}: callgrind wrote no dump in {server.workdir}")
    text = dumps[-1].read_text(errors="replace")
    total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not total:
        raise RuntimeError(f"{server.name}: no totals in {dumps[-1]}")
    annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dumps[-1])],
                              capture_output=True, text=True, check=True).stdout
    return int(total.group(1)), annotate


def top_functions(annotate: str, n: int) -> list[str]:
    """The first n function lines of callgrind_annotate's inclusive list (the thread and
    runtime frames every request passes through come first)."""
    rows = [l.strip() for l in annotate.splitlines() if re.match(r"\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", l)]
    rows = [r for r in rows if "PROGRAM TOTALS" not in r]
    return rows[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servy", type=Path, default=REPO / "server" / "target" / "release" / "servy")
    ap.add_argument("--variants", default="servy,servy-nolog", help="comma list of " + ",".join(SERVY_VARIANTS))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--top", type=int, default=40, help="functions listed per variant in report.md")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if not shutil.which(tool):
            log(f"{tool} not found (Debian: apt install valgrind)")
            return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in SERVY_VARIANTS]
    if unknown:
        ap.error(f"unknown variant: {', '.join(unknown)}")
    if not args.servy.exists():
        ap.error(f"{args.servy} does not exist: build it (cargo build --release -p servy) or pass --servy")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"instructions-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)

    listed = subprocess.run([str(args.servy), "--list-assets"], capture_output=True, text=True, check=True).stdout
    paths = [p for p in listed.split() if p.startswith("/")]
    if not paths:
        raise RuntimeError("servy --list-assets listed no paths")

    md = [f"# servy: instructions per request (callgrind), {stamp}", "",
          f"{args.requests} GETs over one keep-alive connection, cycling over {len(paths)} embedded files, "
          f"`Accept-Encoding: br, gzip`, after {args.warmup} to warm up. User space only.", "",
          "| variant | instructions / request |", "|---|---:|"]
    details = []
    for name in variants:
        log(f"{name}: under callgrind")
        total, annotate = measure(Callgrind(out / name, args.servy, name, **SERVY_VARIANTS[name]),
                                  paths, args.requests, args.warmup)
        per_request = total / args.requests
        log(f"{name}: {per_request:,.0f} instructions per request")
        md.append(f"| {name} | {per_request:,.0f} |")
        details += ["", f"## {name}: largest inclusive shares", "", "```", *top_functions(annotate, args.top), "```"]
    (out / "report.md").write_text("\n".join(md + details) + "\n")
    print("\n".join(md))
    log(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
