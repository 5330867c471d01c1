// Issue 12, finding 6: a 503 on submit. When Redis stalls, a SUBMIT that went out may still run
// after sluice gave up waiting for it. sluice says which 503 is which: `store_unavailable` (the
// call never went out: nothing was created) or `outcome_unknown` (it went out, no answer came:
// the task may exist). A client that retries with the same Idempotency-Key ends with exactly one
// task per request either way: no ghost task that no client knows of.
// Finding 7: input hygiene. Trailing bytes after the JSON, a NUL in a string, invalid UTF-8 and
// numbers out of range are 400s, on the task API, the OpenAI endpoints and in batch lines, so
// everything stored stays valid JSON and nothing is forwarded as null.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Cluster, mapLimit, sleep, waitFor } from './lib/harness.mjs';

const REDIS_TIMEOUT_MS = 400;
const N = 240;

describe('submit during a Redis stall: 503s that say what they mean, no ghosts', () => {
  const cl = new Cluster('hardening_submit');
  let redis;
  let sluice;
  let api;

  before(async () => {
    redis = await cl.startRedis();
    const mock = await cl.startMock({});
    sluice = await cl.startSluice('api', await cl.configFor({
      redis, mock, overrides: { redis_timeout_ms: REDIS_TIMEOUT_MS },
    }));
    api = cl.client(sluice.baseUrl);
  });
  after(async () => {
    redis.proc?.kill('SIGCONT');
    await cl.stop();
  });

  /** Every task id of tenant alpha, through the list endpoint. */
  async function allTaskIds() {
    const ids = [];
    let after;
    for (let page = 0; page < 100; page++) {
      const res = await api.list({ limit: 100, after });
      assert.equal(res.status, 200, res.text);
      ids.push(...res.json.data.map((t) => t.id));
      if (!res.json.has_more) break;
      after = res.json.last_id;
    }
    return ids;
  }

  test('bad JSON bytes are 400s naming what is wrong, and nothing is created', { timeout: 30_000 }, async () => {
    const task = (inner) => `{"kind":"chat","input":{"model":"mock-chat","messages":[{"role":"user","content":${inner}}]}}`;
    const cases = [
      ['trailing data', '/v1/tasks', Buffer.from(task('"hi"') + '{"kind":"chat"}'), 'invalid_json', /after the JSON/],
      ['trailing garbage', '/v1/chat/completions', Buffer.from('{"model":"mock-chat","messages":[]} x'), 'invalid_json', /after the JSON/],
      ['NUL in a model name', '/v1/chat/completions', Buffer.from('{"model":"mock-chat\\u0000x","messages":[{"role":"user","content":"x"}]}'), 'invalid_json', /NUL/],
      ['NUL in content', '/v1/tasks', Buffer.from(task('"a\\u0000b"')), 'invalid_json', /NUL/],
      ['invalid UTF-8', '/v1/tasks', Buffer.concat([Buffer.from(task('"')).subarray(0, -3), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}}')]), 'invalid_json', /UTF-8/],
      ['1e999', '/v1/chat/completions', Buffer.from('{"model":"mock-chat","max_tokens":1e999,"messages":[{"role":"user","content":"x"}]}'), 'invalid_number', /max_tokens/],
      ['-1e999 deep', '/v1/tasks', Buffer.from('{"kind":"chat","input":{"model":"mock-chat","temperature":-1e999,"messages":[{"role":"user","content":"x"}]}}'), 'invalid_number', /input\.temperature/],
    ];
    const before = (await api.list({ limit: 100 })).json.data.length;
    for (const [what, p, body, code, message] of cases) {
      const res = await api.request('POST', p, { rawBody: body });
      assert.equal(res.status, 400, `${what}: ${res.text}`);
      assert.equal(res.json.error.code, code, `${what}: ${res.text}`);
      assert.match(res.json.error.message, message, what);
    }
    const num = await api.request('POST', '/v1/chat/completions', { rawBody: Buffer.from('{"model":"mock-chat","max_tokens":1e999,"messages":[]}') });
    assert.equal(num.json.error.param, 'max_tokens');
    assert.equal((await api.list({ limit: 100 })).json.data.length, before, 'nothing was created');
  });

  test('each request ends as exactly one task when retried with its Idempotency-Key', { timeout: 120_000 }, async () => {
    const reqs = Array.from({ length: N }, (_, i) => ({ i, key: crypto.randomUUID(), content: `ghost check ${i}` }));
    const submit = (r) => api.submitChat('mock-chat', r.content, { headers: { 'idempotency-key': r.key }, timeoutMs: 10_000 });
    const first = new Array(N);
    let sent = 0;
    const stall = (async () => {
      await waitFor(() => sent >= N / 3, { timeoutMs: 30_000, intervalMs: 5, what: 'a third submitted' });
      redis.proc.kill('SIGSTOP');
      await sleep(1500);
      redis.proc.kill('SIGCONT');
    })();
    await mapLimit(reqs, 16, async (r) => {
      sent++;
      first[r.i] = await submit(r);
      await sleep(5);
    });
    await stall;

    const codes = {};
    for (const res of first) {
      const k = res.status === 202 ? '202' : `${res.status} ${res.json?.error?.code}`;
      codes[k] = (codes[k] ?? 0) + 1;
      if (res.status !== 202) {
        assert.equal(res.status, 503, res.text);
        assert.ok(['store_unavailable', 'outcome_unknown'].includes(res.json.error.code), res.text);
        if (res.json.error.code === 'outcome_unknown') assert.match(res.json.error.message, /Idempotency-Key/);
      }
    }
    console.log(`first attempts: ${JSON.stringify(codes)}`);
    const accepted = first.filter((r) => r.status === 202).length;
    const unknown = codes['503 outcome_unknown'] ?? 0;
    assert.ok(accepted < N, `the stall made some submits fail: ${JSON.stringify(codes)}`);

    await waitFor(async () => (await api.request('GET', '/readyz')).status === 200,
      { timeoutMs: 15_000, intervalMs: 100, what: 'readyz after SIGCONT' });
    // store_unavailable created nothing: what exists is the 202s and some of the unknowns
    const before = await allTaskIds();
    assert.ok(before.length >= accepted && before.length <= accepted + unknown,
      `${before.length} tasks exist; ${accepted} were accepted and ${unknown} unknown (${JSON.stringify(codes)})`);

    // the client retries every failed submit with its own key
    const ids = new Array(N);
    for (const r of reqs) {
      let res = first[r.i];
      for (let attempt = 0; res.status !== 202 && attempt < 20; attempt++) {
        await sleep(100);
        res = await submit(r);
      }
      assert.equal(res.status, 202, res.text);
      ids[r.i] = res.json.id;
    }
    assert.equal(new Set(ids).size, N, 'one task per request');
    const after = await allTaskIds();
    assert.equal(after.length, N, `exactly ${N} tasks exist, no ghost: ${after.length} (${JSON.stringify(codes)})`);
    assert.deepEqual(new Set(after), new Set(ids));
  });
});
