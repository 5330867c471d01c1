// Every malformed, unauthorized or misdirected request gets the right status and OpenAI's error
// envelope; none creates a task; idempotency keys and cancel conflicts answer 409; and after all
// of it the server is still healthy and still completes work.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cluster, randomTaskId, sendLargeBody, assertAccepted, assertErrorEnvelope, assertCompletedChatTask,
} from './lib/harness.mjs';

const validBody = (content = 'hello') => ({
  kind: 'chat',
  input: { model: 'mock-chat', messages: [{ role: 'user', content }] },
});
const withInput = (input) => ({ kind: 'chat', input });
const DEPTH = 1000;
const deepBody = '{"kind":"chat","input":{"model":"mock-chat","messages":[{"role":"user","content":"deep"}],"x":' +
  '['.repeat(DEPTH) + ']'.repeat(DEPTH) + '}}';

describe('bad requests: statuses and the error envelope', () => {
  const cl = new Cluster('bad_requests');
  let sluice;
  let alpha;
  let betaTaskId;

  before(async () => {
    const redis = await cl.startRedis();
    const mock = await cl.startMock();
    sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    alpha = cl.client(sluice.baseUrl, cl.keys.alpha);
    const beta = cl.client(sluice.baseUrl, cl.keys.beta);
    betaTaskId = assertAccepted(await beta.submitChat('mock-chat', 'beta owns this'), sluice.baseUrl).id;
  });
  after(() => cl.stop());

  // key: 'alpha' (default), null for no Authorization, or a literal key. path may be a function,
  // evaluated when the case runs (after `before`).
  const cases = [
    { name: 'invalid JSON', rawBody: '{"kind": "chat", "input": ', status: 400 },
    { name: 'empty body', rawBody: '', status: 400 },
    { name: 'JSON array body', body: [validBody()], status: 400 },
    { name: 'JSON string body', rawBody: '"chat"', status: 400 },
    { name: 'missing kind', body: { input: validBody().input }, status: 400 },
    { name: 'kind as a number', body: { ...validBody(), kind: 1 }, status: 400 },
    { name: 'unknown kind "telepathy"', body: { ...validBody(), kind: 'telepathy' }, status: 400 },
    { name: 'missing input', body: { kind: 'chat' }, status: 400 },
    { name: 'input as a string', body: { kind: 'chat', input: 'hello' }, status: 400 },
    { name: 'input without messages', body: withInput({ model: 'mock-chat' }), status: 400 },
    { name: 'messages empty', body: withInput({ model: 'mock-chat', messages: [] }), status: 400 },
    { name: 'messages not an array', body: withInput({ model: 'mock-chat', messages: 'hi' }), status: 400 },
    {
      name: 'unknown model',
      body: withInput({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      status: 404,
    },
    { name: 'priority "urgent"', body: { ...validBody(), priority: 'urgent' }, status: 400 },
    { name: 'metadata a string', body: { ...validBody(), metadata: 'not an object' }, status: 400 },
    { name: 'metadata an array', body: { ...validBody(), metadata: ['a', 'b'] }, status: 400 },
    { name: `JSON nested ${DEPTH} deep`, rawBody: deepBody, status: 400 },
    { name: 'no Authorization', key: null, body: validBody(), status: 401 },
    { name: 'wrong key', key: 'sk-not-a-real-key', body: validBody(), status: 401 },
    { name: 'empty Bearer', key: null, headers: { authorization: 'Bearer ' }, body: validBody(), status: 401 },
    {
      name: 'Basic scheme with the right key',
      key: null,
      headers: () => ({ authorization: `Basic ${Buffer.from(`${cl.keys.alpha}:`).toString('base64')}` }),
      body: validBody(),
      status: 401,
    },
    { name: 'no Authorization on GET /v1/tasks', key: null, method: 'GET', path: '/v1/tasks', status: 401 },
    { name: "another tenant's task", method: 'GET', path: () => `/v1/tasks/${betaTaskId}`, status: 404 },
    { name: "cancel another tenant's task", method: 'POST', path: () => `/v1/tasks/${betaTaskId}/cancel`, status: 404 },
    { name: 'unknown task id', method: 'GET', path: () => `/v1/tasks/${randomTaskId()}`, status: 404 },
    { name: 'malformed task id', method: 'GET', path: '/v1/tasks/not-a-task-id', status: 404 },
    { name: 'cancel unknown task id', method: 'POST', path: () => `/v1/tasks/${randomTaskId()}/cancel`, status: 404 },
    { name: 'unknown route', method: 'GET', path: '/v1/no-such-thing', status: 404 },
    { name: 'DELETE /v1/tasks', method: 'DELETE', path: '/v1/tasks', status: 405 },
    { name: 'PUT /v1/tasks/{id}', method: 'PUT', path: () => `/v1/tasks/${randomTaskId()}`, body: {}, status: 405 },
    { name: 'list limit=0', method: 'GET', path: '/v1/tasks?limit=0', status: 400 },
    { name: 'list limit=1000', method: 'GET', path: '/v1/tasks?limit=1000', status: 400 },
    { name: 'list limit=abc', method: 'GET', path: '/v1/tasks?limit=abc', status: 400 },
  ];

  for (const c of cases) {
    test(`${c.name} → ${c.status}`, async () => {
      const key = c.key === undefined ? cl.keys.alpha : c.key;
      const http = cl.client(sluice.baseUrl, key);
      const path = typeof c.path === 'function' ? c.path() : (c.path ?? '/v1/tasks');
      const headers = typeof c.headers === 'function' ? c.headers() : c.headers;
      const res = await http.request(c.method ?? 'POST', path, { body: c.body, rawBody: c.rawBody, headers });
      assertErrorEnvelope(res, c.status);
    });
  }

  test('a 10 MB body → 413', async () => {
    const body = JSON.stringify(validBody('x'.repeat(10 * 1024 * 1024)));
    const res = await sendLargeBody(sluice.baseUrl, cl.keys.alpha, 'POST', '/v1/tasks', body);
    assertErrorEnvelope(res, 413);
  });

  test('no rejected request created a task', async () => {
    const res = await alpha.list({ limit: 100 });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.data.map((t) => t.id), [], 'alpha has no tasks yet');
  });

  test('Idempotency-Key: same body → same task, other body → 409', async () => {
    const key = `idem-${randomTaskId()}`;
    const headers = { 'Idempotency-Key': key };
    const first = assertAccepted(await alpha.submitChat('mock-chat', 'idempotent', { headers }), sluice.baseUrl);
    const again = await alpha.submitChat('mock-chat', 'idempotent', { headers });
    assert.equal(again.status, 202, again.text);
    assert.equal(again.json.id, first.id, 'the same key and body return the same task');
    const other = await alpha.submitChat('mock-chat', 'a different body', { headers });
    assertErrorEnvelope(other, 409);
    const fresh = assertAccepted(await alpha.submitChat('mock-chat', 'idempotent'), sluice.baseUrl);
    assert.notEqual(fresh.id, first.id, 'without the key the same body is a new task');
    await alpha.waitTerminal([first.id, fresh.id], 30_000);
  });

  test('cancel of a completed task → 409, and it stays completed', async () => {
    const task = assertAccepted(await alpha.submitChat('mock-chat', 'finish first'), sluice.baseUrl);
    const [done] = await alpha.waitTerminal([task.id], 30_000);
    assertCompletedChatTask(done, { lastUserContent: 'finish first' });
    assertErrorEnvelope(await alpha.cancel(task.id), 409);
    const after = await alpha.getTask(task.id);
    assert.equal(after.json.status, 'completed');
    assert.deepEqual(after.json.result, done.result);
  });

  test('after all of that the server is healthy and completes work', async () => {
    const health = await alpha.request('GET', '/healthz');
    assert.equal(health.status, 200);
    assert.ok(sluice.alive, 'sluice did not crash');
    const task = assertAccepted(await alpha.submitChat('mock-chat', 'still alive?'), sluice.baseUrl);
    const [done] = await alpha.waitTerminal([task.id], 30_000);
    assertCompletedChatTask(done, { lastUserContent: 'still alive?', attempts: 1 });
  });
});
