// A browser-like scenario: the same pages, assets and aliases as blog.js, but asking
// for compressed bodies (`Accept-Encoding: br, gzip`) and, like a browser with a warm
// cache, revalidating part of the requests with `If-None-Match` (a 304 is expected).
//
// REVALIDATE  share of requests (0..1) sent with the ETag this user saw before (0.5)
// plus the env of lib/input.js. Pass/fail: every check passes, no request fails.

import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { baseUrl, loadAliases, loadPaths } from './lib/input.js';
import { summarise } from './lib/summary.js';

const paths = loadPaths();
const aliases = loadAliases();
const revalidate = Number(__ENV.REVALIDATE === undefined ? 0.5 : __ENV.REVALIDATE);

export { options } from './lib/input.js';

http.setResponseCallback(http.expectedStatuses(200, 301, 304, 308));

// Reported, not a threshold: how many text responses came compressed.
const compressedText = new Rate('compressed_text');
const textTypes = /^(text\/|application\/(json|javascript|xml|manifest\+json|rss\+xml|atom\+xml))/;

// Per virtual user, like a browser cache: URL → the validator header to send back.
const validators = {};
let turn = 0;

export default function () {
  const urls = paths.map((p) => baseUrl + p).concat(aliases.map((a) => baseUrl + a));
  const conditional = [];
  const requests = urls.map((url) => {
    const headers = { 'Accept-Encoding': 'br, gzip' };
    // Spread revalidations evenly over requests instead of drawing random numbers.
    turn += 1;
    const seen = validators[url];
    const revalidating = seen !== undefined && (turn * revalidate) % 1 < revalidate;
    if (revalidating) headers[seen[0]] = seen[1];
    conditional.push(revalidating);
    return ['GET', url, null, { headers, redirects: 0, tags: { kind: revalidating ? 'revalidate' : 'fetch' } }];
  });

  const responses = http.batch(requests);
  for (let i = 0; i < responses.length; i += 1) {
    const r = responses[i];
    if (i >= paths.length) {
      check(r, { 'alias is 301/308': (res) => res.status === 301 || res.status === 308 });
      continue;
    }
    if (conditional[i]) {
      check(r, { 'revalidation is 304': (res) => res.status === 304 });
      continue;
    }
    check(r, {
      'asset is 200 with a validator': (res) => res.status === 200 && !!(res.headers.Etag || res.headers['Last-Modified']),
    });
    if (r.headers.Etag) validators[urls[i]] = ['If-None-Match', r.headers.Etag];
    else if (r.headers['Last-Modified']) validators[urls[i]] = ['If-Modified-Since', r.headers['Last-Modified']];
    if (textTypes.test(r.headers['Content-Type'] || '')) {
      compressedText.add(/^(br|gzip|zstd)$/.test(r.headers['Content-Encoding'] || ''));
    }
  }
}

export const handleSummary = summarise('browser');
