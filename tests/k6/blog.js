// The blog's scenario: every virtual user repeatedly fetches the whole site in one
// http.batch, every page and asset of a crawl pass plus every redirect alias, without
// following redirects. 10 users for 30 s in the original; see lib/input.js for the env.
//
// Pass/fail: every check passes and no request fails (k6 exits 99 otherwise).

import http from 'k6/http';
import { check } from 'k6';
import { baseUrl, loadAliases, loadPaths } from './lib/input.js';
import { summarise } from './lib/summary.js';

const paths = loadPaths();
const aliases = loadAliases();

export { options } from './lib/input.js';

// 200 for assets, 301/308 for aliases; anything else is a failed request.
http.setResponseCallback(http.expectedStatuses(200, 301, 308));

const requests = paths
  .map((p) => ['GET', baseUrl + p, null, { redirects: 0, tags: { kind: 'asset' } }])
  .concat(aliases.map((a) => ['GET', baseUrl + a, null, { redirects: 0, tags: { kind: 'alias' } }]));

export default function () {
  const responses = http.batch(requests);
  for (let i = 0; i < responses.length; i += 1) {
    const r = responses[i];
    if (i < paths.length) {
      check(r, { 'asset is 200': (res) => res.status === 200 });
    } else {
      check(r, {
        'alias is 301/308 with Location': (res) => (res.status === 301 || res.status === 308) && !!res.headers.Location,
      });
    }
  }
}

export const handleSummary = summarise('blog');
