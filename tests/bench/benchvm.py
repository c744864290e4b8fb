#!/usr/bin/env python3
"""`nix run .#benchvm-test`: servy, nginx and static-web-server compared inside benchvm.

Each run goes over SSH to `benchvm-run` in the VM, which starts only the server under
test, runs a k6 scenario against it from inside the VM and records the unit's CPU time
and memory; this script copies the run's files out, prints the Parca URL for the run's
time range and writes one report (report.py: report.md, report.html, report.json).

    benchvm-test servy                      # the running VM (nix run .#benchvm)
    benchvm-test all --scenario browser     # servy, nginx, static-web-server in turn
    benchvm-test all --sizes                # boot the VM at each size of benchvm.toml
    benchvm-test nginx --sizes 1x256,2x4096

Without --sizes it uses the VM `nix run .#benchvm` started. With --sizes it boots each
size's VM build itself (none may be running), one after the other, and adds the blog's
table: server x size -> MB/s, requests/s, p95, peak memory. Exit status: 0 when every
run sent requests with none failed and k6's thresholds held, 1 otherwise, 2 on usage
or setup errors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import report  # noqa: E402

SERVERS = ["servy", "nginx", "static-web-server"]
# Parca's profile types: servy's scraped pprof, and parca-agent's eBPF samples (its
# relabelling in nixos/benchvm.nix names the executable `exec`).
PROFILES = {
    "servy": 'process_cpu:samples:count:cpu:nanoseconds:delta{job="servy"}',
    "nginx": 'parca_agent:samples:count:cpu:nanoseconds:delta{exec="nginx"}',
    "static-web-server": 'parca_agent:samples:count:cpu:nanoseconds:delta{exec="static-web-server"}',
}


def log(msg: str) -> None:
    print(f"[benchvm-test {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def size_name(size: dict) -> str:
    return f"{size['cores']}x{size['memory_mib']}"


def parse_sizes(text: str, known: dict[str, dict]) -> list[dict]:
    """"1x256,2x4096" -> the sizes of benchvm.toml with those names (each has its own VM build)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown size {', '.join(unknown) or '(none)'}: benchvm.toml has {', '.join(known)}")
    return [known[n] for n in names]


def parca_url(port: int, server: str, start_ms: int, end_ms: int) -> str:
    """Parca's UI on the host, showing the server's CPU profile over one run."""
    query = urllib.parse.urlencode(
        {
            "expression_a": PROFILES[server],
            "from_a": start_ms,
            "to_a": end_ms,
            "time_selection_a": f"absolute:{start_ms}-{end_ms}",
        }
    )
    return f"http://127.0.0.1:{port}/?{query}"


class Vm:
    """SSH and scp to the VM as root, with the key benchvm shares."""

    def __init__(self, key: Path, port: int):
        self.port = port
        self.opts = ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def ssh(self, *command: str, timeout: float) -> int:
        return subprocess.run(["ssh", *self.opts, "-p", str(self.port), "root@127.0.0.1", *command],
                              timeout=timeout).returncode

    def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if subprocess.run(["ssh", *self.opts, "-p", str(self.port), "root@127.0.0.1", "true"],
                                  stderr=subprocess.DEVNULL, timeout=20).returncode == 0:
                    return True
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        return False

    def copy_out(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["scp", *self.opts, "-r", "-P", str(self.port), f"root@127.0.0.1:{remote}", str(local)],
                       timeout=120, check=False)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Booted:
    """One size's VM, started here and powered off on leaving."""

    def __init__(self, runner: Path, state: Path, vm: Vm, log_file: Path):
        self.runner, self.state, self.vm, self.log_file = runner, state, vm, log_file
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Booted:
        env = dict(os.environ, BENCHVM_STATE=str(self.state),
                   NIX_DISK_IMAGE=os.environ.get("NIX_DISK_IMAGE", str(self.state / "benchvm.qcow2")))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(self.runner)], env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(self.log_file, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not self.vm.wait(600):
            self.__exit__()
            raise RuntimeError(f"the VM did not answer SSH within 10 minutes; its console: {self.log_file}")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.vm.ssh("systemctl", "poweroff", timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=30)
        self.proc = None


def run_one(vm: Vm, server: str, scenario: str, vus: int, duration: str, load: str, out: Path, profile: bool,
            parca_port: int, size: str = "") -> dict:
    """One server under one load, in the VM; the run as report.py wants it, plus what happened.
    size names the VM's size (default: what the VM reports; its MemTotal is below what it was given)."""
    tag = f"{load}-{server}".replace(" ", "-")
    remote = f"/root/benchvm/{tag}"
    command = ["rm", "-rf", remote, "&&", "benchvm-run", server, scenario, str(vus), duration, remote]
    if not profile:
        command.append("--no-profile")
    log(f"{load}: {server}")
    code = vm.ssh(*command, timeout=loads.seconds(duration) + 300)
    local = out / "runs" / tag
    vm.copy_out(remote, local)
    usage_file, summary = local / "usage.json", local / "summary.json"
    usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
    measured = usage and f"{usage['cores']} vCPU, {usage['memory_kib'] // 1024} MiB"
    run = {"server": server, "load": load, "size": size or measured,
           "vus": vus, "round": 1, "exit": code, "unit_result": usage.get("unit_result", "unknown")}
    if not summary.exists() or not usage:
        run["lost"] = f"no summary (benchvm-run exit {code}, unit {run['unit_result']})"
        log(f"{load} {server}: {run['lost']}")
        return run
    run.update(loads.k6_result(summary, usage["k6_exit"]))
    run.update(cpu_s=usage["cpu_usec"] / 1e6, rss_anon_peak_kib=usage["anon_peak_bytes"] / 1024,
               rss_peak_kib=usage["memory_peak_bytes"] / 1024, start_ms=usage["start_ms"], end_ms=usage["end_ms"])
    if profile:
        run["parca_url"] = parca_url(parca_port, server, usage["start_ms"], usage["end_ms"])
        print(f"{load} {server}: Parca {run['parca_url']}", flush=True)
    d = report.derive(run)
    log(f"{load} {server}: {d['req_per_s']:,.0f} req/s, {run['bytes'] / max(run['duration_s'], 1e-9) / 1e6:,.0f} MB/s, "
        f"p95 {d['p95_ms']:.1f} ms, peak {d['rss_mib']:.0f} MiB, failed {run['failed']}, unit {run['unit_result']}")
    return run


def blog_table(runs: list[dict]) -> dict:
    """The blog's shape: server x size -> data received per second, requests/s, p95, memory."""
    rows = []
    for r in runs:
        if "lost" in r:
            rows.append([r["server"], r["size"] or r["load"], str(r["vus"]), "–", "–", "–", "–", "–", r["lost"]])
            continue
        d = report.derive(r)
        outcome = "ok" if r["thresholds_ok"] and not r["failed"] and r["requests"] else f"failed {r['failed']}"
        if r["unit_result"] not in ("success", "unknown"):
            outcome += f", unit {r['unit_result']}"
        rows.append([r["server"], r["size"], str(r["vus"]), f"{r['bytes'] / max(r['duration_s'], 1e-9) / 1e6:,.0f}",
                     f"{d['req_per_s']:,.0f}", f"{d['p95_ms']:.1f}", f"{d['rss_mib']:.0f}", f"{d['rss_anon_mib']:.1f}",
                     outcome])
    return {
        "title": "The blog's table: server × VM size",
        "header": ["server", "size", "users", "MB/s received", "requests/s", "p95 ms", "peak memory MiB",
                   "peak anon MiB", "outcome"],
        "rows": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="Compare servy, nginx and static-web-server inside benchvm.")
    ap.add_argument("server", choices=SERVERS + ["all"])
    ap.add_argument("--scenario", choices=["blog", "browser"], help="k6 scenario (default: benchvm.toml's)")
    ap.add_argument("--sizes", nargs="?", const="", metavar="CxMiB,...",
                    help="boot the VM at these sizes in turn (alone: every size in benchvm.toml)")
    ap.add_argument("--vus", type=int, help="k6 users (default: benchvm.toml's; with --sizes, each size's)")
    ap.add_argument("--duration", help="run length, k6 syntax (default: benchvm.toml's)")
    ap.add_argument("--no-profile", action="store_true",
                    help="stop Parca and parca-agent during the runs (always, with --sizes)")
    ap.add_argument("--out", type=Path, help="output directory (default benchvm-results/<UTC time>)")
    ap.add_argument("--params", type=Path, default=HERE / "benchvm.toml")
    ap.add_argument("--sized-vm", action="append", default=[], metavar="CxMiB=RUNNER",
                    help="the VM build of one size (the app passes one per size)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    params = tomllib.loads(args.params.read_text())
    known = {size_name(s): s for s in params["sizes"]}
    runners = dict(item.split("=", 1) for item in args.sized_vm)
    scenario = args.scenario or params["load"]["scenario"]
    duration = args.duration or params["load"]["duration"]
    servers = SERVERS if args.server == "all" else [args.server]
    ports = params["host_ports"]
    state = Path(os.environ.get("BENCHVM_STATE")
                 or Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state") / "servy-benchvm")
    state.mkdir(parents=True, exist_ok=True)
    state = state.resolve()
    key = state / "id_ed25519"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or Path("benchvm-results") / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    vm = Vm(key, ports["ssh"])
    profile = not args.no_profile

    runs: list[dict] = []
    tables = []
    if args.sizes is None:
        if not key.exists():
            log(f"no key in {state}; start the VM first: nix run .#benchvm")
            return 2
        if not vm.wait(180):
            log(f"no SSH on 127.0.0.1:{ports['ssh']}; start the VM first: nix run .#benchvm")
            return 2
        vus = args.vus or params["load"]["vus"]
        for server in servers:
            runs.append(run_one(vm, server, scenario, vus, duration, f"{scenario} {vus} users", out, profile,
                                ports["parca"]))
        placement = "k6 runs inside the VM, sharing its vCPUs with the server, as in the blog."
    else:
        try:
            sizes = parse_sizes(args.sizes or ",".join(known), known)
        except ValueError as e:
            log(str(e))
            return 2
        missing = [size_name(s) for s in sizes if size_name(s) not in runners]
        if missing:
            log(f"no VM build for {', '.join(missing)} (run through nix run .#benchvm-test)")
            return 2
        if port_open(ports["ssh"]):
            log(f"something listens on 127.0.0.1:{ports['ssh']}: stop the running benchvm (Ctrl-a x) first")
            return 2
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "servy-benchvm", "-f", str(key)],
                           check=True)
        # The size builds start no profiler: these runs measure the servers alone.
        profile = False
        for size in sizes:
            name = size_name(size)
            log(f"booting the {size['cores']} vCPU / {size['memory_mib']} MiB VM")
            with Booted(Path(runners[name]), state, vm, out / f"console-{name}.log"):
                for vus in [args.vus] if args.vus else size["vus"]:
                    for server in servers:
                        runs.append(run_one(vm, server, scenario, vus, duration, f"{scenario} {name} {vus} users",
                                            out, profile, ports["parca"],
                                            f"{size['cores']} vCPU, {size['memory_mib']} MiB"))
        tables.append(blog_table(runs))
        placement = "k6 runs inside each VM, sharing its vCPUs and memory with the server, as in the blog."

    measured = [r for r in runs if "lost" not in r]
    lost = [r for r in runs if "lost" in r]
    notes = [
        "Memory is the server unit's cgroup: peak memory is memory.peak (page cache the server read included), "
        "peak anon is memory.stat's anon sampled every 0.2 s.",
        "nginx runs a worker per vCPU here (the runner pins it to one CPU with one worker); otherwise nginx and "
        "static-web-server use the runner's configuration (tests/bench/nginx.conf.in, configs.py).",
        "Each server is warmed up for 5 s with one user before the measured run.",
    ]
    if profile:
        notes.append("Parca profiled the runs: servy through its own pprof sampling (scraped every 10 s), nginx and "
                     "static-web-server through parca-agent's eBPF sampling; --no-profile measures without.")
    notes += [f"{r['load']} {r['server']}: {r['lost']}" for r in lost]
    notes += [f"{r['load']} {r['server']}: Parca {r['parca_url']}" for r in measured if "parca_url" in r]
    first = json.loads(next((out / "runs").glob("*/usage.json")).read_text()) if measured else {}
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": "benchvm (qemu/KVM)" + (f", {first['cores']} vCPU, {first['memory_kib'] // 1024} MiB"
                                             if first and args.sizes is None else ", sizes in the table below"),
        "placement": placement,
        "site": "generated, scale 1 (bench-site)",
        "rounds": 1,
        "duration": duration,
        "vus": args.vus or params["load"]["vus"],
        "servers": servers,
        "notes": notes,
    }
    result = report.write(out, meta, measured, None, tables)
    print(result["markdown"])
    log(f"report: {out / 'report.md'}, {out / 'report.html'}")
    failed = lost + [r for r in measured if r["failed"] or not r["thresholds_ok"] or not r["requests"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
