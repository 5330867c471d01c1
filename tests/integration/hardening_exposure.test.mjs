// Issue 12, findings 9 and 10: what sluice shows and to whom, and routing state lost from Redis.
// - /metrics on the public listener answers only an admin key (admin_keys); metrics_listen serves
//   it without a key on its own (loopback) address and serves nothing else there.
// - /v1/models shows a tenant its aliases with kind, price and limits, never provider names or
//   upstream models; /v1/admin/models (admin key) has the deployments.
// - an alias's routing deleted from Redis (a flush, an older snapshot): the next task of that alias
//   still completes (the worker publishes the routing again when CLAIM reports it missing), the
//   worker warns once, and /metrics counts it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, ADMIN_KEY, freePort, parseMetrics, waitFor } from './lib/harness.mjs';

describe('exposure and lost routing', () => {
  const cl = new Cluster('hardening_exposure');
  let redis;
  let sluice;
  let api;
  let metricsUrl;

  before(async () => {
    redis = await cl.startRedis();
    const mock = await cl.startMock({});
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    const config = await cl.configFor({ redis, mock, overrides: { metrics_listen: `127.0.0.1:${metricsPort}` } });
    sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl);
  });
  after(() => cl.stop());

  test('/metrics: admin key on the public listener, no key on metrics_listen', { timeout: 30_000 }, async () => {
    const none = await fetch(`${sluice.baseUrl}/metrics`);
    assert.equal(none.status, 401);
    const body = await none.json();
    assert.equal(body.error.code, 'admin_key_required');
    assert.doesNotMatch(JSON.stringify(body), /sluice_/, 'no metric leaks in the refusal');
    const tenant = await fetch(`${sluice.baseUrl}/metrics`, { headers: { authorization: `Bearer ${cl.keys.alpha}` } });
    assert.equal(tenant.status, 401, 'a tenant key is not an admin key');
    const admin = await fetch(`${sluice.baseUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(admin.status, 200);
    assert.ok(parseMetrics(await admin.text()).families.includes('sluice_tasks_accepted_total'));
    const listener = await fetch(`${metricsUrl}/metrics`);
    assert.equal(listener.status, 200);
    assert.ok(parseMetrics(await listener.text()).families.includes('sluice_store_up'));
    // the metrics listener is not a second API
    const other = await fetch(`${metricsUrl}/v1/models`, { headers: { authorization: `Bearer ${cl.keys.alpha}` } });
    assert.equal(other.status, 404);
  });

  test('/v1/models: tenants see kind, price and limits; the admin view has the deployments', { timeout: 30_000 }, async () => {
    const res = await api.request('GET', '/v1/models');
    assert.equal(res.status, 200);
    const m = res.json.data.find((x) => x.id === 'mock-chat');
    assert.equal(m.kind, 'chat');
    assert.equal(m.price.input_per_mtok, 0.15);
    assert.equal(m.price.currency, 'USD');
    assert.deepEqual(Object.keys(m.limits).sort(), ['max_concurrency', 'rpm', 'tpm']);
    const text = JSON.stringify(res.json);
    for (const internal of ['deployments', 'mock-gpt', '"provider"', 'strategy', 'base_url', cl.keys.mock]) {
      assert.ok(!text.includes(internal), `tenant view shows ${internal}: ${text}`);
    }
    const one = await api.request('GET', '/v1/models/mock-chat');
    assert.equal(one.status, 200);
    assert.equal(one.json.deployments, undefined);
    const admin = await api.request('GET', '/v1/admin/models/mock-chat', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(admin.status, 200);
    assert.equal(admin.json.deployments[0].model, 'mock-gpt');
    assert.equal(admin.json.deployments[0].provider, 'mock');
    assert.ok(!JSON.stringify(admin.json).includes(cl.keys.mock), 'never the provider key');
    assert.equal((await api.request('GET', '/v1/admin/models')).status, 401);
  });

  test('a routing deleted from Redis is published again and its tasks complete', { timeout: 60_000 }, async () => {
    const first = await api.submitChat('mock-chat', 'before the loss', { headers: { prefer: 'wait=10' } });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.status, 'completed');
    assert.equal(await redis.cli('EXISTS', '{sl}:cfg:mock-chat'), '1', 'the worker published it at start');
    await redis.cli('DEL', '{sl}:cfg:mock-chat');
    const t0 = Date.now();
    const res = await api.submitChat('mock-chat', 'after the loss', { headers: { prefer: 'wait=20' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, 'completed', JSON.stringify(res.json));
    assert.ok(Date.now() - t0 < 10_000, `completed in ${Date.now() - t0} ms`);
    assert.equal(await redis.cli('EXISTS', '{sl}:cfg:mock-chat'), '1', 'published again');
    const m = await api.metrics();
    assert.ok(m.get('sluice_routing_missing_total', { model: 'mock-chat' }) >= 1, 'counted in /metrics');
    await waitFor(() => sluice.proc.tail(500).includes('routing was missing'), { timeoutMs: 5000, what: 'the warning' });
    // once per alias per process, however many claims met it
    await redis.cli('DEL', '{sl}:cfg:mock-chat');
    const again = await api.submitChat('mock-chat', 'lost twice', { headers: { prefer: 'wait=20' } });
    assert.equal(again.json.status, 'completed');
    const warnings = sluice.proc.tail(2000).split('\n').filter((l) => l.includes('routing was missing'));
    assert.equal(warnings.length, 1, warnings.join('\n'));
  });
});
