// Admin API and keys kept as data (issue 16, item 1): two api processes, a worker and a
// scheduler on one redis-server and one sluice-mock.
//   1. Lifecycle: POST /v1/admin/keys (admin key) answers 201 with the secret once; the key works
//      on both api processes (a chat task completes on each, and records the key's id as its
//      `key`); Redis holds the secret's SHA-256, never the secret; after a revoke on one api
//      process, both answer 401 within 1 s (polled every 50 ms); the list shows revoked_at and
//      no key material. A config key keeps working and its tasks record "cfg:<tenant>:<index>".
//   2. A key created with expires_at 2 s ahead works, then is refused (401) once it passed.
//   3. A key limited to one alias: that alias works; another one is 403 model_not_allowed on
//      native /v1/tasks (param input.model) and on /v1/chat/completions (param model).
//   4. The admin routes refuse tenant keys (401 admin_key_required) and no key; bad bodies are 400
//      naming the field; an unknown key id is 404.
//   5. Work that runs later runs under the key that made it: a batch's lines and a pipeline's
//      steps record the key (their budget is the key's), and a key limited to one alias cannot
//      reach another through a batch line (the batch fails validation, model_not_allowed, nothing
//      upstream) or a pipeline step (403 at POST). The keys list is paged (limit, after).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import OpenAI from 'openai';
import { ADMIN_KEY, Cluster, MOCK_PRICE, client, freePort, sleep, waitFor } from './lib/harness.mjs';

const A = 'mock-chat';
const B = 'mock-chat-2';

describe('admin API: keys as data', () => {
  const cl = new Cluster('admin_keys');
  let redis;
  let mock;
  let api1;
  let api2;
  let admin1;
  let admin2;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock();
    const config = await cl.configFor({
      redis, mock,
      overrides: {
        models: {
          [B]: { kind: 'chat', strategy: 'ordered',
            deployments: [{ provider: 'mock', model: 'mock-gpt', price: { ...MOCK_PRICE } }] },
        },
      },
    });
    const config2 = { ...config, listen: `127.0.0.1:${await freePort()}` };
    const procs = await Promise.all([
      cl.startSluice('api', config),
      cl.startSluice('api', config2),
      cl.startSluice('worker', config),
      cl.startSluice('scheduler', config),
    ]);
    api1 = procs[0];
    api2 = procs[1];
    admin1 = client(api1.baseUrl, ADMIN_KEY);
    admin2 = client(api2.baseUrl, ADMIN_KEY);
  });
  after(() => cl.stop());

  async function createKey(admin, body) {
    const r = await admin.request('POST', '/v1/admin/keys', { body });
    assert.equal(r.status, 201, r.text.slice(0, 300));
    return r.json;
  }

  /** A chat task on `base` with `key` that waits for its result → the response. */
  function chat(base, key, model = A, content = 'hello') {
    return client(base, key).submit('chat', { model, messages: [{ role: 'user', content }] }, { wait: 10 });
  }

  /** Polls until a request with key on base is refused 401 (every 50 ms) → ms it took. */
  async function refusedWithin(base, key, limitMs) {
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) {
      const r = await client(base, key).request('GET', '/v1/tasks?limit=1');
      if (r.status === 401) {
        assert.equal(r.json?.error?.type, 'authentication_error', r.text.slice(0, 300));
        return Date.now() - t0;
      }
      assert.equal(r.status, 200, r.text.slice(0, 300));
      if (Date.now() - t0 > limitMs + 2000) break;
      await sleep(50);
    }
    assert.fail(`key still accepted on ${base} after ${Date.now() - t0} ms`);
  }

  test('create → use on both api processes → revoke → 401 on both within 1 s', { timeout: 60_000 }, async (t) => {
    const k = await createKey(admin1, { tenant: 'gamma', name: 'ci' });
    assert.match(k.id, /^key_[a-z2-7]{26}$/);
    assert.equal(k.object, 'api_key');
    assert.match(k.key, /^sk-sluice-[a-z2-7]{32,}$/);
    assert.equal(k.tenant, 'gamma');
    assert.equal(k.name, 'ci');
    assert.equal(k.models, null);
    assert.equal(k.expires_at, null);
    assert.ok(Math.abs(k.created_at - Date.now() / 1000) < 10, JSON.stringify(k));

    // Redis keeps the hash, never the key
    const rec = await redis.cli('HGETALL', `{sl}:ak:${k.id}`);
    assert.ok(!rec.includes(k.key), rec);
    assert.equal(await redis.cli('HGET', `{sl}:ak:${k.id}`, 'sha'), crypto.createHash('sha256').update(k.key).digest('hex'));

    // used on both api processes (each may need one poll to see it: within 1 s)
    for (const api of [api1, api2]) {
      let r;
      for (let i = 0; i < 40; i++) {
        r = await chat(api.baseUrl, k.key);
        if (r.status !== 401) break;
        await sleep(50);
      }
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.equal(r.json.status, 'completed', r.text.slice(0, 300));
      assert.equal(await redis.cli('HGET', `{sl}:t:${r.json.id}`, 'tenant'), 'gamma');
      assert.equal(await redis.cli('HGET', `{sl}:t:${r.json.id}`, 'key'), k.id);
    }
    // a config key keeps working; its tasks record the config key's id
    const c = await chat(api2.baseUrl, cl.keys.alpha);
    assert.equal(c.status, 200, c.text.slice(0, 300));
    assert.equal(await redis.cli('HGET', `{sl}:t:${c.json.id}`, 'key'), 'cfg:alpha:0');

    // the list: no key material, the tenant filter
    const other = await createKey(admin2, { tenant: 'delta', name: 'other' });
    let l = await admin2.request('GET', '/v1/admin/keys?tenant=gamma');
    assert.equal(l.status, 200, l.text);
    assert.deepEqual(l.json.data.map((x) => x.id), [k.id]);
    assert.ok(!l.text.includes(k.key) && !l.text.includes('sk-sluice-'), l.text);
    assert.ok(!('key' in l.json.data[0]) && !('sha' in l.json.data[0]), l.text);
    assert.equal(l.json.data[0].revoked_at, null);
    l = await admin1.request('GET', '/v1/admin/keys');
    assert.equal(l.status, 200, l.text);
    assert.deepEqual(new Set(l.json.data.map((x) => x.id)), new Set([k.id, other.id]));
    assert.ok(!l.text.includes('sk-sluice-'), l.text);

    // revoke on api1: refused on both within 1 s
    const rv = await admin1.request('POST', `/v1/admin/keys/${k.id}/revoke`);
    assert.equal(rv.status, 200, rv.text);
    assert.ok(Number.isInteger(rv.json.revoked_at), rv.text);
    const [ms1, ms2] = await Promise.all([refusedWithin(api1.baseUrl, k.key, 1000), refusedWithin(api2.baseUrl, k.key, 1000)]);
    assert.ok(ms1 <= 1000 && ms2 <= 1000, `refused after ${ms1} / ${ms2} ms`);
    t.diagnostic(`revoked key refused after ${ms1} ms (api1) / ${ms2} ms (api2)`);
    // a connection that kept the key's identity cached is refused too (keep-alive is the default)
    const again = await chat(api2.baseUrl, k.key);
    assert.equal(again.status, 401, again.text.slice(0, 300));
    l = await admin2.request('GET', '/v1/admin/keys?tenant=gamma');
    assert.equal(l.json.data[0].revoked_at, rv.json.revoked_at);
    // revoking again keeps the first time
    const rv2 = await admin2.request('POST', `/v1/admin/keys/${k.id}/revoke`);
    assert.equal(rv2.status, 200);
    assert.equal(rv2.json.revoked_at, rv.json.revoked_at);
    // the other key is unaffected
    const o = await chat(api1.baseUrl, other.key);
    assert.equal(o.status, 200, o.text.slice(0, 300));
  });

  test('a key with expires_at works, then is refused once it passed', { timeout: 30_000 }, async () => {
    const exp = Math.floor(Date.now() / 1000) + 3;
    const k = await createKey(admin2, { tenant: 'gamma', name: 'short', expires_at: exp });
    assert.equal(k.expires_at, exp);
    let r;
    for (let i = 0; i < 40; i++) {
      r = await chat(api1.baseUrl, k.key);
      if (r.status !== 401) break;
      await sleep(50);
    }
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.status, 'completed');
    while (Date.now() / 1000 < exp) await sleep(100);
    for (const api of [api1, api2]) {
      const x = await chat(api.baseUrl, k.key);
      assert.equal(x.status, 401, x.text.slice(0, 300));
      assert.equal(x.json.error.code, 'invalid_api_key');
    }
  });

  test('a key limited to one alias: 403 model_not_allowed for another', { timeout: 30_000 }, async () => {
    const k = await createKey(admin1, { tenant: 'gamma', name: 'only-a', models: [A],
      budget: { limits: [{ window: 'hour', max_usd: 5 }], policy: 'pace' } });
    assert.deepEqual(k.models, [A]);
    assert.deepEqual(k.budget, { limits: [{ window: 'hour', max_usd: 5 }], policy: 'pace' });
    // Redis keeps the budgets' stored form (the window's length, the cap in nano-USD), also where
    // CLAIM looks for the key's budget
    const stored = JSON.parse(await redis.cli('HGET', `{sl}:ak:${k.id}`, 'budget'));
    assert.deepEqual(stored, { policy: 'pace', limits: [{ window: 'hour', ms: 3600000, max: 5e9, max_usd: 5 }] });
    assert.deepEqual(JSON.parse(await redis.cli('HGET', `{sl}:bud:k:${k.id}`, 'cfg')), stored);
    let r;
    for (let i = 0; i < 40; i++) {
      r = await chat(api2.baseUrl, k.key, A);
      if (r.status !== 401) break;
      await sleep(50);
    }
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.status, 'completed');
    for (const api of [api1, api2]) {
      const n = await chat(api.baseUrl, k.key, B);
      assert.equal(n.status, 403, n.text.slice(0, 300));
      assert.equal(n.json.error.type, 'permission_error');
      assert.equal(n.json.error.code, 'model_not_allowed');
      assert.equal(n.json.error.param, 'input.model');
      const c = await client(api.baseUrl, k.key).request('POST', '/v1/chat/completions', {
        body: { model: B, messages: [{ role: 'user', content: 'hi' }] } });
      assert.equal(c.status, 403, c.text.slice(0, 300));
      assert.equal(c.json.error.code, 'model_not_allowed');
      assert.equal(c.json.error.param, 'model');
      const ok = await client(api.baseUrl, k.key).request('POST', '/v1/chat/completions', {
        body: { model: A, messages: [{ role: 'user', content: 'hi' }] } });
      assert.equal(ok.status, 200, ok.text.slice(0, 300));
    }
    // a config key is not limited
    const cfg = await chat(api1.baseUrl, cl.keys.alpha, B);
    assert.equal(cfg.status, 200, cfg.text.slice(0, 300));
  });

  test('batches and pipelines run under their key; the keys list is paged', { timeout: 60_000 }, async () => {
    const k = await createKey(admin1, { tenant: 'epsilon', name: 'batch-key', models: [A] });
    const c = client(api1.baseUrl, k.key);
    for (let i = 0; i < 40; i++) {
      const r = await c.request('GET', '/v1/tasks?limit=1');
      if (r.status === 200) break;
      await sleep(50);
    }
    const line = (i, model) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions',
      body: { model, messages: [{ role: 'user', content: `line ${i}` }] } });
    async function runBatch(lines) {
      const openai = new OpenAI({ apiKey: k.key, baseURL: `${api1.baseUrl}/v1`, maxRetries: 0 });
      const file = await openai.files.create({ file: new File([lines.join('\n') + '\n'], 'in.jsonl'), purpose: 'batch' });
      const b = await openai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      let got;
      await waitFor(async () => {
        got = await openai.batches.retrieve(b.id);
        return ['completed', 'failed'].includes(got.status);
      }, { timeoutMs: 30000, what: `batch ${b.id} to end` });
      return got;
    }
    const stats0 = await mock.stats();
    const refused = await runBatch([line(0, A), line(1, B)]);
    assert.equal(refused.status, 'failed', JSON.stringify(refused));
    assert.deepEqual(refused.errors.data.map((e) => [e.line, e.code, e.param]), [[2, 'model_not_allowed', 'body.model']]);
    assert.equal((await mock.stats()).requests, stats0.requests, 'nothing of the refused batch went upstream');

    const ok = await runBatch([line(0, A), line(1, A), line(2, A)]);
    assert.equal(ok.status, 'completed', JSON.stringify(ok));
    assert.equal(ok.request_counts.completed, 3);
    const ids = (await redis.cli('KEYS', '{sl}:t:task_*')).split('\n').filter(Boolean);
    let mine = 0;
    for (const id of ids) {
      if ((await redis.cli('HGET', id, 'batch')) === ok.id) {
        assert.equal(await redis.cli('HGET', id, 'key'), k.id, `${id} runs under the batch's key`);
        mine++;
      }
    }
    assert.equal(mine, 3, 'every line of the batch found');

    // a pipeline: a step on another alias is refused at POST; one on A runs under the key
    const steps = (model) => [{ id: 's1', kind: 'chat', input: { model, messages: [{ role: 'user', content: 'p' }] } }];
    const bad = await c.request('POST', '/v1/pipelines', { body: { steps: steps(B) } });
    assert.equal(bad.status, 403, bad.text.slice(0, 300));
    assert.equal(bad.json.error.code, 'model_not_allowed');
    assert.equal(bad.json.error.param, 'steps[0].input.model');
    const p = await c.request('POST', '/v1/pipelines', { body: { steps: steps(A) } });
    assert.ok(p.status === 200 || p.status === 201 || p.status === 202, p.text.slice(0, 300));
    let pipe;
    await waitFor(async () => {
      pipe = (await c.request('GET', `/v1/pipelines/${p.json.id}`)).json;
      return pipe.status === 'completed' || pipe.status === 'failed';
    }, { timeoutMs: 30000, what: 'the pipeline to end' });
    assert.equal(pipe.status, 'completed', JSON.stringify(pipe));
    const stepTask = pipe.steps[0].task_ids?.[0];
    assert.ok(typeof stepTask === 'string', JSON.stringify(pipe.steps[0]));
    assert.equal(await redis.cli('HGET', `{sl}:t:${stepTask}`, 'key'), k.id);

    // the keys list, one page at a time
    for (let i = 0; i < 2; i++) await createKey(admin1, { tenant: 'epsilon', name: `more-${i}` });
    const all = await admin2.request('GET', '/v1/admin/keys?tenant=epsilon&limit=100');
    assert.equal(all.status, 200, all.text.slice(0, 300));
    assert.equal(all.json.data.length, 3);
    assert.equal(all.json.has_more, false);
    const seen = [];
    let after = null;
    for (let i = 0; i < 5; i++) {
      const page = await admin2.request('GET', `/v1/admin/keys?tenant=epsilon&limit=2${after ? `&after=${after}` : ''}`);
      assert.equal(page.status, 200, page.text.slice(0, 300));
      seen.push(...page.json.data.map((x) => x.id));
      assert.equal(page.json.last_id, page.json.data.at(-1)?.id ?? null);
      if (!page.json.has_more) break;
      after = page.json.last_id;
    }
    assert.deepEqual(seen, all.json.data.map((x) => x.id));
    const badLimit = await admin2.request('GET', '/v1/admin/keys?limit=0');
    assert.equal(badLimit.status, 400);
    assert.equal(badLimit.json.error.param, 'limit');
  });

  test('admin routes: tenant keys and no key refused; bad bodies 400 naming the field', { timeout: 30_000 }, async () => {
    const body = { tenant: 'gamma', name: 'x' };
    for (const key of [cl.keys.alpha, null, 'sk-sluice-notakeyatall00000000000000000000']) {
      const c = client(api1.baseUrl, key);
      for (const [m, p, b] of [['POST', '/v1/admin/keys', body], ['GET', '/v1/admin/keys'],
        ['POST', '/v1/admin/keys/key_aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke']]) {
        const r = await c.request(m, p, b ? { body: b } : {});
        assert.ok(r.status === 401 || r.status === 403, `${m} ${p} with ${key}: ${r.status} ${r.text.slice(0, 200)}`);
      }
    }
    // a Redis key of a tenant is no admin key either
    const k = await createKey(admin1, { tenant: 'gamma', name: 'tenant-key' });
    const t = await client(api1.baseUrl, k.key).request('GET', '/v1/admin/keys');
    assert.ok(t.status === 401 || t.status === 403, t.text);

    const bad = [
      [{ name: 'x' }, 'tenant'],
      [{ tenant: '', name: 'x' }, 'tenant'],
      [{ tenant: 'a b', name: 'x' }, 'tenant'],
      [{ tenant: 'x'.repeat(65), name: 'x' }, 'tenant'],
      [{ tenant: 'gamma' }, 'name'],
      [{ tenant: 'gamma', name: 7 }, 'name'],
      [{ tenant: 'gamma', name: 'x', models: ['nope'] }, 'models'],
      [{ tenant: 'gamma', name: 'x', models: [] }, 'models'],
      [{ tenant: 'gamma', name: 'x', models: A }, 'models'],
      [{ tenant: 'gamma', name: 'x', expires_at: 1000 }, 'expires_at'],
      [{ tenant: 'gamma', name: 'x', expires_at: 'soon' }, 'expires_at'],
      [{ tenant: 'gamma', name: 'x', budget: { limits: [], policy: 'pace' } }, 'budget.limits'],
      [{ tenant: 'gamma', name: 'x', budget: { limits: [{ window: 'week', max_usd: 1 }], policy: 'pace' } }, 'budget.limits'],
      [{ tenant: 'gamma', name: 'x', budget: { limits: [{ window: 'day', max_usd: 0 }], policy: 'pace' } }, 'budget.limits'],
      [{ tenant: 'gamma', name: 'x', budget: { limits: [{ window: 'day', max_usd: 1 }], policy: 'stop' } }, 'budget.policy'],
      [{ tenant: 'gamma', name: 'x', budget: 3 }, 'budget'],
      [{ tenant: 'gamma', name: 'x', colour: 'red' }, 'colour'],
    ];
    for (const [b, param] of bad) {
      const r = await admin2.request('POST', '/v1/admin/keys', { body: b });
      assert.equal(r.status, 400, `${JSON.stringify(b)}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(r.json.error.param, param, `${JSON.stringify(b)}: ${r.text.slice(0, 200)}`);
    }
    const nj = await admin2.request('POST', '/v1/admin/keys', { rawBody: '{"tenant":' });
    assert.equal(nj.status, 400, nj.text);
    const q = await admin2.request('GET', '/v1/admin/keys?tenant=a%20b');
    assert.equal(q.status, 400, q.text);
    const nf = await admin2.request('POST', '/v1/admin/keys/key_aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke');
    assert.equal(nf.status, 404, nf.text);
    const nf2 = await admin2.request('POST', '/v1/admin/keys/whatever/revoke');
    assert.equal(nf2.status, 404, nf2.text);
  });
});
