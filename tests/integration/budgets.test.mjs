// Budgets (issue 16, item 2): exact across replicas. Two api processes, two workers and a
// scheduler share one redis-server; the budget's windows are short here (budgets.hour_s 3: an
// "hour" is 3 s) so a window can end within a test.
//  - reject: tenant alpha's budget is spent under concurrent submits through both api
//    processes; past it, submits answer 429 budget_exceeded with Retry-After, what completed
//    cost no more than the cap and no less than the cap less one task's estimate, and the tasks
//    accepted before the cap was reached wait queued (nothing accepted is lost);
//  - pace: a 2,000-task bulk submit drains window by window: the real cost of the tasks each
//    window admitted never passes the cap, the drain takes as many windows as its cost needs,
//    and another tenant's interactive requests complete while it drains;
//  - reservations come back exactly for tasks that fail, are cancelled or expire: while calls
//    hang, the budget shows their estimates spent; once they end without a cost, spent is 0
//    again.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_KEY, Cluster, MOCK_PRICE, freePort, parseMetrics, waitFor } from './lib/harness.mjs';

const HOUR_S = 3;
const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);

const MAX_TOKENS = 16;

/** A chat task of one user message, asking for at most MAX_TOKENS. */
const chatInput = (content) => ({ model: 'mock-chat', max_tokens: MAX_TOKENS, messages: [{ role: 'user', content }] });

/** The estimate CLAIM reserves for chatInput(content) (api/task_submit.c: the messages' text —
 * role and content — / 4 + 1 tokens in, max_tokens out, both at the deployment's input and
 * output prices, in whole micro-USD). */
function estimateUsd(content) {
  const tokens = Math.floor(('user'.length + content.length) / 4) + 1 + MAX_TOKENS;
  return Math.floor(tokens * (MOCK_PRICE.input_per_mtok + MOCK_PRICE.output_per_mtok) + 0.5) / 1e6;
}

describe('budgets across two api processes and two workers', () => {
  const cl = new Cluster('budgets');
  let mock;
  let apis;
  let admin;
  let config;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ latencyMs: 20 });
    config = await cl.configFor({
      redis, mock,
      overrides: { budgets: { hour_s: HOUR_S }, scheduler: { tick_ms: 100 }, tasks: { max_attempts: 1 } },
    });
    const api1 = await cl.startSluice('api', config);
    const config2 = { ...config, listen: `127.0.0.1:${await freePort()}` };
    const api2 = await cl.startSluice('api', config2);
    await cl.startSluice('worker', config);
    await cl.startSluice('worker', config);
    await cl.startSluice('scheduler', config);
    apis = [api1, api2];
    admin = cl.client(api1.baseUrl, ADMIN_KEY);
  });
  after(() => cl.stop());

  const client = (i, key = cl.keys.alpha) => cl.client(apis[i % 2].baseUrl, key);

  async function putBudget(tenant, body) {
    const r = await admin.request('PUT', `/v1/admin/tenants/${tenant}/budget`, { body });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    return r.json;
  }

  async function budget(tenant) {
    const r = await admin.request('GET', `/v1/admin/tenants/${tenant}/budget`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    return r.json;
  }

  test('the admin API: put, get, refusals, delete', async () => {
    const noKey = cl.client(apis[0].baseUrl, cl.keys.alpha);
    const denied = await noKey.request('GET', '/v1/admin/tenants/alpha/budget');
    assert.equal(denied.status, 401);
    for (const [body, param] of [
      [{ policy: 'spend', limits: [{ window: 'hour', max_usd: 1 }] }, 'policy'],
      [{ policy: 'pace', limits: [] }, 'limits'],
      [{ policy: 'pace', limits: [{ window: 'week', max_usd: 1 }] }, 'limits[0].window'],
      [{ policy: 'pace', limits: [{ window: 'hour', max_usd: 0 }] }, 'limits[0].max_usd'],
      [{ policy: 'pace', limits: [{ window: 'hour', max_usd: 1 }, { window: 'hour', max_usd: 2 }] }, 'limits[1].window'],
      [{ policy: 'pace', limits: [{ window: 'hour', max_usd: 1 }], extra: 1 }, 'extra'],
    ]) {
      const r = await admin.request('PUT', '/v1/admin/tenants/gamma/budget', { body });
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.text.slice(0, 200)}`);
      assert.equal(r.json.error.param, param);
    }
    const none = await admin.request('GET', '/v1/admin/tenants/gamma/budget');
    assert.equal(none.status, 404);
    const set = await putBudget('gamma', { policy: 'pace', limits: [{ window: 'day', max_usd: 5 }, { window: 'month', max_usd: 50 }] });
    assert.equal(set.object, 'budget');
    assert.deepEqual(set.limits.map((l) => [l.window, l.max_usd, l.spent_usd, l.remaining_usd]),
      [['day', 5, 0, 5], ['month', 50, 0, 50]]);
    assert.ok(set.limits[1].window_end > set.limits[1].window_start + 27 * 86400, 'a calendar month');
    const del = await admin.request('DELETE', '/v1/admin/tenants/gamma/budget');
    assert.equal(del.status, 200);
    assert.equal((await admin.request('GET', '/v1/admin/tenants/gamma/budget')).status, 404);
  });

  test('reservations come back exactly for tasks that fail, are cancelled or expire', { timeout: 60_000 }, async () => {
    await putBudget('beta', { policy: 'pace', limits: [{ window: 'day', max_usd: 100 }] });
    const beta = client(0, cl.keys.beta);
    await mock.config({ hang: true });
    try {
      const content = 'held call';
      const held = [];
      for (let i = 0; i < 4; i++) {
        const r = await beta.submit('chat', chatInput(content), i < 2 ? { deadline: 2 } : {});
        assert.equal(r.status, 202, r.text.slice(0, 200));
        held.push(r.json.id);
      }
      await waitFor(async () => (await mock.stats()).in_flight >= 4, { timeoutMs: 10_000, what: '4 calls held' });
      const during = await budget('beta');
      assert.ok(Math.abs(during.limits[0].spent_usd - 4 * estimateUsd(content)) < 1e-9,
        `4 reservations: ${during.limits[0].spent_usd} vs ${4 * estimateUsd(content)}`);
      // two expire at their deadline, two are cancelled
      await beta.cancel(held[2]);
      await beta.cancel(held[3]);
      const done = await beta.waitTerminal(held, 30_000);
      assert.deepEqual(done.map((t) => t.status).sort(), ['cancelled', 'cancelled', 'expired', 'expired']);
    } finally {
      await mock.config({ hang: false });
    }
    // a task that fails (the provider answers 400) costs nothing either
    await mock.config({ fail_first: 1, error_status: 400 });
    const f = await beta.submit('chat', chatInput('fails'));
    const [failed] = await beta.waitTerminal([f.json.id], 30_000);
    assert.equal(failed.status, 'failed');
    await waitFor(async () => (await budget('beta')).limits[0].spent_usd === 0,
      { timeoutMs: 10_000, what: 'beta spent back to 0' });
    const after = await budget('beta');
    assert.equal(after.limits[0].spent_usd, 0);
    assert.equal(after.limits[0].remaining_usd, 100);
    assert.equal((await admin.request('DELETE', '/v1/admin/tenants/beta/budget')).status, 200);
  });

  /** The real cost of one chatInput(content) task, run once by tenant beta. */
  async function realCost(content) {
    const r = await client(0, cl.keys.beta).submit('chat', chatInput(content));
    const [t] = await client(0, cl.keys.beta).waitTerminal([r.json.id], 30_000);
    assert.equal(t.status, 'completed');
    assert.ok(t.cost.amount > 0 && t.cost.amount <= estimateUsd(content), `${t.cost.amount} vs ${estimateUsd(content)}`);
    return t.cost.amount;
  }

  test('reject: stopped at the cap across both api processes; past it 429 with Retry-After', { timeout: 180_000 }, async () => {
    const content = 'reject me';
    const est = estimateUsd(content);
    const cap = 80 * (await realCost(content));
    await putBudget('alpha', { policy: 'reject', limits: [{ window: 'day', max_usd: cap }] });
    const accepted = [];
    let refused = 0;
    let retryAfter = 0;
    let run = 0; // 429s in a row
    let lastAccepted = Date.now();
    const deadline = Date.now() + 90_000;
    // 16 submitters through both api processes until the budget refuses every submit for 3 s
    // (bounded: 3,000 submits, 90 s)
    let sent = 0;
    await Promise.all([...Array(16).keys()].map(async (w) => {
      while (sent < 3000 && Date.now() < deadline && !(run >= 50 && Date.now() - lastAccepted > 3000)) {
        const i = sent++;
        const r = await client(i + w).submit('chat', chatInput(content));
        if (r.status === 202) {
          accepted.push(r.json.id);
          run = 0;
          lastAccepted = Date.now();
        } else {
          assert.equal(r.status, 429, r.text.slice(0, 300));
          assert.equal(r.json.error.code, 'budget_exceeded');
          retryAfter = Math.max(retryAfter, Number(r.headers['retry-after']));
          refused++;
          run++;
        }
      }
    }));
    console.log(`# reject run: ${sent} sent, ${accepted.length} accepted, ${refused} refused, ${run} in a row at the end; budget ${JSON.stringify((await budget('alpha')).limits[0])}`);
    assert.ok(refused > 0, 'the budget refused submits');
    assert.ok(run >= 50, `the budget came to refuse every submit (${run} in a row after ${sent} sent)`);
    assert.ok(retryAfter >= 1, `Retry-After ${retryAfter}`);
    // quiet: every accepted task has ended or waits queued (no reservation in flight)
    let tasks;
    await waitFor(async () => {
      tasks = [];
      for (let i = 0; i < accepted.length; i += 50) {
        const part = await Promise.all(accepted.slice(i, i + 50).map(async (id) => (await client(0).getTask(id)).json));
        tasks.push(...part);
      }
      return tasks.every((t) => TERMINAL.has(t.status) || t.status === 'queued');
    }, { timeoutMs: 60_000, intervalMs: 300, what: 'accepted tasks ended or queued' });
    const completed = tasks.filter((t) => t.status === 'completed');
    const spent = completed.reduce((s, t) => s + t.cost.amount, 0);
    assert.ok(spent <= cap + 1e-9, `spent ${spent} > cap ${cap}`);
    assert.ok(spent >= cap - est - 1e-9, `spent ${spent} stopped short of cap ${cap} by more than one task's estimate (${est})`);
    // nothing accepted was lost: what did not run waits for the next window
    assert.equal(completed.length + tasks.filter((t) => t.status === 'queued').length, accepted.length);
    const b = await budget('alpha');
    assert.ok(Math.abs(b.limits[0].spent_usd - spent) < 1e-9, `counter ${b.limits[0].spent_usd} vs tasks ${spent}`);
    // /metrics: the budget's window and the tenant's spend on the alias
    const metrics = parseMetrics((await admin.request('GET', '/metrics')).text);
    const gauge = (name, labels) => metrics.get(name, labels);
    assert.ok(Math.abs(gauge('sluice_budget_spent_usd', { subject: 't:alpha', window: 'day' }) - spent) < 1e-9);
    assert.ok(Math.abs(gauge('sluice_budget_max_usd', { subject: 't:alpha', window: 'day' }) - cap) < 1e-9);
    assert.ok(gauge('sluice_spend_usd_total', { tenant: 'alpha', model: 'mock-chat' }) >= spent - 1e-9);
    await Promise.all(tasks.filter((t) => t.status === 'queued').map((t) => client(0).cancel(t.id)));
    assert.equal((await admin.request('DELETE', '/v1/admin/tenants/alpha/budget')).status, 200);
    console.log(`# reject: cap $${cap.toFixed(6)}, spent $${spent.toFixed(6)} by ${completed.length} tasks; ${refused} submits refused`);
  });

  test("a key's own budget holds that key's tasks; the tenant's other keys go on", { timeout: 90_000 }, async () => {
    const content = 'key budget';
    const real = await realCost(content);
    const created = await admin.request('POST', '/v1/admin/keys', {
      // room for 3 tasks: the first reserves its estimate and settles to its real cost, and each
      // next one fits while what is used plus its estimate stays under the cap
      body: { tenant: 'alpha', name: 'capped', budget: { policy: 'pace', limits: [{ window: 'day', max_usd: estimateUsd(content) + 2 * real }] } } });
    assert.equal(created.status, 201, created.text.slice(0, 300));
    const capped = cl.client(apis[1].baseUrl, created.json.key);
    // the new key is known to both api processes within a second
    await waitFor(async () => (await capped.request('GET', '/v1/tasks?limit=1')).status === 200,
      { timeoutMs: 5000, intervalMs: 100, what: 'the key accepted' });
    const ids = [];
    for (let i = 0; i < 8; i++) {
      const r = await capped.submit('chat', chatInput(content));
      assert.equal(r.status, 202, r.text.slice(0, 300));
      ids.push(r.json.id);
    }
    // the tenant's config key is not held by the key's budget
    const free = await client(0).submit('chat', chatInput('not capped'));
    const [freeDone] = await client(0).waitTerminal([free.json.id], 30_000);
    assert.equal(freeDone.status, 'completed');
    let tasks;
    await waitFor(async () => {
      tasks = await Promise.all(ids.map(async (id) => (await capped.getTask(id)).json));
      return tasks.filter((t) => t.status === 'completed').length >= 3 &&
        tasks.every((t) => t.status === 'completed' || t.status === 'queued');
    }, { timeoutMs: 30_000, intervalMs: 200, what: "the key's tasks settled" });
    await new Promise((r) => setTimeout(r, 1500)); // nothing more is admitted: the key's day is spent
    tasks = await Promise.all(ids.map(async (id) => (await capped.getTask(id)).json));
    const completed = tasks.filter((t) => t.status === 'completed');
    const spent = completed.reduce((s, t) => s + t.cost.amount, 0);
    assert.equal(completed.length, 3, `${completed.length} completed under a cap of 3 tasks`);
    assert.ok(spent <= estimateUsd(content) + 2 * real + 1e-9, `spent ${spent}`);
    assert.equal(tasks.filter((t) => t.status === 'queued').length, 8 - completed.length);
    await Promise.all(tasks.filter((t) => t.status === 'queued').map((t) => capped.cancel(t.id)));
  });

  test('pace: a 2,000-task bulk submit drains window by window under the cap; another tenant is not held', { timeout: 240_000 }, async () => {
    const content = 'paced';
    const cap = 150 * (await realCost(content)); // about 150 of these tasks per 3 s window
    await putBudget('alpha', { policy: 'pace', limits: [{ window: 'hour', max_usd: cap }] });
    const ids = [];
    for (let chunk = 0; chunk < 2; chunk++) {
      const tasks = [...Array(1000).keys()].map(() => ({ kind: 'chat', priority: 'batch', input: chatInput(content) }));
      const r = await client(chunk).request('POST', '/v1/tasks', { body: { tasks }, timeoutMs: 60_000 });
      assert.equal(r.status, 202, r.text.slice(0, 300));
      for (const d of r.json.data) {
        assert.ok(d.task, JSON.stringify(d).slice(0, 200));
        ids.push(d.task.id);
      }
    }
    // meanwhile tenant beta's interactive requests complete (through both api processes)
    const beta = [0, 1].map((i) => client(i, cl.keys.beta));
    for (let i = 0; i < 10; i++) {
      const r = await beta[i % 2].request('POST', '/v1/chat/completions', {
        body: { model: 'mock-chat', messages: [{ role: 'user', content: `interactive ${i}` }] }, timeoutMs: 30_000 });
      assert.equal(r.status, 200, r.text.slice(0, 300));
    }
    const stillQueued = (await client(0).list({ status: 'queued', limit: 1 })).json.data.length;
    assert.equal(stillQueued, 1, "beta's requests completed while alpha's backlog was still paced");

    const done = await client(0).waitTerminal(ids, 200_000, { concurrency: 64, intervalMs: 1000 });
    const bad = done.find((t) => t.status !== 'completed');
    assert.equal(bad, undefined, JSON.stringify(bad ?? {}).slice(0, 300));
    const perWindow = new Map();
    for (const t of done) {
      const w = Math.floor(t.started_at / HOUR_S);
      perWindow.set(w, (perWindow.get(w) ?? 0) + t.cost.amount);
    }
    const total = done.reduce((s, t) => s + t.cost.amount, 0);
    for (const [w, spent] of perWindow) assert.ok(spent <= cap + 1e-9, `window ${w}: spent ${spent} > cap ${cap}`);
    assert.ok(perWindow.size >= Math.ceil(total / cap), `${perWindow.size} windows for ${total} at ${cap} per window`);
    console.log(`# pace: ${ids.length} tasks, $${total.toFixed(6)} in ${perWindow.size} windows of ${HOUR_S} s (cap $${cap.toFixed(6)})`);
  });
});
