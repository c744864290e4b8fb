#!/usr/bin/env python3
"""Fails when a Rust crate's files import each other in a circle.

A file imports another when it names an item of it by path: `use crate::a::b`,
`use super::x`, `use child::y` (a module the file declares), or the same paths in
expressions. `mod child;` alone is no import. A circle is any loop in that graph, two
files that import each other included: imports must flow one way, down the request path.

usage: imports.py SRC_DIR...    (each a crate's src/, with main.rs or lib.rs)
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE = re.compile(r"\buse\s+([^;]+);", re.S)
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)
INLINE_MOD = re.compile(r"\bmod\s+([a-z_][a-z0-9_]*)\s*\{")


def strip(text: str) -> str:
    """The code without comments, strings and char literals (each kept as a blank)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            depth = 0
            while i < n:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                    if depth == 0:
                        break
                else:
                    i += 1
        elif m := re.match(r'b?r(#*)"', text[i:]):
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            out.append('""')
            i = n if end < 0 else end + 1 + len(m.group(1))
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:]):
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def inline_modules(text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of each `mod name { ... }` written inside the file."""
    found = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        found.append((m.start(), i, m.group(1)))
    return found


def module_of(src: Path, file: Path) -> tuple[str, ...]:
    """`src/a/b.rs` and `src/a/b/mod.rs` are module a::b; main.rs and lib.rs are the root."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("main", "lib")):
        parts.pop()
    return tuple(parts)


def expand(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` → a::b, a::c::d, a::c::e (only the paths matter, not `as`)."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    m = re.match(r"^(.*?)::\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.groups()
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    return [p for item in items if item for p in expand(f"{prefix}::{item}")]


def main(srcs: list[str]) -> int:
    circles = 0
    for src in map(Path, srcs):
        files = {module_of(src, f): f for f in sorted(src.rglob("*.rs"))}
        graph: dict[tuple, set[tuple]] = {m: set() for m in files}
        for mod, file in files.items():
            text = strip(file.read_text())
            # Test modules may reach anywhere (`use super::*`): they are not the file's imports.
            text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]
            children = set(MOD.findall(text))
            inline = inline_modules(text)
            paths = []
            for m in USE.finditer(text):
                paths += [(m.start(), p) for p in expand(m.group(1))]
            paths += [(m.start(), m.group(0)) for m in PATH.finditer(text)]
            for at, path in paths:
                # A path inside `mod name { ... }` starts from that module.
                here = mod + tuple(name for start, end, name in inline if start < at < end)
                segs = [s for s in path.split("::") if s and s != "*" and s != "self" or s == path.split("::")[0]]
                if not segs:
                    continue
                head, rest = segs[0], segs[1:]
                if head == "crate":
                    base = ()
                elif head == "super":
                    base = here[:-1]
                    while rest and rest[0] == "super":
                        base, rest = base[:-1], rest[1:]
                elif head == "self":
                    base = here
                elif head in children:
                    base, rest = mod + (head,), rest
                else:
                    continue
                # The longest prefix that names a file is the file imported.
                target = base
                for seg in rest:
                    if target + (seg,) in files:
                        target = target + (seg,)
                    else:
                        break
                if target != mod and target in files:
                    # Naming one's own ancestor module only to reach a sibling is not an import
                    # of the ancestor's file unless an item of that file is named.
                    graph[mod].add(target)
        circles += report(src, graph, files)
    return 1 if circles else 0


def report(src: Path, graph: dict, files: dict) -> int:
    """Prints each strongly connected set of more than one file; returns how many."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    for comp in found:
        names = sorted(str(files[m].relative_to(src)) for m in comp)
        print(f"{src}: import circle: {' ↔ '.join(names)}")
        for m in sorted(comp):
            inside = sorted(str(files[t].relative_to(src)) for t in graph[m] if t in comp)
            print(f"    {files[m].relative_to(src)} imports {', '.join(inside)}")
    print(f"{src}: {len(files)} files, {sum(map(len, graph.values()))} imports, {len(found)} circles")
    return len(found)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
