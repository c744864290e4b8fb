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
