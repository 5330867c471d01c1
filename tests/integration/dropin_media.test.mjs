// Drop-in correctness of images and embeddings, as the official OpenAI Node SDK sees it.
//
// Images: `images.generate` honours response_format whatever the provider answered with.
// b64_json is the bytes of the task's kept artifact; url is a capability URL that sluice itself
// serves (GET /v1/artifacts/<task>/<index>?expires&sig, readable with a plain GET and no bearer
// key), never the provider's. The URL is HMAC-signed (blobs.url_key here, so the test can make
// URLs of its own), refused with 403 when tampered with or expired, 404 when the task is gone;
// its base follows the request's Host header (a hostile one falls back to the listen address).
// With no blobs.url_key, api processes share one random key through Redis: a URL one api issued
// is served by another; public_base_url replaces the Host-derived base.
//
// Embeddings: an OpenAI-compatible upstream that ignores encoding_format (sluice-mock's
// "mock:floats" models answer floats always) must not make the SDK decode garbage: sluice answers
// in the encoding the client asked for (base64 = little-endian float32), in sync answers and in
// batch output lines, and the vectors the SDK decodes equal the upstream's floats as float32.
//
// Needs `npm ci` in tests/integration first (the SDK is the one npm dependency).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import OpenAI from 'openai';
import {
  Cluster, PNG_MAGIC, assertErrorEnvelope, client, freePort, randomTaskId, sdkErr, waitFor, openaiClient,
} from './lib/harness.mjs';

const JOB_MS = 300; // the mock's upstream job duration (Replicate, fal)
const URL_KEY = `url-key-${crypto.randomBytes(16).toString('hex')}`;
const FLOATS_MODEL = 'text-embedding-3-small mock:floats'; // the mock ignores encoding_format
const ARTIFACT_URL_RE = /^(https?:\/\/[^/]+(?:\/[^?]*)?)\/v1\/artifacts\/(task_[a-z2-7]{26})\/(\d+)\?expires=(\d+)&sig=([A-Za-z0-9_-]{43})$/;

// Every image alias, and what its provider answers when the client names no response_format.
const IMAGE_ALIASES = {
  'image-openai': { provider: 'openai', nativeB64: true }, // gpt-image-1: b64_json upstream
  'image-dalle': { provider: 'openai', nativeB64: false }, // dall-e-3: the provider's URL
  'image-replicate': { provider: 'replicate', nativeB64: false },
  'image-fal': { provider: 'fal', nativeB64: false },
};

const EXTRA_MODELS = {
  'image-dalle': { kind: 'image', strategy: 'ordered',
    deployments: [{ provider: 'openai', model: 'dall-e-3', price: { per_image: 0.04 } }] },
  'embed-floats': { kind: 'embedding', strategy: 'ordered',
    deployments: [{ provider: 'openai', model: FLOATS_MODEL, price: { input_per_mtok: 0.02 } }] },
};

/** base64url HMAC-SHA256 of "<id>/<index>/<expires>", as sluice signs artifact URLs. */
function sign(key, id, index, expires) {
  return crypto.createHmac('sha256', key).update(`${id}/${index}/${expires}`).digest('base64url');
}

/** GET without any Authorization header → {status, headers, bytes, json}. */
async function plainGet(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(10000) });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), bytes, json, text: bytes.toString('latin1') };
}

/** POST with an explicit Host header (fetch cannot set one) → {status, json}. */
function postWithHost(baseUrl, p, key, body, host) {
  const u = new URL(baseUrl + p);
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', timeout: 60000,
      headers: { host, authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': payload.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The newest task of this alias (the one a sync call just made: the SDK does not show its id). */
async function newestTask(api, alias) {
  const res = await api.list({ limit: 20 });
  assert.equal(res.status, 200, res.text.slice(0, 300));
  const t = res.json.data.find((x) => x.model === alias);
  assert.ok(t, `no task of ${alias} among ${res.json.data.map((x) => x.model).join(', ')}`);
  assert.equal(t.status, 'completed', JSON.stringify(t).slice(0, 400));
  return t;
}

/** The bytes of a task's artifact through the bearer-authenticated content endpoint. */
async function artifactBytes(api, id, index = 0) {
  const res = await api.request('GET', `/v1/tasks/${id}/content?index=${index}`, { binary: true });
  assert.equal(res.status, 200, `GET content: ${res.status} ${res.text.slice(0, 200)}`);
  return res.bytes;
}

/** A Float32 decode of base64, as the SDK does it (little-endian float32s). */
function decodeF32(b64) {
  const buf = Buffer.from(b64, 'base64');
  assert.equal(buf.length % 4, 0, `a whole number of float32s: ${buf.length} bytes`);
  return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4));
}

describe('images and embeddings as the OpenAI SDK expects them', () => {
  const cl = new Cluster('dropin_media');
  let redis;
  let mock;
  let sluice;
  let api;
  let openai;

  /** The upstream's own vectors for these inputs (asking base64, which this model ignores). */
  async function upstreamFloats(input) {
    const res = await fetch(`${mock.baseUrl}/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cl.keys.mock}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: FLOATS_MODEL, input, encoding_format: 'base64' }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    for (const d of body.data) assert.ok(Array.isArray(d.embedding), 'the upstream answers floats even when asked base64');
    return body.data.map((d) => d.embedding);
  }

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: JOB_MS });
    sluice = await cl.startSluice('serve', await cl.dialectConfigFor({
      redis, mock, pollIntervalMs: 100,
      overrides: { blobs: { url_key: 'env:SLUICE_TEST_URL_KEY', url_ttl_s: 600 }, models: EXTRA_MODELS },
    }), { env: { SLUICE_TEST_URL_KEY: URL_KEY } });
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    openai = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0 });
  });
  after(() => cl.stop());

  for (const [alias, spec] of Object.entries(IMAGE_ALIASES)) {
    test(`images.generate({response_format: 'b64_json'}) through ${alias}: the artifact's bytes`, { timeout: 60_000 }, async () => {
      const r = await openai.images.generate({ model: alias, prompt: `a lighthouse (${alias}, b64)`, response_format: 'b64_json' })
        .catch((e) => assert.fail(`images.generate: ${sdkErr(e)}`));
      const ctx = JSON.stringify(r).slice(0, 300);
      assert.equal(r.data.length, 1, ctx);
      assert.equal(typeof r.data[0].b64_json, 'string', `data[0].b64_json: ${ctx}`);
      assert.equal(r.data[0].url, undefined, `no url next to b64_json: ${ctx}`);
      const bytes = Buffer.from(r.data[0].b64_json, 'base64');
      assert.ok(bytes.subarray(0, 8).equals(PNG_MAGIC), `a PNG: ${bytes.subarray(0, 8).toString('hex')}`);
      const task = await newestTask(api, alias);
      assert.equal(task.provider?.name, spec.provider);
      assert.ok(bytes.equals(await artifactBytes(api, task.id)), 'b64_json is the bytes of the kept artifact');
      assert.ok(!JSON.stringify(r).includes(mock.root), 'nothing of the provider leaks');
    });

    test(`images.generate({response_format: 'url'}) through ${alias}: a URL sluice serves without a key`, { timeout: 60_000 }, async () => {
      const r = await openai.images.generate({ model: alias, prompt: `a lighthouse (${alias}, url)`, response_format: 'url' })
        .catch((e) => assert.fail(`images.generate: ${sdkErr(e)}`));
      const ctx = JSON.stringify(r).slice(0, 400);
      assert.equal(r.data.length, 1, ctx);
      assert.equal(r.data[0].b64_json, undefined, ctx);
      const m = ARTIFACT_URL_RE.exec(String(r.data[0].url));
      assert.ok(m, `a sluice artifact URL: ${ctx}`);
      assert.equal(m[1], sluice.baseUrl, 'on the base the client used');
      assert.ok(!r.data[0].url.startsWith(mock.root), 'never the provider URL');
      const task = await newestTask(api, alias);
      assert.equal(m[2], task.id);
      assert.equal(m[3], '0');
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Number(m[4]) >= now + 590 && Number(m[4]) <= now + 610, `expires in url_ttl_s (600): ${m[4]} vs now ${now}`);
      const got = await plainGet(r.data[0].url);
      assert.equal(got.status, 200, `GET without a key: ${got.status} ${got.text.slice(0, 200)}`);
      assert.match(String(got.headers['content-type']), /^image\/png/);
      assert.ok(got.bytes.equals(await artifactBytes(api, task.id)), 'the URL serves the kept artifact');
    });
  }

  test('no response_format: the provider\'s form, but never its URL', { timeout: 60_000 }, async () => {
    for (const [alias, spec] of Object.entries(IMAGE_ALIASES)) {
      const r = await openai.images.generate({ model: alias, prompt: `a lighthouse (${alias}, default)` })
        .catch((e) => assert.fail(`images.generate(${alias}): ${sdkErr(e)}`));
      const ctx = `${alias}: ${JSON.stringify(r).slice(0, 300)}`;
      const task = await newestTask(api, alias);
      const kept = await artifactBytes(api, task.id);
      if (spec.nativeB64) {
        assert.ok(Buffer.from(String(r.data[0].b64_json), 'base64').equals(kept), ctx);
      } else {
        assert.ok(ARTIFACT_URL_RE.test(String(r.data[0].url)), ctx);
        assert.ok((await plainGet(r.data[0].url)).bytes.equals(kept), ctx);
      }
      assert.ok(!JSON.stringify(r).includes(mock.root), `no provider URL: ${ctx}`);
    }
  });

  test('n: 2 gives one URL per image, each its own artifact', { timeout: 60_000 }, async () => {
    const r = await openai.images.generate({ model: 'image-fal', prompt: 'two lighthouses', n: 2, response_format: 'url' });
    assert.equal(r.data.length, 2, JSON.stringify(r));
    const task = await newestTask(api, 'image-fal');
    for (let i = 0; i < 2; i++) {
      const m = ARTIFACT_URL_RE.exec(r.data[i].url);
      assert.ok(m && m[2] === task.id && m[3] === String(i), r.data[i].url);
      assert.ok((await plainGet(r.data[i].url)).bytes.equals(await artifactBytes(api, task.id, i)), `image ${i}`);
    }
    const b = await openai.images.generate({ model: 'image-replicate', prompt: 'two harbours', n: 2, response_format: 'b64_json' });
    const t2 = await newestTask(api, 'image-replicate');
    assert.equal(b.data.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.ok(Buffer.from(b.data[i].b64_json, 'base64').equals(await artifactBytes(api, t2.id, i)), `b64 image ${i}`);
    }
  });

  test('an unknown response_format is a 400 that names it', async () => {
    const err = await openai.images.generate({ model: 'image-fal', prompt: 'x', response_format: 'png' }).then(() => null, (e) => e);
    assert.ok(err instanceof OpenAI.BadRequestError, err ? sdkErr(err) : 'it answered 2xx');
    assert.equal(err.error?.param, 'response_format');
  });

  test('a tampered, expired or foreign artifact URL is refused in OpenAI\'s envelope', { timeout: 60_000 }, async () => {
    const r = await openai.images.generate({ model: 'image-fal', prompt: 'a guarded lighthouse', response_format: 'url' });
    const url = new URL(r.data[0].url);
    const [, , , id, index] = url.pathname.split('/');
    const expires = url.searchParams.get('expires');
    const sig = url.searchParams.get('sig');
    assert.equal((await plainGet(url.href)).status, 200);
    // the test holds blobs.url_key: its own signature of the same URL is the server's
    assert.equal(sign(URL_KEY, id, index, expires), sig, 'HMAC-SHA256 of "<id>/<index>/<expires>", base64url');

    const at = (p, q) => `${sluice.baseUrl}${p}?${new URLSearchParams(q)}`;
    const refused = async (href, status, code, what) => {
      const res = await plainGet(href);
      assertErrorEnvelope(res, status);
      if (code) assert.equal(res.json.error.code, code, `${what}: ${res.text}`);
    };
    const flip = sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A');
    await refused(at(url.pathname, { expires, sig: flip }), 403, 'invalid_signature', 'one character of sig');
    await refused(at(url.pathname, { expires: String(Number(expires) + 1), sig }), 403, 'invalid_signature', 'a later expiry');
    await refused(at(url.pathname, { expires }), 403, 'invalid_signature', 'no sig');
    await refused(at(url.pathname, { sig }), 403, 'invalid_signature', 'no expires');
    await refused(at(`/v1/artifacts/${id}/1`, { expires, sig }), 403, 'invalid_signature', 'another index');
    await refused(at(url.pathname, { expires, sig: sign('some other key 0123456789', id, index, expires) }), 403, 'invalid_signature', 'another key');
    const past = Math.floor(Date.now() / 1000) - 5;
    await refused(at(url.pathname, { expires: past, sig: sign(URL_KEY, id, index, past) }), 403, 'url_expired', 'expired');
    // a well-signed URL of a task that does not exist (or no longer does)
    const ghost = randomTaskId();
    const later = Math.floor(Date.now() / 1000) + 600;
    await refused(at(`/v1/artifacts/${ghost}/0`, { expires: later, sig: sign(URL_KEY, ghost, 0, later) }), 404, 'artifact_not_found', 'no such task');
    // a well-signed URL of an index the task does not have
    await refused(at(`/v1/artifacts/${id}/5`, { expires: later, sig: sign(URL_KEY, id, 5, later) }), 404, null, 'no such index');
    await refused(`${sluice.baseUrl}/v1/artifacts/not-a-task/0?expires=1&sig=x`, 404, 'artifact_not_found', 'not a task id');
    // a URL of the test's own making with a later expiry works: the key is the credential
    assert.equal((await plainGet(at(url.pathname, { expires: later, sig: sign(URL_KEY, id, index, later) }))).status, 200);
  });

  test('the URL\'s base follows the Host header; a hostile one falls back to the listen address', { timeout: 60_000 }, async () => {
    const port = new URL(sluice.baseUrl).port;
    const body = { model: 'image-fal', prompt: 'a lighthouse by name', response_format: 'url' };
    const named = await postWithHost(sluice.baseUrl, '/v1/images/generations', cl.keys.alpha, body, `localhost:${port}`);
    assert.equal(named.status, 200, named.text.slice(0, 300));
    assert.ok(named.json.data[0].url.startsWith(`http://localhost:${port}/v1/artifacts/`), named.text.slice(0, 300));
    const hostile = await postWithHost(sluice.baseUrl, '/v1/images/generations', cl.keys.alpha, body, 'evil.example/steal?x=');
    assert.equal(hostile.status, 200, hostile.text.slice(0, 300));
    assert.ok(hostile.json.data[0].url.startsWith(`${sluice.baseUrl}/v1/artifacts/`), hostile.text.slice(0, 300));
    assert.equal((await plainGet(hostile.json.data[0].url)).status, 200);
  });

  test('embeddings decoded by the SDK equal the upstream floats when the upstream ignores encoding_format', async () => {
    const input = ['the first text', 'the second text'];
    const upstream = await upstreamFloats(input);
    assert.equal(upstream.length, 2);

    // The SDK's default: it asks base64 and decodes float32s.
    const r = await openai.embeddings.create({ model: 'embed-floats', input })
      .catch((e) => assert.fail(`embeddings: ${sdkErr(e)}`));
    assert.equal(r.data.length, 2);
    r.data.forEach((d, i) => {
      assert.equal(d.embedding.length, upstream[i].length, `dimensions of ${i}: ${JSON.stringify(d.embedding)}`);
      d.embedding.forEach((v, k) => assert.equal(v, Math.fround(upstream[i][k]),
        `vector ${i}[${k}]: ${v} should be float32(${upstream[i][k]})`));
    });
    // On the wire: base64, because the SDK asked for it.
    const raw = await openai.embeddings.create({ model: 'embed-floats', input }).asResponse();
    const wire = await raw.json();
    wire.data.forEach((d, i) => {
      assert.equal(typeof d.embedding, 'string', `base64 on the wire: ${JSON.stringify(d).slice(0, 200)}`);
      assert.deepEqual(decodeF32(d.embedding), upstream[i].map(Math.fround));
    });

    // Asked explicitly: base64 strings that decode to the same float32s.
    const b = await openai.embeddings.create({ model: 'embed-floats', input, encoding_format: 'base64' });
    b.data.forEach((d, i) => {
      assert.equal(typeof d.embedding, 'string', JSON.stringify(d).slice(0, 200));
      assert.deepEqual(decodeF32(d.embedding), upstream[i].map(Math.fround));
    });

    // Asked float: the upstream's floats as they came.
    const f = await openai.embeddings.create({ model: 'embed-floats', input, encoding_format: 'float' });
    f.data.forEach((d, i) => assert.deepEqual(d.embedding, upstream[i]));
  });

  test('batch output lines carry embeddings in the encoding each line asked for', { timeout: 120_000 }, async () => {
    const texts = ['batch one', 'batch two', 'batch three'];
    const upstream = await upstreamFloats(texts);
    const formats = ['base64', undefined, 'float'];
    const jsonl = texts.map((t, i) => JSON.stringify({
      custom_id: `e-${i}`, method: 'POST', url: '/v1/embeddings',
      body: { model: 'embed-floats', input: t, ...(formats[i] ? { encoding_format: formats[i] } : {}) },
    })).join('\n') + '\n';
    const file = await openai.files.create({ file: new File([jsonl], 'embed.jsonl'), purpose: 'batch' });
    const created = await openai.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    let batch;
    await waitFor(async () => {
      batch = await openai.batches.retrieve(created.id);
      return ['completed', 'failed', 'expired', 'cancelled'].includes(batch.status);
    }, { timeoutMs: 90_000, intervalMs: 250, what: 'the embeddings batch to end' });
    assert.equal(batch.status, 'completed', JSON.stringify(batch));
    assert.equal(batch.request_counts.completed, 3, JSON.stringify(batch.request_counts));
    const lines = (await (await openai.files.content(batch.output_file_id)).text())
      .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    for (const line of lines) {
      const i = Number(line.custom_id.slice(2));
      const emb = line.response.body.data[0].embedding;
      if (formats[i] === 'base64') {
        assert.equal(typeof emb, 'string', `${line.custom_id}: ${JSON.stringify(emb).slice(0, 100)}`);
        assert.deepEqual(decodeF32(emb), upstream[i].map(Math.fround), line.custom_id);
      } else {
        assert.deepEqual(emb, upstream[i], line.custom_id);
      }
    }
  });

  test('every task ended and nothing is left in flight', async () => {
    const res = await api.list({ limit: 100 });
    assert.equal(res.status, 200);
    for (const t of res.json.data) assert.equal(t.status, 'completed', `${t.id} ${t.model} ${t.status}`);
    assert.equal(await redis.slotLeak(), null);
  });
});

describe('several api processes share the URL signing key through Redis', () => {
  const cl = new Cluster('dropin_media_shared');
  let mock;
  let apis;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: JOB_MS });
    const base = await cl.dialectConfigFor({ redis, mock, pollIntervalMs: 100 });
    await cl.startSluice('worker', base);
    await cl.startSluice('scheduler', base);
    const one = await cl.startSluice('api', { ...base, listen: `127.0.0.1:${await freePort()}` });
    const port = await freePort();
    // as behind a proxy that serves this api under /public (a trailing '/' is dropped)
    const two = await cl.startSluice('api', {
      ...base, listen: `127.0.0.1:${port}`, public_base_url: `http://127.0.0.1:${port}/public/`,
    });
    apis = [one, two];
  });
  after(() => cl.stop());

  test('a URL one api issued is served by another; public_base_url sets the base', { timeout: 60_000 }, async () => {
    const [one, two] = apis;
    const sdk = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${one.baseUrl}/v1`, maxRetries: 0 });
    const r = await sdk.images.generate({ model: 'image-fal', prompt: 'a shared lighthouse', response_format: 'url' });
    const m = ARTIFACT_URL_RE.exec(r.data[0].url);
    assert.ok(m && m[1] === one.baseUrl, r.data[0].url);
    const viaOne = await plainGet(r.data[0].url);
    assert.equal(viaOne.status, 200);
    const viaTwo = await plainGet(r.data[0].url.replace(one.baseUrl, two.baseUrl));
    assert.equal(viaTwo.status, 200, `the other api process: ${viaTwo.status} ${viaTwo.text.slice(0, 200)}`);
    assert.ok(viaTwo.bytes.equals(viaOne.bytes));
    assert.ok(viaOne.bytes.equals(await artifactBytes(client(one.baseUrl, cl.keys.alpha), m[2])));

    // Through the second process, whose public_base_url is set: the URL is on it, whatever Host
    // the client sent; the proxy would strip /public, and either process serves it.
    const sdk2 = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${two.baseUrl}/v1`, maxRetries: 0 });
    const r2 = await sdk2.images.generate({ model: 'image-replicate', prompt: 'a public lighthouse', response_format: 'url' });
    const m2 = ARTIFACT_URL_RE.exec(r2.data[0].url);
    assert.ok(m2 && m2[1] === `${two.baseUrl}/public`, r2.data[0].url);
    for (const b of [one.baseUrl, two.baseUrl]) {
      const got = await plainGet(r2.data[0].url.replace(`${two.baseUrl}/public`, b));
      assert.equal(got.status, 200, `${b}: ${got.status} ${got.text.slice(0, 200)}`);
    }
  });
});
