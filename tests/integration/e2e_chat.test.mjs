// 1,000 chat tasks through `sluice serve` against sluice-mock: every task is accepted with 202 +
// Location, completes, and carries the full task object; the mock saw each request exactly once,
// with the provider key and the deployment's upstream model.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cluster, mapLimit, assertAccepted, assertCompletedChatTask, mockRequests, recordedHeader,
  recordedBody, CHAT_PATH,
} from './lib/harness.mjs';

const N = 1000;
const SUBMIT_CONCURRENCY = 64;

// Task i: a unique user message longer than the 64 bytes the mock echoes; every 4th task has a
// whole conversation (the mock answers the *last* user message); some carry metadata or a
// priority, which must come back verbatim.
function spec(i) {
  const tag = `e2e #${String(i).padStart(4, '0')} `;
  const last = tag + 'the quick brown fox jumps over the lazy dog '.repeat(3);
  const messages = i % 4 === 0
    ? [
      { role: 'system', content: 'You are a test.' },
      { role: 'user', content: `earlier question of ${tag}` },
      { role: 'assistant', content: 'an earlier answer' },
      { role: 'user', content: last },
    ]
    : [{ role: 'user', content: last }];
  const extra = {};
  if (i % 3 === 0) extra.metadata = { n: String(i), suite: 'e2e' };
  if (i % 5 === 1) extra.priority = 'interactive';
  if (i % 5 === 2) extra.priority = 'batch';
  return { i, last, messages, extra };
}

describe('e2e chat: 1,000 tasks through serve', () => {
  const cl = new Cluster('e2e_chat');
  let mock;
  let sluice;
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ record: N + 10 });
    sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('every task is accepted, completes, and has every field', { timeout: 300_000 }, async () => {
    const specs = Array.from({ length: N }, (_, i) => spec(i));

    const accepted = await mapLimit(specs, SUBMIT_CONCURRENCY, async (s) => {
      const res = await api.submitChat('mock-chat', s.messages, s.extra);
      const task = assertAccepted(res, sluice.baseUrl);
      assert.equal(task.priority, s.extra.priority ?? 'normal', `priority of task ${s.i}`);
      if (s.extra.metadata) assert.deepEqual(task.metadata, s.extra.metadata, `metadata of task ${s.i}`);
      assert.equal(task.attempts, 0, `a new task has made no attempt: ${res.text}`);
      assert.equal(task.max_attempts, 3);
      assert.equal(task.result, null);
      assert.equal(task.error, null);
      return task;
    });
    const ids = accepted.map((t) => t.id);
    assert.equal(new Set(ids).size, N, 'every task got its own id');

    const done = await api.waitTerminal(ids, 180_000);
    const notCompleted = done.filter((t) => t.status !== 'completed');
    assert.equal(notCompleted.length, 0,
      `${notCompleted.length} tasks did not complete, e.g. ${JSON.stringify(notCompleted[0])?.slice(0, 600)}`);

    done.forEach((task, i) => {
      const s = specs[i];
      assert.equal(task.id, ids[i]);
      assert.equal(task.created_at, accepted[i].created_at, 'created_at never changes');
      assertCompletedChatTask(task, {
        lastUserContent: s.last,
        attempts: 1,
        priority: s.extra.priority ?? 'normal',
        metadata: s.extra.metadata,
      });
    });

    const stats = await mock.stats();
    assert.equal(stats.by_path?.[CHAT_PATH], N, `mock chat requests: ${JSON.stringify(stats.by_path)}`);
    assert.deepEqual(stats.by_status, { 200: N }, 'every upstream call was answered 200 (no 401: the key was sent)');
    assert.equal(stats.in_flight, 0);

    const reqs = mockRequests(stats);
    assert.equal(reqs.length, N, 'the mock recorded every chat request');
    const seen = new Map();
    for (const r of reqs) {
      assert.equal(r.method, 'POST');
      assert.equal(recordedHeader(r, 'authorization'), `Bearer ${cl.keys.mock}`, 'provider key from env:SLUICE_TEST_MOCK_KEY');
      const body = recordedBody(r);
      assert.equal(body?.model, 'mock-gpt', 'the upstream model, not the alias');
      const msgs = body.messages;
      assert.ok(Array.isArray(msgs) && msgs.length >= 1, 'messages passed upstream');
      const last = msgs.at(-1).content;
      seen.set(last, (seen.get(last) ?? 0) + 1);
    }
    for (const s of specs) {
      assert.equal(seen.get(s.last), 1, `the mock should see task ${s.i}'s message exactly once`);
    }
    // Whole conversations are passed through, not just the last message.
    const convo = reqs.map(recordedBody).find((b) => b.messages.length === 4);
    assert.ok(convo, 'a 4-message conversation reached the mock intact');
    assert.deepEqual(convo.messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
  });
});
