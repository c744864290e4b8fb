#!/usr/bin/env python3
"""servy (rustls) against nginx (OpenSSL) over HTTPS, on the same generated site.

Both use the same throwaway certificate and key (P-256), both offer TLS 1.3 (what every
client below negotiates), HTTP/2 by ALPN, session resumption (tickets and a cache) and
keep-alive. Each server runs pinned to one CPU, the load generator on the other; the
server's CPU time comes from /proc, as in bench.py. Three loads:

- k6's blog scenario over HTTPS (k6 speaks HTTP/2 when ALPN offers it);
- h2load, HTTP/2 with 32 connections x 10 streams over every path and alias;
- handshakes: `openssl s_time -new`, a new connection and a full TLS 1.3 handshake each
  time, no keep-alive, no resumption: the cost of a new visitor.

    tests/bench/https.py                       # scale 0.05 site, 1 round of 10 s
    tests/bench/https.py --scale 1 --rounds 3 --duration 30

Prints a Markdown table (also written to report.md in the output directory): requests/s,
server CPU µs per request (per connection for the handshakes) and the servy/nginx CPU
ratio of each load, from the same run. Exits 1 if any request failed, 2 on setup errors.
Needs: python3, cargo, k6, h2load (nghttp2-client), openssl, nginx, taskset.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
from bench import build, log, machine  # noqa: E402
from measure import Meter, free_port  # noqa: E402
from servers import Nginx, Servy, Stub, parse_redirects, precompress, settle  # noqa: E402


class TlsServer:
    """Mixed into a bench.py server: its measured port speaks TLS with cert and key."""

    def __init__(self, *args, cert: Path, key: Path):
        super().__init__(*args)
        self.cert, self.key = cert, key

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


class ServyTls(TlsServer, Servy):
    """servy as bench.py runs it, plus the https listener on the measured port."""

    def command(self) -> list[str]:
        cmd = super().command()
        config = self.workdir / "servy.toml"
        text = config.read_text()
        plain = free_port()
        while plain in (self.port, self.metrics_port):
            plain = free_port()
        text = text.replace(f'listen = ["127.0.0.1:{self.port}"]', f'listen = ["127.0.0.1:{plain}"]', 1)
        text += f"""[https]
listen = ["127.0.0.1:{self.port}"]
[[https.certificates]]
cert = "{self.cert}"
key = "{self.key}"
"""
        config.write_text(text)
        return cmd


class NginxTls(TlsServer, Nginx):
    """nginx as bench.py runs it, its listener turned into TLS 1.3 + HTTP/2 with resumption."""

    def command(self) -> list[str]:
        cmd = super().command()
        conf = self.workdir / "nginx" / "nginx.conf"
        listen = f"listen 127.0.0.1:{self.port} reuseport;"
        text = conf.read_text()
        assert listen in text, "bench.py's nginx.conf changed: update https.py"
        conf.write_text(text.replace(listen, f"""listen 127.0.0.1:{self.port} ssl http2 reuseport;
    ssl_certificate {self.cert};
    ssl_certificate_key {self.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;"""))
        return cmd


def h2load(url: str, uris: Path, duration_s: int, cpu: int, out: Path) -> dict:
    """HTTP/2 over TLS: 32 connections, 10 streams each, cycling over the URIs."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["taskset", "-c", str(cpu), "h2load", "-c", "32", "-m", "10", "-D", str(duration_s), "--warm-up-time", "1",
           "-i", str(uris)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    (out / "h2load.log").write_text(proc.stdout + proc.stderr)
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  proc.stdout)
    if not m or proc.returncode != 0:
        raise RuntimeError(f"h2load failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}{proc.stderr[-500:]}")
    protocol = re.search(r"Application protocol: (\S+)", proc.stdout)
    done, failed, errored = int(m.group(2)), int(m.group(4)), int(m.group(5))
    return {"requests": done, "failed": failed + errored, "duration_s": duration_s,
            "note": protocol.group(1) if protocol else "?"}


def handshakes(port: int, duration_s: int, cpu: int, out: Path) -> dict:
    """New TLS 1.3 connections back to back, no resumption (openssl s_time -new)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["taskset", "-c", str(cpu), "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-tls1_3",
           "-time", str(duration_s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    (out / "s_time.log").write_text(proc.stdout + proc.stderr)
    m = re.search(r"(\d+) connections in (\d+) real seconds", proc.stdout)
    if not m:
        raise RuntimeError(f"openssl s_time failed (exit {proc.returncode}):\n{proc.stdout[-1000:]}{proc.stderr[-500:]}")
    return {"requests": int(m.group(1)), "failed": 0, "duration_s": int(m.group(2)), "note": "TLS 1.3, full"}


def main() -> int:
    ap = argparse.ArgumentParser(description="servy vs nginx over HTTPS.")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--duration", type=int, default=10, help="seconds per load run")
    ap.add_argument("--vus", type=int, default=10, help="k6 virtual users")
    ap.add_argument("--scale", type=float, default=0.05, help="site size")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", type=Path, help="output dir (default tests/out/https-<timestamp>)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--servy", type=Path, help="servy binary built with the same site (else built)")
    ap.add_argument("--stub", type=Path, help="servy-stub binary (else built)")
    args = ap.parse_args()
    for tool in ("k6", "h2load", "openssl", "nginx", "taskset"):
        if not shutil.which(tool):
            log(f"{tool} not found on PATH")
            return 2
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"https-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"output in {out}")

    gen = out / "site"
    if not (gen / "manifest.json").exists():
        subprocess.run([sys.executable, str(REPO / "tests/sitegen/sitegen.py"), "--out", str(gen),
                        "--scale", str(args.scale), "--seed", str(args.seed)], check=True)
    site, redirects_file = gen / "site", gen / "redirects.txt"
    paths, aliases = gen / "paths.txt", gen / "aliases.txt"
    redirects = parse_redirects(redirects_file)
    precompressed = gen / "site-precompressed"
    if not precompressed.exists():
        precompress(site, precompressed)
    if args.servy and args.stub:
        servy_bin, stub_bin = args.servy.resolve(), args.stub.resolve()
    else:
        servy_bin, stub_bin = build(site, out / "bin")
    tls = out / "tls"
    subprocess.run(["bash", str(REPO / "tests/tls/mkcert.sh"), str(tls), "localhost", "127.0.0.1"], check=True)
    cert, key = tls / "fullchain.pem", tls / "key.pem"
    # k6 cannot be handed a CA file; the certificate is the test's own.
    os.environ["K6_INSECURE_SKIP_TLS_VERIFY"] = "true"

    stub = Stub(stub_bin, redirects_file, out, args.client_cpu)
    source = stub.start()
    made = {
        "servy": lambda: ServyTls(out / "servy", args.server_cpu, servy_bin, source, False, cert=cert, key=key),
        "nginx": lambda: NginxTls(out / "nginx", args.server_cpu, precompressed, redirects, cert=cert, key=key),
    }
    runs: list[dict] = []
    try:
        for rnd in range(args.rounds):
            for name in (["servy", "nginx"] if rnd % 2 == 0 else ["nginx", "servy"]):
                server = made[name]()
                server.start()
                settle(1.0)
                uris = out / f"uris-{name}.txt"
                uris.write_text("".join(f"{server.url}{p}\n" for p in
                                        (paths.read_text() + aliases.read_text()).split()))
                try:
                    for load in ("k6-blog", "h2load", "handshakes"):
                        tag = f"r{rnd + 1}-{name}-{load}"
                        with Meter(server.pid) as meter:
                            if load == "k6-blog":
                                r = loads.k6("blog", server.url, paths, aliases, args.vus, f"{args.duration}s",
                                             args.client_cpu, out / "runs" / tag)
                                r["note"] = "HTTP/2"
                            elif load == "h2load":
                                r = h2load(server.url, uris, args.duration, args.client_cpu, out / "runs" / tag)
                            else:
                                r = handshakes(server.port, args.duration, args.client_cpu, out / "runs" / tag)
                        run = dict(server=name, load=load, round=rnd + 1, requests=r["requests"],
                                   failed=r["failed"], duration_s=r["duration_s"], cpu_s=meter.usage.cpu_s,
                                   note=r.get("note", ""), rss_anon_peak_kib=meter.usage.rss_anon_peak_kib)
                        runs.append(run)
                        log(f"{tag}: {run['requests'] / max(run['duration_s'], 1e-9):,.0f}/s, "
                            f"CPU {run['cpu_s'] * 1e6 / max(run['requests'], 1):.1f} µs each, failed {run['failed']}")
                        settle()
                finally:
                    server.stop()
    finally:
        stub.stop()

    def median(xs: list[float]) -> float:
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    rows = []
    for load in ("k6-blog", "h2load", "handshakes"):
        cells = {}
        for name in ("servy", "nginx"):
            mine = [r for r in runs if r["server"] == name and r["load"] == load]
            cells[name] = {
                "rate": median([r["requests"] / max(r["duration_s"], 1e-9) for r in mine]),
                "cpu_us": median([r["cpu_s"] * 1e6 / max(r["requests"], 1) for r in mine]),
                "anon": median([r["rss_anon_peak_kib"] / 1024 for r in mine]),
                "note": mine[0]["note"] if mine else "",
            }
        ratio = cells["servy"]["cpu_us"] / cells["nginx"]["cpu_us"] if cells["nginx"]["cpu_us"] else float("nan")
        rows.append((load, cells, ratio))
    unit = {"k6-blog": "request", "h2load": "request", "handshakes": "connection"}
    lines = [
        f"HTTPS benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}; "
        f"site scale {args.scale}, {args.rounds} round(s) of {args.duration} s, server on CPU {args.server_cpu}, "
        f"load on CPU {args.client_cpu}; medians over rounds.",
        "",
        "| load | servy /s | nginx /s | servy CPU µs | nginx CPU µs | CPU servy/nginx | servy anon MiB | nginx anon MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for load, c, ratio in rows:
        lines.append(
            f"| {load} ({c['servy']['note']}; per {unit[load]}) | {c['servy']['rate']:,.0f} | {c['nginx']['rate']:,.0f} "
            f"| {c['servy']['cpu_us']:.1f} | {c['nginx']['cpu_us']:.1f} | **{ratio:.2f}** "
            f"| {c['servy']['anon']:.1f} | {c['nginx']['anon']:.1f} |")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    failed = [r for r in runs if r["failed"] or not r["requests"]]
    for r in failed:
        log(f"FAILED: round {r['round']} {r['server']} {r['load']}: {r['requests']} requests, {r['failed']} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
