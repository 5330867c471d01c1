// Redis is killed with SIGKILL while clients keep submitting, and restarted on the same port and
// AOF directory 1.5 s later. During the outage sluice answers 503 quickly (readyz and POST); it
// reconnects by itself; and every task that was answered 202 — before, during or after the
// outage — completes: a 202 means the task is durable.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, waitFor, sleep, assertAccepted, assertErrorEnvelope } from './lib/harness.mjs';

const SUBMIT_FOR_MS = 6000;
const MAX_SUBMITS = 3000;
const LANES = 2;
const PAUSE_MS = 8; // between one lane's submissions: ~200/s in all, well under MAX_SUBMITS
const CRASH_AFTER_MS = 2000;
const MIN_OUTAGE_MS = 1500;

describe('redis restart: sluice survives a Redis crash', () => {
  const cl = new Cluster('redis_restart');
  let redis;
  let sluice;
  let api;

  before(async () => {
    redis = await cl.startRedis();
    const mock = await cl.startMock();
    sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('503 during the outage, reconnect after it, and every 202 completes', { timeout: 240_000 }, async (t) => {
    const accepted = [];
    const counts = {};
    const problems = [];
    const t0 = Date.now();
    let sent = 0;

    async function lane() {
      while (Date.now() - t0 < SUBMIT_FOR_MS && sent < MAX_SUBMITS) {
        const n = sent++;
        let res;
        try {
          res = await api.submitChat('mock-chat', `redis restart task ${n}`, { timeoutMs: 5000 });
        } catch (e) {
          problems.push(`submit ${n} at +${Date.now() - t0} ms: ${e.name}: ${e.message}`);
          continue;
        }
        counts[res.status] = (counts[res.status] ?? 0) + 1;
        if (res.status === 202) {
          accepted.push(res.json?.id);
        } else if (res.status === 503) {
          try {
            assertErrorEnvelope(res, 503);
          } catch (e) {
            problems.push(`submit ${n}: ${e.message}`);
          }
          await sleep(50);
        } else {
          problems.push(`submit ${n} at +${Date.now() - t0} ms: HTTP ${res.status} ${res.text.slice(0, 200)}`);
        }
        await sleep(PAUSE_MS);
      }
    }
    const submitting = Promise.all(Array.from({ length: LANES }, lane));

    await sleep(CRASH_AFTER_MS);
    const acceptedBeforeCrash = accepted.length;
    await redis.stop('SIGKILL');
    const killedAt = Date.now();

    await waitFor(async () => (await api.request('GET', '/readyz', { timeoutMs: 5000 })).status === 503,
      { timeoutMs: MIN_OUTAGE_MS, intervalMs: 100, what: '/readyz = 503 while Redis is down' });

    const probeStart = Date.now();
    let probe;
    try {
      probe = await api.submitChat('mock-chat', 'submitted during the outage', { timeoutMs: 5000 });
    } catch (e) {
      assert.fail(`POST /v1/tasks with Redis down must answer 503 within 5 s, got ${e.name}: ${e.message}`);
    }
    const probeMs = Date.now() - probeStart;
    assertErrorEnvelope(probe, 503);
    assert.ok(probeMs < 5000, `POST took ${probeMs} ms`);

    const outage = Date.now() - killedAt;
    if (outage < MIN_OUTAGE_MS) await sleep(MIN_OUTAGE_MS - outage);
    await redis.restart();

    await waitFor(async () => (await api.request('GET', '/readyz', { timeoutMs: 2000 })).status === 200,
      { timeoutMs: 10000, intervalMs: 100, what: '/readyz = 200 after Redis came back' });
    const afterRestart = assertAccepted(await api.submitChat('mock-chat', 'submitted after the restart'), sluice.baseUrl);
    accepted.push(afterRestart.id);

    await submitting;
    t.diagnostic(`submissions by status: ${JSON.stringify(counts)}; accepted before the crash: ${acceptedBeforeCrash}; ` +
      `POST during the outage answered 503 in ${probeMs} ms`);
    assert.deepEqual(problems, [], 'only 202 and 503 (with the error envelope), never a hang');
    assert.ok(acceptedBeforeCrash > 0, 'tasks were accepted before the crash');
    assert.ok(sluice.alive, 'sluice is still running');

    const ids = accepted.filter(Boolean);
    assert.equal(ids.length, accepted.length, 'every 202 carried a task id');
    const done = await api.waitTerminal(ids, 120_000);
    const notCompleted = done.filter((t) => t.status !== 'completed');
    assert.equal(notCompleted.length, 0,
      `${notCompleted.length} of ${ids.length} accepted tasks did not complete ` +
      `(submissions: ${JSON.stringify(counts)}), e.g. ${JSON.stringify(notCompleted[0])?.slice(0, 500)}`);
  });
});
