// Bulk submit: POST /v1/tasks {"tasks": [...]} with 1,000 items in one request. Bad items are
// reported by index with an OpenAI error object; the good ones are created (and complete); the
// answer lists every item in order.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, TASK_ID_RE } from './lib/harness.mjs';

const N = 1000;
const BAD = new Map([
  [0, { kind: 'telepathy', input: { model: 'mock-chat', messages: [{ role: 'user', content: 'x' }] } }],
  [137, { kind: 'chat', input: { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] } }],
  [500, { kind: 'chat', input: { model: 'mock-chat', messages: [] } }],
  [999, { kind: 'chat', priority: 'urgent', input: { model: 'mock-chat', messages: [{ role: 'user', content: 'x' }] } }],
]);

describe('bulk submit', () => {
  const cl = new Cluster('bulk');
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    const mock = await cl.startMock();
    const sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('1,000 tasks in one request; bad items reported by index', { timeout: 180_000 }, async () => {
    const tasks = Array.from({ length: N }, (_, i) => BAD.get(i) ?? {
      kind: 'chat', metadata: { i: String(i) },
      input: { model: 'mock-chat', messages: [{ role: 'user', content: `bulk ${i}` }] },
    });
    const res = await api.request('POST', '/v1/tasks', { body: { tasks } });
    assert.equal(res.status, 202, res.text.slice(0, 500));
    const { data, created, failed } = res.json;
    assert.equal(res.json.object, 'list');
    assert.equal(data.length, N);
    assert.equal(created, N - BAD.size);
    assert.equal(failed, BAD.size);
    const ids = [];
    data.forEach((entry, i) => {
      assert.equal(entry.index, i);
      if (BAD.has(i)) {
        assert.equal(entry.task, undefined, `item ${i} is bad`);
        assert.equal(typeof entry.error.message, 'string');
        assert.equal(entry.error.type, 'invalid_request_error', JSON.stringify(entry));
        if (i === 137) assert.equal(entry.error.code, 'model_not_found', JSON.stringify(entry));
      } else {
        assert.match(entry.task.id, TASK_ID_RE);
        assert.equal(entry.task.status, 'queued');
        assert.deepEqual(entry.task.metadata, { i: String(i) });
        ids.push(entry.task.id);
      }
    });
    assert.equal(new Set(ids).size, ids.length, 'every created task has its own id');
    const done = await api.waitTerminal(ids, 120_000);
    assert.equal(done.filter((t) => t.status === 'completed').length, ids.length);

    // limits: empty, too many, and not an array
    for (const [body, what] of [[{ tasks: [] }, 'empty'], [{ tasks: {} }, 'object'],
      [{ tasks: Array.from({ length: 1001 }, () => tasks[1]) }, '1,001']]) {
      const r = await api.request('POST', '/v1/tasks', { body });
      assert.equal(r.status, 400, `${what}: ${r.text.slice(0, 200)}`);
      assert.equal(typeof r.json.error.message, 'string');
    }
  });
});
