// Failover and the circuit breaker. One alias, strategy cost, two deployments on two mocks:
// A (cheap, preferred) and B (dear). A steady stream of tasks (one every STREAM_GAP_MS) runs
// while A answers 503 to everything for OUTAGE_MS, then recovers.
//
//   - no task fails: a 503 is retryable, and the retry goes at once to the other deployment;
//   - the first tasks of the outage show it in their attempt_log: attempt 1 on A (503, retry),
//     attempt 2 on B (200), and they completed on B;
//   - A's breaker opens (sluice_deployment_breaker_state{deployment="0"} 2) once min_requests
//     calls in the window failed at >= failure_pct, and then shields A: while it is open A sees
//     only the half-open probes (one every open_ms), so most outage tasks go straight to B;
//   - after A recovers, a half-open probe succeeds, the breaker closes (0) and traffic returns to
//     A: the tasks submitted after that are served by A on their first attempt.
// Then, on a second alias over the same mocks: a half-open probe that A answers 429 (no verdict)
// must not leave the breaker half-open for ever — once A is healthy, it closes and A gets traffic.
// Breaker settings are scaled down to fit: min_requests 4, failure_pct 50, window_ms 2000,
// open_ms 2000.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, sleep, mockProvider } from './lib/harness.mjs';

const ALIAS = 'fo-chat';
const PROBE_ALIAS = 'fo-probe'; // the same two mocks, its own breakers
const STREAM_GAP_MS = 100;
const HEALTHY_BEFORE_MS = 3000;
const OUTAGE_MS = 8000;
const HEALTHY_AFTER_MS = 7000;
const BREAKER = { min_requests: 4, failure_pct: 50, window_ms: 2000, open_ms: 2000 };

describe('failover: A answers 503 for 8 s under a steady stream; B takes over; the breaker opens and closes', () => {
  const cl = new Cluster('failover');
  let mockA;
  let mockB;
  let api;
  let redis;

  before(async () => {
    redis = await cl.startRedis();
    mockA = await cl.startMock({ record: 2000 });
    mockB = await cl.startMock({ record: 2000 });
    const config = await cl.configFor({
      redis,
      overrides: {
        providers: { 'mock-a': mockProvider(mockA), 'mock-b': mockProvider(mockB) },
        models: {
          [ALIAS]: {
            kind: 'chat',
            strategy: 'cost',
            deployments: [
              { provider: 'mock-a', model: 'gpt-a', price: { input_per_mtok: 0.1, output_per_mtok: 0.4 } },
              { provider: 'mock-b', model: 'gpt-b', price: { input_per_mtok: 2.5, output_per_mtok: 10 } },
            ],
          },
          [PROBE_ALIAS]: {
            kind: 'chat',
            strategy: 'cost',
            deployments: [
              { provider: 'mock-a', model: 'gpt-a', price: { input_per_mtok: 0.1, output_per_mtok: 0.4 } },
              { provider: 'mock-b', model: 'gpt-b', price: { input_per_mtok: 2.5, output_per_mtok: 10 } },
            ],
          },
        },
        breaker: BREAKER,
        tasks: { max_attempts: 3, backoff_base_ms: 100, backoff_max_ms: 500 },
      },
    });
    const apiProc = await cl.startSluice('api', config);
    await cl.startSluice('scheduler', config);
    await cl.startSluice('worker', config);
    api = cl.client(apiProc.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('none fails; outage tasks end on B; the breaker opens, then closes and traffic returns to A', { timeout: 150_000 }, async (t) => {
    const submitted = []; // {id, at (ms since t0), phase}
    const breakerSeen = []; // [ms since t0, state of A's breaker]
    let phase = 'before';
    let stop = false;
    const t0 = Date.now();

    // A's breaker state from /metrics every 100 ms while the stream runs.
    const sampler = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) {
        try {
          const m = await api.metrics({ timeoutMs: 3000 });
          const s = m.get('sluice_deployment_breaker_state', { model: ALIAS, deployment: '0' });
          if (s !== undefined && (breakerSeen.length === 0 || breakerSeen.at(-1)[1] !== s)) breakerSeen.push([Date.now() - t0, s]);
        } catch {
          // a missed sample
        }
        await sleep(100);
      }
    })();

    const total = HEALTHY_BEFORE_MS + OUTAGE_MS + HEALTHY_AFTER_MS;
    let outageAt = null;
    let recoverAt = null;
    const errors = [];
    for (let i = 0; i < Math.ceil(total / STREAM_GAP_MS) + 1; i++) {
      const now = Date.now() - t0;
      if (now >= total) break;
      if (phase === 'before' && now >= HEALTHY_BEFORE_MS) {
        await mockA.config({ error_rate: 1, error_status: 503 });
        outageAt = Date.now() - t0;
        phase = 'outage';
      } else if (phase === 'outage' && now >= HEALTHY_BEFORE_MS + OUTAGE_MS) {
        await mockA.config({ error_rate: 0 });
        recoverAt = Date.now() - t0;
        phase = 'after';
      }
      const res = await api.submitChat(ALIAS, `failover stream #${i}`);
      if (res.status !== 202) errors.push(`${res.status} ${res.text.slice(0, 200)}`);
      else submitted.push({ id: res.json.id, at: Date.now() - t0, phase });
      await sleep(Math.max(0, (i + 1) * STREAM_GAP_MS - (Date.now() - t0)));
    }
    assert.deepEqual(errors, [], 'every POST is a 202');

    const final = await api.waitTerminal(submitted.map((s) => s.id), 60_000, { intervalMs: 200 });
    await sleep(500);
    stop = true;
    await sampler;
    const endMetrics = await api.metrics();
    const statsA = await mockA.stats();
    const statsB = await mockB.stats();

    const rows = submitted.map((s, i) => ({ ...s, task: final[i] }));
    const by = (phaseName) => rows.filter((r) => r.phase === phaseName);
    const providerOf = (r) => r.task.provider?.name;
    const count = (list, f) => list.filter(f).length;
    const outage = by('outage');
    const afterRows = by('after');
    const summary = `stream: ${rows.length} tasks (before ${by('before').length}, outage ${outage.length}, after ${afterRows.length}); ` +
      `outage ${outageAt}..${recoverAt} ms; A's breaker (ms → state): ${breakerSeen.map(([ms, s]) => `${ms}→${s}`).join(' ')}; ` +
      `mock A by_status ${JSON.stringify(statsA.by_status)}, mock B by_status ${JSON.stringify(statsB.by_status)}; ` +
      `outage tasks on B ${count(outage, (r) => providerOf(r) === 'mock-b')}, with an A attempt first ${count(outage, (r) => r.task.attempts > 1)}; ` +
      `after-recovery tasks on A ${count(afterRows, (r) => providerOf(r) === 'mock-a')}/${afterRows.length}`;
    console.log(`failover: ${summary}`);
    t.diagnostic(summary);

    // 1. none fails.
    const notCompleted = rows.filter((r) => r.task.status !== 'completed');
    assert.equal(notCompleted.length, 0,
      `${notCompleted.length} tasks did not complete, e.g. ${JSON.stringify(notCompleted[0]?.task)?.slice(0, 800)}`);

    // 2. Before the outage: A (cheapest) serves everything on the first attempt.
    for (const r of by('before')) {
      assert.equal(providerOf(r), 'mock-a', `before the outage the cheap deployment serves: ${JSON.stringify(r.task).slice(0, 500)}`);
      assert.equal(r.task.attempts, 1);
    }

    // 3. Outage tasks submitted after the first second of it (A failing for sure) end on B; the
    // first ones show A then B in their attempt log.
    const sureOutage = outage.filter((r) => r.at >= outageAt + 1000 && r.at <= recoverAt - 500);
    for (const r of sureOutage) {
      assert.equal(providerOf(r), 'mock-b', `an outage task ends on B: ${JSON.stringify(r.task).slice(0, 600)}`);
    }
    const firstOutage = outage.filter((r) => r.at >= outageAt + 50).slice(0, 3);
    assert.ok(firstOutage.length > 0);
    for (const r of firstOutage) {
      const log = r.task.attempt_log;
      const ctx = JSON.stringify(r.task).slice(0, 1200);
      assert.ok(Array.isArray(log), `the task has an attempt_log array: ${ctx}`);
      assert.equal(r.task.attempts, 2, `a first outage task: A failed, then B: ${ctx}`);
      assert.equal(log.length, 2, `two attempts logged: ${ctx}`);
      const [a1, a2] = log;
      for (const f of ['attempt', 'deployment', 'provider', 'model', 'status', 'latency_ms', 'outcome', 'error', 'at']) {
        assert.ok(f in a1 && f in a2, `attempt_log entries have ${f}: ${ctx}`);
      }
      assert.deepEqual([a1.attempt, a1.deployment, a1.provider, a1.model, a1.status], [1, 0, 'mock-a', 'gpt-a', 503], `attempt 1: ${ctx}`);
      assert.equal(a1.outcome, 'retry', `attempt 1 outcome: ${ctx}`);
      assert.ok(a1.error && typeof a1.error.message === 'string', `attempt 1 error: ${ctx}`);
      assert.deepEqual([a2.attempt, a2.deployment, a2.provider, a2.model, a2.status], [2, 1, 'mock-b', 'gpt-b', 200], `attempt 2: ${ctx}`);
      assert.equal(a2.outcome, 'completed', `attempt 2 outcome: ${ctx}`);
      assert.equal(a2.error, null, `attempt 2 error: ${ctx}`);
      assert.ok(Number.isFinite(a1.latency_ms) && Number.isFinite(a2.latency_ms), `latencies: ${ctx}`);
      assert.ok(Number.isInteger(a1.at) && a1.at <= a2.at, `at (Unix seconds): ${ctx}`);
    }

    // 4. The breaker opened during the outage and shielded A: A saw far fewer calls than there
    // were outage tasks (min_requests to open it, then about one probe per open_ms).
    const openedAt = breakerSeen.find(([, s]) => s === 2)?.[0];
    assert.ok(openedAt !== undefined && openedAt >= outageAt && openedAt < recoverAt,
      `A's breaker_state reached 2 (open) during the outage: ${JSON.stringify(breakerSeen)}`);
    const a503 = statsA.by_status?.['503'] ?? 0;
    const probes = Math.ceil(OUTAGE_MS / BREAKER.open_ms) + 1;
    assert.ok(a503 <= 2 * BREAKER.min_requests + probes + 6,
      `with its breaker open A sees only probes: it answered 503 ${a503} times for ${outage.length} outage tasks`);
    assert.ok(a503 < outage.length / 2, `most outage tasks never tried A: ${a503} 503s for ${outage.length} tasks`);

    // 5. After recovery: the breaker closed (0) and the tasks submitted once it had (plus a
    // moment) were served by A at the first attempt.
    const closedAt = breakerSeen.find(([ms, s]) => ms > recoverAt && s === 0)?.[0];
    assert.ok(closedAt !== undefined, `A's breaker closed after recovery: ${JSON.stringify(breakerSeen)}`);
    assert.ok(closedAt <= recoverAt + BREAKER.open_ms + 3000, `closed within open_ms + 3 s of the recovery: ${JSON.stringify(breakerSeen)}`);
    assert.equal(endMetrics.get('sluice_deployment_breaker_state', { model: ALIAS, deployment: '0' }), 0, 'A closed at the end');
    assert.equal(endMetrics.get('sluice_deployment_breaker_state', { model: ALIAS, deployment: '1' }), 0, 'B never opened');
    const late = afterRows.filter((r) => r.at >= closedAt + 500);
    assert.ok(late.length >= 10, `enough tasks after the breaker closed (${late.length})`);
    for (const r of late) {
      assert.equal(providerOf(r), 'mock-a', `traffic is back on A: ${JSON.stringify(r.task).slice(0, 600)}`);
      assert.equal(r.task.attempts, 1);
    }
  });

  // The half-open probe can end without a verdict: the provider answers it 429 (still shedding
  // load while it recovers). That must not leave the breaker half-open with its one probe
  // "in flight" for ever: once A is healthy it must get traffic again.
  test('a half-open probe answered 429 does not wedge the breaker', { timeout: 120_000 }, async (t) => {
    const seen = [];
    const breakerA = async () => {
      const m = await api.metrics({ timeoutMs: 3000 });
      const s = m.get('sluice_deployment_breaker_state', { model: PROBE_ALIAS, deployment: '0' });
      if (seen.length === 0 || seen.at(-1) !== s) seen.push(s);
      return s;
    };
    const ids = [];
    const stream = async (ms, label, until) => {
      const end = Date.now() + ms;
      for (let i = 0; i < Math.ceil(ms / STREAM_GAP_MS) + 1 && Date.now() < end; i++) {
        const res = await api.submitChat(PROBE_ALIAS, `probe ${label} #${i}`);
        assert.equal(res.status, 202, res.text);
        ids.push({ id: res.json.id, label });
        if (until && (await until())) return true;
        await sleep(STREAM_GAP_MS);
      }
      return false;
    };

    await mockA.reset();
    await mockA.config({ error_rate: 1, error_status: 503 });
    const opened = await stream(6000, 'outage', async () => (await breakerA()) === 2);
    assert.ok(opened, `A's breaker opened under 503s: states ${JSON.stringify(seen)}`);

    // The probe comes after open_ms; A answers it (and everything) 429 + retry-after 1.
    await mockA.config({ error_rate: 1, error_status: 429, retry_after_s: 1 });
    const t429 = Date.now();
    await stream(BREAKER.open_ms + 2000, '429');
    const probes429 = (await mockA.stats()).by_status?.['429'] ?? 0;

    // A recovers. Within a few open_ms it must be probed, close and take the traffic back.
    await mockA.reset();
    const recovered = Date.now();
    const closed = await stream(4 * BREAKER.open_ms + 4000, 'healthy', async () => (await breakerA()) === 0);
    const afterClose = [];
    if (closed) {
      for (let i = 0; i < 10; i++) {
        const res = await api.submitChat(PROBE_ALIAS, `probe closed #${i}`);
        afterClose.push(res.json.id);
        await sleep(STREAM_GAP_MS);
      }
    }
    const final = await api.waitTerminal(ids.map((x) => x.id).concat(afterClose), 60_000);
    const onA = final.slice(ids.length).filter((x) => x.provider?.name === 'mock-a').length;
    const healthyOnA = final.filter((x, i) => ids[i]?.label === 'healthy' && x.provider?.name === 'mock-a').length;
    const dep = (await api.metrics()).all('sluice_deployment_breaker_state', { model: PROBE_ALIAS });
    // A's shared state as the CLAIM script sees it (br, probe, pause, ...), for the report.
    const raw = await redis.cli('hgetall', `{sl}:dep:${PROBE_ALIAS}:0`).catch((e) => e.message);
    const summary = `A's breaker states seen ${JSON.stringify(seen)}; A answered ${probes429} × 429 in the ${Date.now() - t429} ms ` +
      `after the breaker opened; healthy for ${Date.now() - recovered} ms: closed=${closed}, tasks on A after recovery ${healthyOnA}, ` +
      `after closing ${onA}/${afterClose.length}; breaker gauges now ${JSON.stringify(dep.map((d) => [d.labels.deployment, d.value]))}; ` +
      `Redis {sl}:dep:${PROBE_ALIAS}:0 = ${String(raw).split('\n').join(' ')}`;
    console.log(`failover (probe): ${summary}`);
    t.diagnostic(summary);
    const failed = final.filter((x) => x.status !== 'completed');
    assert.equal(failed.length, 0, `none fails: ${JSON.stringify(failed[0])?.slice(0, 600)}`);
    assert.ok(closed, `A's breaker never closed after A recovered (states ${JSON.stringify(seen)}); ${summary}`);
    assert.ok(onA >= 8, `traffic is back on A: ${onA}/${afterClose.length}`);
  });
});
