// Redis stops answering (SIGSTOP: the TCP connection stays up, replies never come). hiredis 0.14
// has no command timeout, so this proves sluice's own: every request that needs Redis answers 503
// within redis_timeout_ms plus slack instead of hanging, and once Redis resumes (SIGCONT) sluice
// is ready again by itself and every task that got a 202 completes.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, waitFor, sleep, assertAccepted, assertErrorEnvelope } from './lib/harness.mjs';

const REDIS_TIMEOUT_MS = 1000;
const SLACK_MS = 2500;

describe('redis stall: round trips time out, then recover', () => {
  const cl = new Cluster('redis_stall');
  let redis;
  let sluice;
  let api;

  before(async () => {
    redis = await cl.startRedis();
    const mock = await cl.startMock({ latencyMs: 300 });
    sluice = await cl.startSluice('serve', await cl.configFor({
      redis, mock, overrides: { redis_timeout_ms: REDIS_TIMEOUT_MS },
    }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(async () => {
    redis.proc?.kill('SIGCONT');
    await cl.stop();
  });

  test('503 within the timeout while Redis is stopped; all 202s complete after', { timeout: 120_000 }, async () => {
    const ids = [];
    for (let i = 0; i < 20; i++) {
      ids.push(assertAccepted(await api.submitChat('mock-chat', `before stall ${i}`), sluice.baseUrl).id);
    }

    redis.proc.kill('SIGSTOP');
    try {
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const res = await api.submitChat('mock-chat', `during stall ${i}`, { timeoutMs: 10000 });
        const took = Date.now() - t0;
        assert.ok(took <= REDIS_TIMEOUT_MS + SLACK_MS, `POST took ${took} ms while Redis was stopped`);
        assertErrorEnvelope(res, 503);
        const r0 = Date.now();
        const ready = await api.request('GET', '/readyz', { timeoutMs: 10000 });
        assert.ok(Date.now() - r0 <= REDIS_TIMEOUT_MS + SLACK_MS, 'readyz answered in time');
        assert.equal(ready.status, 503, ready.text);
        const got = await api.getTask(ids[0]);
        assert.equal(got.status, 503, got.text);
      }
      assert.ok(sluice.alive, 'sluice is still running');
    } finally {
      redis.proc.kill('SIGCONT');
    }

    await waitFor(async () => (await api.request('GET', '/readyz')).status === 200,
      { timeoutMs: 15000, intervalMs: 100, what: 'readyz 200 after SIGCONT' });
    for (let i = 0; i < 20; i++) {
      ids.push(assertAccepted(await api.submitChat('mock-chat', `after stall ${i}`), sluice.baseUrl).id);
    }
    const done = await api.waitTerminal(ids, 60_000);
    const byStatus = {};
    for (const t of done) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
    assert.deepEqual(byStatus, { completed: ids.length });
    await sleep(10);
  });
});
