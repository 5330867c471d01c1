// Routing strategies, each on its own alias over the same two mocks (A on mock-a, B on mock-b),
// through `sluice serve`:
//   (a) cost: the cheap deployment has a small rpm; a burst fills it and the rest spills to the
//       dear one; once the cheap budget has refilled it is used again;
//   (b) latency: A at 20 ms, B at 200 ms → after a warm-up most tasks go to A; swap the mocks'
//       latencies → traffic moves to B;
//   (c) weighted 3:1 → about 75/25 over 200 tasks;
//   (d) ordered: the first deployment until it has no capacity (max_concurrency), then the next;
//   (e) a task's routing narrows the alias: {strategy: "ordered"} over an alias whose strategy is
//       cost, and {max_cost} excluding the dear deployment;
//   (f) a task whose max_cost no deployment meets does not hold up the tasks behind it;
//   (g) a task waiting for the one deployment its max_cost allows does not hold up the same
//       tenant's tasks that another deployment of the alias can serve now.
// Which deployment served a task: its provider.name (mock-a / mock-b), and the mocks' counts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, mapLimit, sleep, mockProvider } from './lib/harness.mjs';

const CHEAP = { input_per_mtok: 0.1, output_per_mtok: 0.4 };
const DEAR = { input_per_mtok: 2.5, output_per_mtok: 10 };
const depA = (extra = {}) => ({ provider: 'mock-a', model: 'gpt-a', price: { ...CHEAP }, ...extra });
const depB = (extra = {}) => ({ provider: 'mock-b', model: 'gpt-b', price: { ...DEAR }, ...extra });

const COST_RPM = 300; // 5 requests/s; the bucket holds 5 (burst_ms 1000)
const ORDERED_MAXC = 3;

const MODELS = {
  'r-cost': { kind: 'chat', strategy: 'cost', deployments: [depB(), depA({ rpm: COST_RPM })] },
  'r-latency': { kind: 'chat', strategy: 'latency', deployments: [depA(), depB()] },
  'r-weighted': { kind: 'chat', strategy: 'weighted', deployments: [depA({ weight: 3 }), depB({ weight: 1 })] },
  'r-ordered': { kind: 'chat', strategy: 'ordered', deployments: [depB({ max_concurrency: ORDERED_MAXC }), depA()] },
  // (e): the dear deployment first in the list, so "ordered" and "cost" disagree.
  'r-override': { kind: 'chat', strategy: 'cost', deployments: [depB(), depA()] },
  'r-maxcost': { kind: 'chat', strategy: 'ordered', deployments: [depB(), depA()] },
  // (g): the cheap deployment takes about one request per 10 s.
  'r-hol': { kind: 'chat', strategy: 'cost', deployments: [depB(), depA({ rpm: 6 })] },
};

describe('routing: cost, latency, weighted, ordered, and a task\'s own routing', () => {
  const cl = new Cluster('routing');
  let mockA;
  let mockB;
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    mockA = await cl.startMock({ record: 100 });
    mockB = await cl.startMock({ record: 100 });
    const config = await cl.configFor({
      redis,
      overrides: {
        providers: { 'mock-a': mockProvider(mockA), 'mock-b': mockProvider(mockB) },
        models: MODELS,
        tasks: { max_attempts: 3, backoff_base_ms: 100, backoff_max_ms: 500 },
      },
    });
    const sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  async function resetMocks() {
    await Promise.all([mockA.reset(), mockB.reset()]);
  }

  /** Submits n tasks (concurrency c) and waits until all are terminal; returns the tasks. */
  async function run(alias, n, { concurrency = 16, label = alias, extra = {}, timeoutMs = 60_000 } = {}) {
    const ids = await mapLimit(Array.from({ length: n }, (_, i) => i), concurrency, async (i) => {
      const res = await api.submitChat(alias, `${label} #${i}`, extra);
      assert.equal(res.status, 202, `submit ${alias}: ${res.status} ${res.text.slice(0, 300)}`);
      return res.json.id;
    });
    const done = await api.waitTerminal(ids, timeoutMs, { intervalMs: 100 });
    const bad = done.filter((t) => t.status !== 'completed');
    assert.equal(bad.length, 0, `${label}: every task completes: ${JSON.stringify(bad[0])?.slice(0, 600)}`);
    return done;
  }

  const onA = (tasks) => tasks.filter((t) => t.provider?.name === 'mock-a').length;
  const onB = (tasks) => tasks.filter((t) => t.provider?.name === 'mock-b').length;

  test('(a) cost: the cheap deployment until its rpm is spent, then the dear one; the cheap one again once refilled', { timeout: 60_000 }, async (t) => {
    await resetMocks();
    const burst = 30;
    const t0 = Date.now();
    const tasks = await run('r-cost', burst, { concurrency: 30, label: 'cost burst' });
    const burstMs = Date.now() - t0;
    const cheap = onA(tasks);
    // The bucket holds 5; it refills at 5/s while the burst is being claimed.
    const maxCheap = Math.floor(COST_RPM / 60) + Math.ceil((burstMs / 1000) * (COST_RPM / 60)) + 1;
    await sleep(1500); // the cheap bucket refills (5/s, capacity 5)
    const later = [];
    for (let i = 0; i < 4; i++) {
      later.push(...await run('r-cost', 1, { label: `cost later ${i}` }));
      await sleep(250);
    }
    const summary = `burst of ${burst} in ${burstMs} ms: cheap ${cheap}, dear ${onB(tasks)} (cheap at most ${maxCheap}); ` +
      `after refill: cheap ${onA(later)}/4`;
    console.log(`routing (a): ${summary}`);
    t.diagnostic(summary);
    // Its bucket holds rpm × burst_ms / 60000 = 5 (a little less with scheduler.pace_pct headroom).
    assert.ok(cheap >= Math.floor(0.9 * COST_RPM / 60), `the cheap deployment takes its budget first: ${summary}`);
    assert.ok(cheap <= maxCheap, `the cheap deployment never exceeds its rpm: ${summary}`);
    assert.equal(onA(tasks) + onB(tasks), burst);
    assert.ok(onB(tasks) >= burst - maxCheap, `the rest spills to the dear one: ${summary}`);
    assert.equal(onA(later), 4, `once refilled the cheap deployment is used again: ${summary}`);
    for (const task of tasks.concat(later)) assert.equal(task.attempts, 1);
  });

  test('(b) latency: most tasks go to the faster deployment; swapping the latencies moves the traffic', { timeout: 150_000 }, async (t) => {
    await resetMocks();
    await mockA.config({ latency_ms: 20 });
    await mockB.config({ latency_ms: 200 });
    const waves = async (n, label) => {
      const out = [];
      for (let w = 0; w < n; w++) out.push(...await run('r-latency', 4, { concurrency: 4, label: `${label} ${w}` }));
      return out;
    };
    await waves(8, 'latency warm-up');
    const first = await waves(10, 'latency A fast');
    const m1 = await api.metrics();
    const ewma1 = [0, 1].map((d) => m1.get('sluice_deployment_latency_ewma_seconds', { model: 'r-latency', deployment: String(d) }));

    await mockA.config({ latency_ms: 200 });
    await mockB.config({ latency_ms: 20 });
    const moving = await waves(20, 'latency swapped');
    const tail = moving.slice(-20);
    const m2 = await api.metrics();
    const ewma2 = [0, 1].map((d) => m2.get('sluice_deployment_latency_ewma_seconds', { model: 'r-latency', deployment: String(d) }));
    const summary = `A 20 ms / B 200 ms: ${onA(first)}/${first.length} on A (EWMA s: A ${ewma1[0]}, B ${ewma1[1]}); ` +
      `swapped: last ${tail.length} tasks ${onB(tail)} on B, ${onA(tail)} on A (EWMA s: A ${ewma2[0]}, B ${ewma2[1]}); ` +
      `order after the swap: ${moving.map((x) => (x.provider?.name === 'mock-a' ? 'A' : 'B')).join('')}`;
    console.log(`routing (b): ${summary}`);
    t.diagnostic(summary);
    assert.ok(ewma1[0] !== undefined && ewma1[1] !== undefined, `both deployments have a latency EWMA after the warm-up: ${summary}`);
    assert.ok(ewma1[0] < ewma1[1], `A's EWMA is the lower one: ${summary}`);
    assert.ok(Math.abs(ewma1[0] - 0.02) < 0.05, `A's EWMA is about 20 ms: ${summary}`);
    assert.ok(onA(first) >= 0.8 * first.length, `most tasks go to the faster A: ${summary}`);
    assert.ok(onB(tail) >= 0.8 * tail.length, `after the swap the traffic moves to B: ${summary}`);
  });

  test('(c) weighted 3:1 → about 75/25 over 200 tasks', { timeout: 90_000 }, async (t) => {
    await resetMocks();
    const tasks = await run('r-weighted', 200, { concurrency: 32, label: 'weighted' });
    const share = onA(tasks) / tasks.length;
    const summary = `A ${onA(tasks)}, B ${onB(tasks)} of ${tasks.length}: A share ${(100 * share).toFixed(1)}% (want 75% ± 13)`;
    console.log(`routing (c): ${summary}`);
    t.diagnostic(summary);
    assert.ok(share >= 0.62 && share <= 0.88, summary);
    const [a, b] = [await mockA.chatCount(), await mockB.chatCount()];
    assert.deepEqual([a, b], [onA(tasks), onB(tasks)], 'the mocks saw the same split');
  });

  test('(d) ordered: the first deployment until it has no capacity (max_concurrency), then the next', { timeout: 60_000 }, async (t) => {
    await resetMocks();
    await mockB.config({ latency_ms: 1500 }); // the first deployment (B here) is slow: its 3 slots stay busy
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      for (let i = 0; i < 400 && sampling; i++) {
        const s = await mockB.stats().catch(() => null);
        if (s) peak = Math.max(peak, s.in_flight ?? 0);
        await sleep(25);
      }
    })();
    const burst = await run('r-ordered', 20, { concurrency: 20, label: 'ordered burst' });
    sampling = false;
    await sampler;
    await mockB.config({ latency_ms: 0 });
    const later = [];
    for (let i = 0; i < 5; i++) later.push(...await run('r-ordered', 1, { label: `ordered later ${i}` }));
    const summary = `burst of 20: first deployment ${onB(burst)} (max_concurrency ${ORDERED_MAXC}, peak in flight at its mock ${peak}), ` +
      `second ${onA(burst)}; afterwards one at a time: first ${onB(later)}/5`;
    console.log(`routing (d): ${summary}`);
    t.diagnostic(summary);
    assert.equal(onB(burst), ORDERED_MAXC, `the first deployment takes exactly its max_concurrency: ${summary}`);
    assert.ok(peak <= ORDERED_MAXC, `never more than max_concurrency calls in flight: ${summary}`);
    assert.equal(onA(burst), 20 - ORDERED_MAXC, `the rest goes to the next one: ${summary}`);
    assert.equal(onB(later), 5, `with capacity again, the first deployment: ${summary}`);
  });

  test('(e) a task\'s routing: {strategy: "ordered"} overrides cost; {max_cost} excludes the dear deployment', { timeout: 60_000 }, async (t) => {
    await resetMocks();
    const byCost = await run('r-override', 5, { label: 'override default' });
    const byOrder = await run('r-override', 5, { label: 'override ordered', extra: { routing: { strategy: 'ordered' } } });
    const ordered = await run('r-maxcost', 5, { label: 'maxcost none' });
    // A short message: about 3 + 256 tokens estimated (est = input/4 + 1 + 256 without max_tokens),
    // i.e. a few hundred tokens. At most $0.0005 admits the cheap deployment (0.1 + 0.4 $/Mtok:
    // < $0.0002 even counted at both prices) and excludes the dear one (2.5 + 10 $/Mtok: > $0.003).
    const capped = await run('r-maxcost', 5, { label: 'maxcost', extra: { routing: { max_cost: 0.0005 } } });
    const summary = `alias cost [dear, cheap]: ${onA(byCost)}/5 cheap; with routing.strategy ordered: ${onB(byOrder)}/5 dear (first); ` +
      `alias ordered [dear, cheap]: ${onB(ordered)}/5 dear; with routing.max_cost 0.0005: ${onA(capped)}/5 cheap`;
    console.log(`routing (e): ${summary}`);
    t.diagnostic(summary);
    assert.equal(onA(byCost), 5, `the alias's cost strategy picks the cheap one: ${summary}`);
    assert.equal(onB(byOrder), 5, `routing.strategy ordered picks the first (dear) one: ${summary}`);
    assert.equal(onB(ordered), 5, `the ordered alias picks its first (dear) one: ${summary}`);
    assert.equal(onA(capped), 5, `routing.max_cost excludes the dear one: ${summary}`);
    const rejected = await api.submitChat('r-override', 'bad routing', { routing: { strategy: 'fastest' } });
    assert.equal(rejected.status, 400, `an unknown routing.strategy is a 400: ${rejected.text}`);
    assert.equal(rejected.json?.error?.param, 'routing.strategy', rejected.text);
  });

  test('(f) a task whose max_cost no deployment meets does not hold up the tasks behind it', { timeout: 60_000 }, async (t) => {
    await resetMocks();
    const res = await api.submitChat('r-maxcost', 'nothing is cheap enough', { routing: { max_cost: 0 } });
    // Refusing it at once (4xx) is fine too; accepted, it must not block the queue.
    const blockerId = res.status === 202 ? res.json.id : null;
    const t0 = Date.now();
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await api.submitChat('r-maxcost', `behind the unpayable task #${i}`);
      assert.equal(r.status, 202, r.text);
      ids.push(r.json.id);
    }
    let done = null;
    let err = null;
    try {
      done = await api.waitTerminal(ids, 10_000, { intervalMs: 100 });
    } catch (e) {
      err = e;
    }
    const blocker = blockerId ? (await api.getTask(blockerId)).json : null;
    const summary = `POST with max_cost 0: ${res.status}; that task is ${blocker ? blocker.status : '(not created)'}` +
      `${blocker?.error ? ` (${JSON.stringify(blocker.error)})` : ''}; ` +
      `the 3 tasks behind it: ${done ? `all terminal after ${Date.now() - t0} ms` : `not done after 10 s (${err?.message?.slice(0, 200)})`}`;
    console.log(`routing (f): ${summary}`);
    t.diagnostic(summary);
    if (blockerId) await api.cancel(blockerId);
    assert.ok(done, `tasks queued behind an unsatisfiable max_cost task never ran: ${summary}`);
    for (const task of done) assert.equal(task.status, 'completed', summary);
  });

  test('(g) a task waiting for its cheap-only deployment does not hold up tasks the dear one can serve now', { timeout: 60_000 }, async (t) => {
    await resetMocks();
    // Spend the cheap deployment's budget (one request, refilled in ~10 s).
    const [first] = await run('r-hol', 1, { label: 'hol first' });
    const waiting = await api.submitChat('r-hol', 'only the cheap one will do', { routing: { max_cost: 0.0005 } });
    assert.equal(waiting.status, 202, waiting.text);
    const t0 = Date.now();
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await api.submitChat('r-hol', `any deployment will do #${i}`);
      ids.push(r.json.id);
    }
    let done = null;
    let err = null;
    try {
      done = await api.waitTerminal(ids, 6_000, { intervalMs: 100 });
    } catch (e) {
      err = e;
    }
    const ms = Date.now() - t0;
    const w = (await api.getTask(waiting.json.id)).json;
    const summary = `first task via ${first.provider?.name}; the max_cost task is ${w.status}; the 3 unrestricted tasks behind it: ` +
      `${done ? `terminal after ${ms} ms via ${done.map((x) => x.provider?.name).join(',')}` : `not done after 6 s (${err?.message?.slice(0, 160)})`}`;
    console.log(`routing (g): ${summary}`);
    t.diagnostic(summary);
    await api.cancel(waiting.json.id);
    assert.equal(first.provider?.name, 'mock-a', `the cheap deployment served the first: ${summary}`);
    assert.ok(done && done.every((x) => x.status === 'completed' && x.provider?.name === 'mock-b') && ms <= 3000,
      `tasks the dear deployment can serve now wait behind a task that waits for the cheap one: ${summary}`);
  });
});
