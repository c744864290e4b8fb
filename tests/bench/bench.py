#!/usr/bin/env python3
"""Compare servy with nginx, h2o, Caddy and static-web-server on the same generated site.

One run: generate the site (tests/sitegen), build servy with it embedded, prepare
the peers over the same files (plus .gz precompressed copies), then
for each round and each server in turn (the order rotates every round): start the
server pinned to one CPU, run the k6 blog scenario, the k6 browser scenario, wrk
with many connections and wrk on the largest file (bigfile) from the other CPU, measuring the server's CPU time and memory
from /proc, and stop it. Medians over rounds go to report.md, report.json and
report.html in the output directory; --profile adds a flamegraph of servy under wrk.

    tests/bench/bench.py                      # full size, 3 rounds of 30 s, all servers
    tests/bench/bench.py --quick              # smoke: small site, 1 round of 3 s
    tests/bench/bench.py --servers servy,nginx --rounds 5 --profile
    tests/bench/bench.py --servers servy-zc-auto,servy-zc-off,nginx --rounds 1   # zero-copy on, off, nginx
    echo /robots.txt > one.txt; tests/bench/bench.py --servers servy,nginx --loads wrk --wrk-paths one.txt

Exits 1 if any request failed or any k6 threshold did not hold (after writing the
report), 2 on setup errors. Needs: python3, cargo, k6, wrk, nginx, h2o, caddy, taskset; optional
static-web-server (skipped with a message when absent) and perf + inferno (--profile).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import report  # noqa: E402
from measure import Meter  # noqa: E402
from servers import Caddy, H2o, Nginx, Servy, StaticWebServer, Stub, find_sws, parse_redirects, precompress, settle  # noqa: E402

# "servy" runs the shipped defaults; each other servy variant changes one key, named here.
SERVY_VARIANTS = {
    "servy": {},
    "servy-nolog": {"request_log": False},
    "servy-zc-auto": {"http_extra": 'zero_copy = "auto"'},
    "servy-zc-off": {"http_extra": 'zero_copy = "off"'},
}
ALL_SERVERS = ["servy", "servy-nolog", "servy-zc-auto", "nginx", "nginx-log", "nginx-nopush", "h2o", "h2o-log",
               "caddy", "caddy-log", "static-web-server"]
# The peers that serve the precompressed copy of the site from disk.
FILE_SERVERS = {"nginx", "nginx-log", "nginx-nopush", "h2o", "h2o-log", "caddy", "caddy-log", "static-web-server"}
# bigfile: wrk on the site's largest file only (an image of about 4 MB); conns: idle
# keep-alive connections held open (memory per connection).
ALL_LOADS = ["blog", "browser", "wrk", "bigfile", "conns"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kib = 0
    return f"{os.cpu_count()} × {model}, {mem_kib / 2**20:.0f} GiB RAM, Linux {platform.release()}"


def build(site: Path, bin_dir: Path) -> tuple[Path, Path]:
    """Build servy (with the site embedded) and the stub; copy both out of the target dir
    so a later build in the same checkout cannot swap the binary under the benchmark."""
    env = dict(os.environ, SERVY_ASSETS_DIR=str(site.resolve()))
    start = time.monotonic()
    cmd = ["cargo", "build", "--release", "--locked", "-p", "servy", "-p", "servy-stub"]
    log(f"building servy with the site embedded: {' '.join(cmd)}")
    subprocess.run(cmd, cwd=REPO / "server", env=env, check=True)
    log(f"build took {time.monotonic() - start:.0f}s")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "server" / "target")) / "release"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("servy", "servy-stub"):
        shutil.copy2(target / name, bin_dir / name)
    return bin_dir / "servy", bin_dir / "servy-stub"


def profile_servy(server: Servy, request_paths: Path, seconds: int, client_cpu: int, out: Path) -> dict:
    """perf-sample servy while wrk loads it; write flamegraph.svg and the top functions."""
    if not shutil.which("perf"):
        log("perf not found: no profile")
        return {}
    data = out / "perf.data"
    # Software clock events: hardware counters are often unavailable in VMs. DWARF
    # unwinding, because a release build keeps no frame pointers.
    perf = subprocess.Popen(
        ["perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(server.pid),
         "-o", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=open(out / "perf.log", "wb"),
    )
    time.sleep(0.5)
    loads.wrk(server.url, request_paths, 32, seconds, client_cpu, out / "runs" / "profile-wrk")
    perf.send_signal(2)
    perf.wait(timeout=60)
    script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True)
    (out / "perf.script").write_text(script.stdout)
    result: dict = {"samples_file": "perf.script", "top": top_functions(script.stdout)}
    collapse, flame = shutil.which("inferno-collapse-perf"), shutil.which("inferno-flamegraph")
    if collapse and flame:
        folded = subprocess.run([collapse], input=script.stdout, capture_output=True, text=True).stdout
        (out / "stacks.folded").write_text(folded)
        svg = subprocess.run([flame, "--title", "servy under wrk (32 connections)"], input=folded,
                             capture_output=True, text=True).stdout
        (out / "flamegraph.svg").write_text(svg)
        result["flamegraph"] = "flamegraph.svg"
    else:
        log("inferno not found (cargo install inferno): perf.script and the top table only")
    data.unlink(missing_ok=True)
    return result


def samples(perf_script: str) -> list[list[str]]:
    """perf script output → one list of function names per sample, leaf first."""
    out: list[list[str]] = []
    frames: list[str] | None = None
    for line in perf_script.splitlines():
        if not line.strip():
            if frames:
                out.append(frames)
            frames = None
        elif not line.startswith((" ", "\t")):
            frames = []
        elif frames is not None:
            parts = line.split(None, 1)
            name = parts[1].rsplit(" (", 1)[0] if len(parts) > 1 else "?"
            frames.append(name.split("+0x")[0])
    if frames:
        out.append(frames)
    return out


def top_functions(perf_script: str, n: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Shares of samples by function: `self` (the leaf frame) and `total` (anywhere on the stack)."""
    stacks = samples(perf_script)
    if not stacks:
        return {"self": [], "total": []}
    leaf: dict[str, int] = {}
    anywhere: dict[str, int] = {}
    for frames in stacks:
        if frames:
            leaf[frames[0]] = leaf.get(frames[0], 0) + 1
        for f in set(frames):
            anywhere[f] = anywhere.get(f, 0) + 1

    def share(counts: dict[str, int]) -> list[tuple[str, float]]:
        # Frames on (nearly) every stack are the call roots (main, the runtime's loop): noise.
        ranked = sorted(((f, c) for f, c in counts.items() if c < 0.98 * len(stacks)), key=lambda kv: -kv[1])[:n]
        return [(f, c * 100 / len(stacks)) for f, c in ranked]

    return {"self": share(leaf), "total": share(anywhere), "samples": len(stacks)}


def main() -> int:
    ap = argparse.ArgumentParser(description="Compare servy, nginx and static-web-server on a generated site.")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma list of " + ",".join(ALL_SERVERS))
    ap.add_argument("--loads", default=",".join(ALL_LOADS), help="comma list of " + ",".join(ALL_LOADS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=30, help="seconds per load run")
    ap.add_argument("--vus", type=int, default=10, help="k6 virtual users")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--idle-conns", type=int, default=1000, help="conns load: keep-alive connections held idle")
    ap.add_argument("--scale", type=float, default=1.0, help="site size (0.05 for a small site)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", type=Path, help="output dir (default tests/out/bench-<timestamp>)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--wrk-paths", type=Path, help="paths for wrk, one per line (default: every path and alias)")
    ap.add_argument("--profile", action="store_true", help="flamegraph of servy under wrk (perf + inferno)")
    ap.add_argument("--servy", type=Path, help="use this servy binary (built with the same site) instead of building")
    ap.add_argument("--stub", type=Path, help="use this servy-stub binary instead of building")
    ap.add_argument("--sws", type=Path, help="static-web-server binary (default: PATH, then ~/.cargo/bin)")
    ap.add_argument("--quick", action="store_true", help="smoke: --scale 0.05 --rounds 1 --duration 3")
    args = ap.parse_args()
    # SIGTERM to this process alone unwinds like Ctrl-C, so the finally blocks
    # below stop the servers and the stub instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The servers start in their own working directories: make the given paths absolute.
    for name in ("servy", "stub", "sws", "out", "wrk_paths"):
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    if args.quick:
        args.scale, args.rounds, args.duration = min(args.scale, 0.05), 1, min(args.duration, 3)

    usable = sorted(os.sched_getaffinity(0))
    if args.server_cpu not in usable or args.client_cpu not in usable or args.server_cpu == args.client_cpu:
        # A one-CPU machine (some CI runners): share it, and say so; figures are then rough.
        args.server_cpu = args.server_cpu if args.server_cpu in usable else usable[0]
        others = [c for c in usable if c != args.server_cpu]
        args.client_cpu = args.client_cpu if args.client_cpu in others else (others or usable)[0]
        log(f"CPUs {usable} usable: server on {args.server_cpu}, load generator on {args.client_cpu}")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    wanted_loads = [l.strip() for l in args.loads.split(",") if l.strip()]
    bad = [s for s in servers if s not in ALL_SERVERS] + [l for l in wanted_loads if l not in ALL_LOADS]
    if bad:
        ap.error(f"unknown server or load: {', '.join(bad)}")
    peers = [tool for tool in ("nginx", "h2o", "caddy") if any(s.startswith(tool) for s in servers)]
    for tool in ["k6", "taskset"] + (["wrk"] if "wrk" in wanted_loads else []) + peers:
        if not shutil.which(tool):
            log(f"{tool} not found on PATH")
            return 2
    notes = [
        "servy runs the shipped defaults: request log on, text on stderr (journald is not available here), "
        "which the runner writes to a file; servy-nolog is the same with [log] requests = false.",
        "nginx has its access log off; nginx-log writes it to a file (access_log ... combined buffer=64k).",
        "nginx-nopush is nginx with tcp_nopush off: on loopback its two TCP_CORK calls per request cost "
        "more than the segment they save, so it shows the cheapest nginx here, not the usual tuned one.",
        "user and kernel µs / req split CPU per request into the server's own code (utime) and the "
        "kernel's work for it (stime; on loopback that includes delivering to the client's socket).",
        "conns: N keep-alive connections, one GET / each, then held idle 3 s; KiB / idle conn is the "
        "server's RssAnon growth over N, fresh req ms the time for a new connection's GET / meanwhile.",
        "nginx and static-web-server serve precompressed .gz files; nginx-light has no brotli module "
        "and Python's standard library writes no .br, so they offer gzip only, while servy has br/gzip/zstd.",
        "static-web-server answers aliases with 301 (it offers 301 and 302 only); servy, nginx, h2o and Caddy with 308.",
        "h2o runs one thread (num-threads: 1) with file.send-compressed over the .gz files; h2o has no access log, "
        "h2o-log writes it to a file. Caddy serves file_server with precompressed gzip, admin API and automatic "
        "HTTPS off; caddy-log writes its access log to a file. CPU is each server's whole process tree "
        "(nginx's worker, h2o's helper process, Go's threads).",
        "failed: k6's failed requests plus failed checks, or wrk's socket errors plus non-2xx/3xx responses.",
        "CPU µs per request is also CPU ms per 1,000 requests (report.json has cpu_s_per_1k).",
        'servy-zc-auto is the same servy binary with [http] zero_copy = "auto" (bodies of 32 KiB or more sent '
        'with sendfile from the executable); servy-zc-off says zero_copy = "off", the default, explicitly.',
    ]
    sws = args.sws or find_sws()
    if "static-web-server" in servers and sws is None:
        log("static-web-server not installed (cargo install --locked static-web-server): skipping it")
        servers.remove("static-web-server")
        notes.append("static-web-server was not installed and was skipped.")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or REPO / "tests" / "out" / f"bench-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"output in {out}")

    gen = out / "site"
    if not (gen / "manifest.json").exists():
        subprocess.run([sys.executable, str(REPO / "tests/sitegen/sitegen.py"), "--out", str(gen),
                        "--scale", str(args.scale), "--seed", str(args.seed)], check=True)
    site, redirects_file = gen / "site", gen / "redirects.txt"
    paths, aliases = gen / "paths.txt", gen / "aliases.txt"
    request_paths = out / "requests.txt"
    # wrk cycles over these; --wrk-paths isolates the fixed cost of one kind of request.
    request_paths.write_text(args.wrk_paths.read_text() if args.wrk_paths else paths.read_text() + aliases.read_text())
    largest = max((p for p in site.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    bigfile_paths = out / "bigfile.txt"
    bigfile_paths.write_text(f"/{largest.relative_to(site)}\n")
    redirects = parse_redirects(redirects_file)

    precompressed = gen / "site-precompressed"
    if FILE_SERVERS.intersection(servers) and not precompressed.exists():
        written = precompress(site, precompressed)
        log(f"precompressed copy: {written['files']} files, {written['gz']} .gz")

    servy_bin = stub_bin = None
    if any(s in SERVY_VARIANTS for s in servers):
        if args.servy and args.stub:
            servy_bin, stub_bin = args.servy, args.stub
        else:
            servy_bin, stub_bin = build(site, out / "bin")
    stub = Stub(stub_bin, redirects_file, out, args.client_cpu) if stub_bin else None
    redirects_source = stub.start() if stub else ""
    made = {
        **{
            name: (lambda name=name: Servy(out / name, args.server_cpu, servy_bin, redirects_source,
                                           args.profile and name == "servy", name=name, **SERVY_VARIANTS[name]))
            for name in SERVY_VARIANTS
        },
        "nginx": lambda: Nginx(out / "nginx", args.server_cpu, precompressed, redirects),
        "nginx-log": lambda: Nginx(out / "nginx-log", args.server_cpu, precompressed, redirects, access_log=True),
        "nginx-nopush": lambda: Nginx(out / "nginx-nopush", args.server_cpu, precompressed, redirects, nopush=False),
        "h2o": lambda: H2o(out / "h2o", args.server_cpu, precompressed, redirects),
        "h2o-log": lambda: H2o(out / "h2o-log", args.server_cpu, precompressed, redirects, access_log=True),
        "caddy": lambda: Caddy(out / "caddy", args.server_cpu, precompressed, redirects),
        "caddy-log": lambda: Caddy(out / "caddy-log", args.server_cpu, precompressed, redirects, access_log=True),
        "static-web-server": lambda: StaticWebServer(out / "sws", args.server_cpu, sws, precompressed, redirects),
    }

    runs: list[dict] = []
    profile: dict | None = None
    try:
        for rnd in range(args.rounds):
            order = servers[rnd % len(servers):] + servers[: rnd % len(servers)]
            for name in order:
                server = made[name]()
                server.start()
                settle(1.0)  # servy fetches its redirects at start; let that finish
                try:
                    for load in wanted_loads:
                        tag = f"r{rnd + 1}-{name}-{load}"
                        with Meter(server.pid) as meter:
                            if load == "conns":
                                result = loads.conns(server.url, server.pid, args.idle_conns, 3.0,
                                                     out / "runs" / tag)
                            elif load in ("wrk", "bigfile"):
                                # 32 downloads of 4 MB at once: wrk's 2 s default timeout is too short
                                # for the last of them on a loaded machine.
                                result = loads.wrk(server.url, request_paths if load == "wrk" else bigfile_paths,
                                                   args.connections, args.duration, args.client_cpu, out / "runs" / tag,
                                                   timeout_s=None if load == "wrk" else 20)
                            else:
                                result = loads.k6(load, server.url, paths, aliases, args.vus, f"{args.duration}s",
                                                  args.client_cpu, out / "runs" / tag)
                        u = meter.usage
                        run = dict(result, round=rnd + 1, server=name, load=load, cpu_s=u.cpu_s,
                                   cpu_user_s=u.cpu_user_s, cpu_sys_s=u.cpu_sys_s,
                                   rss_anon_peak_kib=u.rss_anon_peak_kib, rss_peak_kib=u.rss_peak_kib)
                        runs.append(run)
                        d = report.derive(run)
                        log(f"{tag}: {d['req_per_s']:,.0f} req/s, CPU {d['cpu_us_per_req']:.1f} µs/req, "
                            f"p99 {d['p99_ms']:.2f} ms, anon {d['rss_anon_mib']:.1f} MiB, failed {run['failed']}")
                        settle()
                    if args.profile and name == "servy" and rnd == args.rounds - 1:
                        log("profiling servy under wrk")
                        profile = profile_servy(server, request_paths, min(args.duration, 20), args.client_cpu, out)
                finally:
                    server.stop()
    finally:
        if stub:
            stub.stop()

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "site": f"generated, scale {args.scale}, seed {args.seed}: {len(paths.read_text().split())} URLs + "
        f"{len(redirects)} aliases per k6 iteration",
        "rounds": args.rounds,
        "duration": f"{args.duration}s",
        "vus": args.vus,
        "connections": args.connections,
        "servers": servers,
        "notes": notes,
    }
    result = report.write(out, meta, runs, profile)
    print(result["markdown"])
    log(f"report: {out / 'report.md'}, {out / 'report.html'}")
    # A run that sent no request proves nothing (k6's thresholds hold vacuously then).
    failed = [r for r in runs if r["failed"] or not r["thresholds_ok"] or not r["requests"]]
    for r in failed:
        log(f"FAILED: round {r['round']} {r['server']} {r['load']}: {r['requests']} requests, "
            f"{r['failed']} failed requests/checks, thresholds {'held' if r['thresholds_ok'] else 'failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
