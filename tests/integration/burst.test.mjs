// The burst acceptance, scaled down: N chat tasks submitted within about a second for an alias
// whose one deployment is a provider that allows R requests/s (sluice-mock --rate-limit R, a
// token bucket of capacity R that answers 429 + retry-after above it) and is configured with
// rpm = 60 × R. Separate api + scheduler and TWO worker processes share the admission in Redis.
//
//   - the client never sees an error: every POST is a 202 (a busy provider is not the client's
//     quota, so no 429 reaches it);
//   - every task completes;
//   - the provider's 429s are at most 1% of the upstream calls (sluice paces itself instead of
//     letting the provider push back);
//   - the backlog drains at the provider's pace: first submit → last completion ≤ 1.10 × N / R.
//
// Tunable: SLUICE_BURST_N (default 1,000), SLUICE_BURST_RPS (default 50), SLUICE_BURST_WORKERS
// (default 2, the acceptance's two worker processes). The figures are printed:
// drain time, ideal N/R, drain ÷ ideal, 429 share, client errors. bench/run --burst-only runs
// the same at the full acceptance size (5,000 tasks at 100 req/s).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, mapLimit, sleep, MOCK_PRICE } from './lib/harness.mjs';

const N = Number(process.env.SLUICE_BURST_N ?? 1000);
const R = Number(process.env.SLUICE_BURST_RPS ?? 50);
const WORKERS = Number(process.env.SLUICE_BURST_WORKERS ?? 2);
const ALIAS = 'burst-chat';
const SUBMIT_CONCURRENCY = 64;
const MAX_RATIO = 1.10;
const MAX_429_SHARE = 0.01;
const IDEAL_S = N / R;
// Generous bound on waiting (a failing run must still end): 3 × ideal + 30 s.
const DRAIN_LIMIT_MS = Math.ceil(3 * IDEAL_S * 1000) + 30_000;

describe(`burst: ${N} tasks within ~1 s, one deployment limited to ${R} req/s, ${WORKERS} worker processes`, () => {
  const cl = new Cluster('burst');
  let mock;
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ rateLimit: R, record: 100 });
    const config = await cl.configFor({
      redis,
      mock,
      overrides: {
        models: {
          [ALIAS]: {
            kind: 'chat',
            strategy: 'ordered',
            deployments: [{ provider: 'mock', model: 'mock-gpt', price: { ...MOCK_PRICE }, rpm: 60 * R }],
          },
        },
        tasks: { lease_ms: 10000 },
      },
    });
    const apiProc = await cl.startSluice('api', config);
    await cl.startSluice('scheduler', config);
    for (let i = 0; i < WORKERS; i++) await cl.startSluice('worker', config);
    api = cl.client(apiProc.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('no client error, all complete, ≤ 1% provider 429s, drain ≤ 1.10 × N/R', { timeout: DRAIN_LIMIT_MS + 60_000 }, async (t) => {
    const base = await api.metrics();
    const baseDone = base.sum('sluice_tasks', { status: 'completed' }) + base.sum('sluice_tasks', { status: 'failed' });
    await mock.reset();

    const statuses = {};
    const ids = [];
    const t0 = Date.now();
    await mapLimit(Array.from({ length: N }, (_, i) => i), SUBMIT_CONCURRENCY, async (i) => {
      let res;
      try {
        res = await api.submitChat(ALIAS, `burst task ${i}`, { timeoutMs: 10000 });
      } catch (e) {
        statuses[`error ${e.name}`] = (statuses[`error ${e.name}`] ?? 0) + 1;
        return;
      }
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status === 202) ids.push(res.json.id);
      else if (!statuses.sample) statuses.sample = `${res.status} ${res.text.slice(0, 300)}`;
    });
    const submitMs = Date.now() - t0;
    const clientErrors = N - (statuses[202] ?? 0);

    // Drain: poll /metrics until every task is terminal (bounded), timing the last completion.
    let tDone = null;
    let last = null;
    const deadline = t0 + DRAIN_LIMIT_MS;
    for (let round = 0; round < Math.ceil(DRAIN_LIMIT_MS / 100) + 2 && Date.now() < deadline; round++) {
      try {
        const m = await api.metrics({ timeoutMs: 5000 });
        const done = m.sum('sluice_tasks', { status: 'completed' }) + m.sum('sluice_tasks', { status: 'failed' }) - baseDone;
        last = { done, ready: m.sum('sluice_queue_ready'), leased: m.get('sluice_tasks_leased'), delayed: m.get('sluice_queue_delayed') };
        if (done >= ids.length && ids.length > 0) {
          tDone = Date.now();
          break;
        }
      } catch (e) {
        last = { error: e.message };
      }
      await sleep(100);
    }
    const drainMs = tDone === null ? null : tDone - t0;

    const stats = await mock.stats();
    const byStatus = stats.by_status ?? {};
    const calls = Object.values(byStatus).reduce((a, b) => a + b, 0);
    const n429 = byStatus['429'] ?? 0;
    const share429 = calls > 0 ? n429 / calls : 0;
    const ratio = drainMs === null ? null : drainMs / 1000 / IDEAL_S;

    const figures = `N ${N}, R ${R} req/s (deployment rpm ${60 * R}); submitted in ${submitMs} ms ` +
      `(${statuses[202] ?? 0} × 202, client errors ${clientErrors}); drain ${drainMs === null ? 'unfinished' : (drainMs / 1000).toFixed(2) + ' s'}, ` +
      `ideal ${IDEAL_S.toFixed(2)} s, drain ÷ ideal ${ratio === null ? 'n/a' : ratio.toFixed(3)}; ` +
      `upstream calls ${calls} (by status ${JSON.stringify(byStatus)}), 429 share ${(100 * share429).toFixed(2)}%`;
    console.log(`burst: ${figures}`);
    t.diagnostic(figures);

    assert.equal(clientErrors, 0, `every POST must be a 202: ${JSON.stringify(statuses)}`);
    assert.ok(tDone !== null, `not every task finished within ${DRAIN_LIMIT_MS} ms: ${JSON.stringify(last)}`);

    // Every task completed (each read once), exactly one successful upstream call each.
    const final = await api.waitTerminal(ids, 60_000, { concurrency: 32, intervalMs: 200 });
    const notCompleted = final.filter((x) => x.status !== 'completed');
    assert.equal(notCompleted.length, 0,
      `${notCompleted.length} tasks did not complete, e.g. ${JSON.stringify(notCompleted[0])?.slice(0, 600)}`);
    assert.equal(byStatus['200'] ?? 0, N, `the provider answered 200 exactly once per task: ${JSON.stringify(byStatus)}`);

    assert.ok(share429 <= MAX_429_SHARE,
      `provider 429s ${n429} of ${calls} upstream calls = ${(100 * share429).toFixed(2)}% (limit ${100 * MAX_429_SHARE}%)`);
    assert.ok(ratio <= MAX_RATIO, `drain ${(drainMs / 1000).toFixed(2)} s = ${ratio.toFixed(3)} × ideal ${IDEAL_S} s (limit ${MAX_RATIO})`);
  });
});
