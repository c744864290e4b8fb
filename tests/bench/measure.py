"""What a server process costs: CPU time and memory, read from /proc while it runs.

CPU is utime + stime of the server and its worker children (nginx forks workers),
read before and after a load run; the difference divided by the requests the client
counted is the figure the comparison is about. Memory is sampled from
/proc/PID/status: RssAnon (heap, stacks: what the server allocated) and VmRSS
(including the file-backed pages of the binary or of mapped files), summed over the
processes, keeping the peak.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (nginx: master + workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds used so far by pid and its live descendants.

    Kept apart because they answer different questions: user time is the server's own
    code, system time the kernel's work for its syscalls (on loopback, also part of the
    peer's TCP receive path, which runs in the sender's context)."""
    user = system = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                # The command name may contain spaces: fields start after the last ')'.
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime (field 14)
            system += int(fields[12])  # stime (field 15)
        except (OSError, IndexError, ValueError):
            continue
    return user / CLK_TCK, system / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """RssAnon, VmRSS and VmHWM in KiB, summed over pid and its descendants."""
    sums = {"RssAnon": 0, "VmRSS": 0, "VmHWM": 0}
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in sums:
                        sums[key] += int(rest.split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return sums


@dataclass
class Usage:
    cpu_s: float
    cpu_user_s: float
    cpu_sys_s: float
    rss_anon_peak_kib: int
    rss_peak_kib: int


class Meter:
    """Measure one load run: `with Meter(pid) as m: ...; m.usage`."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self._stop = threading.Event()
        self._anon = 0
        self._rss = 0
        self.usage: Usage | None = None

    def _sample(self) -> None:
        m = memory_kib(self.pid)
        self._anon = max(self._anon, m["RssAnon"])
        self._rss = max(self._rss, m["VmRSS"])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "Meter":
        self._sample()
        self._cpu0 = cpu_seconds(self.pid)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        user, system = (now - then for now, then in zip(cpu_seconds(self.pid), self._cpu0))
        self._stop.set()
        self._thread.join()
        self._sample()
        self.usage = Usage(user + system, user, system, self._anon, self._rss)


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
