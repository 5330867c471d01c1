// Providers' webhooks: a Replicate prediction that calls back when it ends, instead of sluice
// waiting for its next poll.
//
// sluice-mock plays Replicate and, given --webhook-secret, POSTs a prediction created with a
// loopback `webhook` there when it ends, signed Standard-Webhooks style (webhook-id,
// webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>). sluice's
// replicate provider has the same secret as its webhook_secret (from the environment) and
// callback_base_url is the api's own loopback URL; every provider polls only every 60 s, except
// `replpoll` (the same mock, no webhook_secret, 200 ms). Checked:
//   1. An image task on the replicate provider completes within ~10 s (the job takes 1.5 s; the
//      next poll would be 60 s away): the submit asked for the callback (webhook = the task's
//      callback URL, webhook_events_filter ["completed"]), the mock sent it, and sluice polled
//      that prediction exactly once (the poll the callback made due).
//   2. While a long job runs: a callback with a bad signature, a stale timestamp or no signature
//      headers is 401 and nothing changes (the task stays in_progress, its prediction is not
//      polled); a correctly signed one is 200 {"ok":true} and makes exactly one poll happen.
//   3. A provider that is unknown or has no webhook_secret, or an id that is not a task id: 404
//      in OpenAI's envelope. A body over 64 KiB: 413. A valid callback for a finished or unknown
//      task: 200 {"ok":true}.
//   4. Polling stays the fallback: the provider without webhook_secret asks for no callback and
//      completes by polling.
//
// fal signs differently: ED25519, no shared secret. Given --fal-webhook-key (a 32-byte seed), the
// mock POSTs fal's webhook body ({request_id, gateway_request_id, status, payload}) to a loopback
// `fal_webhook` with X-Fal-Webhook-Request-Id, -User-Id, -Timestamp and -Signature (hex ED25519 of
// the four lines request id, user id, timestamp, hex SHA-256 of the body). sluice's fal provider
// lists the seed's public key (as fal's JWKS `x`, base64url) in webhook_public_keys. Checked:
//   5. An image task on fal completes within ~10 s: the submit carried fal_webhook = the task's
//      callback URL, the mock sent the webhook, and sluice asked for the request's status once.
//   6. While a long fal job runs: a callback signed with another key, a stale timestamp, a flipped
//      body byte or no fal headers is 401 and nothing changes; a good one makes one status poll.
//   7. A fal provider without webhook_public_keys asks for no callback (404 on its URL).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  Cluster, DIALECT_MODELS, mockRequests, recordedBody, sleep, waitFor, randomTaskId,
} from './lib/harness.mjs';

const JOB_MS = 1500;
const LONG_JOB_MS = 60000;
const SECRET = `whsec_${crypto.randomBytes(32).toString('base64')}`;
const OTHER_SECRET = `whsec_${crypto.randomBytes(32).toString('base64')}`;
const FAL_SEED = crypto.randomBytes(32);
const FAL_OTHER_SEED = crypto.randomBytes(32);
const FAL_ALIAS = 'image-fal';
const FAL_POLL_ALIAS = 'image-falpoll';
const FAL_MODEL = DIALECT_MODELS[FAL_ALIAS].model;
const ALIAS = 'image-replicate';
const POLL_ALIAS = 'image-replpoll';
const MODEL = DIALECT_MODELS[ALIAS].model;

/** Standard Webhooks' signature of (id, ts, body) with a whsec_ secret. */
function sign(secret, id, ts, body) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return `v1,${crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64')}`;
}

/** The ED25519 private key of a 32-byte seed (PKCS8 DER: a fixed 16-byte prefix, then the seed). */
function falKey(seed) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

/** The public key of a seed as fal's JWKS publishes it: `x`, base64url of the 32 raw bytes. */
function falPublicX(seed) {
  return crypto.createPublicKey(falKey(seed)).export({ format: 'jwk' }).x;
}

/** fal's webhook headers for body, signed with seed. */
function falHeaders(seed, body, { requestId = crypto.randomUUID(), userId = 'test-user',
  ts = Math.floor(Date.now() / 1000) } = {}) {
  const hash = crypto.createHash('sha256').update(body).digest('hex');
  const msg = [requestId, userId, String(ts), hash].join('\n');
  return {
    'X-Fal-Webhook-Request-Id': requestId,
    'X-Fal-Webhook-User-Id': userId,
    'X-Fal-Webhook-Timestamp': String(ts),
    'X-Fal-Webhook-Signature': crypto.sign(null, Buffer.from(msg), falKey(seed)).toString('hex'),
  };
}

describe('providers\' webhooks', () => {
  const cl = new Cluster('provider-webhooks');
  let mock;
  let sluice;
  let api;
  let anon;
  let callbackBase;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({
      jobMs: JOB_MS, args: ['--webhook-secret', SECRET, '--fal-webhook-key', FAL_SEED.toString('hex')],
    });
    const config = await cl.dialectConfigFor({ redis, mock, pollIntervalMs: 60000 });
    callbackBase = `http://${config.listen}`;
    config.callback_base_url = callbackBase;
    config.providers.replicate.webhook_secret = 'env:SLUICE_TEST_REPLICATE_WHSEC';
    config.providers.replpoll = { ...config.providers.replicate, poll_interval_ms: 200 };
    delete config.providers.replpoll.webhook_secret;
    config.models[POLL_ALIAS] = {
      kind: 'image', strategy: 'ordered',
      deployments: [{ provider: 'replpoll', model: MODEL, price: { per_image: 0.003 } }],
    };
    config.providers.falpoll = { ...config.providers.fal, poll_interval_ms: 200 };
    config.providers.fal.webhook_public_keys = [falPublicX(FAL_SEED)];
    config.models[FAL_POLL_ALIAS] = {
      kind: 'image', strategy: 'ordered',
      deployments: [{ provider: 'falpoll', model: FAL_MODEL, price: { per_image: 0.025 } }],
    };
    sluice = await cl.startSluice('serve', config, { env: { SLUICE_TEST_REPLICATE_WHSEC: SECRET } });
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    anon = cl.client(sluice.baseUrl, null);
  });
  after(() => cl.stop());

  async function submitImage(alias, prompt) {
    const res = await api.submit('image', { model: alias, prompt, n: 1, size: '1024x1024' });
    assert.equal(res.status, 202, res.text);
    return res.json.id;
  }

  async function task(id) {
    const res = await api.getTask(id);
    assert.equal(res.status, 200, res.text);
    return res.json;
  }

  /** The create request the mock recorded for a prompt, and the prediction id it answered. */
  async function createOf(prompt) {
    const stats = await mock.stats();
    const creates = mockRequests(stats, `/replicate/v1/models/${MODEL}/predictions`)
      .filter((r) => recordedBody(r)?.input?.prompt === prompt);
    assert.equal(creates.length, 1, `one create for "${prompt}"`);
    return recordedBody(creates[0]);
  }

  async function pollsOf(predictionId) {
    const stats = await mock.stats();
    return mockRequests(stats, `/replicate/v1/predictions/${predictionId}`).filter((r) => r.method === 'GET').length;
  }

  /** The upstream prediction id of a task, once it has one. */
  async function predictionOf(id) {
    let up;
    await waitFor(async () => {
      up = (await task(id)).provider?.upstream_id;
      return typeof up === 'string' && up.length > 0;
    }, { timeoutMs: 10000, intervalMs: 100, what: `task ${id} submitted upstream` });
    return up;
  }

  function callback(provider, id, { body = '{"id":"x","status":"succeeded"}', msgId = `msg_${crypto.randomBytes(8).toString('hex')}`,
    ts = Math.floor(Date.now() / 1000), secret = SECRET, signature, headers } = {}) {
    const h = headers ?? {
      'webhook-id': msgId,
      'webhook-timestamp': String(ts),
      'webhook-signature': signature ?? sign(secret, msgId, ts, body),
    };
    return anon.request('POST', `/v1/provider_callbacks/${provider}/${id}`, { rawBody: body, headers: h });
  }

  test('a Replicate job completes on its callback, long before its next poll', async () => {
    const prompt = `callback ${crypto.randomBytes(4).toString('hex')}`;
    const sentBefore = (await mock.stats()).webhooks_sent;
    const t0 = Date.now();
    const id = await submitImage(ALIAS, prompt);
    let last;
    await waitFor(async () => {
      last = await task(id);
      return last.status === 'completed' || last.status === 'failed';
    }, { timeoutMs: 10000, intervalMs: 100, what: `task ${id} finished within 10 s` });
    assert.equal(last.status, 'completed', JSON.stringify(last));
    assert.ok(Date.now() - t0 < 10000);
    const create = await createOf(prompt);
    assert.equal(create.webhook, `${callbackBase}/v1/provider_callbacks/replicate/${id}`);
    assert.deepEqual(create.webhook_events_filter, ['completed']);
    const pid = last.provider.upstream_id;
    assert.equal(await pollsOf(pid), 1, 'exactly one poll: the one the callback made due');
    assert.equal((await mock.stats()).webhooks_sent, sentBefore + 1);
    // a second, valid callback for the finished task: 200 and nothing more happens
    const again = await callback('replicate', id);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, { ok: true });
    await sleep(500);
    assert.equal(await pollsOf(pid), 1);
    assert.equal((await task(id)).status, 'completed');
  });

  test('a bad, stale or missing signature is 401 and changes nothing; a good one polls once', async () => {
    await mock.config({ job_ms: LONG_JOB_MS });
    try {
      const id = await submitImage(ALIAS, `long ${crypto.randomBytes(4).toString('hex')}`);
      const pid = await predictionOf(id);
      await sleep(300); // parked after the submit
      assert.equal((await task(id)).status, 'in_progress');
      assert.equal(await pollsOf(pid), 0);

      const bad = await callback('replicate', id, { secret: OTHER_SECRET });
      assert.equal(bad.status, 401, bad.text);
      assert.equal(bad.json?.error?.type, 'authentication_error', bad.text);
      const tampered = await callback('replicate', id, { signature: sign(SECRET, 'msg_other', Math.floor(Date.now() / 1000), 'x') });
      assert.equal(tampered.status, 401, tampered.text);
      const stale = await callback('replicate', id, { ts: Math.floor(Date.now() / 1000) - 600 });
      assert.equal(stale.status, 401, stale.text);
      const future = await callback('replicate', id, { ts: Math.floor(Date.now() / 1000) + 600 });
      assert.equal(future.status, 401, future.text);
      const none = await callback('replicate', id, { headers: {} });
      assert.equal(none.status, 401, none.text);
      await sleep(1000);
      assert.equal((await task(id)).status, 'in_progress');
      assert.equal(await pollsOf(pid), 0, 'a refused callback makes no poll due');

      // one signature of several (a rotation) is enough
      const msgId = 'msg_rotation_1';
      const ts = Math.floor(Date.now() / 1000);
      const body = '{"id":"x"}';
      const good = await callback('replicate', id, {
        body, msgId, ts, signature: `${sign(OTHER_SECRET, msgId, ts, body)} ${sign(SECRET, msgId, ts, body)}`,
      });
      assert.equal(good.status, 200, good.text);
      assert.deepEqual(good.json, { ok: true });
      await waitFor(async () => (await pollsOf(pid)) === 1, { timeoutMs: 5000, intervalMs: 100, what: 'the nudged poll' });
      await sleep(700);
      assert.equal(await pollsOf(pid), 1, 'exactly one poll, then parked for the interval again');
      assert.equal((await task(id)).status, 'in_progress');
      const cancel = await api.request('POST', `/v1/tasks/${id}/cancel`);
      assert.equal(cancel.status, 200, cancel.text);
    } finally {
      await mock.config({ job_ms: JOB_MS });
    }
  });

  test('unknown or unconfigured providers and bad ids are 404; oversize bodies 413', async () => {
    const id = randomTaskId();
    for (const [provider, tid] of [['nope', id], ['falpoll', id], ['replpoll', id], ['replicate', 'task_short'],
      ['replicate', `${id}x`]]) {
      const res = await callback(provider, tid);
      assert.equal(res.status, 404, `${provider}/${tid}: ${res.text}`);
      assert.equal(res.json?.error?.code, 'unknown_url', res.text); // OpenAI's answer to an unknown URL
    }
    const big = await callback('replicate', id, { body: `{"pad":"${'x'.repeat(70000)}"}` });
    assert.equal(big.status, 413, big.text.slice(0, 300));
    // a valid callback for a task that does not exist: 200, the provider may stop retrying
    const unknown = await callback('replicate', id);
    assert.equal(unknown.status, 200, unknown.text);
    assert.deepEqual(unknown.json, { ok: true });
  });

  test('without webhook_secret a job completes by polling', async () => {
    const prompt = `polled ${crypto.randomBytes(4).toString('hex')}`;
    const sentBefore = (await mock.stats()).webhooks_sent;
    const id = await submitImage(POLL_ALIAS, prompt);
    let last;
    await waitFor(async () => {
      last = await task(id);
      return last.status === 'completed' || last.status === 'failed';
    }, { timeoutMs: 10000, intervalMs: 100, what: `task ${id} finished by polling` });
    assert.equal(last.status, 'completed', JSON.stringify(last));
    const create = await createOf(prompt);
    assert.equal(create.webhook, undefined);
    assert.equal(create.webhook_events_filter, undefined);
    assert.ok((await pollsOf(last.provider.upstream_id)) >= 2, 'polled until done');
    assert.equal((await mock.stats()).webhooks_sent, sentBefore);
  });
  /** The fal submit the mock recorded for a prompt (its query holds fal_webhook). */
  async function falSubmitOf(prompt) {
    const stats = await mock.stats();
    const subs = mockRequests(stats, `/fal/${FAL_MODEL}`).filter((r) => recordedBody(r)?.prompt === prompt);
    assert.equal(subs.length, 1, `one fal submit for "${prompt}"`);
    return subs[0];
  }

  /** The status polls the mock recorded for a fal request id. */
  async function falPollsOf(requestId) {
    const stats = await mock.stats();
    return (stats.last_requests ?? []).filter((r) => r.method === 'GET'
      && (r.path ?? '').split('?')[0].endsWith(`/requests/${requestId}/status`)).length;
  }

  function falCallback(provider, id, { body = '{"request_id":"x","status":"OK","payload":{}}', seed = FAL_SEED,
    headers, ...opts } = {}) {
    const h = headers ?? falHeaders(seed, body, opts);
    return anon.request('POST', `/v1/provider_callbacks/${provider}/${id}`, { rawBody: body, headers: h });
  }

  test('a fal job completes on its ED25519-signed webhook, long before its next poll', async () => {
    const prompt = `fal callback ${crypto.randomBytes(4).toString('hex')}`;
    const sentBefore = (await mock.stats()).webhooks_sent;
    const t0 = Date.now();
    const id = await submitImage(FAL_ALIAS, prompt);
    let last;
    await waitFor(async () => {
      last = await task(id);
      return last.status === 'completed' || last.status === 'failed';
    }, { timeoutMs: 10000, intervalMs: 100, what: `fal task ${id} finished within 10 s` });
    assert.equal(last.status, 'completed', JSON.stringify(last));
    assert.ok(Date.now() - t0 < 10000);
    const sub = await falSubmitOf(prompt);
    const query = new URLSearchParams(sub.query ?? (sub.path ?? '').split('?')[1] ?? '');
    assert.equal(query.get('fal_webhook'), `${callbackBase}/v1/provider_callbacks/fal/${id}`);
    assert.equal((await mock.stats()).webhooks_sent, sentBefore + 1);
    const rid = last.provider.upstream_id;
    assert.equal(await falPollsOf(rid), 1, 'exactly one status poll: the one the callback made due');
    // a second valid callback for the finished task: 200 and nothing more happens
    const again = await falCallback('fal', id);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, { ok: true });
    await sleep(500);
    assert.equal(await falPollsOf(rid), 1);
    assert.equal((await task(id)).status, 'completed');
  });

  test('a fal callback with a bad signature or a stale timestamp is 401 and changes nothing', async () => {
    await mock.config({ job_ms: LONG_JOB_MS });
    try {
      const id = await submitImage(FAL_ALIAS, `fal long ${crypto.randomBytes(4).toString('hex')}`);
      const rid = await predictionOf(id);
      await sleep(300); // parked after the submit
      assert.equal((await task(id)).status, 'in_progress');
      assert.equal(await falPollsOf(rid), 0);

      const other = await falCallback('fal', id, { seed: FAL_OTHER_SEED });
      assert.equal(other.status, 401, other.text);
      assert.equal(other.json?.error?.type, 'authentication_error', other.text);
      const body = '{"request_id":"x","status":"OK","payload":{}}';
      const flipped = await falCallback('fal', id, { body: body.replace('OK', 'OL'), headers: falHeaders(FAL_SEED, body) });
      assert.equal(flipped.status, 401, flipped.text);
      const stale = await falCallback('fal', id, { ts: Math.floor(Date.now() / 1000) - 600 });
      assert.equal(stale.status, 401, stale.text);
      const future = await falCallback('fal', id, { ts: Math.floor(Date.now() / 1000) + 600 });
      assert.equal(future.status, 401, future.text);
      const badHex = await falCallback('fal', id, { headers: { ...falHeaders(FAL_SEED, body), 'X-Fal-Webhook-Signature': 'zz' } });
      assert.equal(badHex.status, 401, badHex.text);
      const none = await falCallback('fal', id, { headers: {} });
      assert.equal(none.status, 401, none.text);
      // Standard Webhooks headers mean nothing to a fal provider
      const std = await callback('fal', id);
      assert.equal(std.status, 401, std.text);
      await sleep(1000);
      assert.equal((await task(id)).status, 'in_progress');
      assert.equal(await falPollsOf(rid), 0, 'a refused callback makes no poll due');

      const good = await falCallback('fal', id);
      assert.equal(good.status, 200, good.text);
      assert.deepEqual(good.json, { ok: true });
      await waitFor(async () => (await falPollsOf(rid)) === 1, { timeoutMs: 5000, intervalMs: 100, what: 'the nudged fal poll' });
      await sleep(700);
      assert.equal(await falPollsOf(rid), 1, 'exactly one poll, then parked for the interval again');
      assert.equal((await task(id)).status, 'in_progress');
      const cancel = await api.request('POST', `/v1/tasks/${id}/cancel`);
      assert.equal(cancel.status, 200, cancel.text);
    } finally {
      await mock.config({ job_ms: JOB_MS });
    }
  });

  test('a fal provider without webhook_public_keys completes by polling', async () => {
    const prompt = `fal polled ${crypto.randomBytes(4).toString('hex')}`;
    const sentBefore = (await mock.stats()).webhooks_sent;
    const id = await submitImage(FAL_POLL_ALIAS, prompt);
    let last;
    await waitFor(async () => {
      last = await task(id);
      return last.status === 'completed' || last.status === 'failed';
    }, { timeoutMs: 10000, intervalMs: 100, what: `fal task ${id} finished by polling` });
    assert.equal(last.status, 'completed', JSON.stringify(last));
    const sub = await falSubmitOf(prompt);
    assert.equal(new URLSearchParams(sub.query ?? '').get('fal_webhook'), null);
    assert.ok((await falPollsOf(last.provider.upstream_id)) >= 2, 'polled until done');
    assert.equal((await mock.stats()).webhooks_sent, sentBefore);
  });
});
