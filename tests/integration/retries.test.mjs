// Retry policy against provider failures: retryable 5xx are retried with backoff up to
// max_attempts (3); a 400 fails at once with the provider's message; and the mock's request count
// shows exactly how many upstream calls each case made. Last, many outcomes at once: a worker
// sends all the outcomes of a loop turn in one FINISH call, which must apply each as if alone.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, sleep, waitFor, mapLimit, assertAccepted, assertCompletedChatTask, assertTaskError } from './lib/harness.mjs';

describe('retries: provider failures and the retry policy', () => {
  const cl = new Cluster('retries');
  let mock;
  let sluice;
  let api;

  // One task with the mock configured by `mockConfig`; returns its terminal task object.
  async function runOne(mockConfig, content) {
    await mock.reset();
    await mock.config(mockConfig);
    const task = assertAccepted(await api.submitChat('mock-chat', content), sluice.baseUrl);
    const [done] = await api.waitTerminal([task.id], 30_000, { intervalMs: 100 });
    return done;
  }

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock();
    // The breaker stays out of it: the last test's 30 % error rate could trip it by chance, and
    // its cool-down would only stretch the run (the failover tests cover the breaker).
    const overrides = { breaker: { min_requests: 100000 } };
    sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock, overrides }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('two 500s, then success: completes on attempt 3', async () => {
    const content = 'retry me after two 500s';
    const task = await runOne({ fail_first: 2, error_status: 500 }, content);
    assertCompletedChatTask(task, { lastUserContent: content, attempts: 3 });
    const stats = await mock.stats();
    assert.equal(await mock.chatCount(), 3, 'three upstream calls');
    assert.deepEqual(stats.by_status, { 200: 1, 500: 2 });
  });

  test('a 400 fails at once with the provider message, never retried', async () => {
    const task = await runOne({ error_status: 400, error_rate: 1, error_message: 'mock says: bad thing' }, 'this one is bad');
    assertTaskError(task, { retryable: false, providerStatus: 400, attempts: 1 });
    assert.ok(task.error.message.includes('mock says: bad thing'),
      `the provider's message verbatim, got "${task.error.message}"`);
    assert.equal(await mock.chatCount(), 1, 'exactly one upstream call');
    await sleep(2000);
    assert.equal(await mock.chatCount(), 1, 'no further upstream call after the failure');
    const again = await api.getTask(task.id);
    assert.equal(again.json.status, 'failed');
    assert.equal(again.json.attempts, 1);
  });

  test('503 every time: fails after max_attempts, retryable', async () => {
    const task = await runOne({ error_status: 503, error_rate: 1 }, 'always unavailable');
    assertTaskError(task, { retryable: true, providerStatus: 503, attempts: 3 });
    assert.equal(task.max_attempts, 3);
    assert.equal(await mock.chatCount(), 3, 'exactly max_attempts upstream calls');
    await sleep(1500);
    assert.equal(await mock.chatCount(), 3, 'no call after the task failed');
  });
  // 400 tasks at once with a 30 % chance of a 500 on every call: the worker's loop turns carry
  // completions, retries and final failures together in one FINISH call, which moves each task,
  // the deployment's shared state and the /metrics counters exactly as one call per outcome would.
  test('many outcomes per FINISH call: every task right, counters and call slots add up', { timeout: 120_000 }, async () => {
    const N = 400;
    await mock.reset();
    await mock.config({ error_status: 500, error_rate: 0.3 });
    const before = await api.metrics();
    const count = (m, status) => m.sum('sluice_tasks', { status });
    const ids = [];
    const content = new Map();
    await mapLimit(Array.from({ length: N }, (_, i) => i), 32, async (i) => {
      const id = assertAccepted(await api.submitChat('mock-chat', `together ${i}`), sluice.baseUrl).id;
      ids.push(id);
      content.set(id, `together ${i}`);
    });
    const done = await api.waitTerminal(ids, 90_000, { intervalMs: 200 });

    const completed = done.filter((t) => t.status === 'completed');
    const failed = done.filter((t) => t.status === 'failed');
    assert.equal(completed.length + failed.length, N, 'every task completed or failed');
    for (const t of completed) assertCompletedChatTask(t, { lastUserContent: content.get(t.id) });
    for (const t of failed) assertTaskError(t, { retryable: true, providerStatus: 500, attempts: 3 });
    assert.ok(completed.length > N / 2 && failed.length < N / 10,
      `a 30 % error rate over 3 attempts: most complete (${completed.length} completed, ${failed.length} failed)`);
    const attempts = done.reduce((a, t) => a + t.attempts, 0);
    const stats = await mock.stats();
    assert.equal(await mock.chatCount(), attempts, 'one upstream call per attempt recorded on the tasks');
    assert.ok((stats.by_status['500'] ?? 0) > 0, 'the mock answered some 500s');

    const after = await waitFor(async () => {
      const m = await api.metrics();
      return count(m, 'in_progress') === 0 && count(m, 'queued') === 0 ? m : null;
    }, { timeoutMs: 5000, what: 'no task left in_progress or queued in /metrics' });
    assert.equal(count(after, 'completed') - count(before, 'completed'), completed.length, 'completed gauge');
    assert.equal(count(after, 'failed') - count(before, 'failed'), failed.length, 'failed gauge');
    const calls = (m, status) => m.sum('sluice_upstream_calls_total', status ? { model: 'mock-chat', status } : { model: 'mock-chat' });
    assert.equal(calls(after) - calls(before), attempts, 'sluice_upstream_calls_total counts every call');
    assert.equal(calls(after, '500') - calls(before, '500'), stats.by_status['500'], 'the 500s counted');
    const latCount = (m) => m.sum('sluice_upstream_latency_seconds_count', { model: 'mock-chat' });
    assert.equal(latCount(after) - latCount(before), attempts, 'one latency sample per call');
    assert.equal(after.sum('sluice_deployment_in_flight', { model: 'mock-chat' }), 0, 'every call slot returned');
  });
});
