#!/usr/bin/env python3
"""servy's CPU per request over HTTP/3 against HTTP/2 over TLS, with the same client
(curl_cffi's libcurl), one connection, requests one after another.

For each protocol and round: a warm-up, then --requests GETs of --path on one connection;
servy's CPU (utime + stime from /proc/PID/stat) before and after, divided by the count.
Prints one line per round and the medians. A rough figure: one client, no concurrency,
clock ticks of 10 ms (so keep --requests in the thousands).

    tests/http3/cpu.py --servy server/target/release/servy [--requests 5000] [--rounds 3]
    tests/http3/cpu.py --servy OLD_SERVY --only HTTP/2     (a servy without HTTP/3)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from curl_cffi import CurlHttpVersion, requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check import REPO, Servy  # noqa: E402

# What curl reports as the version used (its CURL_HTTP_VERSION_* numbers).
PROTOCOLS = {"HTTP/2": (CurlHttpVersion.V2TLS, 3), "HTTP/3": (CurlHttpVersion.V3ONLY, 30)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(servy: Servy, ca: Path, version, expected: int, path: str, n: int) -> float:
    session = requests.Session()
    url = f"https://localhost:{servy.https}{path}"

    def get():
        r = session.get(url, http_version=version, verify=str(ca), timeout=10)
        if r.status_code != 200 or r.http_version != expected:
            raise RuntimeError(f"{r.status_code} over {r.http_version}")

    for _ in range(200):
        get()
    before = cpu_seconds(servy.proc.pid)
    for _ in range(n):
        get()
    used = cpu_seconds(servy.proc.pid) - before
    session.close()
    return used / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servy", type=Path, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=list(PROTOCOLS), help="one protocol (HTTP/2: http3 stays off)")
    args = ap.parse_args()
    protocols = {p: v for p, v in PROTOCOLS.items() if args.only in (None, p)}
    results: dict[str, list[float]] = {p: [] for p in protocols}
    with tempfile.TemporaryDirectory(prefix="servy-h3cpu-") as tmp:
        work = Path(tmp)
        subprocess.run(["bash", str(REPO / "tests/tls/mkcert.sh"), str(work), "localhost", "127.0.0.1"], check=True)
        servy = Servy(args.servy, work, work, log_requests=True, http3="HTTP/3" in protocols)
        try:
            for round_ in range(args.rounds):
                for name, (version, expected) in protocols.items():
                    per = run(servy, work / "ca.pem", version, expected, args.path, args.requests)
                    results[name].append(per)
                    print(f"round {round_ + 1} {name}: {per * 1e6:.1f} µs of servy CPU per request")
        finally:
            servy.stop()
    medians = {name: statistics.median(v) for name, v in results.items()}
    for name, m in medians.items():
        print(f"median {name}: {m * 1e6:.1f} µs per request")
    if len(medians) == 2:
        print(f"HTTP/3 / HTTP/2: {medians['HTTP/3'] / medians['HTTP/2']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
