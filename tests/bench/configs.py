"""The competitors' configurations, from one source for both places that run them.

tests/bench (servers.py) runs nginx and static-web-server on this machine; benchvm
(nixos/benchvm.nix) runs them as NixOS units. Both fill in nginx.conf.in and render
static-web-server's aliases here, so the two cannot drift apart.

    configs.py --site DIR --out DIR

writes what benchvm's Nix build needs from a generated site (tests/sitegen): site/ (the
files plus their .gz copies), nginx-short-links.conf (the aliases, for an `include` in
the template's map) and sws.toml (static-web-server's whole config; under systemd
socket activation it takes the socket it is given instead of its host and port).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
NGINX_TEMPLATE = HERE / "nginx.conf.in"
# The template's placeholders: every one must be given.
NGINX_PLACEHOLDERS = {"WORKER_PROCESSES", "MIME_TYPES", "ACCESS_LOG", "TEMP_DIR", "SHORT_LINKS", "LISTEN", "ROOT"}


def nginx_conf(**values: str) -> str:
    """nginx.conf.in with each @NAME@ replaced by values[NAME]."""
    missing = NGINX_PLACEHOLDERS - values.keys()
    unknown = values.keys() - NGINX_PLACEHOLDERS
    if missing or unknown:
        raise ValueError(f"nginx.conf.in: missing {sorted(missing)}, unknown {sorted(unknown)}")
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"nginx.conf.in: placeholders not filled in: {left}")
    return text


def nginx_short_links(redirects: list[tuple[str, str]]) -> str:
    """The aliases as lines of the template's `map $uri $short_link`, with and without a slash."""
    return "".join(f'    "/{a}" "{t}";\n    "/{a}/" "{t}";\n' for a, t in redirects)


def sws_toml(host: str, port: int, root: Path, redirects: list[tuple[str, str]]) -> str:
    """static-web-server's config: its precompressed files served, dynamic compression off,
    the aliases as redirect rules (it offers 301 and 302 only)."""
    rules = "".join(
        f'[[advanced.redirects]]\nsource = "/{a}"\ndestination = "{t}"\nkind = 301\n\n' for a, t in redirects
    )
    return f"""[general]
host = "{host}"
port = {port}
root = "{root}"
log-level = "error"
compression = false
compression-static = true
threads-multiplier = 1

[advanced]

{rules}"""


def h2o_conf(port: int, root: Path, redirects: list[tuple[str, str]], access_log: Path | None,
             workdir: Path, tls: tuple[Path, Path] | None = None,
             headers: list[tuple[str, str]] = ()) -> str:
    """h2o's config: one thread, its precompressed files, the aliases as 308 (a path of
    their own each, so files under other paths still win), 404.html for a miss. With tls
    (cert, key), the listener speaks TLS (HTTP/2 and HTTP/1.1 by ALPN). headers are added
    to every response."""
    ssl = f"""
  ssl:
    certificate-file: {tls[0]}
    key-file: {tls[1]}
    minimum-version: TLSv1.2""" if tls else ""
    # Started as root, h2o switches to nobody unless told; the site may be root-only.
    user = "user: root\n" if os.geteuid() == 0 else ""
    log = f"access-log: {access_log}\n" if access_log else ""
    aliases = "".join(f'      "/{a}":\n        redirect:\n          status: 308\n          url: "{t}"\n'
                      for a, t in redirects)
    # h2o 2.2 takes one header per directive and level, not a list: `header.add` and
    # `header.set` (the same for a header h2o does not send itself) at the global and
    # the host level.
    if len(headers) > 4:
        raise ValueError(f"h2o_conf: at most 4 extra headers, not {len(headers)}")
    lines = [f'{d}: "{n}: {v}"\n' for d, (n, v) in zip(["header.add", "header.set"] * 2, headers)]
    global_headers = "".join(lines[:2])
    host_headers = "".join("    " + line for line in lines[2:])
    return f"""{user}num-threads: 1
pid-file: {workdir}/h2o.pid
error-log: {workdir}/error.log
{log}listen:
  host: 127.0.0.1
  port: {port}{ssl}
file.send-compressed: ON
error-doc:
  status: 404
  url: /404.html
{global_headers}hosts:
  default:
{host_headers}    paths:
{aliases}      "/":
        file.dir: {root}
"""


def caddyfile(port: int, root: Path, redirects: list[tuple[str, str]], access_log: Path | None) -> str:
    """Caddy's config: plain HTTP on one port, admin API off, file_server with the
    precompressed .gz files (no compression on the fly), the aliases as 308, 404.html."""
    log = f"\tlog {{\n\t\toutput file {access_log}\n\t}}\n" if access_log else ""
    aliases = "".join(f"\tredir /{a} {t} 308\n" for a, t in redirects)
    return f"""{{
\tadmin off
\tauto_https off
\tpersist_config off
}}

http://127.0.0.1:{port} {{
\troot * {root}
{log}{aliases}\tfile_server {{
\t\tprecompressed gzip
\t}}
\thandle_errors 404 {{
\t\trewrite * /404.html
\t\tfile_server
\t}}
}}
"""


def main() -> None:
    # servers.py imports this module; import it back only when run as a script.
    from servers import parse_redirects, precompress

    ap = argparse.ArgumentParser(description="Render the competitors' files from a generated site.")
    ap.add_argument("--site", type=Path, required=True, help="tests/sitegen output (site/, redirects.txt)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sws-port", type=int, required=True, help="static-web-server's port")
    args = ap.parse_args()
    redirects = parse_redirects(args.site / "redirects.txt")
    args.out.mkdir(parents=True, exist_ok=True)
    written = precompress(args.site / "site", args.out / "site")
    (args.out / "nginx-short-links.conf").write_text(nginx_short_links(redirects))
    (args.out / "sws.toml").write_text(sws_toml("127.0.0.1", args.sws_port, args.out / "site", redirects))
    print(f"{written['files']} files, {written['gz']} .gz, {len(redirects)} aliases")


if __name__ == "__main__":
    main()
