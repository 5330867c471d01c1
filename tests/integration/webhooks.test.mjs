// Webhooks: Standard Webhooks deliveries verified by the `standardwebhooks` npm library (the
// receivers' reference implementation). A receiver on 127.0.0.1 scripted per test:
//  - 500, 500, then 200: delivered on the third attempt; the same webhook-id every time, a new
//    webhook-timestamp each time; every signature verifies; the attempts are on the task;
//  - 410: one attempt, no more;
//  - down for the whole test: attempts follow the (test-scaled) schedule, the task is completed;
//  - events asked for (task.started + task.completed) arrive, in order;
//  - rotation: two secrets sign every delivery, each signature verifies with its own secret;
//  - 127.0.0.1 is refused without webhooks.allow_hosts and delivered with it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { Cluster, freePort, sleep, waitFor } from './lib/harness.mjs';

const SCHEDULE_MS = [300, 600, 900];
const newSecret = () => 'whsec_' + crypto.randomBytes(24).toString('base64');

/** A receiver whose answers come from `script` (a list of statuses, last one repeats). */
async function startReceiver(script) {
  const port = await freePort();
  const seen = [];
  let answers = [...script];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      seen.push({ headers: req.headers, body, at: Date.now() });
      const status = answers.length > 1 ? answers.shift() : answers[0];
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}/hook`,
    seen,
    script(s) { answers = [...s]; },
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('webhooks', () => {
  const cl = new Cluster('webhooks');
  const secret = newSecret();
  const oldSecret = newSecret();
  let redis;
  let mock;
  let api;
  let apiRefusing;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock({ latencyMs: 300 });
    const webhooks = {
      secrets: { alpha: [secret, { secret: oldSecret, until: Math.floor(Date.now() / 1000) + 3600 }] },
      retry_schedule_ms: SCHEDULE_MS,
      timeout_ms: 2000,
    };
    const allowed = await cl.startSluice('serve', await cl.configFor({
      redis, mock, overrides: { webhooks: { ...webhooks, allow_hosts: ['127.0.0.1'] } },
    }));
    api = cl.client(allowed.baseUrl, cl.keys.alpha);
    // A second API with the same secrets but no allow list: a worker of its own refuses loopback.
    const refusingRedis = await cl.startRedis();
    const refusing = await cl.startSluice('serve', await cl.configFor({
      redis: refusingRedis, mock, overrides: { webhooks },
    }));
    apiRefusing = cl.client(refusing.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  function verifyAll(receiver) {
    for (const m of receiver.seen) {
      // standardwebhooks verifies one secret against every v1 signature in the header.
      for (const s of [secret, oldSecret]) {
        const payload = new Webhook(s).verify(m.body, {
          'webhook-id': m.headers['webhook-id'],
          'webhook-timestamp': m.headers['webhook-timestamp'],
          'webhook-signature': m.headers['webhook-signature'],
        });
        assert.equal(typeof payload.type, 'string');
      }
      assert.equal(m.headers['webhook-signature'].split(' ').length, 2, 'signed with both secrets');
    }
  }

  async function submit(client, url, events) {
    const res = await client.submitChat('mock-chat', 'webhook me', { webhook: events ? { url, events } : { url } });
    assert.equal(res.status, 202, res.text);
    return res.json.id;
  }

  test('500, 500, 200: delivered on the third attempt, same id, new timestamps', { timeout: 60_000 }, async () => {
    const rx = await startReceiver([500, 500, 200]);
    try {
      const id = await submit(api, rx.url);
      await waitFor(async () => rx.seen.length >= 3, { timeoutMs: 20000, what: 'three deliveries' });
      await sleep(1500); // nothing more may come
      assert.equal(rx.seen.length, 3);
      const ids = new Set(rx.seen.map((m) => m.headers['webhook-id']));
      assert.equal(ids.size, 1, 'webhook-id is stable across retries');
      const stamps = rx.seen.map((m) => m.headers['webhook-timestamp']);
      assert.ok(new Set(rx.seen.map((m) => m.body)).size === 1, 'the same body every time');
      assert.ok(stamps.every((s) => /^\d+$/.test(s)));
      verifyAll(rx);
      const body = JSON.parse(rx.seen[2].body);
      assert.equal(body.type, 'task.completed');
      assert.equal(body.data.id, id);
      assert.equal(body.data.status, 'completed');
      // the schedule: ~300 ms then ~600 ms (±10% jitter)
      assert.ok(rx.seen[1].at - rx.seen[0].at >= 250, 'first retry after ~300 ms');
      assert.ok(rx.seen[2].at - rx.seen[1].at >= 500, 'second retry after ~600 ms');
      const task = (await api.getTask(id)).json;
      const attempts = task.webhook_attempts;
      assert.equal(attempts.length, 3, JSON.stringify(task));
      assert.deepEqual(attempts.map((a) => a.status), [500, 500, 200]);
      assert.deepEqual(attempts.map((a) => a.outcome), ['retry', 'retry', 'delivered']);
      for (const a of attempts) {
        assert.equal(typeof a.at, 'number');
        assert.equal(typeof a.latency_ms, 'number');
      }
    } finally {
      await rx.close();
    }
  });

  test('410 stops the delivery after one attempt', { timeout: 30_000 }, async () => {
    const rx = await startReceiver([410]);
    try {
      const id = await submit(api, rx.url);
      await waitFor(async () => rx.seen.length >= 1, { timeoutMs: 15000, what: 'a delivery' });
      await sleep(2500);
      assert.equal(rx.seen.length, 1);
      const task = (await api.getTask(id)).json;
      assert.deepEqual(task.webhook_attempts.map((a) => a.outcome), ['stopped']);
    } finally {
      await rx.close();
    }
  });

  test('receiver down: attempts follow the schedule, the task is completed', { timeout: 30_000 }, async () => {
    const url = `http://127.0.0.1:${await freePort()}/nobody`;
    const id = await submit(api, url);
    await waitFor(async () => ((await api.getTask(id)).json.webhook_attempts ?? []).length >= SCHEDULE_MS.length + 1,
      { timeoutMs: 15000, what: 'every attempt of the schedule' });
    await sleep(1500);
    const task = (await api.getTask(id)).json;
    assert.equal(task.status, 'completed');
    const outcomes = task.webhook_attempts.map((a) => a.outcome);
    assert.deepEqual(outcomes, [...SCHEDULE_MS.map(() => 'retry'), 'failed']);
    assert.ok(task.webhook_attempts.every((a) => a.status === null && typeof a.error === 'string'));
  });

  test('events: task.started and task.completed, in order', { timeout: 30_000 }, async () => {
    const rx = await startReceiver([200]);
    try {
      const id = await submit(api, rx.url, ['task.started', 'task.completed']);
      await waitFor(async () => rx.seen.length >= 2, { timeoutMs: 15000, what: 'two events' });
      await sleep(500);
      const types = rx.seen.map((m) => JSON.parse(m.body).type);
      assert.deepEqual(types, ['task.started', 'task.completed']);
      assert.notEqual(rx.seen[0].headers['webhook-id'], rx.seen[1].headers['webhook-id']);
      assert.ok(rx.seen.every((m) => JSON.parse(m.body).data.id === id));
      verifyAll(rx);
    } finally {
      await rx.close();
    }
  });

  test('127.0.0.1 is refused without webhooks.allow_hosts', { timeout: 30_000 }, async () => {
    const rx = await startReceiver([200]);
    try {
      const id = await submit(apiRefusing, rx.url);
      await waitFor(async () => ((await apiRefusing.getTask(id)).json.webhook_attempts ?? []).length >= 1,
        { timeoutMs: 15000, what: 'the refused attempt' });
      await sleep(1000);
      assert.equal(rx.seen.length, 0, 'nothing reached the receiver');
      const task = (await apiRefusing.getTask(id)).json;
      assert.equal(task.webhook_attempts.length, 1);
      assert.equal(task.webhook_attempts[0].outcome, 'failed');
      assert.match(task.webhook_attempts[0].error, /refused/);
    } finally {
      await rx.close();
    }
  });

  test('a webhook needs a secret, an http(s) URL and known events', { timeout: 30_000 }, async () => {
    const bad = [
      [{ url: 'ftp://x' }, 400],
      [{ url: 'http://x', events: ['task.exploded'] }, 400],
      [{ url: 'http://x', events: [] }, 400],
    ];
    for (const [webhook, status] of bad) {
      const res = await api.submitChat('mock-chat', 'x', { webhook });
      assert.equal(res.status, status, `${JSON.stringify(webhook)}: ${res.text}`);
    }
    const beta = cl.client(api.baseUrl, cl.keys.beta); // beta has no secret configured
    const res = await beta.submitChat('mock-chat', 'x', { webhook: { url: 'http://127.0.0.1:9/x' } });
    assert.equal(res.status, 422, res.text);
  });
});
