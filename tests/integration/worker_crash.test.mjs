// A worker is killed with SIGKILL while 200 upstream calls are in flight. Separate api, scheduler
// and worker processes share one Redis; a new worker (with the scheduler recovering expired
// leases) must bring every task to `completed`, and terminal states must never change afterwards.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, mapLimit, waitFor, sleep, assertAccepted, assertCompletedChatTask } from './lib/harness.mjs';

const N = 200;
const LATENCY_MS = 3000;

describe('worker crash: kill -9 a worker mid-flight', () => {
  const cl = new Cluster('worker_crash');
  let redis;
  let mock;
  let api;
  let http;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock({ latencyMs: LATENCY_MS });
    api = await cl.startSluice('api', await cl.configFor({ redis, mock }));
    await cl.startSluice('scheduler', await cl.configFor({ redis, mock }));
    http = cl.client(api.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('every task completes exactly once after the crash', { timeout: 240_000 }, async () => {
    const contents = Array.from({ length: N }, (_, i) => `crash test task ${i} `.padEnd(40, '.'));
    const tasks = await mapLimit(contents, 64, async (c) => assertAccepted(await http.submitChat('mock-chat', c), api.baseUrl));
    const ids = tasks.map((t) => t.id);

    // The worker starts after the tasks are queued, so it claims them all within one latency.
    const worker1 = await cl.startSluice('worker', await cl.configFor({ redis, mock }));
    await waitFor(async () => (await mock.stats()).in_flight >= N,
      { timeoutMs: 20000, intervalMs: 50, what: `mock in_flight >= ${N}` });

    worker1.kill('SIGKILL');
    const exit = await worker1.waitExit(5000);
    assert.equal(exit.signal, 'SIGKILL');

    const worker2 = await cl.startSluice('worker', await cl.configFor({ redis, mock }));
    const done = await http.waitTerminal(ids, 120_000);

    const byStatus = {};
    for (const t of done) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
    const odd = done.find((t) => t.status !== 'completed');
    assert.deepEqual(byStatus, { completed: N },
      `final states: ${JSON.stringify(byStatus)}; e.g. ${JSON.stringify(odd)?.slice(0, 600)}`);
    done.forEach((t, i) => assertCompletedChatTask(t, { lastUserContent: contents[i] }));
    assert.ok(worker2.alive, 'the new worker is still running');

    // Terminal states are written once: re-read every task twice over a second.
    for (let round = 0; round < 2; round++) {
      await sleep(500);
      await mapLimit(done, 32, async (was) => {
        const res = await http.getTask(was.id);
        assert.equal(res.status, 200, res.text);
        const now = res.json;
        assert.equal(now.status, was.status, `task ${was.id} changed state after it was terminal`);
        assert.equal(now.completed_at, was.completed_at, `task ${was.id} completed_at changed`);
        assert.equal(now.attempts, was.attempts, `task ${was.id} attempts changed`);
        assert.deepEqual(now.result, was.result, `task ${was.id} result changed`);
      });
    }

    // At-least-once upstream: the killed worker's calls plus the retries; never fewer than N.
    const stats = await mock.stats();
    assert.ok(stats.by_path['/v1/chat/completions'] >= N, JSON.stringify(stats.by_path));
  });
});
