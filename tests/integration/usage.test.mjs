// Usage analytics (issue 16, item 3): after a mixed run on `sluice serve` — chat on two dialects
// (the task API and the OpenAI SDK), embeddings, an image, failures through the mock's fault
// switch, a cancel, and one task of another tenant — GET /v1/usage's sums equal the sums over
// the tasks' own `usage` and `cost` (each task read back), in total and grouped by model and
// provider, in hour and day buckets; the other tenant sees none of it; an admin key with
// group_by=tenant sees both; bad queries are refused.
//
// Needs `npm ci` in tests/integration first (the SDK is the one npm dependency).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Cluster, ADMIN_KEY, TERMINAL, sdkErr, sleep } from './lib/harness.mjs';

const COST_EPS = 1e-9; // the counters keep nano-USD: each task's cost rounds by at most half of one

/** A task's input and output tokens, either spelling (chat, embeddings / responses, images). */
function tokens(u) {
  if (!u) return { in: 0, out: 0 };
  return { in: u.prompt_tokens ?? u.input_tokens ?? 0, out: u.completion_tokens ?? u.output_tokens ?? 0 };
}

/** The sums GET /v1/usage should show for a list of finished tasks. */
function sumTasks(tasks) {
  const s = { requests: 0, completed: 0, failed: 0, input_tokens: 0, output_tokens: 0, cost: 0 };
  for (const t of tasks) {
    const tk = tokens(t.usage);
    s.requests += 1;
    if (t.status === 'completed') s.completed += 1;
    if (t.status === 'failed' || t.status === 'expired') s.failed += 1;
    s.input_tokens += tk.in;
    s.output_tokens += tk.out;
    s.cost += t.cost?.amount ?? 0;
  }
  return s;
}

/** The sums over /v1/usage rows. */
function sumRows(rows) {
  const s = { requests: 0, completed: 0, failed: 0, input_tokens: 0, output_tokens: 0, cost: 0 };
  for (const r of rows) {
    for (const k of ['requests', 'completed', 'failed', 'input_tokens', 'output_tokens']) s[k] += r[k];
    s.cost += r.cost.amount;
  }
  return s;
}

function assertSums(got, want, what) {
  const ctx = `${what}: usage ${JSON.stringify(got)}, tasks ${JSON.stringify(want)}`;
  for (const k of ['requests', 'completed', 'failed', 'input_tokens', 'output_tokens']) {
    assert.equal(got[k], want[k], `${k} — ${ctx}`);
  }
  assert.ok(Math.abs(got.cost - want.cost) <= COST_EPS * Math.max(1, want.requests), `cost — ${ctx}`);
}

/** Tasks grouped by a key function → Map(key → tasks). */
function groupBy(tasks, keyOf) {
  const m = new Map();
  for (const t of tasks) {
    const k = keyOf(t);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(t);
  }
  return m;
}

describe('usage analytics: /v1/usage sums equal the tasks\' own usage and cost', () => {
  const cl = new Cluster('usage');
  let mock;
  let sluice;
  let api;
  let beta;
  let admin;
  let openai;
  let from;
  let alphaTasks = [];
  let betaTasks = [];

  /** GET /v1/usage with query (an object) as client c. */
  async function usage(c, query) {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
    return c.request ? c.request('GET', `/v1/usage?${qs}`) : c(`/v1/usage?${qs}`);
  }

  async function get(key, p) {
    const res = await fetch(sluice.baseUrl + p, {
      headers: key ? { authorization: `Bearer ${key}` } : {}, signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, json, text };
  }

  /** Every task of the client's tenant, read one by one (GET /v1/tasks/{id}). */
  async function allTasks(c) {
    const res = await c.list({ limit: 100 });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.json.has_more, false, 'fewer than 100 tasks');
    const out = [];
    for (const t of res.json.data) {
      const one = await c.getTask(t.id);
      assert.equal(one.status, 200);
      assert.ok(TERMINAL.has(one.json.status), `task ${t.id} finished: ${one.json.status}`);
      out.push(one.json);
    }
    return out;
  }

  before(async () => {
    ({ mock, sluice, api, openai } = await cl.startSdkStack(OpenAI, {
      mock: { jobMs: 200 }, pollIntervalMs: 100, sdk: { maxRetries: 0 },
    }));
    beta = cl.client(sluice.baseUrl, cl.keys.beta);
    admin = (p) => get(ADMIN_KEY, p);
    from = Math.floor(Date.now() / 1000) - 60;

    // chat on two dialects through the task API and the SDK, embeddings, an image
    const ids = [];
    for (const alias of ['chat-openai', 'chat-anthropic']) {
      for (let i = 0; i < 3; i++) {
        const r = await api.submitChat(alias, `usage ${alias} ${i}: count these words please`);
        assert.equal(r.status, 202, r.text.slice(0, 300));
        ids.push(r.json.id);
      }
      const c = await openai.chat.completions.create({
        model: alias, messages: [{ role: 'user', content: `usage via the SDK on ${alias}` }],
      }).catch((e) => assert.fail(`chat: ${sdkErr(e)}`));
      assert.equal(c.object, 'chat.completion');
    }
    const e = await openai.embeddings.create({ model: 'embed-openai', input: ['one text', 'two texts'] })
      .catch((err) => assert.fail(`embeddings: ${sdkErr(err)}`));
    assert.equal(e.data.length, 2);
    const img = await api.submit('image', { model: 'image-openai', prompt: 'a usage chart', n: 1 }, { wait: 20 });
    assert.equal(img.status, 200, img.text.slice(0, 300));
    await api.waitTerminal(ids, 60_000);

    // failures: the provider refuses (400, not retried)
    await mock.config({ error_status: 400, error_rate: 1, error_message: 'usage: refused' });
    const bad = [];
    for (let i = 0; i < 2; i++) {
      const r = await api.submitChat('chat-openai', `usage failure ${i}`);
      assert.equal(r.status, 202);
      bad.push(r.json.id);
    }
    const failed = await api.waitTerminal(bad, 60_000);
    for (const t of failed) assert.equal(t.status, 'failed', JSON.stringify(t).slice(0, 300));
    await mock.reset();

    // a cancel: a slow provider, cancelled while it runs or waits
    await mock.config({ latency_ms: 3000 });
    const slow = await api.submitChat('chat-anthropic', 'usage: cancel me');
    assert.equal(slow.status, 202);
    await sleep(200);
    const cancel = await api.cancel(slow.json.id);
    assert.ok([200, 202].includes(cancel.status), `cancel: ${cancel.status} ${cancel.text.slice(0, 200)}`);
    const [cancelled] = await api.waitTerminal([slow.json.id], 30_000);
    assert.equal(cancelled.status, 'cancelled');
    await mock.reset();

    // another tenant's task
    const b = await beta.submitChat('chat-openai', 'usage from beta');
    assert.equal(b.status, 202, b.text.slice(0, 300));
    await beta.waitTerminal([b.json.id], 30_000);

    alphaTasks = await allTasks(api);
    betaTasks = await allTasks(beta);
    assert.ok(alphaTasks.length >= 13, `alpha's tasks: ${alphaTasks.length}`);
    assert.equal(betaTasks.length, 1);
  });
  after(() => cl.stop());

  test('the totals equal the sums over the tasks (day and hour buckets)', { timeout: 30_000 }, async (t) => {
    const want = sumTasks(alphaTasks);
    t.diagnostic(`alpha's tasks: ${JSON.stringify(want)}`);
    assert.ok(want.completed > 0 && want.failed >= 2 && want.requests > want.completed + want.failed,
      `the run has completions, failures and a cancel: ${JSON.stringify(want)}`);
    assert.ok(want.input_tokens > 0 && want.output_tokens > 0 && want.cost > 0, JSON.stringify(want));
    const to = Math.floor(Date.now() / 1000) + 1;
    for (const bucket of ['day', 'hour']) {
      const res = await usage(api, { from, to, bucket });
      assert.equal(res.status, 200, res.text.slice(0, 300));
      assert.equal(res.json.object, 'list');
      assert.equal(res.json.bucket, bucket);
      assert.ok(res.json.from <= from && res.json.to >= to, JSON.stringify(res.json).slice(0, 200));
      const size = bucket === 'day' ? 86400 : 3600;
      for (const row of res.json.data) {
        assert.equal(row.end - row.start, size);
        assert.equal(row.start % size, 0);
        assert.deepEqual(row.group, {});
        assert.equal(row.cost.currency, 'USD');
        assert.equal(row.cache_hits, 0);
        assert.ok(row.latency_ms.p50 >= 0 && row.latency_ms.p95 >= row.latency_ms.p50,
          `percentiles: ${JSON.stringify(row.latency_ms)}`);
      }
      assertSums(sumRows(res.json.data), want, `bucket=${bucket}`);
    }
  });

  test('grouped by model and provider: each group equals its tasks', { timeout: 30_000 }, async (t) => {
    const res = await usage(api, { from, to: Math.floor(Date.now() / 1000) + 1, group_by: 'model,provider' });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const byGroup = groupBy(alphaTasks, (t) => `${t.model}|${t.provider?.name || '-'}`);
    const rows = groupBy(res.json.data, (r) => `${r.group.model}|${r.group.provider}`);
    assert.deepEqual([...rows.keys()].sort(), [...byGroup.keys()].sort());
    for (const [k, tasks] of byGroup) assertSums(sumRows(rows.get(k)), sumTasks(tasks), `group ${k}`);
    // two dialects of chat are apart
    assert.ok(rows.has('chat-openai|openai') && rows.has('chat-anthropic|anthropic'), [...rows.keys()].join(', '));
    // group_by=key: every row names a key, the sums are the same
    const keyed = await usage(api, { from, group_by: 'key' });
    assert.equal(keyed.status, 200);
    t.diagnostic(`by key: ${JSON.stringify(keyed.json.data.map((r) => [r.group.key, r.requests]))}`);
    for (const r of keyed.json.data) assert.equal(typeof r.group.key, 'string');
    assertSums(sumRows(keyed.json.data), sumTasks(alphaTasks), 'group_by=key');
  });

  test('another tenant sees only its own; an admin sees both, by tenant', { timeout: 30_000 }, async () => {
    const mine = await usage(beta, { from });
    assert.equal(mine.status, 200);
    assertSums(sumRows(mine.json.data), sumTasks(betaTasks), 'beta');
    const peek = await usage(beta, { from, tenant: 'alpha' });
    assert.equal(peek.status, 403, peek.text.slice(0, 200));
    const byTenant = await usage(beta, { from, group_by: 'tenant' });
    assert.equal(byTenant.status, 403);

    const all = await admin(`/v1/usage?from=${from}&group_by=tenant,model`);
    assert.equal(all.status, 200, all.text.slice(0, 300));
    const rows = groupBy(all.json.data, (r) => r.group.tenant);
    assert.deepEqual([...rows.keys()].sort(), ['alpha', 'beta']);
    assertSums(sumRows(rows.get('alpha')), sumTasks(alphaTasks), 'admin: alpha');
    assertSums(sumRows(rows.get('beta')), sumTasks(betaTasks), 'admin: beta');
    const one = await admin(`/v1/usage?from=${from}&tenant=beta`);
    assert.equal(one.status, 200);
    assertSums(sumRows(one.json.data), sumTasks(betaTasks), 'admin: tenant=beta');
    const sum = await admin(`/v1/usage?from=${from}`);
    assertSums(sumRows(sum.json.data), sumTasks([...alphaTasks, ...betaTasks]), 'admin: every tenant');
  });

  test('bad queries: 400; no key: 401', { timeout: 30_000 }, async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [q, param] of [
      [{ bucket: 'week' }, 'bucket'],
      [{ group_by: 'model,colour' }, 'group_by'],
      [{ from: now - 93 * 86400, to: now }, 'from'],
      [{ from: now, to: now - 10 }, 'from'],
      [{ from: 'yesterday' }, 'from'],
    ]) {
      const res = await usage(api, q);
      assert.equal(res.status, 400, `${JSON.stringify(q)}: ${res.text.slice(0, 200)}`);
      assert.equal(res.json.error.param, param, res.text.slice(0, 200));
    }
    // 92 days exactly is allowed
    const edge = await usage(api, { from: now - 92 * 86400 + 3600, to: now });
    assert.equal(edge.status, 200, edge.text.slice(0, 200));
    const anon = await get(null, '/v1/usage');
    assert.equal(anon.status, 401);
  });
});
