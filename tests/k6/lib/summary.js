// handleSummary for both scenarios: summary.json, summary.txt and a self-contained
// summary.html in SUMMARY_DIR (default: the working directory), and the text on stdout.
//
// Nothing here is imported from outside the machine: the load tests run where no
// remote module can be fetched, so the text and HTML renderings are written here.

const dir = (__ENV.SUMMARY_DIR || '.').replace(/\/+$/, '');

function value(data, metric, key) {
  const m = data.metrics[metric];
  return m && m.values[key] !== undefined ? m.values[key] : 0;
}

// The figures a reader wants first, in one flat object (also what the bench runner reads).
export function headline(data) {
  return {
    requests: value(data, 'http_reqs', 'count'),
    requests_per_s: value(data, 'http_reqs', 'rate'),
    bytes: value(data, 'data_received', 'count'),
    bytes_per_s: value(data, 'data_received', 'rate'),
    iterations: value(data, 'iterations', 'count'),
    failed_requests: value(data, 'http_req_failed', 'passes'),
    checks_passed: value(data, 'checks', 'passes'),
    checks_failed: value(data, 'checks', 'fails'),
    latency_ms: {
      avg: value(data, 'http_req_duration', 'avg'),
      p50: value(data, 'http_req_duration', 'med'),
      p90: value(data, 'http_req_duration', 'p(90)'),
      p95: value(data, 'http_req_duration', 'p(95)'),
      p99: value(data, 'http_req_duration', 'p(99)'),
      max: value(data, 'http_req_duration', 'max'),
    },
  };
}

function thresholds(data) {
  const out = [];
  for (const [name, metric] of Object.entries(data.metrics)) {
    for (const [expr, result] of Object.entries(metric.thresholds || {})) {
      out.push({ metric: name, expr, ok: result.ok });
    }
  }
  return out;
}

function checks(group, out = []) {
  for (const c of group.checks || []) out.push(c);
  for (const g of group.groups || []) checks(g, out);
  return out;
}

function human(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i += 1;
  }
  return `${bytes.toFixed(1)} ${units[i]}`;
}

function text(name, h, data) {
  const l = h.latency_ms;
  const lines = [
    `k6 scenario: ${name}`,
    `  requests      ${h.requests} (${h.requests_per_s.toFixed(1)}/s) in ${h.iterations} iterations`,
    `  received      ${human(h.bytes)} (${human(h.bytes_per_s)}/s)`,
    `  latency ms    p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p95 ${l.p95.toFixed(2)}  p99 ${l.p99.toFixed(2)}  max ${l.max.toFixed(2)}`,
    `  failed        ${h.failed_requests} requests, ${h.checks_failed} of ${h.checks_passed + h.checks_failed} checks`,
  ];
  if (data.metrics.compressed_text) {
    const c = data.metrics.compressed_text.values;
    lines.push(`  compressed    ${(c.rate * 100).toFixed(1)}% of text responses (br, gzip or zstd)`);
  }
  for (const c of checks(data.root_group)) {
    lines.push(`  check         ${c.fails === 0 ? 'ok  ' : 'FAIL'} ${c.name} (${c.passes} passed, ${c.fails} failed)`);
  }
  for (const t of thresholds(data)) {
    lines.push(`  threshold     ${t.ok ? 'ok  ' : 'FAIL'} ${t.metric}: ${t.expr}`);
  }
  return `${lines.join('\n')}\n`;
}

function escape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

// Horizontal bars for the latency percentiles, drawn as inline SVG.
function latencyChart(l) {
  const rows = [['p50', l.p50], ['p90', l.p90], ['p95', l.p95], ['p99', l.p99], ['max', l.max]];
  const top = Math.max(...rows.map((r) => r[1]), 0.001);
  const bars = rows
    .map(([label, v], i) => {
      const w = Math.max(1, (v / top) * 360);
      const y = 10 + i * 26;
      return `<text x="0" y="${y + 14}">${label}</text><rect x="40" y="${y}" width="${w.toFixed(1)}" height="18" fill="#3b7dd8"/><text x="${(46 + w).toFixed(1)}" y="${y + 14}">${v.toFixed(2)} ms</text>`;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="520" height="${20 + rows.length * 26}" font-family="sans-serif" font-size="13">${bars}</svg>`;
}

function html(name, h, data) {
  const rows = [
    ['requests', `${h.requests} (${h.requests_per_s.toFixed(1)}/s)`],
    ['iterations', h.iterations],
    ['received', `${human(h.bytes)} (${human(h.bytes_per_s)}/s)`],
    ['failed requests', h.failed_requests],
    ['failed checks', `${h.checks_failed} of ${h.checks_passed + h.checks_failed}`],
  ];
  const verdicts = thresholds(data)
    .map((t) => `<tr><td>${escape(t.metric)}</td><td><code>${escape(t.expr)}</code></td><td class="${t.ok ? 'ok' : 'bad'}">${t.ok ? 'passed' : 'FAILED'}</td></tr>`)
    .join('');
  const checkRows = checks(data.root_group)
    .map((c) => `<tr><td>${escape(c.name)}</td><td>${c.passes}</td><td class="${c.fails ? 'bad' : 'ok'}">${c.fails}</td></tr>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>k6 ${escape(name)} summary</title>
<style>body{font-family:sans-serif;max-width:46em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}
.ok{color:#17702f}.bad{color:#b00020;font-weight:bold}</style></head><body>
<h1>k6 scenario: ${escape(name)}</h1>
<p>${escape(__ENV.BASE_URL || '')}, ${escape(__ENV.VUS || '10')} virtual users, ${escape(__ENV.DURATION || '30s')}.</p>
<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${escape(v)}</td></tr>`).join('')}</table>
<h2>Latency</h2>${latencyChart(h.latency_ms)}
<h2>Thresholds</h2><table><tr><th>metric</th><th>threshold</th><th>result</th></tr>${verdicts}</table>
<h2>Checks</h2><table><tr><th>check</th><th>passed</th><th>failed</th></tr>${checkRows}</table>
</body></html>
`;
}

export function summarise(name) {
  return function handleSummary(data) {
    const h = headline(data);
    const txt = text(name, h, data);
    return {
      stdout: txt,
      [`${dir}/summary.json`]: JSON.stringify({ scenario: name, headline: h, k6: data }, null, 1),
      [`${dir}/summary.txt`]: txt,
      [`${dir}/summary.html`]: html(name, h, data),
    };
  };
}
