// Pipelines survive SIGKILL of every process (issue 15, durability): api (which runs the
// pipeline runner), worker and scheduler run as separate processes on one redis-server and one
// sluice-mock; 200 three-step pipelines (chat → fal image job → chat) are submitted in nine
// shares, and after each share one process (api, worker, scheduler in turn) is killed with
// SIGKILL while pipelines are running (checked), and started again. Leases are short (2 s) so a
// dead runner's or worker's work comes back soon.
// Then:
//  - every pipeline ends, and in exactly one terminal state: completed, each with exactly one
//    pipeline.* webhook delivery (one webhook-id; a delivery retried after a kill keeps its id);
//  - no step ran twice: the tenant has exactly 600 tasks (one per step), every step's one task
//    completed, and the mock saw each step's request at least once and never more often than
//    that task's attempts (a call cut by a worker's death is retried as a new attempt of the same
//    task — at-least-once upstream — but a step started twice would be a second task or a call
//    beyond its task's attempts).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Cluster, sleep, startWebhookReceiver, waitFor } from './lib/harness.mjs';

const N = 200;
const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);

describe('pipelines under SIGKILL of api, worker and scheduler', () => {
  const cl = new Cluster('pipelines_crash');
  const secret = `whsec_${crypto.randomBytes(32).toString('base64')}`;
  let redis;
  let mock;
  let hooks;
  let config;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: 600, latencyMs: 20, record: 50000 });
    hooks = await startWebhookReceiver();
    config = await cl.dialectConfigFor({
      redis, mock, pollIntervalMs: 100,
      overrides: {
        tasks: { lease_ms: 2000 },
        scheduler: { tick_ms: 100 },
        pipelines: { lease_ms: 2000, poll_ms: 50 },
        webhooks: { secrets: { alpha: [secret] }, allow_hosts: ['127.0.0.1'], timeout_ms: 2000 },
      },
    });
  });
  after(async () => {
    await hooks.close();
    await cl.stop();
  });

  test('200 pipelines, 9 kills: each ends once, completed, no step ran twice', { timeout: 300_000 }, async () => {
    const procs = {
      api: await cl.startSluice('api', config),
      worker: await cl.startSluice('worker', config),
      scheduler: await cl.startSluice('scheduler', config),
    };
    const body = (i) => ({
      webhook: { url: hooks.url, events: ['pipeline.completed', 'pipeline.failed', 'pipeline.cancelled'] },
      metadata: { i: String(i) },
      steps: [
        { id: 's1', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: `P${i}-S1` }] } },
        { id: 's2', kind: 'image', input: { model: 'image-fal', prompt: `P${i}-S2 {{s1.text}}` } },
        { id: 's3', kind: 'chat', after: ['s2'], input: { model: 'chat-openai', messages: [{ role: 'user', content: `P${i}-S3 {{s1.text}}` }] } },
      ],
    });
    /** How many of the tenant's pipelines have not ended (two list pages). */
    async function unfinished(client) {
      let n = 0;
      let after;
      for (let page = 0; page < 3; page++) {
        const r = await client.request('GET', `/v1/pipelines?limit=100${after ? `&after=${after}` : ''}`);
        assert.equal(r.status, 200, r.text.slice(0, 300));
        n += r.json.data.filter((p) => !TERMINAL.has(p.status)).length;
        if (!r.json.has_more) break;
        after = r.json.last_id;
      }
      return n;
    }

    // Nine rounds: a share of the pipelines is submitted, then one role (in turn) is killed with
    // SIGKILL while they run, and started again.
    const ids = [];
    let kills = 0;
    const roles = ['api', 'worker', 'scheduler'];
    for (let round = 0; round < 9; round++) {
      const api = cl.client(procs.api.baseUrl, cl.keys.alpha);
      const upto = Math.round((N * (round + 1)) / 9);
      while (ids.length < upto) {
        const r = await api.request('POST', '/v1/pipelines', { body: body(ids.length) });
        assert.equal(r.status, 202, r.text.slice(0, 300));
        ids.push(r.json.id);
      }
      await sleep(250);
      const role = roles[round % 3];
      const left = await unfinished(api);
      assert.ok(left > 0, `round ${round}: work is running when ${role} is killed`);
      procs[role].kill('SIGKILL');
      const exit = await procs[role].waitExit(5000);
      assert.equal(exit.signal, 'SIGKILL');
      kills++;
      procs[role] = await cl.startSluice(role, config);
    }
    assert.equal(ids.length, N);
    assert.equal(kills, 9);
    const api2 = cl.client(procs.api.baseUrl, cl.keys.alpha);

    const final = new Map();
    await waitFor(async () => {
      for (const id of ids) {
        if (final.has(id)) continue;
        const r = await api2.request('GET', `/v1/pipelines/${id}`);
        assert.equal(r.status, 200, r.text.slice(0, 300));
        if (TERMINAL.has(r.json.status)) final.set(id, r.json);
      }
      return final.size === N;
    }, { timeoutMs: 180_000, intervalMs: 500, what: `all ${N} pipelines terminal` });

    const byStatus = {};
    for (const p of final.values()) byStatus[p.status] = (byStatus[p.status] ?? 0) + 1;
    assert.deepEqual(byStatus, { completed: N });

    // Exactly one terminal event per pipeline (one webhook-id, one type).
    await waitFor(async () => new Set(hooks.seen.map((m) => JSON.parse(m.body).data?.id)).size >= N,
      { timeoutMs: 60_000, intervalMs: 200, what: `a webhook for each of ${N} pipelines` });
    const events = new Map();
    for (const m of hooks.seen) {
      const body = JSON.parse(m.body);
      const id = body.data?.id;
      if (!id?.startsWith('pipe_')) continue;
      if (!events.has(id)) events.set(id, { ids: new Set(), types: new Set() });
      events.get(id).ids.add(m.headers['webhook-id']);
      events.get(id).types.add(body.type);
    }
    assert.equal(events.size, N);
    for (const [id, e] of events) {
      assert.equal(e.ids.size, 1, `${id}: ${[...e.ids]}`);
      assert.deepEqual([...e.types], ['pipeline.completed'], id);
    }

    // No step ran twice: one task per step, 600 tasks in all.
    const all = [];
    let after = null;
    for (let page = 0; page < 20; page++) {
      const r = await api2.list({ limit: 100, after: after ?? undefined });
      assert.equal(r.status, 200, r.text.slice(0, 300));
      all.push(...r.json.data);
      if (!r.json.has_more) break;
      after = r.json.last_id;
    }
    assert.equal(all.length, 3 * N, `the tenant has ${all.length} tasks`);
    const tasks = new Map(all.map((t) => [t.id, t]));

    const stats = await mock.stats();
    const chatContent = (q) => q.body?.messages?.at(-1)?.content;
    const calls = new Map(); // marker → requests seen
    const count = (k) => calls.set(k, (calls.get(k) ?? 0) + 1);
    for (const q of stats.last_requests) {
      if (q.method !== 'POST') continue;
      if (q.path === '/v1/chat/completions') {
        const c = chatContent(q);
        const m = /^(P\d+-S[13])/.exec(c ?? '');
        if (m) count(m[1]);
      } else if (q.path.startsWith('/fal/fal-ai/flux')) {
        const m = /^(P\d+-S2) /.exec(q.body?.prompt ?? '');
        if (m) count(m[1]);
      }
    }
    let retried = 0;
    for (const [id, p] of final) {
      const i = Number(p.metadata.i);
      for (const s of p.steps) {
        assert.equal(s.status, 'completed', `${id} ${s.id}`);
        assert.equal(s.task_ids.length, 1, `${id} ${s.id}`);
        const t = tasks.get(s.task_ids[0]);
        assert.ok(t, `${id} ${s.id}: its task is in the tenant's list`);
        assert.equal(t.status, 'completed');
        const marker = `P${i}-${s.id.toUpperCase()}`;
        const seen = calls.get(marker) ?? 0;
        assert.ok(seen >= 1, `${marker} never reached the provider`);
        assert.ok(seen <= t.attempts, `${marker}: ${seen} calls for a task of ${t.attempts} attempts`);
        if (seen > 1) retried++;
      }
    }
    // (how many calls a worker's death cut short and repeated, for the log)
    console.log(`# ${kills} kills; ${retried} step calls repeated as new attempts of the same task`);
  });
});
