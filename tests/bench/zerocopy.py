#!/usr/bin/env python3
"""Two measurements around servy's zero-copy path that the comparison runner does not make.

threshold: the server's CPU time per request for one file of each size (identity, wrk
  with 32 connections on that one path), with servy sending every body by sendfile
  (`zero_copy_min_bytes = 1`), with servy writing every body (`zero_copy = "off"`), and
  nginx. The smallest size from which sendfile is cheaper, at that size and every larger
  one, is where `zero_copy_min_bytes` belongs.

factors: why two harnesses disagreed on servy/nginx under wrk. For servy (sendfile and
  writes) and nginx it runs wrk over the path list in each of these ways:
    - cycle: the runner's list (the crawl pass + aliases, each wrk thread from its own
      offset), the same list as one cycle from the first path, and every embedded file
      (`servy --list-assets`) + aliases as one cycle;
    - placement: server on CPU 0 and client on CPU 1, then swapped;
    - seed: a second generated site (its own servy build).
  and prints servy/nginx CPU per request for each, from one run.

    tests/bench/zerocopy.py threshold [--seconds 5]
    tests/bench/zerocopy.py factors [--seconds 10] [--other-seed 7]

Both build servy (release, with the generated full-size site embedded) unless given
--servy/--stub, and write report.md + report.json to --out (default tests/out/zerocopy-*).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
from bench import build, log, machine  # noqa: E402
from measure import Meter  # noqa: E402
from servers import Nginx, Servy, Stub, parse_redirects, precompress, settle  # noqa: E402

SIZES = [256, 1024, 2048, 4096, 8192, 12288, 16384, 24576, 32768, 65536, 131072, 262144, 1 << 20, 4 << 20]

# One cycle over the list from its first path (wrk -t1: all connections share it).
SHARED_CYCLE = loads.WRK_SCRIPT.replace("thread:set(\"offset\", counter * 37)", "thread:set(\"offset\", 0)")
assert SHARED_CYCLE != loads.WRK_SCRIPT

SERVY_VARIANTS = {
    "servy-sendfile": 'zero_copy = "auto"',
    "servy-writev": 'zero_copy = "off"',
}


def generate(out: Path, scale: float, seed: int) -> Path:
    gen = out / f"site-{seed}"
    if not (gen / "manifest.json").exists():
        subprocess.run([sys.executable, str(REPO / "tests/sitegen/sitegen.py"), "--out", str(gen),
                        "--scale", str(scale), "--seed", str(seed)], check=True)
    return gen


def measure(server, paths: Path, seconds: int, cpu: int, out: Path, lua: str = loads.WRK_SCRIPT) -> dict:
    with Meter(server.pid) as meter:
        r = loads.wrk(server.url, paths, 32, seconds, cpu, out, lua, timeout_s=20)
    u = meter.usage
    r["cpu_us_per_req"] = u.cpu_s / max(r["requests"], 1) * 1e6
    r["bytes_per_req"] = r["bytes"] / max(r["requests"], 1)
    r["req_per_s"] = r["requests"] / max(r["duration_s"], 1e-9)
    r["rss_anon_kib"] = u.rss_anon_peak_kib
    settle()
    return r


class Setup:
    """One generated site, servy built with it, nginx's precompressed copy, the stub."""

    def __init__(self, out: Path, args, seed: int, servy_bin: Path | None, stub_bin: Path | None):
        self.gen = generate(out, args.scale, seed)
        self.site = self.gen / "site"
        self.out = out
        if servy_bin and stub_bin:
            self.servy_bin, self.stub_bin = servy_bin, stub_bin
        else:
            self.servy_bin, self.stub_bin = build(self.site, out / f"bin-{seed}")
        self.precompressed = self.gen / "site-precompressed"
        if not self.precompressed.exists():
            precompress(self.site, self.precompressed)
        self.redirects = parse_redirects(self.gen / "redirects.txt")
        self.stub = Stub(self.stub_bin, self.gen / "redirects.txt", out, args.client_cpu)
        self.source = self.stub.start()

    def server(self, name: str, cpu: int, extra: str = ""):
        if name == "nginx":
            return Nginx(self.out / f"nginx-{cpu}", cpu, self.precompressed, self.redirects)
        return Servy(self.out / f"{name}-{cpu}", cpu, self.servy_bin, self.source, False,
                     SERVY_VARIANTS[name] + "\n" + extra)

    def close(self) -> None:
        self.stub.stop()


def threshold(args, out: Path) -> tuple[str, dict]:
    setup = Setup(out, args, args.seed, args.servy, args.stub)
    files = [(p.stat().st_size, p) for p in setup.site.rglob("*") if p.is_file()]
    picks = []
    for size in args.sizes:
        got, path = min(files, key=lambda f: abs(f[0] - size))
        url = "/" + str(path.relative_to(setup.site)).removesuffix("index.html")
        if url not in [u for _, u in picks]:
            picks.append((got, url))
    names = ["servy-sendfile", "servy-writev", "nginx"]
    # All three run at once on the server CPU (idle ones cost nothing), so each size is
    # measured for the three back to back, in a rotating order, every round.
    servers = {name: setup.server(name, args.server_cpu, "zero_copy_min_bytes = 1") for name in names}
    runs: dict[str, dict[str, list[dict]]] = {}
    try:
        for server in servers.values():
            server.start()
        settle(1.0)
        for rnd in range(args.rounds):
            for i, (size, url) in enumerate(picks):
                one = out / "paths" / f"{size}.txt"
                one.parent.mkdir(parents=True, exist_ok=True)
                one.write_text(url + "\n")
                k = (rnd + i) % len(names)
                for name in names[k:] + names[:k]:
                    r = measure(servers[name], one, args.seconds, args.client_cpu,
                                out / "runs" / f"r{rnd + 1}-{name}-{size}")
                    if r["failed"] or not r["requests"]:
                        raise RuntimeError(f"{name} {url}: {r['failed']} failed of {r['requests']}")
                    runs.setdefault(url, {"size": size}).setdefault(name, []).append(r)
                    log(f"round {rnd + 1}, {name} {size} B {url}: {r['cpu_us_per_req']:.1f} µs/req, "
                        f"{r['req_per_s']:,.0f} req/s")
    finally:
        for server in servers.values():
            server.stop()
        setup.close()
    lines = ["| body bytes | servy sendfile µs/req | servy writev µs/req | nginx µs/req | sendfile / writev |",
             "|---:|---:|---:|---:|---:|"]
    rows = []
    for r in sorted(runs.values(), key=lambda r: r["size"]):
        row = {"size": r["size"], **{n: statistics.median(x["cpu_us_per_req"] for x in r[n]) for n in names}}
        rows.append(row)
        s, w, n = (row[k] for k in names)
        lines.append(f"| {row['size']:,} | {s:.1f} | {w:.1f} | {n:.1f} | {s / w:.2f} |")
    wins = [r["servy-sendfile"] < r["servy-writev"] for r in rows]
    first = next((i for i in range(len(rows)) if all(wins[i:])), None)
    verdict = (f"sendfile is cheaper from {rows[first]['size']:,} bytes on" if first is not None
               else "sendfile is not cheaper at every size from any point on")
    md = "\n".join(lines) + f"\n\nMedians of {args.rounds} rounds. {verdict}.\n"
    return md, {"rows": rows, "runs": runs, "crossover": rows[first]["size"] if first is not None else None}


def factors(args, out: Path) -> tuple[str, dict]:
    rows: list[dict] = []
    seeds = [args.seed] + ([args.other_seed] if args.other_seed is not None else [])
    for seed in seeds:
        given = (args.servy, args.stub) if seed == args.seed else (None, None)
        setup = Setup(out, args, seed, *given)
        runner_list = out / f"runner-{seed}.txt"
        runner_list.write_text((setup.gen / "paths.txt").read_text() + (setup.gen / "aliases.txt").read_text())
        listed = subprocess.run([str(setup.servy_bin), "--list-assets"], capture_output=True, text=True, check=True)
        every_list = out / f"every-{seed}.txt"
        every_list.write_text(listed.stdout + (setup.gen / "aliases.txt").read_text())
        cycles = [("runner (crawl pass, per-thread offset)", runner_list, loads.WRK_SCRIPT),
                  ("crawl pass, one cycle from the start", runner_list, SHARED_CYCLE),
                  ("every file, one cycle", every_list, SHARED_CYCLE)]
        placements = [(args.server_cpu, args.client_cpu), (args.client_cpu, args.server_cpu)]
        if seed != args.seed:
            cycles, placements = cycles[:1], placements[:1]
        try:
            for server_cpu, client_cpu in placements:
                for label, paths, lua in cycles:
                    row = {"seed": seed, "server_cpu": server_cpu, "cycle": label}
                    for name in ["servy-sendfile", "servy-writev", "nginx"]:
                        server = setup.server(name, server_cpu)
                        server.start()
                        settle(1.0)
                        try:
                            tag = f"{seed}-{server_cpu}-{len(rows)}-{name}"
                            row[name] = measure(server, paths, args.seconds, client_cpu, out / "runs" / tag, lua)
                        finally:
                            server.stop()
                        log(f"seed {seed}, server CPU {server_cpu}, {label}, {name}: "
                            f"{row[name]['cpu_us_per_req']:.1f} µs/req, {row[name]['bytes_per_req'] / 1024:.0f} KiB/req")
                    rows.append(row)
        finally:
            setup.close()
    lines = ["| seed | server CPU | cycle | KiB/req | servy sendfile µs | servy writev µs | nginx µs "
             "| sendfile / nginx | writev / nginx |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, w, n = (r[k]["cpu_us_per_req"] for k in ("servy-sendfile", "servy-writev", "nginx"))
        lines.append(f"| {r['seed']} | {r['server_cpu']} | {r['cycle']} | {r['nginx']['bytes_per_req'] / 1024:.0f} "
                     f"| {s:.1f} | {w:.1f} | {n:.1f} | {s / n:.2f} | {w / n:.2f} |")
    return "\n".join(lines) + "\n", {"rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["threshold", "factors"])
    ap.add_argument("--seconds", type=int, default=None, help="per wrk run (threshold 5, factors 10)")
    ap.add_argument("--rounds", type=int, default=3, help="threshold: rounds over the sizes")
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=SIZES,
                    help="threshold: comma list of body sizes in bytes (the nearest file of each)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--other-seed", type=int, default=7, help="factors: the second site (none: -1)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--servy", type=Path, help="servy built with the --seed site (skips the build)")
    ap.add_argument("--stub", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.other_seed is not None and args.other_seed < 0:
        args.other_seed = None
    args.seconds = args.seconds or (5 if args.what == "threshold" else 10)
    for name in ("servy", "stub", "out"):
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"zerocopy-{args.what}-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"output in {out}")
    md, data = (threshold if args.what == "threshold" else factors)(args, out)
    head = (f"# zerocopy.py {args.what}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}\n\n"
            f"{machine()}; wrk -t1 -c32, {args.seconds} s per run; CPU µs per request of the server.\n\n")
    (out / "report.md").write_text(head + md)
    (out / "report.json").write_text(json.dumps(data, indent=1))
    print(head + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
