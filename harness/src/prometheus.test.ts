/**
 * The exposition parser on the text format as Prometheus documents it: families with HELP and
 * TYPE, labels with escapes, histogram samples grouped under their family, and lines it refuses.
 */
import { describe, expect, it } from 'vitest';
import { HarnessErrorCode } from './errors.js';
import { parsePrometheus, sampleValue } from './prometheus.js';

const EXPOSITION = `# HELP troupe_actor_turns_total Turns of durable actors.
# TYPE troupe_actor_turns_total counter
troupe_actor_turns_total{actor_type="project",outcome="ok"} 12
troupe_actor_turns_total{actor_type="project",outcome="error"} 1

# HELP troupe_llm_request_duration_seconds Request latency.
# TYPE troupe_llm_request_duration_seconds histogram
troupe_llm_request_duration_seconds_bucket{le="0.5",provider="sim",model="a \\"quoted\\" model"} 3
troupe_llm_request_duration_seconds_bucket{le="+Inf",provider="sim",model="a \\"quoted\\" model"} 4
troupe_llm_request_duration_seconds_sum{provider="sim",model="a \\"quoted\\" model"} 1.75
troupe_llm_request_duration_seconds_count{provider="sim",model="a \\"quoted\\" model"} 4
# HELP troupe_gateway_websocket_clients Clients.\\nConnected now.
# TYPE troupe_gateway_websocket_clients gauge
troupe_gateway_websocket_clients 0
process_start_time_seconds 1700000000 1700000000000
# TYPE nodejs_eventloop_lag_mean_seconds gauge
nodejs_eventloop_lag_mean_seconds Nan
`;

describe('parsePrometheus', () => {
  it('reads families, their samples and labels', () => {
    const families = parsePrometheus(EXPOSITION);
    expect([...families.keys()]).toEqual([
      'troupe_actor_turns_total',
      'troupe_llm_request_duration_seconds',
      'troupe_gateway_websocket_clients',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_mean_seconds',
    ]);
    expect(families.get('troupe_actor_turns_total')).toMatchObject({ type: 'counter', help: 'Turns of durable actors.' });
    expect(sampleValue(families, 'troupe_actor_turns_total', { outcome: 'ok' })).toBe(12);
    expect(families.get('troupe_gateway_websocket_clients')).toMatchObject({
      type: 'gauge',
      help: 'Clients.\nConnected now.',
      samples: [{ value: 0, labels: {} }],
    });
    expect(families.get('process_start_time_seconds')).toMatchObject({ type: 'untyped', samples: [{ value: 1700000000 }] });
    // prom-client writes NaN as `Nan`; Prometheus reads special values in any case.
    expect(sampleValue(families, 'nodejs_eventloop_lag_mean_seconds')).toBeNaN();

    const histogram = families.get('troupe_llm_request_duration_seconds');
    expect(histogram?.type).toBe('histogram');
    expect(histogram?.samples.map((sample) => sample.name)).toEqual([
      'troupe_llm_request_duration_seconds_bucket',
      'troupe_llm_request_duration_seconds_bucket',
      'troupe_llm_request_duration_seconds_sum',
      'troupe_llm_request_duration_seconds_count',
    ]);
    expect(histogram?.samples[1]).toEqual({
      name: 'troupe_llm_request_duration_seconds_bucket',
      labels: { le: '+Inf', provider: 'sim', model: 'a "quoted" model' },
      value: 4,
    });
    expect(sampleValue(families, 'troupe_llm_request_duration_seconds', {}, 'troupe_llm_request_duration_seconds_count')).toBe(4);
    expect(sampleValue(families, 'troupe_actor_turns_total', { outcome: 'duplicate' })).toBeUndefined();
    expect(() => sampleValue(families, 'troupe_actor_turns_total')).toThrow(/2 samples of troupe_actor_turns_total match/);
  });

  it('refuses a line that is not a sample, naming it', () => {
    for (const bad of ['troupe_x{a="1"', 'troupe_x{a=1} 2', 'troupe_x one', '# TYPE troupe_x sometimes']) {
      expect(() => parsePrometheus(`${bad}\n`)).toThrow(
        expect.objectContaining({ code: HarnessErrorCode.InvalidOutput, message: expect.stringContaining('metrics line 1') }),
      );
    }
  });
});
