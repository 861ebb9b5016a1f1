/**
 * k6: the gateway's live stream watched by many dashboards at once. Each virtual user opens
 * `/api/stream` with its token, subscribes to the project cards and the agent pools of a
 * namespace, holds the connection, and measures how late each delta arrives (now − the
 * gateway's `at` stamp; run k6 on the gateway's machine, or with synchronised clocks).
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e TOKEN=<token> load-tests/k6/ws-stream.js
 *
 * Env: BASE_URL (default http://127.0.0.1:8080; ws:// or wss:// is derived from it), TOKEN
 * (required), NAMESPACE (default: the token's tenant, or `*` for an admin), VUS (default 200),
 * DURATION (default 2m), HOLD_SECONDS (how long each connection stays open, default 30).
 */
import http from 'k6/http';
import ws from 'k6/ws';
import { check, fail } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_URL = BASE_URL.replace(/^http/, 'ws');
const TOKEN = __ENV.TOKEN || '';
const HOLD_SECONDS = Number(__ENV.HOLD_SECONDS || 30);

const deltaLag = new Trend('stream_delta_lag', true);
const deltas = new Counter('stream_deltas');
const streamErrors = new Counter('stream_errors');

export const options = {
  scenarios: {
    dashboards: { executor: 'constant-vus', vus: Number(__ENV.VUS || 200), duration: __ENV.DURATION || '2m' },
  },
  thresholds: {
    ws_connecting: ['p(95)<500'],
    stream_delta_lag: ['p(99)<250'],
    stream_errors: ['count==0'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  if (TOKEN === '') fail('set TOKEN to a gateway token (npm start prints an admin and a client token)');
  const me = http.get(`${BASE_URL}/api/me`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  if (me.status !== 200) fail(`GET /api/me answered ${me.status}: ${me.body}`);
  return { namespace: __ENV.NAMESPACE || me.json('tenant') || '*' };
}

export default function (data) {
  const topics = [`projects/${data.namespace}`, `pools/${data.namespace}`];
  let snapshots = 0;
  const response = ws.connect(`${WS_URL}/api/stream`, { headers: { Authorization: `Bearer ${TOKEN}` } }, function (socket) {
    socket.on('open', function () {
      for (const topic of topics) socket.send(JSON.stringify({ type: 'subscribe', topic: topic }));
    });
    // A frame carries one message per line: deltas published together arrive together.
    socket.on('message', function (frame) {
      for (const line of frame.split('\n')) {
        if (line === '') continue;
        const message = JSON.parse(line);
        if (message.type === 'snapshot') snapshots += 1;
        if (message.type === 'delta') {
          deltas.add(1);
          deltaLag.add(Date.now() - message.at);
        }
        if (message.type === 'error') streamErrors.add(1, { code: message.code });
      }
    });
    socket.on('error', function () {
      streamErrors.add(1, { code: 'socket' });
    });
    socket.setTimeout(function () {
      socket.close();
    }, HOLD_SECONDS * 1000);
  });
  check(response, { 'stream: upgraded (101)': (r) => r !== undefined && r.status === 101 });
  check(snapshots, { 'stream: a snapshot for each subscription': (n) => n === topics.length });
}
