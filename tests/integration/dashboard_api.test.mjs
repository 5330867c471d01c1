// The dashboard's JSON and static page (api/dashboard.c, core/lua/dash.lua), end to end through
// `sluice serve` with three mocks (A: slow, behind max_concurrency 2; B: always 429 with
// retry-after; C: always 400):
//   (a) no key or a bad key is a 401 in OpenAI's envelope on every data route; the page and its
//       assets need none, with their Content-Type, nosniff and (the page) the strict CSP;
//   (b) a burst shows in the admin's queues (depth, oldest waiting task), then drains to 0;
//       accepted_total counts it; history answers with 10 s points (the scheduler samples);
//   (c) a deployment answered with 429 + retry-after shows paused with its until and its 429s;
//   (d) a failed task shows in the admin's failures grouped by code and alias, counted in
//       failed_total;
//   (e) a task's dashboard page has its attempt_log: any tenant's for the admin, the key's own
//       for a tenant (another's is 404), and so do the task lists;
//   (f) a tenant's state is its own: scope, tenants (with its budget), totals; no other tenant's
//       name, task id, batch or failure appears anywhere in its answers;
//   (g) a batch in progress shows for the admin and its tenant with its counts, never for
//       another tenant.
// Each state read is one EVALSHA: its time inside Redis is read from the SLOWLOG and reported.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Cluster, mockProvider, openaiClient, waitFor, ADMIN_KEY } from './lib/harness.mjs';

const RETRY_AFTER_S = 30;
const BURST = 24;
const BATCH_LINES = 40;

describe('dashboard API: scope, burst, pause, failures, tasks', () => {
  const cl = new Cluster('dashboard_api');
  let base;
  let admin;
  let alpha;
  let beta;
  let mockB;
  let redis;
  const alphaIds = [];
  let failedId;

  before(async () => {
    redis = await cl.startRedis();
    const mockA = await cl.startMock({ latencyMs: 250 });
    mockB = await cl.startMock();
    const mockC = await cl.startMock();
    await mockB.config({ error_rate: 1, error_status: 429, retry_after_s: RETRY_AFTER_S });
    await mockC.config({ error_rate: 1, error_status: 400, error_message: 'mock says no' });
    const config = await cl.configFor({
      redis,
      overrides: {
        providers: { 'mock-a': mockProvider(mockA), 'mock-b': mockProvider(mockB), 'mock-c': mockProvider(mockC) },
        models: {
          'dash-slow': { kind: 'chat', strategy: 'ordered', deployments: [{ provider: 'mock-a', model: 'gpt-a', max_concurrency: 2 }] },
          'dash-paused': { kind: 'chat', strategy: 'ordered', deployments: [{ provider: 'mock-b', model: 'gpt-b', rpm: 600 }] },
          'dash-fail': { kind: 'chat', strategy: 'ordered', deployments: [{ provider: 'mock-c', model: 'gpt-c' }] },
        },
      },
    });
    const sluice = await cl.startSluice('serve', config);
    base = sluice.baseUrl;
    admin = cl.client(base, ADMIN_KEY);
    alpha = cl.client(base, cl.keys.alpha);
    beta = cl.client(base, cl.keys.beta);
    const b = await admin.request('PUT', '/v1/admin/tenants/beta/budget', {
      body: { policy: 'pace', limits: [{ window: 'day', max_usd: 100 }] },
    });
    assert.equal(b.status, 200, b.text);
  });
  after(() => cl.stop());

  test('(a) 401 without a key on the data routes; the page and its assets need none', { timeout: 30_000 }, async () => {
    const anon = cl.client(base, null);
    const bad = cl.client(base, 'sk-not-a-key');
    for (const p of ['/v1/dashboard/state', '/v1/dashboard/history', '/v1/dashboard/tasks',
      '/v1/dashboard/tasks/task_aaaaaaaaaaaaaaaaaaaaaaaaaa',
      '/v1/dashboard/tasks/task_aaaaaaaaaaaaaaaaaaaaaaaaaa/content/0']) {
      for (const c of [anon, bad]) {
        const res = await c.request('GET', p);
        assert.equal(res.status, 401, `${p}: ${res.text}`);
        assert.equal(typeof res.json?.error?.message, 'string', res.text);
        assert.equal(res.json.error.type, 'authentication_error', res.text);
      }
    }
    for (const p of ['/dashboard', '/dashboard/']) {
      const res = await anon.request('GET', p);
      assert.equal(res.status, 200, p);
      assert.match(res.headers['content-type'], /^text\/html/);
      assert.equal(res.headers['content-security-policy'],
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:");
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.match(res.text, /<html/i);
    }
    const js = await anon.request('GET', '/dashboard/app.js');
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /^text\/javascript/);
    const css = await anon.request('GET', '/dashboard/app.css');
    assert.equal(css.status, 200);
    assert.match(css.headers['content-type'], /^text\/css/);
    assert.equal((await anon.request('GET', '/dashboard/nope.js')).status, 404);
    const st = await admin.request('GET', '/v1/dashboard/state');
    assert.equal(st.status, 200, st.text);
    assert.equal(st.headers['cache-control'], 'no-store');
  });

  test('(b) a burst fills the queue, then drains; history has points', { timeout: 90_000 }, async (t) => {
    const subs = await Promise.all(Array.from({ length: BURST }, (_, i) => alpha.submitChat('dash-slow', `burst ${i}`)));
    for (const s of subs) {
      assert.equal(s.status, 202, s.text);
      alphaIds.push(s.json.id);
    }
    const seen = await waitFor(async () => {
      const s = (await admin.request('GET', '/v1/dashboard/state')).json;
      const q = s.queues.find((x) => x.model === 'dash-slow' && x.priority === 'normal');
      return q && q.depth > 0 ? { q, s } : null;
    }, { timeoutMs: 10_000, intervalMs: 100, what: 'dash-slow queued in the admin state' });
    t.diagnostic(`seen: ${JSON.stringify(seen.q)}`);
    assert.equal(typeof seen.q.oldest_queued_at, 'number', JSON.stringify(seen.q));
    assert.ok(Math.abs(seen.q.oldest_queued_at - seen.s.now) < 120, JSON.stringify(seen.q));
    assert.deepEqual(seen.s.scope, { admin: true, tenant: null });
    const dep = seen.s.deployments.find((d) => d.model === 'dash-slow');
    assert.equal(dep.max_concurrency, 2);
    assert.ok(dep.in_flight >= 0 && dep.in_flight <= 2, JSON.stringify(dep));

    const done = await alpha.waitTerminal(alphaIds, 60_000);
    assert.ok(done.every((x) => x.status === 'completed'), JSON.stringify(done.map((x) => x.status)));
    const after = (await admin.request('GET', '/v1/dashboard/state')).json;
    const q = after.queues.find((x) => x.model === 'dash-slow' && x.priority === 'normal');
    assert.equal(q?.depth ?? 0, 0, JSON.stringify(after.queues));
    assert.ok(after.totals.accepted_total >= BURST, JSON.stringify(after.totals));
    assert.ok('completed_total' in after.totals && 'rates' in after, JSON.stringify(after.totals));
    const alphaRow = after.tenants.find((x) => x.tenant === 'alpha');
    assert.ok(alphaRow && alphaRow.queued === 0, JSON.stringify(after.tenants));

    const h = await waitFor(async () => {
      const r = (await admin.request('GET', '/v1/dashboard/history?seconds=3600')).json;
      return r.points.length >= 1 ? r : null;
    }, { timeoutMs: 25_000, intervalMs: 500, what: 'a history point' });
    assert.equal(h.object, 'dashboard.history');
    assert.equal(h.interval_s, 10);
    const p = h.points.at(-1);
    assert.equal(typeof p.t, 'number');
    assert.equal(typeof p.queues, 'object');
    assert.ok(p.accepted_total >= 0, JSON.stringify(p));
    for (let i = 1; i < h.points.length; i++) assert.ok(h.points[i].t >= h.points[i - 1].t, 'oldest first');
    const bh = (await beta.request('GET', '/v1/dashboard/history')).json;
    assert.ok(bh.points.every((x) => x.accepted_total === null && !JSON.stringify(x.queues ?? {}).includes('alpha')));
    assert.equal((await admin.request('GET', '/v1/dashboard/history?seconds=0')).status, 400);
  });

  test('(c) a 429 with retry-after shows the deployment paused', { timeout: 60_000 }, async (t) => {
    const s = await beta.submitChat('dash-paused', 'will be paused');
    assert.equal(s.status, 202, s.text);
    const dep = await waitFor(async () => {
      const st = (await admin.request('GET', '/v1/dashboard/state')).json;
      const d = st.deployments.find((x) => x.model === 'dash-paused' && x.index === 0);
      return d && d.paused ? { d, now: st.now } : null;
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'dash-paused paused' });
    t.diagnostic(JSON.stringify(dep.d));
    assert.equal(dep.d.provider, 'mock-b');
    assert.ok(dep.d.paused_until > dep.now && dep.d.paused_until <= dep.now + RETRY_AFTER_S + 2, JSON.stringify(dep));
    assert.equal(dep.d.pause_reason, 'provider answered 429', JSON.stringify(dep));
    assert.ok(dep.d.rate_limited_total >= 1, JSON.stringify(dep.d));
    assert.equal(dep.d.rpm, 600);
    assert.equal(dep.d.breaker, 'closed');
    // a tenant sees the deployment (shared) but not its cost
    const bd = (await beta.request('GET', '/v1/dashboard/state')).json.deployments.find((x) => x.model === 'dash-paused');
    assert.equal(bd.paused, true);
    assert.equal(bd.cost_last_hour_usd, null);
    assert.equal((await beta.cancel(s.json.id)).status, 200);
  });

  test('(d) a failed task shows in failures, grouped, and in failed_total', { timeout: 60_000 }, async () => {
    const s = await alpha.submitChat('dash-fail', 'refused');
    assert.equal(s.status, 202, s.text);
    failedId = s.json.id;
    const [task] = await alpha.waitTerminal([failedId], 30_000);
    assert.equal(task.status, 'failed');
    const st = (await admin.request('GET', '/v1/dashboard/state')).json;
    const g = st.failures.find((x) => x.model === 'dash-fail');
    assert.ok(g, JSON.stringify(st.failures));
    assert.equal(g.count, 1);
    assert.equal(g.provider, 'mock-c');
    assert.equal(g.last_task, failedId);
    assert.equal(typeof g.code, 'string');
    assert.match(String(g.last_message), /mock says no/);
    assert.ok(st.totals.failed_total >= 1, JSON.stringify(st.totals));
  });

  test('(e) a task page: attempt_log, admin sees any tenant, a tenant only its own', { timeout: 30_000 }, async () => {
    const id = alphaIds[0];
    const a = await admin.request('GET', `/v1/dashboard/tasks/${id}`);
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.id, id);
    assert.ok(Array.isArray(a.json.attempt_log) && a.json.attempt_log.length >= 1, a.text);
    assert.equal(a.headers['cache-control'], 'no-store');
    // what was asked, next to what came back
    assert.equal(typeof a.json.input?.model, 'string', a.text.slice(0, 400));
    assert.ok(Array.isArray(a.json.input.messages), a.text.slice(0, 400));
    const own = await alpha.request('GET', `/v1/dashboard/tasks/${id}`);
    assert.equal(own.status, 200);
    assert.deepEqual(own.json.attempt_log, a.json.attempt_log);
    const other = await beta.request('GET', `/v1/dashboard/tasks/${id}`);
    assert.equal(other.status, 404, other.text);
    assert.equal((await beta.request('GET', `/v1/dashboard/tasks/${id}/content/0`)).status, 404);

    const all = (await admin.request('GET', '/v1/dashboard/tasks?limit=200')).json;
    assert.equal(all.object, 'list');
    assert.ok(all.data.some((x) => x.id === id) && all.data.some((x) => x.model === 'dash-paused'));
    for (let i = 1; i < all.data.length; i++) assert.ok(all.data[i].created_at <= all.data[i - 1].created_at, 'newest first');
    const failed = (await admin.request('GET', '/v1/dashboard/tasks?status=failed&tenant=alpha')).json;
    assert.deepEqual(failed.data.map((x) => x.id), [failedId]);
    const bySlow = (await admin.request('GET', '/v1/dashboard/tasks?model=dash-slow&limit=5')).json;
    assert.equal(bySlow.data.length, 5);
    assert.ok(bySlow.data.every((x) => x.model === 'dash-slow'));
    // a tenant's key lists its own, whatever tenant it names
    const b = (await beta.request('GET', '/v1/dashboard/tasks?tenant=alpha&limit=200')).json;
    assert.ok(b.data.length >= 1 && b.data.every((x) => x.model === 'dash-paused'), JSON.stringify(b.data.map((x) => x.id)));
    assert.equal((await admin.request('GET', '/v1/dashboard/tasks?status=nope')).status, 400);
    assert.equal((await admin.request('GET', '/v1/dashboard/tasks?limit=0')).status, 400);
  });

  test('(f) a tenant sees only its own numbers', { timeout: 30_000 }, async (t) => {
    // what one state read costs here (reported, never asserted: the machine is shared): over
    // HTTP, and inside Redis (the SLOWLOG's microseconds of each EVALSHA ... 'state')
    await redis.cli('config', 'set', 'slowlog-max-len', '10000');
    await redis.cli('config', 'set', 'slowlog-log-slower-than', '0');
    await redis.cli('slowlog', 'reset');
    const ms = [];
    for (let i = 0; i < 20; i++) ms.push((await admin.request('GET', '/v1/dashboard/state')).ms);
    const log = await redis.cli('--json', 'slowlog', 'get', '10000').catch(() => '');
    await redis.cli('config', 'set', 'slowlog-log-slower-than', '10000');
    let us = [];
    try {
      us = JSON.parse(log).filter((e) => e[3]?.[0]?.toLowerCase() === 'evalsha' && e[3]?.[3] === 'state')
        .map((e) => e[2]).sort((x, y) => x - y);
    } catch { /* reported as unknown below */ }
    ms.sort((x, y) => x - y);
    t.diagnostic(`admin /v1/dashboard/state over 20 calls: HTTP median ${ms[10]} ms, max ${ms[19]} ms; ` +
      `in Redis ${us.length} EVALSHA state: median ${us[Math.floor(us.length / 2)] ?? '?'} us, max ${us.at(-1) ?? '?'} us`);
    const res = await beta.request('GET', '/v1/dashboard/state');
    assert.equal(res.status, 200, res.text);
    const s = res.json;
    assert.equal(s.object, 'dashboard.state');
    assert.deepEqual(s.scope, { admin: false, tenant: 'beta' });
    assert.deepEqual(s.tenants.map((x) => x.tenant), ['beta']);
    const row = s.tenants[0];
    assert.equal(row.budget?.policy, 'pace', JSON.stringify(row));
    assert.deepEqual(row.budget.limits.map((l) => [l.window, l.max_usd]), [['day', 100]]);
    assert.ok(row.budget.limits[0].spent_usd >= 0 && row.budget.limits[0].remaining_usd <= 100, JSON.stringify(row));
    assert.equal(row.spent_usd.day, row.budget.limits[0].spent_usd);
    assert.equal(row.spent_usd.month, null);
    assert.equal(typeof row.spent_usd.hour, 'number');
    assert.equal(s.totals.accepted_total, null);
    assert.equal(s.failures.length, 0, JSON.stringify(s.failures));
    assert.ok(!res.text.includes('alpha'), 'no other tenant named');
    for (const id of [...alphaIds, failedId]) assert.ok(!res.text.includes(id), `no alpha task id ${id}`);
    const tasks = await beta.request('GET', '/v1/dashboard/tasks?limit=200');
    for (const id of [...alphaIds, failedId]) assert.ok(!tasks.text.includes(id));
    const as = (await alpha.request('GET', '/v1/dashboard/state')).json;
    assert.deepEqual(as.tenants.map((x) => x.tenant), ['alpha']);
    assert.ok(as.failures.length === 1 && as.failures[0].last_task === failedId);
    assert.ok(!JSON.stringify(as).includes('"beta"'));
  });
  test('(g) a batch in progress: the admin and its tenant see it, another tenant does not', { timeout: 90_000 }, async () => {
    const openai = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${base}/v1` });
    const lines = Array.from({ length: BATCH_LINES }, (_, i) => JSON.stringify({
      custom_id: `req-${i}`, method: 'POST', url: '/v1/chat/completions',
      body: { model: 'dash-slow', messages: [{ role: 'user', content: `line ${i}` }] },
    }));
    const file = await openai.files.create({ file: new File([lines.join('\n') + '\n'], 'dash.jsonl'), purpose: 'batch' });
    const batch = await openai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const seen = await waitFor(async () => {
      const s = (await admin.request('GET', '/v1/dashboard/state')).json;
      const b = s.batches.find((x) => x.id === batch.id);
      return b && b.status === 'in_progress' && b.total === BATCH_LINES ? b : null;
    }, { timeoutMs: 20_000, intervalMs: 100, what: 'the batch in progress in the admin state' });
    assert.equal(seen.tenant, 'alpha');
    assert.ok(seen.completed + seen.failed <= BATCH_LINES, JSON.stringify(seen));
    assert.equal(typeof seen.created_at, 'number');
    const mine = (await alpha.request('GET', '/v1/dashboard/state')).json;
    assert.ok(mine.batches.some((x) => x.id === batch.id), JSON.stringify(mine.batches));
    const other = await beta.request('GET', '/v1/dashboard/state');
    assert.ok(!other.text.includes(batch.id) && !other.text.includes('alpha'), 'beta sees no alpha batch');
    assert.equal(other.json.batches.length, 0);
    await waitFor(async () => (await openai.batches.retrieve(batch.id)).status === 'completed',
      { timeoutMs: 60_000, intervalMs: 250, what: 'the batch completed' });
    const gone = (await admin.request('GET', '/v1/dashboard/state')).json;
    assert.ok(!gone.batches.some((x) => x.id === batch.id), 'a finished batch leaves the list');
  });
});
