// Hardening of webhooks (issue 12, finding 4), on loopback only:
//  - fair share: tenant alpha's receiver answers each delivery after 3 s and alpha has a backlog
//    of 160 deliveries; tenant beta's receiver answers at once. Beta's deliveries arrive within
//    2 s of its submits while alpha's are still being delivered; alpha alone still runs many at
//    once, never more than its share (48 of the worker's 64); every delivery arrives once,
//    signed (standardwebhooks), and the delivery queue ends empty;
//  - the same with an alpha backlog longer than one claim looks at (900 deliveries due);
//  - a webhook URL curl would refuse, or one with credentials, another scheme, no host or over
//    2,048 characters, is a 400 naming webhook.url (tasks, bulk items, batches); good ones pass;
//  - an allow_hosts entry with a port (127.0.0.1:PORT, [::1]:PORT) allows that port only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { Cluster, assertErrorEnvelope, freePort, mapLimit, randomTaskId, sleep, waitFor } from './lib/harness.mjs';

const newSecret = () => 'whsec_' + crypto.randomBytes(24).toString('base64');
const SLOTS_PER_TENANT_MAX = 48; // of WEBHOOKS_MAX_IN_FLIGHT 64 (worker/webhooks.c)

/**
 * A receiver on host that answers 200 after delayMs. Counts what it has received, answered and
 * holds open at once (the most at once in maxOpen).
 */
async function startReceiver({ delayMs = 0, host = '127.0.0.1' } = {}) {
  const port = await freePort();
  const rx = { seen: [], answered: 0, open: 0, maxOpen: 0 };
  const timers = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      rx.seen.push({ headers: req.headers, body, at: Date.now() });
      rx.open++;
      rx.maxOpen = Math.max(rx.maxOpen, rx.open);
      const t = setTimeout(() => {
        timers.delete(t);
        rx.open--;
        rx.answered++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      }, delayMs);
      timers.add(t);
    });
  });
  await new Promise((r) => server.listen(port, host, r));
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return Object.assign(rx, {
    port,
    url: `http://${hostPart}:${port}/hook`,
    ids: () => new Set(rx.seen.map((m) => m.headers['webhook-id'])),
    close: () => new Promise((r) => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      server.close(r);
    }),
  });
}

function verify(secret, m) {
  const payload = new Webhook(secret).verify(m.body, {
    'webhook-id': m.headers['webhook-id'],
    'webhook-timestamp': m.headers['webhook-timestamp'],
    'webhook-signature': m.headers['webhook-signature'],
  });
  assert.equal(payload.type, 'task.completed');
  return payload;
}

describe('webhook hardening', () => {
  const cl = new Cluster('hardening_webhooks');
  const secrets = { alpha: newSecret(), beta: newSecret() };
  const webhooks = {
    secrets: { alpha: [secrets.alpha], beta: [secrets.beta] },
    retry_schedule_ms: [300, 600, 900],
    timeout_ms: 10000,
  };
  let mock;
  let redis;
  let alpha;
  let beta;

  before(async () => {
    mock = await cl.startMock({ latencyMs: 20 });
    redis = await cl.startRedis();
    const serve = await cl.startSluice('serve', await cl.configFor({
      redis, mock, overrides: { webhooks: { ...webhooks, allow_hosts: ['127.0.0.1'] } },
    }));
    alpha = cl.client(serve.baseUrl, cl.keys.alpha);
    beta = cl.client(serve.baseUrl, cl.keys.beta);
  });
  after(() => cl.stop());

  async function submitMany(client, n, url) {
    return mapLimit(Array.from({ length: n }, (_, i) => i), 16, async (i) => {
      const res = await client.submitChat('mock-chat', `hook ${i}`, { webhook: { url } });
      assert.equal(res.status, 202, res.text);
      return { id: res.json.id, at: Date.now() };
    });
  }

  /**
   * Alpha's backlog of `backlog` deliveries to a receiver answering after delayMs, then beta's 5
   * tasks: beta's deliveries must arrive within 2 s of their submits while alpha's are still
   * being delivered.
   */
  async function fairnessRun(t, backlog, delayMs, drainMs) {
    const slow = await startReceiver({ delayMs });
    const fast = await startReceiver();
    try {
      const a = await submitMany(alpha, backlog, slow.url);
      await alpha.waitTerminal(a.map((t) => t.id), 60000);
      // alpha's deliveries are all queued and its receiver holds as many as it is given
      await waitFor(async () => slow.open >= 32, { timeoutMs: 10000, what: 'alpha deliveries under way' });

      const b = await submitMany(beta, 5, fast.url);
      await waitFor(async () => fast.seen.length >= 5, { timeoutMs: 20000, what: "beta's 5 deliveries" });
      const answeredForAlpha = slow.answered;
      const byTask = new Map(fast.seen.map((m) => [JSON.parse(m.body).data.id, m.at]));
      const late = b.map((x) => (byTask.get(x.id) ?? Infinity) - x.at);
      t.diagnostic(`beta's deliveries ${late.join(', ')} ms after their submits; alpha answered ${answeredForAlpha} of ${backlog} by then`);
      for (const ms of late) {
        assert.ok(ms < 2000, `beta's delivery came ${ms} ms after its submit (alpha answered ${answeredForAlpha} of ${backlog})`);
      }
      assert.ok(answeredForAlpha < backlog / 2, `alpha was still being delivered (${answeredForAlpha} of ${backlog} answered)`);
      for (const m of fast.seen) assert.equal(verify(secrets.beta, m).data.status, 'completed');

      await waitFor(async () => slow.answered >= backlog, { timeoutMs: drainMs, intervalMs: 250, what: `all ${backlog} alpha deliveries` });
      await sleep(500);
      assert.equal(slow.seen.length, backlog, 'each alpha delivery once');
      assert.equal(slow.ids().size, backlog);
      assert.deepEqual(new Set(slow.seen.map((m) => verify(secrets.alpha, m).data.id)), new Set(a.map((t) => t.id)));
      t.diagnostic(`alpha: at most ${slow.maxOpen} at once, all ${backlog} delivered`);
      assert.ok(slow.maxOpen <= SLOTS_PER_TENANT_MAX, `alpha held ${slow.maxOpen} slots at once`);
      assert.ok(slow.maxOpen >= 40, `alpha alone still runs many at once (${slow.maxOpen})`);
      assert.equal(fast.seen.length, 5);
      await waitFor(async () => (await redis.cli('ZCARD', '{sl}:whq')) === '0',
        { timeoutMs: 5000, what: 'the delivery queue to be empty' });
    } finally {
      await slow.close();
      await fast.close();
    }
  }

  test('a tenant with slow receivers does not hold up another tenant', { timeout: 90_000 }, async (t) => {
    await fairnessRun(t, 160, 3000, 40000);
  });

  test('nor with a backlog longer than one claim scans', { timeout: 120_000 }, async (t) => {
    await fairnessRun(t, 900, 1000, 60000);
  });
});

describe('webhook URL rules and allow_hosts ports', () => {
  const cl = new Cluster('hardening_webhooks_urls');
  const secret = newSecret();
  let mock;
  let api; // an api process alone: tasks are validated and queued, nothing is delivered

  before(async () => {
    mock = await cl.startMock({ latencyMs: 20 });
    const redis = await cl.startRedis();
    const only = await cl.startSluice('api', await cl.configFor({
      redis, mock, overrides: { webhooks: { secrets: { alpha: [secret] } } },
    }));
    api = cl.client(only.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  const BAD = [
    ['http://127.0.0.1/hook\r\nX-Injected: 1', /space or control/],
    ['http://127.0.0.1/hook\nx', /space or control/],
    ['http://127.0.0.1/ho ok', /space or control/],
    ['http://127.0.0.1/hook\t', /space or control/],
    [' http://127.0.0.1/hook', /space or control/],
    ['http://h\u00e9llo.example/hook', /ASCII/],
    ['http://user:pw@127.0.0.1/hook', /credentials/],
    ['http://user@127.0.0.1/hook', /credentials/],
    ['http://:pw@127.0.0.1/hook', /credentials/],
    ['ftp://127.0.0.1/hook', /http or https/],
    ['javascript:alert(1)', /http or https|not a valid URL/],
    ['http:///hook', /host|not a valid URL/],
    ['http://', /host|not a valid URL/],
    ['127.0.0.1/hook', /not a valid URL|http or https/],
    ['http://127.0.0.1:99999/hook', /not a valid URL/],
    ['http://127.0.0.1:8x/hook', /not a valid URL/],
    ['http://[::1/hook', /not a valid URL/],
    ['', /http\(s\) URL|not a valid URL/],
    [`http://127.0.0.1/${'a'.repeat(2100)}`, /2048/],
  ];

  test('a URL curl would refuse, with credentials, another scheme or no host is a 400 naming webhook.url', { timeout: 30_000 }, async () => {
    for (const [url, why] of BAD) {
      const res = await api.submitChat('mock-chat', 'x', { webhook: { url } });
      const what = JSON.stringify(url).slice(0, 80);
      assertErrorEnvelope(res, 400);
      assert.equal(res.json.error.type, 'invalid_request_error', what);
      assert.equal(res.json.error.param, 'webhook.url', `${what}: ${res.text}`);
      assert.match(res.json.error.message, why, `${what}: ${res.json.error.message}`);
      assert.ok(!res.json.error.message.includes('pw@'), 'the message does not echo credentials');
    }
    // the same rule for a bulk item and a batch
    const bulk = await api.request('POST', '/v1/tasks', { body: { tasks: [
      { kind: 'chat', input: { model: 'mock-chat', messages: [{ role: 'user', content: 'ok' }] } },
      { kind: 'chat', input: { model: 'mock-chat', messages: [{ role: 'user', content: 'x' }] }, webhook: { url: 'http://a:b@127.0.0.1/x' } },
    ] } });
    const item = bulk.json?.data?.[1];
    assert.equal(item?.error?.param, 'webhook.url', bulk.text);
    const batch = await api.request('POST', '/v1/batches', { body: {
      input_file_id: `file_${randomTaskId().slice(5)}`, endpoint: '/v1/chat/completions', completion_window: '24h',
      webhook: { url: 'http://127.0.0.1/a b' },
    } });
    assertErrorEnvelope(batch, 400);
    assert.equal(batch.json.error.param, 'webhook.url', batch.text);
  });

  test('good URLs are kept as given', { timeout: 30_000 }, async () => {
    const good = [
      'https://hooks.example.com/a/b?c=d&e=%20f#frag',
      'http://127.0.0.1:8080/x',
      'http://[::1]:9/x',
      'HTTPS://Hooks.Example.COM',
      `https://hooks.example.com/${'a'.repeat(2000)}`,
    ];
    for (const url of good) {
      const res = await api.submitChat('mock-chat', 'x', { webhook: { url } });
      assert.equal(res.status, 202, `${url.slice(0, 80)}: ${res.text}`);
      const task = (await api.getTask(res.json.id)).json;
      assert.equal(task.webhook?.url, url, JSON.stringify(task.webhook)?.slice(0, 200));
    }
  });
});

describe('allow_hosts entries with a port', () => {
  const cl = new Cluster('hardening_webhooks_ports');
  const secret = newSecret();
  let api;
  const rx = {};

  before(async () => {
    const mock = await cl.startMock({ latencyMs: 20 });
    const redis = await cl.startRedis();
    rx.v4ok = await startReceiver();
    rx.v4other = await startReceiver();
    rx.v6ok = await startReceiver({ host: '::1' });
    rx.v6other = await startReceiver({ host: '::1' });
    const allow = [`127.0.0.1:${rx.v4ok.port}`, `[::1]:${rx.v6ok.port}`];
    const serve = await cl.startSluice('serve', await cl.configFor({
      redis, mock, overrides: { webhooks: { secrets: { alpha: [secret] }, allow_hosts: allow, timeout_ms: 3000 } },
    }));
    api = cl.client(serve.baseUrl, cl.keys.alpha);
  });
  after(async () => {
    for (const r of Object.values(rx)) await r.close();
    await cl.stop();
  });

  test('127.0.0.1:PORT and [::1]:PORT allow that port only', { timeout: 30_000 }, async () => {
    const ids = {};
    for (const [name, r] of Object.entries(rx)) {
      const res = await api.submitChat('mock-chat', name, { webhook: { url: r.url } });
      assert.equal(res.status, 202, res.text);
      ids[name] = res.json.id;
    }
    const attempts = async (name) => (await api.getTask(ids[name])).json.webhook_attempts ?? [];
    await waitFor(async () => {
      for (const name of Object.keys(rx)) if ((await attempts(name)).length === 0) return false;
      return true;
    }, { timeoutMs: 15000, what: 'one attempt per task' });
    await sleep(1000);
    for (const name of ['v4ok', 'v6ok']) {
      assert.equal(rx[name].seen.length, 1, `${name} got its delivery`);
      verify(secret, rx[name].seen[0]);
      assert.deepEqual((await attempts(name)).map((a) => a.outcome), ['delivered'], name);
    }
    for (const name of ['v4other', 'v6other']) {
      assert.equal(rx[name].seen.length, 0, `nothing reached ${name}`);
      const list = await attempts(name);
      assert.deepEqual(list.map((a) => a.outcome), ['failed'], name);
      assert.match(list[0].error, /refused/, name);
    }
  });
});
