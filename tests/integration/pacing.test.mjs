// Pacing, classification and visibility, through `sluice serve` with two mocks (A, B):
//   (a) a provider 400 is not retryable: the task fails at once, attempts 1, one upstream call,
//       and no fallback to the alias's second deployment;
//   (b) a provider 429 + retry-after pauses that deployment (sluice_deployment_paused 1) and
//       returns the task to the head of its queue without spending an attempt: with a second
//       deployment it is served there at once, attempts 1; the paused one gets no call until its
//       retry-after has passed, and then gets traffic again;
//   (c) a queued task of a paced alias shows queue_position and eta_seconds (its place over the
//       configured pace), and both go down as the queue drains;
//   (d) /metrics exposes every scheduling family with sane values (labels, ranges, histogram
//       consistency), each family's samples together as the Prometheus text format requires.
//       It reads the counters (a)–(c) left, so it runs after them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, sleep, mockProvider, assertTaskObject, ADMIN_KEY } from './lib/harness.mjs';

const CHEAP = { input_per_mtok: 0.1, output_per_mtok: 0.4 };
const DEAR = { input_per_mtok: 2.5, output_per_mtok: 10 };
const SLOW_RPM = 120; // 2 requests/s
const SLOW_TPM = 120000;

const MODELS = {
  'p-ordered': {
    kind: 'chat',
    strategy: 'ordered',
    deployments: [
      { provider: 'mock-a', model: 'gpt-a', price: { ...CHEAP } },
      { provider: 'mock-b', model: 'gpt-b', price: { ...DEAR } },
    ],
  },
  'p-slow': {
    kind: 'chat',
    strategy: 'ordered',
    deployments: [{ provider: 'mock-b', model: 'gpt-b', price: { ...DEAR }, rpm: SLOW_RPM, tpm: SLOW_TPM }],
  },
};

describe('pacing: non-retryable failures, 429 pauses, queue position and ETA, /metrics', () => {
  const cl = new Cluster('pacing');
  let mockA;
  let mockB;
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    mockA = await cl.startMock({ record: 200 });
    mockB = await cl.startMock({ record: 200 });
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

  test('(a) a provider 400 fails the task at once: attempts 1, one upstream call, no fallback', { timeout: 60_000 }, async (t) => {
    await Promise.all([mockA.reset(), mockB.reset()]);
    await mockA.config({ error_rate: 1, error_status: 400, error_message: 'mock says: bad request' });
    const res = await api.submitChat('p-ordered', 'a request the provider refuses');
    assert.equal(res.status, 202, res.text);
    const [task] = await api.waitTerminal([res.json.id], 30_000, { intervalMs: 100 });
    await sleep(500); // anything that would still happen (a retry on B) has time to show
    const [a, b] = [await mockA.stats(), await mockB.stats()];
    await mockA.reset();
    const summary = `task ${task.status}, attempts ${task.attempts}, error ${JSON.stringify(task.error)}; ` +
      `attempt_log ${JSON.stringify(task.attempt_log)}; mock A ${JSON.stringify(a.by_status)}, mock B ${JSON.stringify(b.by_status)}`;
    t.diagnostic(summary);
    assertTaskObject(task, { model: 'p-ordered' });
    assert.equal(task.status, 'failed', summary);
    assert.equal(task.attempts, 1, summary);
    assert.equal(task.result, null, summary);
    assert.equal(task.error?.retryable, false, summary);
    assert.equal(task.error?.provider_status, 400, summary);
    assert.match(String(task.error?.message), /mock says: bad request/, summary);
    assert.equal(task.provider?.name, 'mock-a', summary);
    assert.equal(a.by_status?.['400'] ?? 0, 1, `one upstream call: ${summary}`);
    assert.equal(b.requests ?? 0, 0, `no fallback to the second deployment: ${summary}`);
    assert.ok(Array.isArray(task.attempt_log) && task.attempt_log.length === 1, `one attempt logged: ${summary}`);
    const [e] = task.attempt_log;
    assert.deepEqual([e.attempt, e.deployment, e.provider, e.model, e.status, e.outcome], [1, 0, 'mock-a', 'gpt-a', 400, 'failed'], summary);
    assert.ok(e.error && /mock says: bad request/.test(e.error.message), summary);
  });

  test('(b) a 429 + retry-after pauses the deployment; the task goes to the other one without spending an attempt', { timeout: 60_000 }, async (t) => {
    await Promise.all([mockA.reset(), mockB.reset()]);
    const RETRY_AFTER_S = 3;
    await mockA.config({ error_rate: 1, error_status: 429, retry_after_s: RETRY_AFTER_S });
    const t0 = Date.now();
    const res = await api.submitChat('p-ordered', 'rate limited at A');
    const [task] = await api.waitTerminal([res.json.id], 20_000, { intervalMs: 50 });
    const servedMs = Date.now() - t0;
    const m = await api.metrics();
    const paused = m.get('sluice_deployment_paused', { model: 'p-ordered', deployment: '0' });
    const r429 = m.get('sluice_provider_429_total', { model: 'p-ordered', deployment: '0' });
    await mockA.reset(); // A would answer now, but it is paused: it must get no call before its retry-after
    const during = [];
    while (Date.now() - t0 < RETRY_AFTER_S * 1000 - 700) {
      const r = await api.submitChat('p-ordered', `while A is paused #${during.length}`);
      during.push(...await api.waitTerminal([r.json.id], 10_000, { intervalMs: 50 }));
      await sleep(100);
    }
    const aDuring = (await mockA.stats()).requests;
    await sleep(Math.max(0, RETRY_AFTER_S * 1000 + 300 - (Date.now() - t0)));
    const r2 = await api.submitChat('p-ordered', 'after the pause');
    const [afterTask] = await api.waitTerminal([r2.json.id], 10_000, { intervalMs: 50 });
    const summary = `first task: ${task.status} via ${task.provider?.name} attempts ${task.attempts} after ${servedMs} ms, ` +
      `attempt_log ${JSON.stringify(task.attempt_log)}; paused gauge ${paused}, provider_429_total ${r429}; ` +
      `${during.length} tasks during the pause via ${[...new Set(during.map((x) => x.provider?.name))]}, A got ${aDuring} calls; ` +
      `after the pause via ${afterTask.provider?.name}`;
    console.log(`pacing (b): ${summary}`);
    t.diagnostic(summary);
    assert.equal(task.status, 'completed', summary);
    assert.equal(task.provider?.name, 'mock-b', `served by the other deployment: ${summary}`);
    assert.equal(task.attempts, 1, `a 429 spends no attempt: ${summary}`);
    assert.ok(servedMs < RETRY_AFTER_S * 1000, `the task did not wait for A's retry-after: ${summary}`);
    const log = task.attempt_log ?? [];
    assert.equal(log.length, 2, `both calls logged: ${summary}`);
    assert.deepEqual([log[0].provider, log[0].status], ['mock-a', 429], summary);
    assert.deepEqual([log[1].provider, log[1].status, log[1].outcome], ['mock-b', 200, 'completed'], summary);
    assert.equal(paused, 1, `sluice_deployment_paused is 1 during the retry-after: ${summary}`);
    assert.ok(r429 >= 1, `sluice_provider_429_total counts it: ${summary}`);
    assert.ok(during.length >= 3 && during.every((x) => x.status === 'completed' && x.provider?.name === 'mock-b'), summary);
    assert.equal(aDuring, 0, `A gets no call while paused: ${summary}`);
    assert.equal(afterTask.provider?.name, 'mock-a', `A takes traffic again after its retry-after: ${summary}`);
    const m2 = await api.metrics();
    assert.equal(m2.get('sluice_deployment_paused', { model: 'p-ordered', deployment: '0' }), 0, 'not paused any more');
  });

  test('(c) queued tasks of a paced alias show queue_position and eta_seconds, both going down', { timeout: 90_000 }, async (t) => {
    await Promise.all([mockA.reset(), mockB.reset()]);
    const N = 24; // at 2/s: about 12 s
    const ids = [];
    for (let i = 0; i < N; i++) {
      const r = await api.submitChat('p-slow', `paced #${i}`);
      assert.equal(r.status, 202, r.text);
      ids.push(r.json.id);
    }
    const snap = async () => Promise.all(ids.map(async (id) => (await api.getTask(id)).json));
    const first = await snap();
    const queued = first.filter((x) => x.status === 'queued');
    const rows = queued.map((x) => `${x.queue_position}/${x.eta_seconds}`).join(' ');
    // A later look at the last task: both numbers lower.
    await sleep(3000);
    const lastLater = (await api.getTask(ids.at(-1))).json;
    const lastFirst = first.at(-1);
    const m = await api.metrics();
    const depth = m.get('sluice_queue_depth', { model: 'p-slow', priority: 'normal' });
    const summary = `${queued.length} of ${N} queued right after submitting; position/eta: ${rows}; ` +
      `last task then ${lastFirst.queue_position}/${lastFirst.eta_seconds}, 3 s later ${lastLater.status} ${lastLater.queue_position}/${lastLater.eta_seconds}; ` +
      `sluice_queue_depth{model="p-slow",priority="normal"} ${depth}`;
    console.log(`pacing (c): ${summary}`);
    t.diagnostic(summary);
    assert.ok(queued.length >= N - 6, `most are still queued at 2/s: ${summary}`);
    for (const x of queued) {
      assert.ok(Number.isInteger(x.queue_position) && x.queue_position >= 0, `queue_position: ${JSON.stringify(x).slice(0, 400)}`);
      assert.ok(Number.isInteger(x.eta_seconds) && x.eta_seconds >= 0, `eta_seconds: ${JSON.stringify(x).slice(0, 400)}`);
      // eta = position over the configured pace (2/s), rounded up.
      assert.ok(Math.abs(x.eta_seconds - x.queue_position / (SLOW_RPM / 60)) <= 1, `eta ≈ position / 2: ${x.queue_position}/${x.eta_seconds}`);
    }
    for (let i = 1; i < queued.length; i++) {
      assert.ok(queued[i].queue_position > queued[i - 1].queue_position, `positions grow in submission order: ${rows}`);
    }
    assert.ok(depth >= 1, `the queue depth gauge shows the backlog: ${summary}`);
    assert.equal(lastLater.status, 'queued', summary);
    assert.ok(lastLater.queue_position < lastFirst.queue_position, `the position went down: ${summary}`);
    assert.ok(lastLater.eta_seconds < lastFirst.eta_seconds, `the ETA went down: ${summary}`);
    const done = await api.waitTerminal(ids, 60_000, { intervalMs: 250 });
    for (const x of done) {
      assert.equal(x.status, 'completed');
      assert.ok(!('queue_position' in x) || x.queue_position === null, `a finished task has no queue_position: ${JSON.stringify(x).slice(0, 300)}`);
      assert.ok(!('eta_seconds' in x) || x.eta_seconds === null, `a finished task has no eta_seconds: ${JSON.stringify(x).slice(0, 300)}`);
    }
  });

  test('(d) /metrics: every scheduling family, sane values, valid text format', { timeout: 60_000 }, async (t) => {
    const res = await api.request('GET', '/metrics', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.status, 200);
    // a tenant key is not enough, nor is none: /metrics is the admin's
    assert.equal((await api.request('GET', '/metrics')).status, 401);
    assert.equal((await api.request('GET', '/metrics', { headers: { authorization: null } })).status, 401);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const m = (await api.metrics());
    const problems = [];
    const check = (ok, what) => { if (!ok) problems.push(what); };
    const bad = m.samples.filter((s) => s.name === null);
    check(bad.length === 0, `unparsable lines: ${bad.map((s) => s.bad).slice(0, 3).join(' | ')}`);

    const families = [
      'sluice_queue_depth', 'sluice_queue_ready', 'sluice_tasks', 'sluice_upstream_calls_total',
      'sluice_upstream_latency_seconds_bucket', 'sluice_upstream_latency_seconds_sum', 'sluice_upstream_latency_seconds_count',
      'sluice_provider_429_total', 'sluice_deployment_budget_requests', 'sluice_deployment_budget_tokens',
      'sluice_deployment_in_flight', 'sluice_deployment_breaker_state', 'sluice_deployment_paused',
      'sluice_deployment_latency_ewma_seconds',
    ];
    for (const f of families) check(m.all(f).length > 0, `family ${f} missing`);

    // Labels and ranges.
    for (const s of m.all('sluice_queue_depth')) check('model' in s.labels && ['interactive', 'normal', 'batch'].includes(s.labels.priority) && s.value >= 0, `queue_depth ${JSON.stringify(s)}`);
    for (const s of m.all('sluice_queue_ready')) check(['interactive', 'normal', 'batch'].includes(s.labels.priority) && s.value >= 0, `queue_ready ${JSON.stringify(s)}`);
    for (const s of m.all('sluice_tasks')) check(['queued', 'in_progress', 'completed', 'failed', 'cancelled', 'cancelling', 'expired'].includes(s.labels.status) && s.value >= 0, `tasks ${JSON.stringify(s)}`);
    check(m.get('sluice_tasks', { status: 'completed' }) >= 24 + 1, `tasks{completed} counts this file's completions: ${m.get('sluice_tasks', { status: 'completed' })}`);
    check(m.get('sluice_tasks', { status: 'failed' }) >= 1, 'tasks{failed} counts the 400');
    for (const s of m.all('sluice_upstream_calls_total')) {
      check(['model', 'deployment', 'provider', 'status'].every((k) => k in s.labels) && s.value >= 0, `upstream_calls ${JSON.stringify(s)}`);
    }
    check(m.get('sluice_upstream_calls_total', { model: 'p-ordered', deployment: '0', provider: 'mock-a', status: '400' }) === 1,
      `one 400 call counted on p-ordered/0/mock-a: ${JSON.stringify(m.all('sluice_upstream_calls_total', { model: 'p-ordered' }))}`);
    check(m.sum('sluice_upstream_calls_total', { model: 'p-slow', status: '200' }) >= 24, 'p-slow 200s counted');
    check(m.sum('sluice_provider_429_total') >= 1, 'a 429 counted');
    // Histogram: buckets cumulative in le, +Inf = _count, _sum > 0 where _count > 0.
    for (const c of m.all('sluice_upstream_latency_seconds_count')) {
      const sel = { model: c.labels.model, deployment: c.labels.deployment };
      const buckets = m.all('sluice_upstream_latency_seconds_bucket', sel)
        .map((b) => [b.labels.le === '+Inf' ? Infinity : Number(b.labels.le), b.value]).sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < buckets.length; i++) check(buckets[i][1] >= buckets[i - 1][1], `buckets cumulative ${JSON.stringify(sel)}: ${JSON.stringify(buckets)}`);
      check(buckets.length > 1 && buckets.at(-1)[0] === Infinity && buckets.at(-1)[1] === c.value, `+Inf bucket = _count ${JSON.stringify(sel)}`);
      const sum = m.get('sluice_upstream_latency_seconds_sum', sel);
      check(sum !== undefined && sum >= 0 && (c.value === 0 || sum > 0), `_sum ${JSON.stringify(sel)} = ${sum}`);
      // `le` is in seconds (the family's unit, as _sum is): the mock answers at once, so a
      // bucket of at most 0.25 s holds most calls, and no bound is above a few minutes.
      const fast = buckets.filter(([le]) => le <= 0.25).map(([, v]) => v);
      const finite = buckets.filter(([le]) => le !== Infinity).map(([le]) => le);
      check(fast.length > 0 && Math.max(...fast) >= 0.5 * c.value && Math.max(...finite) <= 600,
        `le must be in seconds: the bounds of ${JSON.stringify(sel)} are ${finite.join(',')} (calls ${c.value}, _sum ${m.get('sluice_upstream_latency_seconds_sum', sel)} s)`);
    }
    for (const s of m.all('sluice_deployment_breaker_state')) check([0, 1, 2].includes(s.value), `breaker_state ${JSON.stringify(s)}`);
    for (const s of m.all('sluice_deployment_paused')) check([0, 1].includes(s.value), `paused ${JSON.stringify(s)}`);
    for (const s of m.all('sluice_deployment_in_flight')) check(s.value >= 0 && s.value <= 256, `in_flight ${JSON.stringify(s)}`);
    for (const s of m.all('sluice_deployment_latency_ewma_seconds')) check(s.value > 0 && s.value < 5, `latency_ewma ${JSON.stringify(s)}`);
    const slowReq = m.get('sluice_deployment_budget_requests', { model: 'p-slow', deployment: '0' });
    check(slowReq !== undefined && slowReq >= 0 && slowReq <= SLOW_RPM / 60, `p-slow budget_requests within [0, ${SLOW_RPM / 60}]: ${slowReq}`);
    const slowTok = m.get('sluice_deployment_budget_tokens', { model: 'p-slow', deployment: '0' });
    check(slowTok !== undefined && slowTok <= SLOW_TPM / 60 && slowTok >= -1000, `p-slow budget_tokens within its bucket (${SLOW_TPM / 60}): ${slowTok}`);
    // p-ordered has neither rpm nor tpm: an unlimited budget may be left out, but a number shown
    // must not be negative (a budget of -16 requests reads as "over budget").
    for (const s of m.all('sluice_deployment_budget_requests', { model: 'p-ordered' })) {
      check(s.value >= 0, `budget_requests of a deployment with no rpm is ${s.value} (${JSON.stringify(s.labels)})`);
    }
    for (const s of m.all('sluice_deployment_budget_tokens', { model: 'p-ordered' })) {
      check(s.value >= 0, `budget_tokens of a deployment with no tpm is ${s.value} (${JSON.stringify(s.labels)})`);
    }
    // Every deployment of every alias has its gauges, labelled with its provider.
    for (const [alias, def] of Object.entries(MODELS)) {
      def.deployments.forEach((d, i) => {
        for (const f of ['sluice_deployment_in_flight', 'sluice_deployment_breaker_state', 'sluice_deployment_paused']) {
          check(m.get(f, { model: alias, deployment: String(i), provider: d.provider }) !== undefined, `${f}{model="${alias}",deployment="${i}",provider="${d.provider}"} missing`);
        }
      });
    }
    // Text format: a family's samples are one group (Prometheus rejects a family split in two).
    const firstAt = new Map();
    const lastAt = new Map();
    const famOf = (n) => n.replace(/_(bucket|sum|count)$/, '');
    m.samples.forEach((s, i) => {
      if (!s.name) return;
      const f = famOf(s.name);
      if (!firstAt.has(f)) firstAt.set(f, i);
      lastAt.set(f, i);
    });
    const split = [];
    for (const [f, a] of firstAt) {
      const others = m.samples.slice(a, lastAt.get(f) + 1).filter((s) => s.name && famOf(s.name) !== f);
      if (others.length > 0) split.push(`${f} (interleaved with ${others[0].name})`);
    }
    check(split.length === 0, `families not grouped: ${split.join(', ')}`);

    const summary = problems.length ? problems.join('\n  ') : 'all good';
    t.diagnostic(`families: ${m.families.join(' ')}`);
    if (problems.length) console.log(`pacing (d): /metrics problems:\n  ${summary}\n--- /metrics ---\n${m.text}`);
    assert.deepEqual(problems, [], `/metrics:\n  ${summary}`);
  });
});
