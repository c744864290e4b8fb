#!/usr/bin/env python3
"""REDbot over one URL of each kind servy serves, with the shipped default config:
an HTML page (the home page and a nested one), the fingerprinted CSS bundle, a script,
an image, the favicon, the web manifest, a feed or other XML if the site has one, an
alias (redirect) and a 404. Fails if REDbot reports any BAD or WARN note.

    tests/bench/redbot.py --servy BIN --stub BIN --site DIR    (DIR: sitegen output)

Needs redbot on PATH (pip install redbot). Every check targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import free_port, wait_port  # noqa: E402
from servers import Stub  # noqa: E402


def pick(paths: list[str], aliases: list[str]) -> list[str]:
    """One path per kind, in a stable order."""
    chosen = ["/"]
    pages = [p for p in paths if p.endswith("/") and p.count("/") > 2]
    kinds = [
        lambda p: p.endswith(".css"),
        lambda p: p.endswith(".js"),
        lambda p: p.endswith((".png", ".jpg", ".webp", ".svg")),
        lambda p: p.endswith(".ico"),
        lambda p: p.endswith(".webmanifest"),
        lambda p: p.endswith(".xml"),
        lambda p: p.endswith(".json"),
    ]
    chosen += pages[:1]
    for kind in kinds:
        chosen += [p for p in paths if kind(p)][:1]
    chosen += aliases[:1]
    chosen.append("/no-such-page-redbot")
    return chosen


def ready(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s")
        time.sleep(0.1)


def check(url: str) -> tuple[str, list[tuple[str, str]]]:
    proc = subprocess.run(["redbot", "-o", "har", url], capture_output=True, text=True, timeout=120)
    try:
        har = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return url, [("BAD", f"redbot gave no report (exit {proc.returncode}): {proc.stderr[-500:]}")]
    notes = [
        (m.get("level", "?"), m.get("summary", "?"))
        for entry in har["log"]["entries"]
        for m in entry.get("_red_messages", [])
    ]
    return url, notes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servy", type=Path, required=True)
    ap.add_argument("--stub", type=Path, required=True)
    ap.add_argument("--site", type=Path, required=True, help="sitegen output (paths.txt, aliases.txt, redirects.txt)")
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = args.site.joinpath("paths.txt").read_text().split()
    aliases = args.site.joinpath("aliases.txt").read_text().split()

    stub = Stub(args.stub.resolve(), args.site.resolve() / "redirects.txt", out, 0)
    source = stub.start()
    port, metrics = free_port(), free_port()
    while metrics == port:
        metrics = free_port()
    config = out / "redbot-servy.toml"
    # The shipped defaults, but for where to listen and where the aliases come from.
    config.write_text(
        f'[http]\nlisten = ["127.0.0.1:{port}"]\n[metrics]\nlisten = ["127.0.0.1:{metrics}"]\n'
        f'[redirects]\nsource = "{source}"\n'
    )
    servy = subprocess.Popen([str(args.servy.resolve()), "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=open(out / "redbot-servy.log", "wb"))
    try:
        wait_port("127.0.0.1", port)
        ready(f"http://127.0.0.1:{metrics}/readyz")  # the aliases are loaded
        urls = [f"http://127.0.0.1:{port}{p}" for p in pick(paths, aliases)]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(check, urls))
    finally:
        servy.terminate()
        servy.wait(timeout=10)
        stub.stop()

    bad = warn = 0
    for url, notes in results:
        flagged = [(level, text) for level, text in notes if level in ("BAD", "WARN")]
        bad += sum(level == "BAD" for level, _ in flagged)
        warn += sum(level == "WARN" for level, _ in flagged)
        print(f"redbot: {url}: {len(notes)} notes" + "".join(f"\n  {level}: {text}" for level, text in flagged))
    print(f"redbot: {len(results)} URLs, {bad} bad, {warn} warnings")
    return 1 if bad or warn else 0


if __name__ == "__main__":
    sys.exit(main())
