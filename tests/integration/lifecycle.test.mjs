// Listing and cancelling. (a) With only the api role running nothing is worked on: the list pages
// newest first per tenant, filters by status, and a cancelled queued task stays cancelled once
// workers start. (b) Under serve, cancelling a task whose upstream call is in progress ends it
// `cancelled`, never `completed`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cluster, sleep, waitFor, assertAccepted, assertErrorEnvelope, assertTaskObject, assertCompletedChatTask,
  mockRequests, recordedBody,
} from './lib/harness.mjs';

describe('lifecycle: list and cancel', () => {
  const cl = new Cluster('lifecycle');
  let redis;
  let mock;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock();
  });
  after(() => cl.stop());

  // Walks alpha's list with `query` page by page (bounded) and returns the pages.
  async function pages(http, query, maxPages = 10) {
    const out = [];
    let after;
    for (let i = 0; i < maxPages; i++) {
      const res = await http.list({ ...query, after });
      assert.equal(res.status, 200, res.text);
      const page = res.json;
      assert.equal(page.object, 'list');
      assert.ok(Array.isArray(page.data));
      assert.equal(typeof page.has_more, 'boolean');
      if (page.data.length > 0) {
        assert.equal(page.first_id, page.data[0].id, 'first_id');
        assert.equal(page.last_id, page.data.at(-1).id, 'last_id');
      }
      page.data.forEach((t) => assertTaskObject(t));
      out.push(page);
      if (!page.has_more) return out;
      after = page.last_id;
    }
    assert.fail(`list still has_more after ${maxPages} pages`);
  }

  test('(a) api only: pagination, tenant isolation, status filter, cancel of a queued task', { timeout: 120_000 }, async () => {
    const api = await cl.startSluice('api', await cl.configFor({ redis, mock }));
    const alpha = cl.client(api.baseUrl, cl.keys.alpha);
    const beta = cl.client(api.baseUrl, cl.keys.beta);

    // Submitted one after another (a short pause keeps creation order unambiguous).
    const alphaIds = [];
    const contents = new Map();
    for (let i = 0; i < 25; i++) {
      const content = `lifecycle alpha ${i}`;
      const t = assertAccepted(await alpha.submitChat('mock-chat', content, { metadata: { i: String(i) } }), api.baseUrl);
      alphaIds.push(t.id);
      contents.set(t.id, content);
      await sleep(2);
    }
    const betaIds = [];
    for (let i = 0; i < 3; i++) {
      const content = `lifecycle beta ${i}`;
      const t = assertAccepted(await beta.submitChat('mock-chat', content), api.baseUrl);
      betaIds.push(t.id);
      contents.set(t.id, content);
    }

    const alphaPages = await pages(alpha, { limit: 10 });
    assert.deepEqual(alphaPages.map((p) => p.data.length), [10, 10, 5]);
    assert.deepEqual(alphaPages.map((p) => p.has_more), [true, true, false]);
    const listed = alphaPages.flatMap((p) => p.data.map((t) => t.id));
    assert.equal(new Set(listed).size, listed.length, 'no task listed twice');
    assert.deepEqual(listed, [...alphaIds].reverse(), 'exactly alpha\'s tasks, newest first');
    for (const id of betaIds) assert.ok(!listed.includes(id), 'beta\'s tasks are not in alpha\'s list');
    for (const p of alphaPages) for (const t of p.data) assert.equal(t.status, 'queued', 'no worker runs: all queued');

    const betaPages = await pages(beta, { limit: 100 });
    assert.deepEqual(betaPages.flatMap((p) => p.data.map((t) => t.id)), [...betaIds].reverse());

    const defaultPage = await alpha.list();
    assert.equal(defaultPage.status, 200);
    assert.equal(defaultPage.json.data.length, 20, 'default limit is 20');
    assert.equal(defaultPage.json.has_more, true);

    const queued = await pages(alpha, { status: 'queued', limit: 100 });
    assert.equal(queued.flatMap((p) => p.data).length, 25, 'status=queued: all of alpha\'s tasks');

    // Cancel a queued task.
    const victim = alphaIds[12];
    const cancelled = await alpha.cancel(victim);
    assert.equal(cancelled.status, 200, cancelled.text);
    assertTaskObject(cancelled.json);
    assert.equal(cancelled.json.id, victim);
    assert.equal(cancelled.json.status, 'cancelled', 'a queued task is cancelled at once');
    assert.equal((await alpha.getTask(victim)).json.status, 'cancelled');
    assertErrorEnvelope(await alpha.cancel(victim), 409);

    const queuedNow = (await pages(alpha, { status: 'queued', limit: 100 })).flatMap((p) => p.data.map((t) => t.id));
    assert.equal(queuedNow.length, 24);
    assert.ok(!queuedNow.includes(victim));
    const cancelledList = (await pages(alpha, { status: 'cancelled', limit: 100 })).flatMap((p) => p.data.map((t) => t.id));
    assert.deepEqual(cancelledList, [victim]);

    // Now let workers in: everything else completes, the cancelled task does not run.
    const workers = [
      await cl.startSluice('scheduler', await cl.configFor({ redis, mock })),
      await cl.startSluice('worker', await cl.configFor({ redis, mock })),
    ];
    const all = [...alphaIds, ...betaIds];
    const done = await alpha.waitTerminal(alphaIds, 60_000);
    const doneBeta = await beta.waitTerminal(betaIds, 60_000);
    for (const t of [...done, ...doneBeta]) {
      if (t.id === victim) {
        assert.equal(t.status, 'cancelled', 'the cancelled task stays cancelled');
        assert.equal(t.result, null);
      } else {
        assertCompletedChatTask(t, { lastUserContent: contents.get(t.id) });
      }
    }
    const stats = await mock.stats();
    assert.equal(stats.by_path['/v1/chat/completions'], all.length - 1, 'every task but the cancelled one went upstream once');
    const upstreamContents = mockRequests(stats).map((r) => recordedBody(r)?.messages?.at(-1)?.content);
    assert.ok(!upstreamContents.includes(contents.get(victim)), 'the cancelled task never reached the provider');
    await sleep(500);
    assert.equal((await alpha.getTask(victim)).json.status, 'cancelled');

    await Promise.all([api, ...workers].map((p) => p.stop()));
  });

  test('(b) serve: cancel an in-progress task → cancelled, never completed', { timeout: 120_000 }, async () => {
    await mock.reset();
    await mock.config({ latency_ms: 2000 });
    const sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    const alpha = cl.client(sluice.baseUrl, cl.keys.alpha);

    const task = assertAccepted(await alpha.submitChat('mock-chat', 'cancel me while I run'), sluice.baseUrl);
    await waitFor(async () => (await alpha.getTask(task.id)).json?.status === 'in_progress',
      { timeoutMs: 10000, intervalMs: 25, what: 'the task to be in_progress' });
    await waitFor(async () => (await mock.stats()).in_flight === 1,
      { timeoutMs: 1500, intervalMs: 25, what: 'its upstream call to be in flight' });

    const res = await alpha.cancel(task.id);
    assert.equal(res.status, 200, res.text);
    assert.ok(['cancelling', 'cancelled'].includes(res.json.status), `cancel answered ${res.json.status}`);

    const [done] = await alpha.waitTerminal([task.id], 20_000, { intervalMs: 50 });
    assert.equal(done.status, 'cancelled', `ended ${done.status}`);
    assert.equal(done.result, null);

    // After the mock's delayed answer would have arrived, it is still cancelled.
    await sleep(2500);
    const later = await alpha.getTask(task.id);
    assert.equal(later.json.status, 'cancelled');
    assert.equal(later.json.completed_at, done.completed_at);
    assertErrorEnvelope(await alpha.cancel(task.id), 409);
  });
});
