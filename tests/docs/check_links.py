#!/usr/bin/env python3
"""Fails on a broken internal link in the repository's Markdown.

Every relative link in every tracked *.md file (`git ls-files`) must name a file or
folder that exists, and a `#fragment` must name a heading of the page it points to, by
GitHub's rules for heading anchors. Links to other sites are not checked (no network).

usage: check_links.py [REPO]     (default: the repository this script is in)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LINK = re.compile(r"(?<!\!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> set[str]:
    """The anchors of a page's headings, with GitHub's -1, -2 … for repeats."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        base = anchor(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path):
    """(line number, target) of every link outside code blocks and inline code."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        line = re.sub(r"`[^`]*`", "``", line)
        for m in LINK.finditer(line):
            yield number, m.group(1) or m.group(2)


def main(repo: Path) -> int:
    files = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    anchors: dict[Path, set[str]] = {}
    broken = checked = 0
    for name in files:
        page = repo / name
        if not page.exists():
            continue
        for number, target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # another site, mailto:
            checked += 1
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page.resolve()
            problem = None
            if not dest.exists():
                problem = "no such file"
            elif fragment and dest.suffix == ".md":
                if dest not in anchors:
                    anchors[dest] = headings(dest)
                if fragment not in anchors[dest]:
                    problem = "no such heading"
            if problem:
                broken += 1
                print(f"{name}:{number}: {target} ({problem})")
    print(f"check_links: {len(files)} pages, {checked} links, {broken} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    sys.exit(main(root.resolve()))
