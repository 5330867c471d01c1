// Thousands of concurrent long-running video jobs cost no worker slots and survive SIGKILL of
// every sluice process.
//
// 1. N (2,000) video tasks against sluice-mock jobs of JOB_MS (30 s), polled every POLL_MS (2 s),
//    through separate `api`, `scheduler` and ONE `worker` with concurrency 64 — far below N. All N
//    upstream jobs must be submitted before the first one could have finished (so no slot is held
//    while a job runs), and all complete. Prints the worker's RSS and Redis memory per task.
// 2. The same with api, worker and scheduler killed with SIGKILL midway through the jobs (every
//    job submitted upstream, none finished) and restarted: all complete exactly once — status
//    completed, completed_at (and the rest) stable over re-reads, one attempt each, and the mock
//    saw exactly N job submissions (by_route): nothing was resubmitted after the restart.
//
// Tunable for slow machines (defaults are the acceptance values):
//   SLUICE_VIDEO_N=2000  SLUICE_VIDEO_JOB_MS=30000  SLUICE_VIDEO_POLL_MS=2000
//   SLUICE_VIDEO_ALIASES=video-openai,video-replicate,video-fal  (tasks spread round-robin)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cluster, DIALECT_MODELS, mapLimit, sleep, waitFor, procStatusKb, routeCount,
} from './lib/harness.mjs';

const envInt = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${v}"`);
  return n;
};

const N = envInt('SLUICE_VIDEO_N', 2000);
const JOB_MS = envInt('SLUICE_VIDEO_JOB_MS', 30000);
const POLL_MS = envInt('SLUICE_VIDEO_POLL_MS', 2000);
const ALIASES = (process.env.SLUICE_VIDEO_ALIASES || 'video-openai,video-replicate,video-fal').split(',').map((s) => s.trim()).filter(Boolean);
const WORKER_CONCURRENCY = 64;
const SUBMIT_CONCURRENCY = 64;
const PHASE_TIMEOUT_MS = JOB_MS * 2 + 120_000;

for (const a of ALIASES) {
  if (DIALECT_MODELS[a]?.kind !== 'video') throw new Error(`SLUICE_VIDEO_ALIASES: ${a} is not a video alias`);
}
const SUBMIT_ROUTES = [...new Set(ALIASES.flatMap((a) => DIALECT_MODELS[a].routes))];

const kib = (n) => `${Math.round(n)} KiB`;

describe(`video scale: ${N} concurrent video jobs of ${JOB_MS} ms, one worker with concurrency ${WORKER_CONCURRENCY}`, () => {
  const cl = new Cluster('video_scale');
  let redis;

  before(async () => {
    redis = await cl.startRedis();
  });
  after(() => cl.stop());

  /** A config for mock with the scale settings. */
  function configFor(mock) {
    return cl.dialectConfigFor({
      redis, mock, pollIntervalMs: POLL_MS,
      overrides: {
        worker: { concurrency: WORKER_CONCURRENCY, claim_batch: 32 },
        tasks: { lease_ms: 5000, retention_s: 3600 },
        scheduler: { tick_ms: 200 },
      },
    });
  }

  /** api, scheduler and worker as separate processes. */
  async function startRoles(config) {
    const apiProc = await cl.startSluice('api', config);
    const scheduler = await cl.startSluice('scheduler', config);
    const worker = await cl.startSluice('worker', config);
    return { api: apiProc, scheduler, worker, all: [apiProc, scheduler, worker] };
  }

  /** Submits N video tasks (round-robin over ALIASES); returns their ids in order. */
  async function submitAll(api, label) {
    const ids = await mapLimit(Array.from({ length: N }, (_, i) => i), SUBMIT_CONCURRENCY, async (i) => {
      const alias = ALIASES[i % ALIASES.length];
      const res = await api.submit('video', { model: alias, prompt: `${label} video #${i}`, seconds: '4' }, { timeoutMs: 60_000 });
      assert.equal(res.status, 202, `submit #${i}: ${res.status} ${res.text.slice(0, 300)}`);
      return res.json.id;
    });
    assert.equal(new Set(ids).size, N);
    return ids;
  }

  /**
   * Samples every 500 ms until stop(): the mock's submission count (and when it first reached N),
   * the worker's RSS, Redis used_memory, and the progress of a few videos. Bounded by maxMs.
   */
  function startSampler({ mock, workerPid, api, probeIds, maxMs }) {
    const s = { stopFlag: false, maxRss: 0, maxRedis: 0, firstSubmitAt: null, allSubmittedAt: null,
      progressSeen: [], submissions: 0, errors: 0 };
    s.done = (async () => {
      const end = Date.now() + maxMs;
      for (let round = 0; !s.stopFlag && Date.now() < end && round < 100_000; round++) {
        try {
          const subs = routeCount(await mock.byRoute(), SUBMIT_ROUTES);
          s.submissions = subs;
          if (subs > 0 && s.firstSubmitAt === null) s.firstSubmitAt = Date.now();
          if (subs >= N && s.allSubmittedAt === null) s.allSubmittedAt = Date.now();
          const rss = workerPid ? procStatusKb(workerPid, 'VmRSS') : null;
          if (rss) s.maxRss = Math.max(s.maxRss, rss);
          const used = Number((await redis.info('memory')).used_memory);
          if (Number.isFinite(used)) s.maxRedis = Math.max(s.maxRedis, used);
          if (round % 4 === 0 && api && probeIds.length > 0) {
            for (const id of probeIds) {
              const v = await api.request('GET', `/v1/videos/${id}`, { timeoutMs: 5000 });
              if (v.status === 200 && v.json) s.progressSeen.push(v.json.progress);
            }
          }
        } catch {
          s.errors++;
        }
        await sleep(500);
      }
    })();
    s.stop = async () => { s.stopFlag = true; await s.done; };
    return s;
  }

  /** Every task completed once, with one attempt, a video result, usage and cost. → problems[] */
  function checkCompleted(tasks) {
    const problems = [];
    const byStatus = {};
    for (const t of tasks) {
      byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
      if (t.status !== 'completed') {
        if (problems.length < 5) problems.push(`not completed: ${JSON.stringify(t).slice(0, 500)}`);
        continue;
      }
      if (t.attempts !== 1 && problems.length < 5) problems.push(`attempts ${t.attempts} (one upstream submission expected): ${t.id}`);
      if (!(t.usage?.seconds > 0) && problems.length < 5) problems.push(`usage.seconds: ${JSON.stringify(t.usage)} (${t.id})`);
      if (!(typeof t.cost?.amount === 'number' && t.cost.amount > 0) && problems.length < 5) problems.push(`cost: ${JSON.stringify(t.cost)} (${t.id})`);
      if (!Number.isInteger(t.completed_at) && problems.length < 5) problems.push(`completed_at: ${t.completed_at} (${t.id})`);
    }
    if (problems.length) problems.unshift(`statuses: ${JSON.stringify(byStatus)}`);
    return problems;
  }

  /** A few videos' MP4 bytes through GET /v1/videos/{id}/content. */
  async function checkSomeContent(api, ids) {
    const step = Math.max(1, Math.floor(ids.length / 9));
    for (let i = 0; i < ids.length; i += step) {
      const r = await api.request('GET', `/v1/videos/${ids[i]}/content`, { binary: true });
      assert.equal(r.status, 200, `content of ${ids[i]}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.match(String(r.headers['content-type']), /^video\/mp4/);
      assert.equal(r.bytes.subarray(4, 8).toString('latin1'), 'ftyp', `MP4 of ${ids[i]}`);
    }
  }

  test(`${N} videos complete with no slot held while a job runs; RSS and Redis memory per task`, { timeout: PHASE_TIMEOUT_MS + 60_000 }, async () => {
    const mock = await cl.startMock({ jobMs: JOB_MS, record: 100 });
    const roles = await startRoles(await configFor(mock));
    const api = cl.client(roles.api.baseUrl, cl.keys.alpha);
    await sleep(500);
    const rss0 = procStatusKb(roles.worker.pid, 'VmRSS');
    const redis0 = Number((await redis.info('memory')).used_memory);

    // The sampler runs from before the first submission, so it sees when the mock's count starts.
    const probeIds = [];
    const sampler = startSampler({ mock, workerPid: roles.worker.pid, api, probeIds, maxMs: PHASE_TIMEOUT_MS });
    const t0 = Date.now();
    let ids;
    try {
      ids = await submitAll(api, 'scale');
    } catch (e) {
      await sampler.stop();
      throw e;
    }
    const submitMs = Date.now() - t0;
    probeIds.push(...ids.slice(0, 5));
    let inFlightRedis = null;
    try {
      await waitFor(() => sampler.allSubmittedAt !== null, { timeoutMs: JOB_MS + 30_000, intervalMs: 250,
        what: `the mock to see all ${N} job submissions (seen ${sampler.submissions})` });
      await sleep(1000);
      inFlightRedis = Number((await redis.info('memory')).used_memory);
    } finally {
      if (inFlightRedis === null) await sampler.stop();
    }
    const tasks = await api.waitTerminal(ids, PHASE_TIMEOUT_MS, { concurrency: 64, intervalMs: 1000 });
    const allDoneMs = Date.now() - t0;
    await sampler.stop();
    const rssEnd = procStatusKb(roles.worker.pid, 'VmRSS');
    const hwm = procStatusKb(roles.worker.pid, 'VmHWM');
    const redisEnd = Number((await redis.info('memory')).used_memory);

    const overlapMs = sampler.allSubmittedAt - sampler.firstSubmitAt;
    console.log(`video_scale: ${N} tasks (${ALIASES.join(', ')}), job ${JOB_MS} ms, poll ${POLL_MS} ms, worker concurrency ${WORKER_CONCURRENCY}`);
    console.log(`video_scale: submitted to sluice in ${submitMs} ms; all ${N} upstream jobs submitted within ${overlapMs} ms of the first; all terminal after ${allDoneMs} ms`);
    console.log(`video_scale: worker RSS ${kib(rss0)} idle, ${kib(sampler.maxRss)} peak, ${kib(rssEnd)} at the end (VmHWM ${kib(hwm)}); ` +
      `${((sampler.maxRss - rss0) * 1024 / N).toFixed(0)} bytes per task`);
    console.log(`video_scale: Redis used_memory ${redis0} B before, ${inFlightRedis} B with all jobs in flight, ${redisEnd} B after; ` +
      `${((inFlightRedis - redis0) / N).toFixed(0)} B per task in flight, ${((redisEnd - redis0) / N).toFixed(0)} B per finished task`);
    const progress = sampler.progressSeen;
    console.log(`video_scale: progress seen while running: ${progress.slice(0, 40).join(',')}`);

    const problems = checkCompleted(tasks);
    assert.deepEqual(problems, [], problems.join('\n'));
    // With 64 slots held for a whole job, N jobs would take N/64 × JOB_MS; here they all overlap.
    assert.ok(overlapMs < JOB_MS,
      `all ${N} upstream jobs must be running at once: the last was submitted ${overlapMs} ms after the first, the first ends after ${JOB_MS} ms`);
    assert.ok(allDoneMs < JOB_MS + submitMs + POLL_MS * 5 + 60_000, `all done in ${allDoneMs} ms`);
    const subs = routeCount(await mock.byRoute(), SUBMIT_ROUTES);
    assert.equal(subs, N, `the mock saw ${subs} job submissions for ${N} tasks`);
    if (JOB_MS >= 5 * POLL_MS) {
      assert.ok(progress.some((p) => p > 0 && p < 100), `progress between 0 and 100 was visible while the jobs ran: ${progress.join(',')}`);
    }
    await checkSomeContent(api, ids);
    for (const r of roles.all) {
      const info = await r.stop('SIGTERM', 10_000);
      assert.equal(info?.code, 0, `${r.name} exits 0 on SIGTERM: ${JSON.stringify(info)}`);
    }
    await mock.stop();
  });

  test(`SIGKILL of api, worker and scheduler midway: all ${N} complete exactly once, no job resubmitted`, { timeout: PHASE_TIMEOUT_MS + 90_000 }, async () => {
    const mock = await cl.startMock({ jobMs: JOB_MS, record: 100 });
    const config = await configFor(mock);
    let roles = await startRoles(config);
    let api = cl.client(roles.api.baseUrl, cl.keys.alpha);

    const t0 = Date.now();
    const ids = await submitAll(api, 'crash');
    // Midway: every job is running upstream (so each task holds an upstream id), none has ended.
    await waitFor(async () => routeCount(await mock.byRoute(), SUBMIT_ROUTES) >= N,
      { timeoutMs: JOB_MS + 30_000, intervalMs: 250, what: `the mock to see all ${N} job submissions` });
    const allUpAt = Date.now();
    await sleep(Math.max(2000, t0 + JOB_MS / 2 - Date.now()));
    const killAt = Date.now();
    if (killAt - t0 >= JOB_MS) {
      console.log(`video_scale: warning: the kill came ${killAt - t0} ms after the first submit, after the first jobs could end`);
    }
    for (const r of roles.all) r.kill('SIGKILL');
    for (const r of roles.all) {
      const info = await r.waitExit(10_000);
      assert.equal(info.signal, 'SIGKILL', `${r.name} was killed: ${JSON.stringify(info)}`);
    }
    console.log(`video_scale: killed api, scheduler and worker ${killAt - t0} ms after the first submit ` +
      `(all ${N} jobs upstream after ${allUpAt - t0} ms)`);
    await sleep(1000);
    roles = await startRoles(config);
    api = cl.client(roles.api.baseUrl, cl.keys.alpha);

    const tasks = await api.waitTerminal(ids, PHASE_TIMEOUT_MS, { concurrency: 64, intervalMs: 1000 });
    console.log(`video_scale: after the restart all ${N} terminal ${Date.now() - t0} ms after the first submit`);
    const problems = checkCompleted(tasks);
    assert.deepEqual(problems, [], problems.join('\n'));

    // Terminal states are final: re-read after a while, nothing changed.
    await sleep(Math.max(3000, POLL_MS * 2));
    const again = await mapLimit(ids, 64, async (id) => (await api.getTask(id)).json);
    const changed = [];
    again.forEach((t, i) => {
      const a = tasks[i];
      for (const f of ['status', 'completed_at', 'attempts', 'started_at']) {
        if (t?.[f] !== a[f] && changed.length < 5) changed.push(`${a.id}.${f}: ${a[f]} → ${t?.[f]}`);
      }
      if (JSON.stringify(t?.result) !== JSON.stringify(a.result) && changed.length < 5) changed.push(`${a.id}.result changed`);
    });
    assert.deepEqual(changed, [], `terminal tasks changed on re-read: ${changed.join('; ')}`);

    const byRoute = await mock.byRoute();
    const subs = routeCount(byRoute, SUBMIT_ROUTES);
    assert.equal(subs, N, `the mock saw ${subs} job submissions for ${N} tasks: ${subs - N} resubmitted after the restart (by_route ${JSON.stringify(byRoute)})`);
    await checkSomeContent(api, ids);
  });
});
