// Priorities, fairness between tenants, and tenant quotas. Separate api + scheduler + worker.
//   1. Tenant X (alpha) queues 10,000 batch tasks on an alias paced at 200 req/s (a ~50 s
//      backlog); tenant Y (beta) then submits 10 normal tasks: all of Y's finish within a few
//      seconds — a few upstream round trips — while X's backlog is still thousands deep. X's
//      backlog then drains at the deployment's pace and every task completes.
//   2. Same priority: X queues 2,000 normal tasks on an alias paced at 100 req/s, then Y submits
//      20 normal tasks: tenants take turns (round robin), so Y's finish within about a second
//      instead of after X's 20 s backlog.
//   1b. X's backlog on the paced alias does not hold up X's own batch tasks for another alias
//      whose deployment is idle.
//   3. Quota: tenant gamma has quotas.tenants.gamma = 50. Its 51st queued task is refused with
//      429 + Retry-After + the OpenAI error envelope (code queue_quota_exceeded); tenant beta is
//      unaffected; once gamma's tasks leave the queue (cancelled), it can submit again.
// Parts 2 and 3 run while part 1's batch backlog drains (normal outranks batch, and each alias
// has its own deployment and mock).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, mapLimit, sleep, waitFor, mockProvider, assertErrorEnvelope, MOCK_PRICE } from './lib/harness.mjs';

const X_BATCH = Number(process.env.SLUICE_FAIRNESS_BATCH_N ?? 10000);
const BATCH_RPS = 200;
const X_NORMAL = 2000;
const RR_RPS = 100;
const Y_N = 10;
const Y_RR_N = 20;
const QUOTA = 50;
const SUBMIT_CONCURRENCY = 64;

describe('fairness: priorities, round robin between tenants, quotas', () => {
  const cl = new Cluster('fairness');
  let mockBatch;
  let mockRr;
  let mockQuota;
  let x;
  let y;
  let gamma;
  let batchIds = [];
  let batchStartAt = 0;
  let batchSubmittedAt = 0;

  before(async () => {
    const redis = await cl.startRedis();
    mockBatch = await cl.startMock({ record: 10 });
    mockRr = await cl.startMock({ record: 10 });
    mockQuota = await cl.startMock({ record: 10 });
    const dep = (provider, rpm) => ({ provider, model: 'mock-gpt', price: { ...MOCK_PRICE }, ...(rpm ? { rpm } : {}) });
    const config = await cl.configFor({
      redis,
      overrides: {
        keys: [
          { key: 'env:SLUICE_TEST_KEY_A', tenant: 'alpha' },
          { key: 'env:SLUICE_TEST_KEY_B', tenant: 'beta' },
          { key: 'env:SLUICE_TEST_KEY_C', tenant: 'gamma' },
        ],
        providers: { 'm-batch': mockProvider(mockBatch), 'm-rr': mockProvider(mockRr), 'm-quota': mockProvider(mockQuota) },
        models: {
          'f-batch': { kind: 'chat', strategy: 'ordered', deployments: [dep('m-batch', 60 * BATCH_RPS)] },
          'f-rr': { kind: 'chat', strategy: 'ordered', deployments: [dep('m-rr', 60 * RR_RPS)] },
          // One request a minute: once the first has been served, whatever follows stays queued.
          'f-quota': { kind: 'chat', strategy: 'ordered', deployments: [dep('m-quota', 1)] },
        },
        quotas: { tenants: { gamma: QUOTA } },
        tasks: { lease_ms: 10000 },
      },
    });
    const gammaKey = `sk-test-gamma-${process.pid}-${Date.now()}`;
    const env = { SLUICE_TEST_KEY_C: gammaKey };
    const apiProc = await cl.startSluice('api', config, { env });
    await cl.startSluice('scheduler', config, { env });
    await cl.startSluice('worker', config, { env });
    x = cl.client(apiProc.baseUrl, cl.keys.alpha);
    y = cl.client(apiProc.baseUrl, cl.keys.beta);
    gamma = cl.client(apiProc.baseUrl, gammaKey);
  });
  after(() => cl.stop());

  /** Submits n chat tasks for `who` (bounded concurrency); returns their ids, all 202. */
  async function submitMany(who, alias, n, label, extra = {}) {
    const statuses = {};
    const ids = await mapLimit(Array.from({ length: n }, (_, i) => i), SUBMIT_CONCURRENCY, async (i) => {
      const res = await who.submitChat(alias, `${label} #${i}`, { timeoutMs: 15000, ...extra });
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      return res.status === 202 ? res.json.id : null;
    });
    assert.equal(statuses[202], n, `${label}: every POST is a 202: ${JSON.stringify(statuses)}`);
    return ids;
  }

  const depth = async (model, priority) => (await x.metrics()).get('sluice_queue_depth', { model, priority }) ?? 0;

  test(`1. Y's ${Y_N} normal tasks finish within seconds behind X's ${X_BATCH} batch tasks`, { timeout: 120_000 }, async (t) => {
    const t0 = Date.now();
    batchStartAt = t0;
    batchIds = await submitMany(x, 'f-batch', X_BATCH, 'X batch', { priority: 'batch' });
    batchSubmittedAt = Date.now();
    const backlogBefore = await depth('f-batch', 'batch');

    const ty = Date.now();
    const yIds = await submitMany(y, 'f-batch', Y_N, 'Y normal', { priority: 'normal' });
    const yDone = await y.waitTerminal(yIds, 30_000, { intervalMs: 50 });
    const yMs = Date.now() - ty;
    const backlogAfter = await depth('f-batch', 'batch');
    const summary = `X submitted ${X_BATCH} batch tasks in ${batchSubmittedAt - t0} ms (backlog then ${backlogBefore}); ` +
      `Y's ${Y_N} normal tasks all terminal ${yMs} ms after Y's first submit; X's backlog then ${backlogAfter} ` +
      `(≈ ${(backlogAfter / BATCH_RPS).toFixed(1)} s of work at ${BATCH_RPS}/s)`;
    console.log(`fairness 1: ${summary}`);
    t.diagnostic(summary);
    assert.ok(yDone.every((task) => task.status === 'completed' && task.priority === 'normal'), `Y's tasks completed: ${summary}`);
    assert.ok(yMs <= 3000, `Y's tasks finish within a few upstream round trips, not behind X's backlog: ${summary}`);
    assert.ok(backlogAfter >= X_BATCH / 4, `X's backlog is still there when Y is done (the test measures priority, not an empty queue): ${summary}`);
  });

  // The tenant's own backlog on one alias must not hold up its tasks for another alias whose
  // deployment has capacity now ("a task is claimed when a deployment of ITS alias has budget").
  test(`1b. X's batch backlog on one alias does not hold up X's batch tasks for another alias`, { timeout: 60_000 }, async (t) => {
    const backlog = await depth('f-batch', 'batch');
    const t0 = Date.now();
    const ids = await submitMany(x, 'f-rr', 5, 'X batch other alias', { priority: 'batch' });
    let done = null;
    let err = null;
    try {
      done = await x.waitTerminal(ids, 10_000, { intervalMs: 100 });
    } catch (e) {
      err = e;
    }
    const ms = Date.now() - t0;
    const summary = `X's f-batch backlog ${backlog}; X's 5 batch tasks on f-rr (idle deployment): ` +
      `${done ? `all terminal after ${ms} ms` : `not done after 10 s (${err.message.slice(0, 160)})`}`;
    console.log(`fairness 1b: ${summary}`);
    t.diagnostic(summary);
    assert.ok(backlog >= 1000, `the backlog is still there (${backlog})`);
    assert.ok(done && done.every((task) => task.status === 'completed') && ms <= 3000,
      `a task whose alias has capacity waits behind the same tenant's backlog on another alias: ${summary}`);
  });

  test(`2. same priority: Y's ${Y_RR_N} tasks take turns with X's ${X_NORMAL}`, { timeout: 120_000 }, async (t) => {
    const t0 = Date.now();
    const xIds = await submitMany(x, 'f-rr', X_NORMAL, 'X normal');
    const xSubmitMs = Date.now() - t0;
    const ty = Date.now();
    const yIds = await submitMany(y, 'f-rr', Y_RR_N, 'Y rr');
    const yDone = await y.waitTerminal(yIds, 40_000, { intervalMs: 50 });
    const yMs = Date.now() - ty;
    const xLeft = await depth('f-rr', 'normal');
    const summary = `X submitted ${X_NORMAL} normal tasks in ${xSubmitMs} ms; Y's ${Y_RR_N} all terminal ${yMs} ms after its first submit; ` +
      `X's normal backlog then ${xLeft} (≈ ${(xLeft / RR_RPS).toFixed(1)} s at ${RR_RPS}/s)`;
    console.log(`fairness 2: ${summary}`);
    t.diagnostic(summary);
    assert.ok(yDone.every((task) => task.status === 'completed'), summary);
    // Round robin: Y's 20 need about 40 claims at 100/s (0.4 s); X's backlog alone is ~15-20 s.
    assert.ok(yMs <= 3000, `Y's tasks are not stuck behind X's backlog of the same priority: ${summary}`);
    assert.ok(xLeft >= X_NORMAL / 4, `X still has a backlog when Y is done: ${summary}`);
    // X's tasks drain at the pace and complete.
    const xDone = await x.waitTerminal(xIds, 60_000, { intervalMs: 1000, concurrency: 64 });
    assert.ok(xDone.every((task) => task.status === 'completed'), 'all of X\'s normal tasks complete');
  });

  test(`3. quota: gamma's ${QUOTA + 1}st queued task is a 429 with Retry-After; beta is unaffected`, { timeout: 60_000 }, async (t) => {
    // Spend f-quota's one request a minute, so what follows stays queued.
    const first = await gamma.submitChat('f-quota', 'quota warm-up');
    assert.equal(first.status, 202, first.text);
    await gamma.waitTerminal([first.json.id], 15_000, { intervalMs: 100 });

    const ids = [];
    for (let i = 0; i < QUOTA; i++) {
      const r = await gamma.submitChat('f-quota', `quota #${i}`);
      assert.equal(r.status, 202, `gamma's task ${i + 1} of ${QUOTA} is accepted: ${r.status} ${r.text.slice(0, 300)}`);
      ids.push(r.json.id);
    }
    const over = await gamma.submitChat('f-quota', 'one too many');
    const overOther = await gamma.submitChat('f-rr', 'one too many, another alias');
    const betaRes = await y.submitChat('f-quota', 'beta is not gamma');
    const summary = `${QUOTA} accepted; #${QUOTA + 1}: ${over.status} retry-after=${over.headers['retry-after']} ${over.text.slice(0, 300)}; ` +
      `gamma on another alias: ${overOther.status}; beta: ${betaRes.status}`;
    console.log(`fairness 3: ${summary}`);
    t.diagnostic(summary);
    assertErrorEnvelope(over, 429);
    assert.equal(over.json.error.code, 'queue_quota_exceeded', summary);
    const ra = Number(over.headers['retry-after']);
    assert.ok(Number.isInteger(ra) && ra >= 1, `Retry-After is whole seconds >= 1: ${summary}`);
    assertErrorEnvelope(overOther, 429); // the quota is the tenant's, across aliases
    assert.equal(betaRes.status, 202, `another tenant is unaffected: ${summary}`);

    // Queued tasks leaving the queue free the quota: cancel gamma's, then it can submit again.
    await mapLimit(ids, 16, async (id) => {
      const r = await gamma.cancel(id);
      assert.equal(r.status, 200, `cancel ${id}: ${r.status} ${r.text.slice(0, 200)}`);
    });
    const again = await waitFor(async () => {
      const r = await gamma.submitChat('f-rr', 'after cancelling');
      return r.status === 202 ? r : null;
    }, { timeoutMs: 5000, intervalMs: 250, what: 'gamma to be accepted again after cancelling its queued tasks' });
    assert.equal(again.status, 202);
    await y.cancel(betaRes.json.id);
  });

  test(`1 (end). X's ${X_BATCH} batch tasks drain at the pace and all complete`, { timeout: 150_000 }, async (t) => {
    // Let the backlog drain (gauges), then check every task through the API.
    const limitMs = Math.ceil((X_BATCH / BATCH_RPS) * 1000 * 2) + 20_000;
    await waitFor(async () => (await depth('f-batch', 'batch')) === 0, { timeoutMs: limitMs, intervalMs: 500, what: 'the batch backlog to drain' });
    const drainedAt = Date.now();
    const done = await x.waitTerminal(batchIds, 60_000, { intervalMs: 1000, concurrency: 64 });
    const bad = done.filter((task) => task.status !== 'completed');
    const stats = await mockBatch.stats();
    const drainS = (drainedAt - batchStartAt) / 1000;
    const idealS = X_BATCH / BATCH_RPS;
    const summary = `${X_BATCH} batch tasks: first submit → backlog empty ${drainS.toFixed(1)} s (ideal at ${BATCH_RPS}/s: ${idealS} s); ` +
      `mock by_status ${JSON.stringify(stats.by_status)}; completed ${done.length - bad.length}/${X_BATCH}`;
    console.log(`fairness 1 (end): ${summary}`);
    t.diagnostic(summary);
    assert.equal(bad.length, 0, `every batch task completes: ${JSON.stringify(bad[0])?.slice(0, 500)}`);
    assert.equal(stats.by_status?.['200'], X_BATCH + Y_N, `one upstream call per task: ${summary}`);
    // The pace held: never faster than the deployment's rpm (its bucket holds one second's worth),
    // and not much slower either.
    assert.ok(drainS >= idealS - 1.5, `drained faster than ${BATCH_RPS}/s: ${summary}`);
    assert.ok(drainS <= idealS * 1.25 + 5, `drained much slower than ${BATCH_RPS}/s: ${summary}`);
  });
});
