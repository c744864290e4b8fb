// Steady load for the container test: VUS virtual users fetch the site's assets for
// DURATION. Any failed request (refused, reset, non-2xx) fails the run, so a restart
// that drops a single connection is caught.
import http from 'k6/http';
import { check } from 'k6';

const base = __ENV.BASE || 'http://127.0.0.1:18080';
const paths = (__ENV.PATHS || '/').split(',');

export const options = {
  vus: Number(__ENV.VUS || 10),
  duration: __ENV.DURATION || '15s',
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
  },
};

export default function () {
  const path = paths[Math.floor(Math.random() * paths.length)];
  const res = http.get(base + path, { headers: { 'Accept-Encoding': 'gzip, br' } });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
