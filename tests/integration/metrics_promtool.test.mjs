// /metrics passes `promtool check metrics` (Debian's prometheus package; /usr/bin/promtool or
// $PROMTOOL): a `sluice serve` gets traffic of every kind that fills every family — completed and
// failed tasks, a provider 429, a webhook delivery, a tenant budget, response cache hits, stored
// bytes and usage, a batch, an alias whose name needs label escaping — then the page from the
// public listener (admin key) and from metrics_listen (no key) is piped to promtool, which must
// exit 0 and print nothing (no parse error, no lint problem). Every `# TYPE` family also has a
// `# HELP`, every family this traffic fills is on the page, and the odd alias's label reads back.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, ADMIN_KEY, freePort, parseMetrics, startWebhookReceiver, waitFor, TASK_ID_RE } from './lib/harness.mjs';

const PROMTOOL = process.env.PROMTOOL || '/usr/bin/promtool';
const ODD_ALIAS = 'odd "alias" \\ here';
const CACHED = 'mock-cached';
const SECRET = 'whsec_' + Buffer.from('metrics-promtool-test-secret-32b').toString('base64');

/** `promtool check metrics` over text on stdin: {code, out} (stdout and stderr together). */
function promtoolCheck(text) {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
    child.stdin.end(text);
  });
}

/** The families of `# TYPE` and `# HELP` lines: {types: Map name → type, helps: Set}. */
function metadata(text) {
  const types = new Map();
  const helps = new Set();
  for (const line of text.split('\n')) {
    let m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) types.set(m[1], m[2]);
    m = /^# HELP (\S+) \S/.exec(line);
    if (m) helps.add(m[1]);
  }
  return { types, helps };
}

/** POST /v1/files (purpose batch) as multipart/form-data with fetch; returns the file object. */
async function uploadBatchFile(baseUrl, key, jsonl) {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([jsonl], { type: 'application/jsonl' }), 'in.jsonl');
  const res = await fetch(`${baseUrl}/v1/files`, {
    method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form, signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /v1/files: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

describe('metrics: promtool check metrics on a live /metrics', () => {
  const cl = new Cluster('metrics-promtool');
  let mock;
  let sluice;
  let api;
  let admin;
  let receiver;
  let metricsUrl;
  let page; // the public listener's /metrics text after the traffic

  before(async () => {
    assert.ok(fs.existsSync(PROMTOOL), `promtool is required (Debian package prometheus): ${PROMTOOL} not found`);
    const redis = await cl.startRedis();
    mock = await cl.startMock();
    receiver = await startWebhookReceiver();
    const metricsPort = await freePort();
    const config = await cl.configFor({
      redis, mock,
      overrides: {
        metrics_listen: `127.0.0.1:${metricsPort}`,
        blobs: { dir: path.join(cl.dir, 'blobs') },
        webhooks: { secrets: { alpha: [SECRET] }, allow_hosts: ['127.0.0.1'] },
        breaker: { min_requests: 100000 },
      },
    });
    const dep = config.models['mock-chat'].deployments[0];
    Object.assign(dep, { rpm: 6000, tpm: 10000000, max_concurrency: 64 });
    config.models[CACHED] = { ...config.models['mock-chat'], cache: { ttl_s: 600 } };
    config.models[ODD_ALIAS] = { ...config.models['mock-chat'] };
    sluice = await cl.startSluice('serve', config);
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    admin = cl.client(sluice.baseUrl, ADMIN_KEY);

    // a budget (its gauges) before the tasks, so their spend counts against it
    const b = await admin.request('PUT', '/v1/admin/tenants/alpha/budget',
      { body: { policy: 'pace', limits: [{ window: 'day', max_usd: 100 }] } });
    assert.equal(b.status, 200, b.text.slice(0, 300));

    const ids = [];
    const submit = async (model, content, extra) => {
      const r = await api.submitChat(model, content, extra);
      assert.equal(r.status, 202, r.text.slice(0, 300));
      assert.match(r.json.id, TASK_ID_RE);
      ids.push(r.json.id);
    };
    // completed tasks, one of them on the odd alias
    await submit('mock-chat', 'plain one');
    await submit(ODD_ALIAS, 'odd one');
    await api.waitTerminal(ids, 30_000, { intervalMs: 100 });
    // a 429, then success on the retry
    await mock.config({ fail_first: 1, error_status: 429 });
    await submit('mock-chat', 'rate limited once');
    await api.waitTerminal(ids, 30_000, { intervalMs: 100 });
    // a failed task
    await mock.reset();
    await mock.config({ error_status: 400, error_rate: 1 });
    await submit('mock-chat', 'fails');
    await api.waitTerminal(ids, 30_000, { intervalMs: 100 });
    await mock.reset();
    // a webhook delivery
    await submit('mock-chat', 'webhook me', { webhook: { url: receiver.url } });
    await waitFor(() => receiver.seen.length >= 1, { timeoutMs: 20_000, what: 'a webhook delivery' });
    // cache: a miss, then a hit
    for (let i = 0; i < 2; i++) {
      const r = await api.request('POST', '/v1/chat/completions',
        { body: { model: CACHED, messages: [{ role: 'user', content: 'cache me' }] }, timeoutMs: 30_000 });
      assert.equal(r.status, 200, r.text.slice(0, 300));
    }
    // usage
    const u = await api.request('GET', '/v1/usage');
    assert.equal(u.status, 200, u.text.slice(0, 300));
    // a batch of two lines, to its end
    const line = (i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions',
      body: { model: 'mock-chat', messages: [{ role: 'user', content: `batch ${i}` }] } });
    const file = await uploadBatchFile(sluice.baseUrl, cl.keys.alpha, `${line(1)}\n${line(2)}\n`);
    const created = await api.request('POST', '/v1/batches',
      { body: { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' } });
    assert.equal(created.status, 200, created.text.slice(0, 300));
    let batch;
    await waitFor(async () => {
      batch = (await api.request('GET', `/v1/batches/${created.json.id}`)).json;
      return batch.status === 'completed';
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'the batch to complete' });

    // the webhook's attempt is counted when its outcome is recorded: wait for the counter
    await waitFor(async () => (await admin.metrics()).sum('sluice_webhook_attempts_total') >= 1,
      { timeoutMs: 20_000, intervalMs: 200, what: 'sluice_webhook_attempts_total >= 1' });
    const res = await admin.request('GET', '/metrics');
    assert.equal(res.status, 200, res.text.slice(0, 300));
    page = res.text;
  });
  after(async () => {
    await receiver?.close();
    await cl.stop();
  });

  test('promtool check metrics: exit 0, nothing printed', async () => {
    const r = await promtoolCheck(page);
    assert.equal(r.out, '', `promtool printed problems:\n${r.out}`);
    assert.equal(r.code, 0, `promtool exit ${r.code} (signal ${r.signal})`);
  });

  test('every # TYPE family has a # HELP, and every sample belongs to a typed family', () => {
    const { types, helps } = metadata(page);
    assert.ok(types.size >= 30, `${types.size} families`);
    for (const name of types.keys()) assert.ok(helps.has(name), `# HELP for ${name}`);
    for (const name of helps) assert.ok(types.has(name), `# TYPE for ${name}`);
    const m = parseMetrics(page);
    for (const s of m.samples) {
      assert.ok(s.name !== null, `a sample line that parses: ${s.bad}`);
      const family = types.has(s.name) ? s.name : s.name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(types.has(family), `sample ${s.name} has a # TYPE`);
    }
  });

  test('the traffic filled every family', () => {
    const m = parseMetrics(page);
    const some = (name, labels = {}) => assert.ok(m.all(name, labels).length > 0 && m.sum(name, labels) > 0,
      `${name}${JSON.stringify(labels)} > 0`);
    some('sluice_tasks_accepted_total');
    some('sluice_tasks', { status: 'completed' });
    some('sluice_tasks', { status: 'failed' });
    some('sluice_upstream_calls_total');
    some('sluice_upstream_latency_seconds_count');
    some('sluice_upstream_latency_seconds_bucket', { le: '+Inf' });
    some('sluice_provider_429_total', { model: 'mock-chat' });
    some('sluice_webhook_attempts_total');
    some('sluice_cache_requests_total', { outcome: 'hit' });
    some('sluice_spend_usd_total', { tenant: 'alpha', model: 'mock-chat' });
    some('sluice_tenant_storage_bytes', { tenant: 'alpha' });
    some('sluice_budget_max_usd', { subject: 't:alpha', window: 'day' });
    some('sluice_deployment_budget_requests', { model: 'mock-chat' });
    some('sluice_http_responses_total', { class: '2xx' });
    assert.ok(m.all('sluice_deployment_in_flight').length > 0, 'sluice_deployment_in_flight');
    assert.equal(m.get('sluice_store_up'), 1);
  });

  test('a label value with quotes and a backslash is escaped and reads back', () => {
    assert.ok(page.includes('model="odd \\"alias\\" \\\\ here"'), 'the escaped alias on the page');
    const m = parseMetrics(page);
    for (const name of ['sluice_upstream_calls_total', 'sluice_upstream_latency_seconds_count', 'sluice_spend_usd_total']) {
      assert.ok(m.sum(name, { model: ODD_ALIAS }) > 0, `${name} of the odd alias`);
    }
    assert.ok(m.all('sluice_queue_depth', { model: ODD_ALIAS }).length === 1, 'its queue depth');
    assert.ok(m.all('sluice_deployment_in_flight', { model: ODD_ALIAS }).length === 1, 'its deployment gauge');
  });

  test('metrics_listen serves a page promtool accepts too', async () => {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    assert.equal(res.status, 200, text.slice(0, 300));
    const r = await promtoolCheck(text);
    assert.equal(r.out, '', `promtool printed problems:\n${r.out}`);
    assert.equal(r.code, 0, `promtool exit ${r.code}`);
  });
});
