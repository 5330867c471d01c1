// SIGTERM on `sluice serve`: it stops taking work, lets in-flight upstream calls finish for up to
// worker.shutdown_grace_ms, returns the rest to the queue and exits 0. A separate `api` process
// (stateless, it works on no task) watches the tasks across the restarts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, mapLimit, waitFor, assertAccepted, assertCompletedChatTask, CHAT_PATH } from './lib/harness.mjs';

describe('shutdown: SIGTERM drains or returns work', () => {
  const cl = new Cluster('shutdown');
  let redis;
  let mock;
  let api;
  let http;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock();
    api = await cl.startSluice('api', await cl.configFor({ redis, mock }));
    http = cl.client(api.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  const serveConfig = (graceMs) => cl.configFor({ redis, mock, overrides: { worker: { shutdown_grace_ms: graceMs } } });

  async function submit(n, label) {
    const contents = Array.from({ length: n }, (_, i) => `${label} ${i}`);
    const tasks = await mapLimit(contents, 16, async (c) => assertAccepted(await http.submitChat('mock-chat', c), api.baseUrl));
    return { ids: tasks.map((t) => t.id), contents };
  }

  async function statusesOf(ids) {
    const counts = {};
    await mapLimit(ids, 32, async (id) => {
      const res = await http.getTask(id);
      assert.equal(res.status, 200, res.text);
      counts[res.json.status] = (counts[res.json.status] ?? 0) + 1;
    });
    return counts;
  }

  async function quietMock(latencyMs) {
    await waitFor(async () => (await mock.stats()).in_flight === 0,
      { timeoutMs: 15000, intervalMs: 100, what: 'the mock to have no call in flight' });
    await mock.reset();
    await mock.config({ latency_ms: latencyMs });
  }

  test('grace 5 s > latency 1 s: in-flight calls finish, exit 0 within 8 s, all 50 complete once', { timeout: 120_000 }, async () => {
    await quietMock(1000);
    const s1 = await cl.startSluice('serve', await serveConfig(5000));
    const { ids, contents } = await submit(50, 'graceful shutdown');
    await waitFor(async () => (await mock.stats()).in_flight > 0,
      { timeoutMs: 10000, intervalMs: 20, what: 'an upstream call in flight' });

    const t0 = Date.now();
    s1.kill('SIGTERM');
    const exit = await s1.waitExit(8000);
    assert.equal(exit.code, 0, `serve exit: ${JSON.stringify(exit)} after ${Date.now() - t0} ms`);

    const between = await statusesOf(ids);
    assert.ok(!between.in_progress && !between.failed,
      `after a graceful exit no task is in_progress or failed: ${JSON.stringify(between)}`);

    const s2 = await cl.startSluice('serve', await serveConfig(5000));
    const done = await http.waitTerminal(ids, 60_000);
    done.forEach((t, i) => assertCompletedChatTask(t, { lastUserContent: contents[i] }));
    // The in-flight calls were allowed to finish, so no task needed a second upstream call.
    assert.equal(await mock.chatCount(), 50, 'each task called the provider exactly once');
    const exit2 = await s2.stop();
    assert.equal(exit2.code, 0, `idle serve exit: ${JSON.stringify(exit2)}`);
  });

  test('grace 0.5 s < latency 4 s: exit 0 within 3 s, the unfinished tasks are requeued and complete', { timeout: 120_000 }, async () => {
    await quietMock(4000);
    const s1 = await cl.startSluice('serve', await serveConfig(500));
    const { ids, contents } = await submit(30, 'hurried shutdown');
    await waitFor(async () => (await mock.stats()).in_flight >= 30,
      { timeoutMs: 3500, intervalMs: 20, what: 'all 30 upstream calls in flight' });

    const t0 = Date.now();
    s1.kill('SIGTERM');
    const exit = await s1.waitExit(3000);
    assert.equal(exit.code, 0, `serve exit: ${JSON.stringify(exit)} after ${Date.now() - t0} ms`);

    const between = await statusesOf(ids);
    assert.deepEqual(between, { queued: 30 }, 'the released tasks went back to the queue');

    await cl.startSluice('serve', await serveConfig(500));
    const done = await http.waitTerminal(ids, 60_000);
    const failed = done.filter((t) => t.status === 'failed');
    assert.equal(failed.length, 0, `no task failed, e.g. ${JSON.stringify(failed[0])?.slice(0, 500)}`);
    done.forEach((t, i) => assertCompletedChatTask(t, { lastUserContent: contents[i] }));
    assert.ok((await mock.stats()).by_path[CHAT_PATH] >= 60, 'each task was called again after its release');
  });
});
