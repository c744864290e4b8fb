// Inputs shared by the scenarios, read once in k6's init context.
//
// BASE_URL      server under test, no trailing slash needed (default http://127.0.0.1:8080)
// PATHS_FILE    one URL path per line: `servy --list-assets` output or the site
//               generator's paths.txt; a missing leading slash is added
// ALIASES_FILE  optional; one alias per line, or a redirects file (`alias target`
//               lines, `#` comments): the first field of each line is the alias
// VUS, DURATION virtual users and run length (default 10 and 30s, as in the blog)

export const baseUrl = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');

// Lines of a file, without comments, blank lines or anything after the first field.
function firstFields(file) {
  return open(file)
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(/\s+/)[0])
    .map((path) => (path.startsWith('/') ? path : `/${path}`));
}

export function loadPaths() {
  if (!__ENV.PATHS_FILE) {
    throw new Error('PATHS_FILE is required (one URL path per line)');
  }
  const paths = firstFields(__ENV.PATHS_FILE);
  if (paths.length === 0) {
    throw new Error(`${__ENV.PATHS_FILE} lists no paths`);
  }
  return paths;
}

export function loadAliases() {
  return __ENV.ALIASES_FILE ? firstFields(__ENV.ALIASES_FILE) : [];
}

export const vus = Number(__ENV.VUS || 10);
export const duration = __ENV.DURATION || '30s';

// Percentiles the summaries report (k6's default stops at p(95)).
export const trendStats = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

// The k6 options both scenarios share: VUS users for DURATION, and the pass/fail rule
// (every check passes, no request fails; k6 exits 99 otherwise).
export const options = {
  vus,
  duration,
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
  },
  summaryTrendStats: trendStats,
  // Bodies are counted in data_received either way; keeping them only costs k6 memory.
  discardResponseBodies: true,
};
