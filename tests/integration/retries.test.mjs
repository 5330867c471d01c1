// Retry policy against provider failures: retryable 5xx are retried with backoff up to
// max_attempts (3); a 400 fails at once with the provider's message; and the mock's request count
// shows exactly how many upstream calls each case made.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, sleep, assertAccepted, assertCompletedChatTask, assertTaskError } from './lib/harness.mjs';

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
    sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
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
});
