#!/usr/bin/env python3
"""Generate a deterministic synthetic site with the shape of the blog author's real site.

The load tests and the benchmark need a site whose numbers mean something: the same
mix of file types, sizes and path depths as the personal site servy was written for,
so that MIME, compression and sendfile-versus-memory decisions are exercised the way
they are in production. The measured shape (full size, --scale 1):

  620 files, about 49 MB
  png 226 / 37 MB (p50 74 KB, p90 283 KB, max 4.4 MB), webp 213 / 5.9 MB, jpg 26 / 2.9 MB
  html 84 / 2.1 MB (83 page index.html, p50 15 KB, max 113 KB, plus 404.html)
  xml 64 / 115 KB, one json search index (258 KB), one css bundle (51 KB, 88-char
  hashed path), two js, favicon, webmanifest, robots.txt
  path depth 0:13, 1:15, 2:118, 3:474
  one crawl pass from / reaches 140 URLs, about 19 MB (images 95% of the bytes),
  plus about 29 redirect aliases: 169 requests per iteration

Output (in --out, which must be empty or absent):
  site/           the site itself (embed it with SERVY_ASSETS_DIR=<out>/site)
  redirects.txt   "alias https://target" lines, the redirects source
  paths.txt       the crawl pass, one URL path per line (what a crawler from / fetches)
  aliases.txt     one alias path per line
  manifest.json   all of the above plus per-type counts and bytes

Same seed and scale, same bytes. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

KB = 1024
MB = 1024 * 1024

# Per image type: (count, total bytes, p50, p90, max). webp/jpg percentiles were not
# measured; these are plausible for a blog's photos and screenshots.
IMAGE_SHAPE = {
    "png": (226, 37 * MB, 74 * KB, 283 * KB, int(4.4 * MB)),
    "webp": (213, int(5.9 * MB), 20 * KB, 55 * KB, 260 * KB),
    "jpg": (26, int(2.9 * MB), 80 * KB, 250 * KB, 420 * KB),
}
HTML_SHAPE = (84, int(2.1 * MB), 15 * KB, 60 * KB, 113 * KB)
XML_SHAPE = (64, 115 * KB, 1200, 3 * KB, 14 * KB)
PASS_URLS = 140
PASS_BYTES = 19 * MB
ALIASES = 29

WORDS = (
    "the a of to and in is it that for on with as this was rust server request "
    "response latency kernel socket thread async await tokio hyper axum nginx "
    "benchmark profile flamegraph cache header encoding gzip brotli etag memory "
    "allocation binary embed static site blog post image photo build deploy nix "
    "systemd journal metric prometheus histogram percentile throughput core cpu "
    "virtual user load test scenario redirect alias short link upstream refresh"
).split()


@dataclass
class File:
    path: str  # relative to the site root, no leading slash
    kind: str  # png, webp, jpg, html, xml, json, css, js, ico, webmanifest, txt
    size: int
    links: list[str] = field(default_factory=list)  # URLs an html page references


def quantile_sizes(rng: random.Random, n: int, total: int, p50: int, p90: int, top: int) -> list[int]:
    """n sizes with the given median, 90th percentile, maximum and (about) total.

    Log-normal quantiles fitted to p50/p90, then the tail above p90 is stretched so the
    sum hits the measured total without moving the median or p90. Shuffled with rng.
    """
    if n <= 0:
        return []
    sigma = math.log(p90 / p50) / 1.2816
    nd = statistics.NormalDist()
    sizes = sorted(int(p50 * math.exp(sigma * nd.inv_cdf((i + 0.5) / n))) for i in range(n))
    sizes = [min(top, max(200, s)) for s in sizes]
    # The measured maximum is an outlier; a small (scaled) set would be all outlier.
    if n >= 20:
        sizes[-1] = top
    tail_from = int(n * 0.9) + 1
    tail = sizes[tail_from:-1]
    rest = sum(sizes) - sum(tail)
    if tail and total > rest:
        factor = (total - rest) / sum(tail)
        # Stretch the tail but keep it between p90 and max, and sorted.
        tail = [min(top, max(p90, int(s * factor))) for s in tail]
        sizes[tail_from:-1] = sorted(tail)
    rng.shuffle(sizes)
    return sizes


def scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def plan(scale: float, seed: int) -> tuple[list[File], list[str], list[tuple[str, str]]]:
    """Decide every file's path, kind and size, the crawl pass and the aliases."""
    rng = random.Random(seed)
    files: list[File] = []

    n_posts = scaled(46, scale)
    n_tags = scaled(30, scale)
    n_cats = scaled(30, scale)
    years = [2019 + i % 6 for i in range(n_posts)]
    posts = [f"posts/{y}/{slug(rng, i)}" for i, y in enumerate(years)]
    tags = [f"tags/{w}-{i}" for i, w in enumerate(rng.sample(WORDS, min(len(WORDS), n_tags)))]
    tags += [f"tags/topic-{i}" for i in range(len(tags), n_tags)]
    cats = [f"categories/{w}-{i}" for i, w in enumerate(rng.sample(WORDS, min(len(WORDS), n_cats)))]
    cats += [f"categories/area-{i}" for i in range(len(cats), n_cats)]
    sections = ["posts", "tags", "about", "projects", "now", "uses"]

    # html: 1 home + 404 + 6 sections + tags + posts (83 index.html at full size).
    pages = ["index.html", "404.html"] + [f"{s}/index.html" for s in sections]
    pages += [f"{t}/index.html" for t in tags] + [f"{p}/index.html" for p in posts]
    html_sizes = quantile_sizes(rng, len(pages), round(HTML_SHAPE[1] * len(pages) / HTML_SHAPE[0]), *HTML_SHAPE[2:])
    # The home page and the post pages are the big ones; put the largest sizes on posts.
    html_sizes.sort()
    order = ["404.html"] + [f"{t}/index.html" for t in tags] + [f"{s}/index.html" for s in sections]
    order += ["index.html"] + [f"{p}/index.html" for p in posts]
    for path, size in zip(order, html_sizes):
        files.append(File(path, "html", size))

    # xml feeds: home, sitemap, two section feeds, tag and category feeds.
    feeds = ["index.xml", "sitemap.xml", "posts/index.xml", "tags/index.xml"]
    feeds += [f"{t}/index.xml" for t in tags] + [f"{c}/index.xml" for c in cats]
    xml_sizes = quantile_sizes(rng, len(feeds), round(XML_SHAPE[1] * len(feeds) / XML_SHAPE[0]), *XML_SHAPE[2:])
    files += [File(p, "xml", s) for p, s in zip(feeds, xml_sizes)]

    css_hash = hashlib.sha256(f"css-{seed}".encode()).hexdigest()
    files += [
        File("index.json", "json", 258 * KB),
        File(f"css/site.bundle.min.{css_hash}.css", "css", 51 * KB),
        File("main.js", "js", 9 * KB),
        File("search.js", "js", 22 * KB),
        File("favicon.ico", "ico", 15 * KB),
        File("site.webmanifest", "webmanifest", 420),
        File("robots.txt", "txt", 70),
    ]

    # Images: 3 at the root, 6 under images/, 28 shared at depth 2, the rest in posts.
    kinds: list[str] = []
    sizes: dict[str, list[int]] = {}
    for kind, (count, total, p50, p90, top) in IMAGE_SHAPE.items():
        n = scaled(count, scale)
        sizes[kind] = quantile_sizes(rng, n, round(total * n / count), p50, p90, top)
        kinds += [kind] * n
    rng.shuffle(kinds)
    n_img = len(kinds)
    n_root, n_one, n_shared = (min(3, n_img), min(6, max(0, n_img - 3)), min(scaled(28, scale), max(0, n_img - 9)))
    images: list[File] = []
    counters: dict[str, int] = {}
    for i, kind in enumerate(kinds):
        counters[kind] = counters.get(kind, 0) + 1
        size = sizes[kind][counters[kind] - 1]
        name = f"{rng.choice(WORDS)}-{i}.{kind}"
        if i < n_root:
            path = ["avatar", "og-default", "logo"][i] + f".{kind}"
        elif i < n_root + n_one:
            path = f"images/{name}"
        elif i < n_root + n_one + n_shared:
            path = f"images/shared/{name}"
        else:
            path = f"{posts[i % len(posts)]}/{name}"
        images.append(File(path, kind, size))
    files += images

    # Links, so a crawl from / reaches the pass: home → sections, recent posts → images.
    by_path = {f.path: f for f in files}
    page_urls = {p: "/" + p[: -len("index.html")] for p in pages}
    css_url = f"/css/site.bundle.min.{css_hash}.css"
    for f in files:
        if f.kind == "html":
            f.links = [css_url, "/main.js", "/search.js", "/favicon.ico"]
    pass_paths = choose_pass(scale, files, posts, sections, images, css_url, page_urls)
    home = by_path["index.html"]
    home.links += [u for u in pass_paths if u.endswith("/") and u != "/" and not u.startswith("/tags/")]
    home.links += [u for u in pass_paths if u.startswith("/tags/")]
    home.links += ["/" + img.path for img in images[:n_root]]
    for img in images[n_root:]:
        page = by_path.get(img.path.rsplit("/", 1)[0] + "/index.html")
        if page is not None:
            page.links.append("/" + img.path)

    aliases = [(f"{w}{i}", target(rng, i)) for i, w in enumerate(rng.choices(WORDS, k=max(5, scaled(ALIASES, scale))))]
    return files, pass_paths, aliases


def choose_pass(scale, files, posts, sections, images, css_url, page_urls) -> list[str]:
    """The URLs one crawl from / reaches: the home page, its assets, the sections and
    the most recent posts with their images, about 140 URLs and 19 MB at full size.

    Image sizes are then swapped between pass and non-pass images of the same type
    (which leaves each type's distribution untouched) until the pass weighs 19 MB.
    """
    want_urls = max(20, scaled(PASS_URLS, scale))
    want_bytes = PASS_BYTES * scale
    urls = ["/", css_url, "/main.js", "/search.js", "/favicon.ico", "/site.webmanifest"]
    urls += [page_urls[f"{s}/index.html"] for s in sections]
    urls += ["/" + img.path for img in images[:3]]
    chosen_imgs = list(images[:3])
    for post in reversed(posts):
        own = [img for img in images if img.path.startswith(post + "/")]
        if len(urls) + 1 + len(own) > want_urls:
            continue
        urls.append("/" + post + "/")
        urls += ["/" + img.path for img in own]
        chosen_imgs += own
    # Top up with tag pages (the home page's tag cloud) to the measured URL count.
    tag_pages = ["/" + f.path[: -len("index.html")] for f in files if f.path.startswith("tags/") and f.kind == "html"]
    urls += tag_pages[: max(0, want_urls - len(urls))]
    urls = urls[:want_urls]

    chosen = {id(f) for f in chosen_imgs}
    size_of = {f.path: f.size for f in files}

    def pass_bytes() -> int:
        total = 0
        for u in urls:
            p = u.lstrip("/")
            total += size_of.get(p if p and not p.endswith("/") else p + "index.html", 0)
        return total

    current = pass_bytes()
    for kind in IMAGE_SHAPE:
        ins = sorted((f for f in images if id(f) in chosen and f.kind == kind), key=lambda f: f.size)
        outs = sorted((f for f in images if id(f) not in chosen and f.kind == kind), key=lambda f: -f.size)
        for a, b in zip(ins, outs):
            gain = b.size - a.size
            if gain <= 0 or current + gain > want_bytes * 1.02:
                continue
            a.size, b.size = b.size, a.size
            current += gain
    return urls


def slug(rng: random.Random, i: int) -> str:
    return "-".join(rng.choices(WORDS, k=rng.randint(2, 5))) + f"-{i}"


def target(rng: random.Random, i: int) -> str:
    host = rng.choice(["github.com/example", "example.org", "docs.example.net", "talks.example.com"])
    return f"https://{host}/{'-'.join(rng.choices(WORDS, k=3))}/{i}"


# --- content writers: valid headers, realistic compressibility ----------------------


def text(rng: random.Random, n: int) -> str:
    """Prose-like text of about n characters: compresses like real HTML body text."""
    out: list[str] = []
    have = 0
    while have < n:
        sentence = " ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + ". "
        out.append(sentence)
        have += len(sentence)
    return "".join(out)[:n]


def fit(head: str, tail: str, size: int, filler) -> bytes:
    """head + filler + tail, exactly size bytes (filler pads the gap)."""
    gap = max(0, size - len(head.encode()) - len(tail.encode()))
    return (head + filler(gap) + tail).encode()[: max(size, len(head) + len(tail))]


def html(rng: random.Random, f: File) -> bytes:
    title = f.path.rsplit("/", 2)[-2] if "/" in f.path else "home"
    links = "".join(
        f'<img src="{u}" alt="">\n' if u.rsplit(".", 1)[-1] in IMAGE_SHAPE else f'<a href="{u}">{u}</a>\n'
        for u in f.links[4:]
    )
    head = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n'
        f'<link rel="stylesheet" href="{f.links[0]}"><link rel="icon" href="/favicon.ico">\n'
        f'<link rel="manifest" href="/site.webmanifest"><script src="/main.js" defer></script>\n'
        f'<script src="/search.js" defer></script></head>\n<body><main>\n{links}<article><p>'
    )
    tail = "</p></article></main></body></html>\n"

    def filler(n: int) -> str:
        return text(rng, n)

    return fit(head, tail, f.size, filler)


def xml(rng: random.Random, f: File) -> bytes:
    head = '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n'
    tail = "</channel></rss>\n"

    def items(n: int) -> str:
        out, have, i = [], 0, 0
        while have < n:
            item = f"<item><title>{text(rng, 40)}</title><link>https://example.org/p/{i}/</link></item>\n"
            out.append(item)
            have += len(item)
            i += 1
        return "".join(out)[:n]

    return fit(head, tail, f.size, items)


def png(rng: random.Random, size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    w = h = max(1, int(math.sqrt(size / 3)))
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    fixed = 8 + len(ihdr) + 12 + 12  # signature, IHDR, IDAT framing, IEND
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", rng.randbytes(max(0, size - fixed))) + chunk(b"IEND", b"")


def jpg(rng: random.Random, size: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    body = rng.randbytes(max(0, size - 2 - len(app0) - 2 - 2)).replace(b"\xff", b"\xfe")
    return b"\xff\xd8" + app0 + b"\xff\xda" + body + b"\xff\xd9"


def webp(rng: random.Random, size: int) -> bytes:
    payload = rng.randbytes(max(0, size - 20))
    vp8 = b"VP8 " + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(vp8)) + b"WEBP" + vp8


def ico(rng: random.Random, size: int) -> bytes:
    head = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 32, 32, 0, 0, 1, 32, size - 22, 22)
    return head + rng.randbytes(max(0, size - len(head)))


def content(rng: random.Random, f: File) -> bytes:
    if f.kind == "html":
        return html(rng, f)
    if f.kind == "xml":
        return xml(rng, f)
    if f.kind in ("png", "jpg", "webp", "ico"):
        return {"png": png, "jpg": jpg, "webp": webp, "ico": ico}[f.kind](rng, f.size)
    if f.kind == "json":
        return fit('{"pages":[', "]}\n", f.size, lambda n: json.dumps([text(rng, 60) for _ in range(n // 62 + 1)])[1:-1])
    if f.kind == "css":
        rule = lambda n: "".join(f".c{i}{{margin:{i % 9}px;color:#{i % 4096:03x}}}\n" for i in range(n // 24 + 1))  # noqa: E731
        return fit("/* bundle */\n", "\n", f.size, rule)
    if f.kind == "js":
        return fit('"use strict";\n', "\n", f.size, lambda n: f"// {text(rng, n)}")
    if f.kind == "webmanifest":
        return fit('{"name":"Example","icons":[{"src":"/avatar.png"}],"x":"', '"}\n', f.size, lambda n: "a" * n)
    if f.kind == "txt":
        return fit("User-agent: *\nAllow: /\n", "Sitemap: /sitemap.xml\n", f.size, lambda n: "#" * n)
    raise ValueError(f.kind)


# --- main ------------------------------------------------------------------------------


def percentile(sorted_sizes: list[int], q: float) -> int:
    return sorted_sizes[min(len(sorted_sizes) - 1, int(q * len(sorted_sizes)))]


def summary(files: list[File], pass_paths: list[str], pass_bytes: int, aliases: int) -> str:
    lines = [f"{'type':<12}{'files':>6}{'bytes':>12}{'p50':>10}{'p90':>10}{'max':>10}"]
    kinds = sorted({f.kind for f in files}, key=lambda k: -sum(f.size for f in files if f.kind == k))
    for k in kinds:
        s = sorted(f.size for f in files if f.kind == k)
        lines.append(f"{k:<12}{len(s):>6}{sum(s):>12}{percentile(s, .5):>10}{percentile(s, .9):>10}{s[-1]:>10}")
    total = sum(f.size for f in files)
    lines.append(f"{'total':<12}{len(files):>6}{total:>12}  ({total / MB:.1f} MiB)")
    depth: dict[int, int] = {}
    for f in files:
        depth[f.path.count("/")] = depth.get(f.path.count("/"), 0) + 1
    lines.append("depth       " + ", ".join(f"{d}:{n}" for d, n in sorted(depth.items())))
    lines.append(f"longest     {max(len(f.path) for f in files)} chars")
    lines.append(f"index.html  {sum(f.path.endswith('index.html') for f in files)}")
    lines.append(
        f"pass        {len(pass_paths)} URLs, {pass_bytes} bytes ({pass_bytes / MB:.1f} MiB), "
        f"+ {aliases} aliases = {len(pass_paths) + aliases} requests per iteration"
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory (created; must be empty)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full site (0.05 for CI)")
    ap.add_argument("--seed", type=int, default=2024, help="random seed (same seed, same bytes)")
    args = ap.parse_args()
    if not 0 < args.scale <= 4:
        ap.error("--scale must be in (0, 4]")
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} is not empty")

    start = time.monotonic()
    files, pass_paths, aliases = plan(args.scale, args.seed)
    site = args.out / "site"
    rng = random.Random(args.seed + 1)
    for f in files:
        dest = site / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = content(rng, f)
        f.size = len(data)
        dest.write_bytes(data)

    size_of = {f.path: f.size for f in files}
    pass_bytes = sum(size_of[u.lstrip("/") + ("index.html" if u.endswith("/") else "")] for u in pass_paths)
    (args.out / "redirects.txt").write_text(
        "# short links: alias target\n" + "".join(f"{a} {t}\n" for a, t in aliases)
    )
    (args.out / "paths.txt").write_text("".join(u + "\n" for u in pass_paths))
    (args.out / "aliases.txt").write_text("".join(f"/{a}\n" for a, _ in aliases))
    by_kind: dict[str, dict[str, int]] = {}
    for f in files:
        k = by_kind.setdefault(f.kind, {"files": 0, "bytes": 0})
        k["files"] += 1
        k["bytes"] += f.size
    manifest = {
        "seed": args.seed,
        "scale": args.scale,
        "files": len(files),
        "bytes": sum(size_of.values()),
        "by_type": by_kind,
        "pass": pass_paths,
        "pass_bytes": pass_bytes,
        "aliases": [{"alias": f"/{a}", "target": t} for a, t in aliases],
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(summary(files, pass_paths, pass_bytes, len(aliases)))
    print(f"wrote {site} in {time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
