"""The load generators, pinned to the other CPU: the two k6 scenarios and wrk.

Each returns the same flat result: requests, bytes, duration, latency percentiles in
milliseconds, failed requests. k6 is heavy and is often the limit on a small machine;
wrk with 32 connections shows the server's ceiling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
K6_RUN = HERE.parent / "k6" / "run.sh"

# wrk cycles through every path and alias (each thread from its own offset) and prints
# one JSON line at the end, so its figures read like k6's.
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local i = 0
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("offset", counter * 37)
end
init = function(args)
  i = offset or 0
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"status_errors":%d,'
      .. '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def seconds(duration: str) -> int:
    """A k6 duration as the runner writes it ("30s", "2m") in whole seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]] if duration[-1] in units else int(duration)


def k6(scenario: str, url: str, paths: Path, aliases: Path, vus: int, duration: str, cpu: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["taskset", "-c", str(cpu), str(K6_RUN), "--scenario", scenario, "--url", url, "--paths", str(paths),
           "--aliases", str(aliases), "--vus", str(vus), "--duration", duration, "--out", str(out)]
    # k6 stops on its own after the duration plus its 30 s graceful stop; this is the backstop.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds(duration) + 90)
    (out / "k6.log").write_text(proc.stdout + proc.stderr)
    summary = out / "summary.json"
    if not summary.exists():
        raise RuntimeError(f"k6 {scenario} wrote no summary (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return k6_result(summary, proc.returncode)


def k6_result(summary: Path, returncode: int) -> dict:
    """The flat result from a k6 run's summary.json (tests/k6/lib/summary.js) and exit status."""
    h = json.loads(summary.read_text())["headline"]
    duration_s = h["requests"] / h["requests_per_s"] if h["requests_per_s"] else 0.0
    return {
        "requests": h["requests"],
        "bytes": h["bytes"],
        "duration_s": duration_s,
        "p50_ms": h["latency_ms"]["p50"],
        "p95_ms": h["latency_ms"]["p95"],
        "p99_ms": h["latency_ms"]["p99"],
        "failed": h["failed_requests"] + h["checks_failed"],
        "thresholds_ok": returncode == 0,
    }


def wrk(url: str, request_paths: Path, connections: int, duration_s: int, cpu: int, out: Path,
        lua: str = WRK_SCRIPT, timeout_s: int | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    script = out / "paths.lua"
    script.write_text(lua)
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency",
           "-s", str(script), url]
    if timeout_s:
        cmd[-1:-1] = ["--timeout", f"{timeout_s}s"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, WRK_PATHS=str(request_paths)),
                          timeout=duration_s + 60)
    (out / "wrk.log").write_text(proc.stdout + proc.stderr)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    r = json.loads(line.removeprefix("WRKJSON "))
    return {
        "requests": r["requests"],
        "bytes": r["bytes"],
        "duration_s": r["duration_us"] / 1e6,
        "p50_ms": r["p50_us"] / 1000,
        "p95_ms": r["p95_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "failed": r["errors"] + r["status_errors"],
        "thresholds_ok": r["errors"] + r["status_errors"] == 0,
    }



def conns(url: str, pid: int, n: int, hold_s: float, out: Path) -> dict:
    """N keep-alive connections, one request each, then held idle for hold_s: the server's
    anonymous memory per idle connection, and whether a fresh request is served within
    1 s while they are held. Runs in this process (plain sockets), not pinned."""
    import resource
    import socket
    import time

    from measure import memory_kib

    # One client for idle connections, shared with the container test.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "systemd"))
    from idleconns import get, still_open

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    out.mkdir(parents=True, exist_ok=True)
    before = memory_kib(pid)["RssAnon"]
    held: list[socket.socket] = []
    failed = 0
    received = 0
    start = time.monotonic()
    try:
        for _ in range(n):
            s = socket.create_connection((host, int(port)), timeout=10)
            try:
                received += get(s, host, "/")
                held.append(s)
            except OSError:
                failed += 1
                s.close()
        duration = time.monotonic() - start
        time.sleep(hold_s)  # idle, as a client that opened connections and went quiet
        after = memory_kib(pid)["RssAnon"]
        fresh_start = time.monotonic()
        try:
            with socket.create_connection((host, int(port)), timeout=5) as fresh:
                received += get(fresh, host, "/")
            fresh_ms = (time.monotonic() - fresh_start) * 1000
        except OSError:
            failed += 1
            fresh_ms = float("inf")
        # Still open after the hold (a server may close idle connections sooner).
        open_after = sum(1 for s in held if still_open(s))
    finally:
        for s in held:
            s.close()
    result = {
        "requests": n + 1,
        "bytes": received,
        "duration_s": duration,
        "p50_ms": 0.0,
        "p95_ms": 0.0,
        "p99_ms": fresh_ms,
        "failed": failed + (fresh_ms >= 1000),
        "thresholds_ok": failed == 0 and fresh_ms < 1000,
        "idle_conns": len(held),
        "idle_open_after_hold": open_after,
        "kib_per_idle_conn": (after - before) / max(len(held), 1),
        "fresh_ms": fresh_ms,
    }
    (out / "conns.json").write_text(json.dumps(result, indent=1))
    return result
