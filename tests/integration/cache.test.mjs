// The exact response cache with single-flight (issue 16, item 4) on real redis-server,
// sluice-mock and `sluice serve`:
//   1. 100 identical concurrent chat requests while the mock holds the first (500 ms latency):
//      exactly 1 upstream call (the mock's count), 100 identical answers.
//   2. The same request again: served from the cache — its task (Prefer: respond-async) is
//      completed at once, `cached: true`, cost 0 — and still 1 upstream call.
//   3. `Cache-Control: no-cache` computes again: a new upstream call.
//   4. An alias without a cache: every request goes upstream.
//   5. `stream: true` on a hit: the stored completion replayed as a chat.completion.chunk stream
//      (role chunk, the content in chunks, finish chunk, usage chunk when asked, [DONE]) with the
//      same content, nothing upstream.
//   6. Another tenant does not hit tenant alpha's entry.
//   7. A cached response (Responses API) carries its own id.
//   7b. Images: an identical image request is one upstream call; the hit's b64_json, its signed
//      URL and its task's content endpoint give the bytes of the task that made the image, and
//      the hit's task shows no trace of whose files they are.
//   8. /metrics counts hits, misses and single-flight joins; nothing is left queued or running.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, parseSse, sleep } from './lib/harness.mjs';

const CACHED = 'cached-chat';
const CACHED_IMG = 'cached-image';
const PLAIN = 'mock-chat';
const LATENCY_MS = 500;
const N = 100;
// long enough that the mock's reply (it echoes 64 bytes of it) replays as several content chunks
const PROMPT = 'single flight please: one upstream call for a hundred identical requests';

describe('exact response cache with single-flight', () => {
  const cl = new Cluster('cache');
  let mock;
  let api;
  let beta;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ latencyMs: LATENCY_MS });
    const config = await cl.configFor({ redis, mock });
    config.models[CACHED] = { ...config.models[PLAIN], cache: { ttl_s: 600 } };
    config.models[CACHED_IMG] = { kind: 'image', strategy: 'ordered', cache: { ttl_s: 600 },
      deployments: [{ provider: config.models[PLAIN].deployments[0].provider, model: 'gpt-image-1',
        price: { per_image: 0.04 } }] };
    config.limits.sync_wait_s = 60;
    config.blobs = { ...config.blobs, allow_hosts: ['127.0.0.1'] }; // the mock's image URLs are loopback
    const sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    beta = cl.client(sluice.baseUrl, cl.keys.beta);
  });
  after(() => cl.stop());

  const body = (model, content, extra = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });
  const chat = (client, b, headers = {}) =>
    client.request('POST', '/v1/chat/completions', { body: b, headers, timeoutMs: 60_000 });

  test('100 identical concurrent requests: one upstream call, 100 identical answers', { timeout: 120_000 }, async () => {
    const before = await mock.chatCount();
    const b = body(CACHED, PROMPT);
    const all = await Promise.all(Array.from({ length: N }, () => chat(api, b)));
    for (const r of all) assert.equal(r.status, 200, r.text.slice(0, 300));
    const first = all[0].text;
    assert.equal(all[0].json.object, 'chat.completion', first.slice(0, 300));
    assert.ok(all.every((r) => r.text === first), 'every answer is byte for byte the first one');
    assert.equal(await mock.chatCount() - before, 1, 'exactly one upstream call');
  });

  test('a repeat is served from the cache: completed at once, cached, cost 0, no upstream call', { timeout: 60_000 }, async () => {
    const before = await mock.chatCount();
    const b = body(CACHED, PROMPT);
    const sync = await chat(api, b);
    assert.equal(sync.status, 200);
    const res = await chat(api, b, { prefer: 'respond-async' });
    assert.equal(res.status, 202, res.text.slice(0, 300));
    const task = res.json;
    assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 300));
    assert.equal(task.cached, true);
    assert.equal(task.cost.amount, 0);
    assert.deepEqual(task.result, sync.json, 'the task holds the cached completion');
    const got = await api.getTask(task.id);
    assert.equal(got.status, 200);
    assert.equal(got.json.cached, true);
    assert.equal(got.json.cost.amount, 0);
    assert.equal(await mock.chatCount() - before, 0, 'nothing went upstream');
    // the canonical request: key order, stream, user and metadata do not change the key
    const reordered = { messages: b.messages, user: 'someone', model: CACHED };
    const again = await chat(api, reordered);
    assert.equal(again.text, sync.text);
    assert.equal(await mock.chatCount() - before, 0, 'a reordered body is the same request');
  });

  test('Cache-Control: no-cache computes again; no-store neither reads nor stores', { timeout: 60_000 }, async () => {
    const b = body(CACHED, PROMPT);
    let before = await mock.chatCount();
    const r = await chat(api, b, { 'cache-control': 'no-cache' });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(await mock.chatCount() - before, 1, 'no-cache: a new upstream call');
    const fresh = body(CACHED, 'never stored');
    before = await mock.chatCount();
    assert.equal((await chat(api, fresh, { 'cache-control': 'no-store' })).status, 200);
    assert.equal((await chat(api, fresh, { 'cache-control': 'no-store' })).status, 200);
    assert.equal(await mock.chatCount() - before, 2, 'no-store: every request upstream');
    const ttl = await chat(api, fresh, { 'x-sluice-cache-ttl': 'soon' });
    assert.equal(ttl.status, 400, ttl.text.slice(0, 300));
    assert.equal(ttl.json.error.param, 'X-Sluice-Cache-TTL');
  });

  test('an alias without a cache sends every request upstream', { timeout: 60_000 }, async () => {
    const before = await mock.chatCount();
    const b = body(PLAIN, 'no cache here');
    const all = await Promise.all([chat(api, b), chat(api, b), chat(api, b)]);
    for (const r of all) assert.equal(r.status, 200);
    assert.equal(await mock.chatCount() - before, 3);
  });

  test('a cached stream replays: role chunk, content chunks, finish chunk, usage, [DONE]', { timeout: 60_000 }, async () => {
    const b = body(CACHED, PROMPT);
    const plain = await chat(api, b);
    const want = plain.json.choices[0].message.content;
    assert.equal(typeof want, 'string');
    const before = await mock.chatCount();
    const res = await chat(api, { ...b, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const events = parseSse(res.text);
    assert.equal(events.at(-1).data, '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'the first chunk carries the role');
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, [], 'the usage chunk has no choices');
    assert.deepEqual(usage.usage, plain.json.usage);
    const finish = chunks.at(-2);
    assert.equal(finish.choices[0].finish_reason, plain.json.choices[0].finish_reason);
    const content = chunks.slice(0, -1).map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(content, want, 'the replayed content is the cached content');
    const pieces = chunks.slice(1, -2).filter((c) => typeof c.choices[0].delta.content === 'string');
    assert.ok(pieces.length >= 2, `the content in several chunks (${pieces.length}): ${want}`);
    assert.equal(await mock.chatCount() - before, 0, 'the stream came from the cache');
  });

  test("another tenant does not hit tenant alpha's entry", { timeout: 60_000 }, async () => {
    const b = body(CACHED, PROMPT);
    const before = await mock.chatCount();
    const r = await chat(beta, b, { prefer: 'respond-async' });
    assert.equal(r.status, 202);
    assert.notEqual(r.json.cached, true);
    let task;
    for (let i = 0; i < 100; i++) {
      task = (await beta.getTask(r.json.id)).json;
      if (task.status === 'completed' || task.status === 'failed') break;
      await sleep(100);
    }
    assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 300));
    assert.equal(task.cached, undefined);
    assert.ok(task.cost.amount > 0, 'computed, so priced');
    assert.equal(await mock.chatCount() - before, 1, "beta's request went upstream");
  });

  test('a cached response (Responses API) is answered with its own id', { timeout: 60_000 }, async () => {
    const upstream = async () => Object.values(await mock.byRoute()).reduce((a, n) => a + n, 0);
    const b = { model: CACHED, input: 'a response worth keeping' };
    const before = await upstream();
    const first = await api.request('POST', '/v1/responses', { body: b, timeoutMs: 60_000 });
    assert.equal(first.status, 200, first.text.slice(0, 300));
    assert.equal(first.json.status, 'completed');
    const second = await api.request('POST', '/v1/responses', { body: b, timeoutMs: 60_000 });
    assert.equal(second.status, 200, second.text.slice(0, 300));
    assert.equal(await upstream() - before, 1, 'one upstream call for both');
    assert.match(second.json.id, /^resp_/);
    assert.notEqual(second.json.id, first.json.id, 'the cached response is its own task');
    assert.deepEqual(second.json.output, first.json.output);
    const got = await api.request('GET', `/v1/responses/${second.json.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.json.id, second.json.id);
  });

  test('an image is cached: one upstream call; the hit shows the same bytes as b64, URL and content', { timeout: 60_000 }, async () => {
    const images = async () => (await mock.byRoute())['openai.images'] ?? 0;
    const gen = (extra = {}, headers = {}) => api.request('POST', '/v1/images/generations', {
      body: { model: CACHED_IMG, prompt: 'a cached lighthouse', ...extra }, headers, timeoutMs: 60_000 });
    const before = await images();
    const first = await gen({ response_format: 'b64_json' });
    assert.equal(first.status, 200, first.text.slice(0, 300));
    const bytes = Buffer.from(first.json.data[0].b64_json, 'base64');
    assert.ok(bytes.length > 8, 'an image came back');
    const again = await gen({ response_format: 'b64_json' });
    assert.equal(again.status, 200, again.text.slice(0, 300));
    assert.ok(Buffer.from(again.json.data[0].b64_json, 'base64').equals(bytes), 'the hit shows the same image');
    assert.equal(await images() - before, 1, 'one upstream call for both');
    // the hit as a task: completed at once, cached, and its content is the maker's bytes
    const task = await gen({ response_format: 'b64_json' }, { prefer: 'respond-async' });
    assert.equal(task.status, 202, task.text.slice(0, 300));
    assert.equal(task.json.status, 'completed');
    assert.equal(task.json.cached, true);
    assert.equal(task.json.cost.amount, 0);
    assert.ok(!JSON.stringify(task.json).includes('blob_task') && !JSON.stringify(task.json).includes('sluice_artifact_task'),
      JSON.stringify(task.json).slice(0, 400));
    const content = await api.request('GET', `/v1/tasks/${task.json.id}/content?index=0`, { binary: true });
    assert.equal(content.status, 200, content.text.slice(0, 200));
    assert.ok(content.bytes.equals(bytes), "the hit's content endpoint serves the maker's file");
    // URLs: the hit's signed URL serves the same bytes, without a key
    const u1 = await gen({ response_format: 'url' });
    const u2 = await gen({ response_format: 'url' });
    assert.equal(u2.status, 200, u2.text.slice(0, 300));
    assert.notEqual(u1.json.data[0].url, undefined);
    const get = async (url) => Buffer.from(await (await fetch(url, { signal: AbortSignal.timeout(10000) })).arrayBuffer());
    const b1 = await get(u1.json.data[0].url);
    const b2 = await get(u2.json.data[0].url);
    assert.ok(b1.length > 8 && b1.equals(b2), 'both URLs serve one image');
    assert.equal(await images() - before, 2, 'one more upstream call for the url form, none for its hit');
  });

  test('/metrics counts hits, misses and joins; nothing is left queued or running', { timeout: 30_000 }, async () => {
    const m = await api.metrics();
    const c = (outcome) => m.get('sluice_cache_requests_total', { outcome }) ?? 0;
    // the cached alias's requests: the N of the first test, 3 repeats, 1 no-cache, 2 for the
    // stream, 1 of beta, 2 responses (no-store and the refused TTL never looked); the image
    // alias's 5 (2 misses: one per response_format)
    assert.equal(c('hit') + c('join') + c('miss') + c('bypass'), N + 9 + 5, 'each lookup counted once');
    assert.ok(c('join') >= 1, `single-flight joins: ${c('join')}`);
    assert.equal(c('miss'), 5, 'the first wave\'s leader, beta\'s request, the first response, 2 images');
    assert.equal(c('bypass'), 1);
    assert.ok(c('hit') >= 5, `hits: ${c('hit')}`);
    assert.equal(m.get('sluice_tasks', { status: 'queued' }) ?? 0, 0);
    assert.equal(m.get('sluice_tasks', { status: 'in_progress' }) ?? 0, 0);
  });
});
