"""Turn the runs into report.md, report.json and report.html (inline SVG charts).

Every figure is the median over rounds of one (server, load) pair. The headline is the
server's CPU time per request: with the server on one core and the client on the
other, the client is often the limit, so requests/s alone can hide a server's cost.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path

COLOURS = {
    "servy": "#d9480f",
    "servy-nolog": "#f08c00",
    "servy-zc-off": "#f59f00",
    "servy-zc-auto": "#ae3ec9",
    "nginx": "#2b8a3e",
    "nginx-log": "#74b816",
    "nginx-nopush": "#8ce99a",
    "h2o": "#5f3dc4",
    "h2o-log": "#9775fa",
    "caddy": "#0b7285",
    "caddy-log": "#3bc9db",
    "static-web-server": "#1c7ed6",
}
CONNS_ONLY = {"kib_per_idle_conn", "fresh_ms"}
NAN = float("nan")
METRICS = [
    # key, label, format, better
    ("req_per_s", "requests/s", "{:,.0f}", "higher"),
    ("mib_per_s", "MiB/s", "{:,.1f}", "higher"),
    ("p50_ms", "p50 ms", "{:.2f}", "lower"),
    ("p95_ms", "p95 ms", "{:.2f}", "lower"),
    ("p99_ms", "p99 ms", "{:.2f}", "lower"),
    ("failed", "failed", "{:.0f}", "lower"),
    ("cpu_s_per_1k", "CPU s / 1k req", "{:.3f}", "lower"),
    ("cpu_us_per_req", "CPU µs / req", "{:.1f}", "lower"),
    # The same split: the server's own code, and the kernel's work on its behalf.
    ("user_us_per_req", "user µs / req", "{:.1f}", "lower"),
    ("sys_us_per_req", "kernel µs / req", "{:.1f}", "lower"),
    # Below 100%, the server was not the limit: the client was (or the network path).
    ("cpu_busy_pct", "server CPU %", "{:.0f}", "lower"),
    ("rss_anon_mib", "RssAnon MiB", "{:.1f}", "lower"),
    ("rss_mib", "RSS MiB", "{:.1f}", "lower"),
    # The conns load only (0 elsewhere).
    ("kib_per_idle_conn", "KiB / idle conn", "{:.1f}", "lower"),
    ("fresh_ms", "fresh req ms", "{:.1f}", "lower"),
]


def derive(run: dict) -> dict:
    """Per-run figures from the raw load result and server usage."""
    req = max(run["requests"], 1)
    dur = max(run["duration_s"], 1e-9)
    return {
        "req_per_s": run["requests"] / dur,
        "mib_per_s": run["bytes"] / dur / 2**20,
        "p50_ms": run["p50_ms"],
        "p95_ms": run["p95_ms"],
        "p99_ms": run["p99_ms"],
        "failed": run["failed"],
        "cpu_s_per_1k": run["cpu_s"] / req * 1000,
        "cpu_us_per_req": run["cpu_s"] / req * 1e6,
        # Runs measured as one figure (benchvm reads a cgroup's usage_usec) have no split.
        "user_us_per_req": run["cpu_user_s"] / req * 1e6 if "cpu_user_s" in run else NAN,
        "sys_us_per_req": run["cpu_sys_s"] / req * 1e6 if "cpu_sys_s" in run else NAN,
        "cpu_busy_pct": run["cpu_s"] / dur * 100,
        "rss_anon_mib": run["rss_anon_peak_kib"] / 1024,
        "rss_mib": run["rss_peak_kib"] / 1024,
        "kib_per_idle_conn": run.get("kib_per_idle_conn", 0.0),
        "fresh_ms": run.get("fresh_ms", 0.0),
    }


def medians(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """{load: {server: {metric: median}}}; failed requests are summed, not medianed."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        grouped.setdefault((r["load"], r["server"]), []).append(derive(r))
    out: dict[str, dict[str, dict]] = {}
    for (load, server), rows in grouped.items():
        m = {k: statistics.median(row[k] for row in rows) for k, *_ in METRICS}
        m["failed"] = sum(row["failed"] for row in rows)
        m["rounds"] = len(rows)
        out.setdefault(load, {})[server] = m
    return out


def ratios(table: dict) -> dict[str, dict[str, float]]:
    """servy / nginx per load: CPU per request (≤ 1 is the target) and requests/s (≥ 1)."""
    out = {}
    for load, servers in table.items():
        if "servy" in servers and "nginx" in servers:
            s, n = servers["servy"], servers["nginx"]
            out[load] = {
                "cpu_per_req": s["cpu_us_per_req"] / n["cpu_us_per_req"] if n["cpu_us_per_req"] else float("nan"),
                "req_per_s": s["req_per_s"] / n["req_per_s"] if n["req_per_s"] else float("nan"),
                "p99": s["p99_ms"] / n["p99_ms"] if n["p99_ms"] else float("nan"),
            }
    return out


def placement(meta: dict) -> str:
    """Where the server and the load generator ran: pinned CPUs, or as meta says."""
    if "placement" in meta:
        return meta["placement"]
    return f"Server pinned to CPU {meta['server_cpu']}, load generator to CPU {meta['client_cpu']}."


def extra_tables(tables: list[dict]) -> tuple[str, str]:
    """Further tables ({title, header, rows} of strings) as markdown and as HTML."""
    md, html_out = "", ""
    for t in tables:
        md += f"\n## {t['title']}\n\n| " + " | ".join(t["header"]) + " |\n|" + "---|" * len(t["header"]) + "\n"
        md += "".join("| " + " | ".join(row) + " |\n" for row in t["rows"])
        head = "".join(f"<th>{html.escape(h)}</th>" for h in t["header"])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t["rows"])
        html_out += f"<h2>{html.escape(t['title'])}</h2><table><tr>{head}</tr>{body}</table>"
    return md, html_out


def cost_fit(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Per server, least squares over every run: CPU µs per request = a + b · KiB per request.

    a is the fixed cost of a request, b the cost of each KiB sent (what copying or not
    copying changes). bytes are what the client received, heads included."""
    points: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        if r["requests"]:
            points.setdefault(r["server"], []).append((r["bytes"] / r["requests"] / 1024, r["cpu_s"] / r["requests"] * 1e6))
    out = {}
    for server, pts in points.items():
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        # A line through loads of about the same size says nothing (blog and wrk alone
        # both send ~118 KiB per request): fit only across at least a 2× spread.
        xs = [x for x, _ in pts]
        if n < 2 or sxx == 0 or max(xs) < 2 * min(xs):
            continue
        b = sum((x - mx) * (y - my) for x, y in pts) / sxx
        out[server] = {"a_us": my - b * mx, "b_us_per_kib": b, "points": n}
    return out


def variant_ratios(table: dict) -> dict[str, dict[str, float]]:
    """Each servy variant's CPU per request and p99 over nginx's, per load."""
    out: dict[str, dict[str, float]] = {}
    for load, servers in table.items():
        n = servers.get("nginx")
        for name, m in servers.items():
            if name.startswith("servy") and n and n["cpu_us_per_req"] and n["p99_ms"]:
                out.setdefault(load, {})[name] = m["cpu_us_per_req"] / n["cpu_us_per_req"]
                out[load][f"{name} p99"] = m["p99_ms"] / n["p99_ms"]
    return out


def round_ratios(runs: list[dict]) -> dict[str, dict[int, float]]:
    """servy's CPU per request over nginx's in each round, per load: whether rounds agree."""
    cost = {(r["load"], r["server"], r["round"]): r["cpu_s"] / r["requests"] for r in runs if r["requests"]}
    out: dict[str, dict[int, float]] = {}
    for (load, server, rnd), c in cost.items():
        n = cost.get((load, "nginx", rnd))
        if server == "servy" and n:
            out.setdefault(load, {})[rnd] = c / n
    return out


def kernel_floor(table: dict) -> dict[str, dict[str, float]]:
    """Per load, each servy variant's kernel time over each nginx variant's whole CPU time.

    That is the ratio servy would reach if its own code cost nothing: the kernel's work
    for the syscalls it makes (one read and one write per request on HTTP/1) is a floor
    no user-space change goes below."""
    out: dict[str, dict[str, float]] = {}
    for load, servers in table.items():
        for name, m in servers.items():
            if not name.startswith("servy") or math.isnan(m["sys_us_per_req"]):
                continue
            for other, n in servers.items():
                if other.startswith("nginx") and n["cpu_us_per_req"]:
                    out.setdefault(load, {})[f"{name} / {other}"] = m["sys_us_per_req"] / n["cpu_us_per_req"]
    return out


def floor_markdown(floor: dict) -> str:
    if not floor:
        return ""
    pairs = sorted({k for v in floor.values() for k in v})
    lines = ["", "## The kernel's floor", "",
             "servy's kernel µs per request over nginx's whole CPU µs per request: the ratio servy would "
             "reach if its own code took no time at all.", "",
             "| load | " + " | ".join(pairs) + " |", "|---|" + "---:|" * len(pairs)]
    for load, v in floor.items():
        lines.append(f"| {load} | " + " | ".join(f"{v[p]:.2f}" if p in v else "" for p in pairs) + " |")
    return "\n".join(lines) + "\n"


def cost_markdown(fit: dict, variants: dict) -> str:
    lines = ["", "## Fixed and per-byte cost", "",
             "CPU µs per request = a + b · KiB per request, least squares over every run of each server:", "",
             "| server | a (µs) | b (µs per KiB) | runs |", "|---|---:|---:|---:|"]
    lines += [f"| {s} | {f['a_us']:.1f} | {f['b_us_per_kib']:.3f} | {f['points']} |" for s, f in fit.items()]
    names = sorted({k for v in variants.values() for k in v if not k.endswith(" p99")})
    if names:
        lines += ["", "Each servy variant over nginx (CPU per request, and p99):", "",
                  "| load | " + " | ".join(f"{n} CPU | {n} p99" for n in names) + " |",
                  "|---|" + "---:|---:|" * len(names)]
        for load, v in variants.items():
            cells = [f"{v.get(n, float('nan')):.2f} | {v.get(n + ' p99', float('nan')):.2f}" for n in names]
            lines.append(f"| {load} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def log_ratios(table: dict) -> dict[str, dict[str, float]]:
    """CPU per request of servy (request log on, the default) over servy-nolog (≤ 1.1 is the
    target) and over nginx-log (nginx with its access log; ≤ 1 is the target)."""
    out: dict[str, dict[str, float]] = {}
    for load, servers in table.items():
        s = servers.get("servy")
        if not s or load == "conns":
            continue
        for other, key in (("servy-nolog", "log_on_over_off"), ("nginx-log", "over_nginx_log")):
            o = servers.get(other)
            if o and o["cpu_us_per_req"]:
                out.setdefault(load, {})[key] = s["cpu_us_per_req"] / o["cpu_us_per_req"]
    return out


def markdown(meta: dict, table: dict, ratio: dict) -> str:
    cols = [m for m in METRICS if m[0] != "cpu_s_per_1k"]
    lines = [
        f"# servy benchmark, {meta['date']}",
        "",
        f"Machine: {meta['machine']}. {placement(meta)} Site: {meta['site']}. Medians of {meta['rounds']} rounds "
        f"of {meta['duration']} per load; failed requests are summed over rounds.",
        "",
        "| load | server | " + " | ".join(label for _, label, _, _ in cols) + " |",
        "|---|---|" + "---:|" * len(cols),
    ]
    for load, servers in table.items():
        for server, m in servers.items():
            # The idle-connection columns mean something for the conns load only.
            cells = ["" if (k in CONNS_ONLY and load != "conns") or math.isnan(m[k]) else fmt.format(m[k])
                     for k, _, fmt, _ in cols]
            lines.append(f"| {load} | {server} | " + " | ".join(cells) + " |")
    if ratio:
        lines += ["", "servy / nginx (CPU per request: ≤ 1.00 is the target; requests/s: ≥ 1.00):", ""]
        lines += ["| load | CPU per request | requests/s | p99 |", "|---|---:|---:|---:|"]
        for load, r in ratio.items():
            lines.append(f"| {load} | {r['cpu_per_req']:.2f} | {r['req_per_s']:.2f} | {r['p99']:.2f} |")
    logs = log_ratios(table)
    if logs:
        lines += ["", "servy's request log, CPU per request (servy / servy-nolog ≤ 1.10 and servy / nginx-log ≤ 1.00 "
                  "are the targets):", ""]
        lines += ["| load | servy / servy-nolog | servy / nginx-log |", "|---|---:|---:|"]
        for load, r in logs.items():
            cells = [f"{r[k]:.2f}" if k in r else "–" for k in ("log_on_over_off", "over_nginx_log")]
            lines.append(f"| {load} | " + " | ".join(cells) + " |")
    if meta.get("notes"):
        lines += [""] + [f"- {note}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"


def bar_chart(title: str, table: dict, key: str, fmt: str, subtitle: str = "", width: int = 720) -> str:
    """Grouped horizontal bars: one group per load, one bar per server."""
    loads = list(table)
    servers = sorted({s for v in table.values() for s in v}, key=lambda s: list(COLOURS).index(s) if s in COLOURS else 9)
    top = max((table[l][s][key] for l in loads for s in table[l]), default=1) or 1
    bar_h, gap, left, label_w = 18, 14, 150, 90
    y = 52 if subtitle else 36
    parts = [f'<text x="0" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>']
    if subtitle:
        parts.append(f'<text x="0" y="38" font-size="11" fill="#555">{html.escape(subtitle)}</text>')
    for load in loads:
        parts.append(f'<text x="0" y="{y + 13}" font-weight="bold">{html.escape(load)}</text>')
        y += bar_h + 2
        for s in servers:
            if s not in table[load]:
                continue
            v = table[load][s][key]
            w = max(1.0, v / top * (width - left - label_w))
            parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{html.escape(s)}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLOURS.get(s, "#888")}"/>')
            parts.append(f'<text x="{left + w + 5:.1f}" y="{y + 13}">{fmt.format(v)}</text>')
            y += bar_h + 4
        y += gap
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif" '
        f'font-size="12">{"".join(parts)}</svg>'
    )


def html_report(meta: dict, table: dict, ratio: dict, md: str, flamegraph: bool, extra: str = "") -> str:
    charts = [
        ("Server CPU time per request (µs, lower is better)", "cpu_us_per_req", "{:.1f}"),
        ("Requests per second (higher is better)", "req_per_s", "{:,.0f}"),
        ("p99 latency (ms, lower is better)", "p99_ms", "{:.2f}"),
        ("Peak anonymous memory, RssAnon (MiB, lower is better)", "rss_anon_mib", "{:.1f}"),
    ]
    svgs = "".join(f"<figure>{bar_chart(t, table, k, f)}</figure>" for t, k, f in charts)
    rows = "".join(
        f"<tr><td>{html.escape(l)}</td><td>{r['cpu_per_req']:.2f}</td><td>{r['req_per_s']:.2f}</td><td>{r['p99']:.2f}</td></tr>"
        for l, r in ratio.items()
    )
    ratio_table = (
        f"<h2>servy / nginx</h2><table><tr><th>load</th><th>CPU per request (target ≤ 1)</th>"
        f"<th>requests/s (target ≥ 1)</th><th>p99</th></tr>{rows}</table>"
        if ratio
        else ""
    )
    cols = [m for m in METRICS if m[0] != "cpu_s_per_1k"]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _, _ in cols)
    body = "".join(
        f"<tr><td>{html.escape(l)}</td><td>{html.escape(s)}</td>"
        + "".join(f"<td>{fmt.format(m[k])}</td>" for k, _, fmt, _ in cols)
        + "</tr>"
        for l, servers in table.items()
        for s, m in servers.items()
    )
    flame = '<h2>Profile</h2><p><a href="flamegraph.svg">flamegraph.svg</a>: servy under the wrk load.</p>' if flamegraph else ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in meta.get("notes", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>servy benchmark {html.escape(meta['date'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:13px}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}figure{{margin:1.5em 0}}</style></head><body>
<h1>servy benchmark, {html.escape(meta['date'])}</h1>
<p>{html.escape(meta['machine'])}. {html.escape(placement(meta))}
Site: {html.escape(meta['site'])}. Medians of {meta['rounds']} rounds of {html.escape(meta['duration'])} per load.</p>
{extra}{ratio_table}{svgs}
<h2>All figures</h2><table><tr><th>load</th><th>server</th>{head}</tr>{body}</table>
<ul>{notes}</ul>{flame}
</body></html>
"""


def write(out: Path, meta: dict, runs: list[dict], profile: dict | None, tables: list[dict] | None = None) -> dict:
    table = medians(runs)
    ratio = ratios(table)
    md = markdown(meta, table, ratio)
    extra_md, extra_html = extra_tables(tables or [])
    md += extra_md
    fit, variants = cost_fit(runs), variant_ratios(table)
    md += cost_markdown(fit, variants)
    floor = kernel_floor(table)
    md += floor_markdown(floor)
    per_round = round_ratios(runs)
    if per_round:
        # nginx's CPU per request varied by a third between identical runs on a shared
        # machine (docs/benchmarks.md, "Zero-copy: measured"): a median hides that, the rounds show it.
        md += "\nservy / nginx CPU per request, per round (rounds that disagree mean a noisy machine):\n\n"
        md += "| load | " + " | ".join(f"round {r}" for r in sorted({r for v in per_round.values() for r in v})) + " |\n"
        md += "|---|" + "---:|" * len({r for v in per_round.values() for r in v}) + "\n"
        for load, v in per_round.items():
            md += f"| {load} | " + " | ".join(f"{v[r]:.2f}" if r in v else "" for r in sorted({r for v in per_round.values() for r in v})) + " |\n"
    if profile:
        top = profile.get("top", {})
        md += f"\n## Where servy's time goes (wrk load, perf, {top.get('samples', 0)} samples)\n\n"
        md += "Self time (the function on top of the stack):\n\n| function | share |\n|---|---:|\n"
        md += "".join(f"| `{f}` | {p:.1f}% |\n" for f, p in top.get("self", []))
        md += "\nTotal time (the function anywhere on the stack):\n\n| function | share |\n|---|---:|\n"
        md += "".join(f"| `{f}` | {p:.1f}% |\n" for f, p in top.get("total", []))
    (out / "report.md").write_text(md)
    (out / "report.json").write_text(
        json.dumps({"meta": meta, "medians": table, "servy_over_nginx": ratio, "request_log": log_ratios(table),
                    "cost_fit": fit,
                    "variants_over_nginx": variants, "kernel_floor": floor, "servy_over_nginx_per_round": per_round, "runs": runs,
                    "profile": profile}, indent=1)
    )
    (out / "report.html").write_text(
        html_report(meta, table, ratio, md, bool(profile and profile.get("flamegraph")), extra_html)
    )
    chart = bar_chart(
        "Server CPU time per request, µs (lower is better)",
        table,
        "cpu_us_per_req",
        "{:.1f}",
        subtitle=f"{meta['date']} · {meta['machine']} · server on 1 core · medians of {meta['rounds']} rounds",
    )
    (out / "cpu-per-request.svg").write_text(chart + "\n")
    return {"table": table, "ratio": ratio, "markdown": md}
