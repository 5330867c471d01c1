// Every sluice-mock fault against every dialect: OpenAI, Anthropic and Gemini chat, Replicate and
// fal images. For each fault the task's final error has the right classification — `retryable`
// and `provider_status` — and the number of upstream attempts follows from it: a retryable
// failure is tried max_attempts times, a non-retryable one once. The mock's by_route counts
// confirm the attempts from the provider's side.
//
//   fault                      retryable  provider_status  attempts
//   hang (provider timeout)    true       null             max_attempts
//   connection reset           true       null             max_attempts
//   500, 503                   true       500, 503         max_attempts
//   429 + retry-after: 1       paced: the deployment pauses for the retry-after and the task goes
//   529 (Anthropic overloaded)  back to the head of its queue without spending an attempt; it is
//                               never failed, calls are >= ~1 s apart, and once the provider
//                               answers again it completes with attempts 1
//   400                        false      400              1 (provider's message kept)
//   malformed JSON (200)       true       200              max_attempts
//   body > max_response_bytes  false      null or 200      1
//
// All targets of a fault run at once (the mock's switches are global; by_route tells the
// dialects apart); the mock is reset between faults. The circuit breaker is set out of reach here
// (it has tests of its own): these cases are about classifying each failure.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cluster, DIALECT_MODELS, DIALECT_PREFIX, assertTaskObject, routeCount,
} from './lib/harness.mjs';

const MAX_ATTEMPTS = 3;
const TIMEOUT_MS = 1500; // every provider's timeout_ms: a hang becomes a timeout quickly
const MAX_RESPONSE_BYTES = 256 * 1024;
const HUGE_BYTES = 2 * 1024 * 1024;

const TARGETS = {
  openai: 'chat-openai',
  anthropic: 'chat-anthropic',
  gemini: 'chat-gemini',
  replicate: 'image-replicate',
  fal: 'image-fal',
};

const ALL = Object.keys(TARGETS);

const CASES = [
  { name: 'hang → provider timeout', config: { hang: true }, retryable: true, status: [null], attempts: MAX_ATTEMPTS },
  { name: 'connection reset', config: { reset: true }, retryable: true, status: [null], attempts: MAX_ATTEMPTS },
  { name: '500', config: { error_status: 500, error_rate: 1 }, retryable: true, status: [500], attempts: MAX_ATTEMPTS },
  { name: '503', config: { error_status: 503, error_rate: 1 }, retryable: true, status: [503], attempts: MAX_ATTEMPTS },
  { name: '429 with retry-after', paced: true, config: { error_status: 429, error_rate: 1, retry_after_s: 1 },
    minGapMs: 900 },
  { name: '529 overloaded', paced: true, only: ['anthropic'], config: { error_status: 529, error_rate: 1 },
    minGapMs: 500 },
  { name: '400', config: { error_status: 400, error_rate: 1, error_message: 'mock says: no such thing' }, retryable: false,
    status: [400], attempts: 1, message: 'mock says: no such thing' },
  { name: 'malformed JSON', config: { malformed: true }, retryable: true, status: [200], attempts: MAX_ATTEMPTS },
  { name: 'body above worker.max_response_bytes', config: { huge_body_bytes: HUGE_BYTES }, retryable: false,
    status: [null, 200], attempts: 1 },
];

function inputFor(alias, label) {
  const kind = DIALECT_MODELS[alias].kind;
  if (kind === 'chat') return { kind, input: { model: alias, messages: [{ role: 'user', content: `faults: ${label}` }] } };
  return { kind, input: { model: alias, prompt: `faults: ${label}` } };
}

describe('faults: every mock fault × every dialect → classification and attempts', () => {
  const cl = new Cluster('faults');
  let mock;
  let sluice;
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: 300, record: 5000 });
    const config = await cl.dialectConfigFor({
      redis, mock, pollIntervalMs: 200, timeoutMs: TIMEOUT_MS,
      overrides: {
        worker: { max_response_bytes: MAX_RESPONSE_BYTES },
        tasks: { max_attempts: MAX_ATTEMPTS, backoff_base_ms: 100, backoff_max_ms: 500 },
        breaker: { min_requests: 100000 },
      },
    });
    sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  /** Submits one task per dialect in `dialects`; returns [{dialect, alias, task}] once all are terminal. */
  async function runAll(dialects, label) {
    const submitted = await Promise.all(dialects.map(async (d) => {
      const alias = TARGETS[d];
      const { kind, input } = inputFor(alias, `${label} via ${d}`);
      const res = await api.submit(kind, input);
      assert.equal(res.status, 202, `submit ${alias}: ${res.status} ${res.text.slice(0, 300)}`);
      return { dialect: d, alias, id: res.json.id };
    }));
    const done = await api.waitTerminal(submitted.map((s) => s.id), 60_000, { intervalMs: 100 });
    return submitted.map((s, i) => ({ ...s, task: done[i] }));
  }

  test('no fault: every dialect completes on the first attempt', { timeout: 90_000 }, async () => {
    await mock.reset();
    const results = await runAll(ALL, 'baseline');
    const byRoute = await mock.byRoute();
    for (const { dialect, alias, task } of results) {
      const ctx = `${dialect}: ${JSON.stringify(task).slice(0, 600)}`;
      assertTaskObject(task, { kind: DIALECT_MODELS[alias].kind, model: alias });
      assert.equal(task.status, 'completed', ctx);
      assert.equal(task.attempts, 1, ctx);
      assert.equal(routeCount(byRoute, DIALECT_MODELS[alias].routes), 1, `${dialect}: one submission (${JSON.stringify(byRoute)})`);
    }
  });

  /** Gaps between the POSTs the mock saw under a dialect's prefix, each >= minGapMs. */
  function checkGaps(stats, alias, minGapMs, check) {
    const prefix = DIALECT_PREFIX[DIALECT_MODELS[alias].provider] + '/';
    const at = (stats.last_requests ?? [])
      .filter((r) => r.method === 'POST' && String(r.path).startsWith(prefix))
      .map((r) => r.at_ms).sort((a, b) => a - b);
    for (let i = 1; i < at.length; i++) {
      check(at[i] - at[i - 1] >= minGapMs,
        `calls ${at[i] - at[i - 1]} ms apart, the provider asked for >= ${minGapMs} ms (all: ${at.map((t) => t - at[0]).join(',')})`);
    }
    return at.length;
  }

  for (const c of CASES.filter((x) => x.paced)) {
    const dialects = c.only ?? ALL;
    test(`${c.name}: ${dialects.join(', ')} — paced, never failed`, { timeout: 120_000 }, async () => {
      await mock.reset();
      await mock.config(c.config);
      const submitted = await Promise.all(dialects.map(async (d) => {
        const alias = TARGETS[d];
        const { kind, input } = inputFor(alias, `${c.name} via ${d}`);
        const res = await api.submit(kind, input);
        assert.equal(res.status, 202, `submit ${alias}: ${res.status} ${res.text.slice(0, 300)}`);
        return { dialect: d, alias, id: res.json.id };
      }));
      await new Promise((r) => setTimeout(r, 3500));
      const stats = await mock.stats();
      const problems = [];
      for (const s of submitted) {
        const check = (ok, what) => { if (!ok) problems.push(`${s.dialect}: ${what}`); };
        const t = (await api.getTask(s.id)).json;
        check(['queued', 'in_progress'].includes(t.status), `still waiting its turn, is ${t.status}`);
        check(t.attempts <= 1, `a rate-limited call spends no attempt: attempts ${t.attempts}`);
        const calls = checkGaps(stats, s.alias, c.minGapMs, check);
        check(calls >= 2, `the provider was asked again after its retry-after (${calls} calls)`);
      }
      await mock.reset(); // the provider recovers
      const done = await api.waitTerminal(submitted.map((s) => s.id), 60_000, { intervalMs: 100 });
      done.forEach((t, i) => {
        if (t.status !== 'completed' || t.attempts !== 1) {
          problems.push(`${submitted[i].dialect}: after recovery ${t.status}, attempts ${t.attempts}`);
        }
      });
      assert.deepEqual(problems, [], `${c.name}:\n  ${problems.join('\n  ')}`);
    });
  }

  for (const c of CASES.filter((x) => !x.paced)) {
    const dialects = c.only ?? ALL;
    test(`${c.name}: ${dialects.join(', ')}`, { timeout: 120_000 }, async () => {
      await mock.reset();
      await mock.config(c.config);
      const results = await runAll(dialects, c.name);
      const stats = await mock.stats();
      await mock.reset(); // switches off before anything else reaches the mock
      const problems = [];
      for (const { dialect, alias, task } of results) {
        const ctx = `${dialect} (${alias}): ${JSON.stringify(task).slice(0, 700)}`;
        const check = (ok, what) => { if (!ok) problems.push(`${what} — ${ctx}`); };
        try {
          assertTaskObject(task, { kind: DIALECT_MODELS[alias].kind, model: alias });
        } catch (e) {
          problems.push(`${dialect}: ${e.message}`);
          continue;
        }
        check(task.status === 'failed', `status should be failed, is ${task.status}`);
        const e = task.error;
        if (!e || typeof e !== 'object') {
          problems.push(`no error object — ${ctx}`);
          continue;
        }
        check(typeof e.message === 'string' && e.message.length > 0, 'error.message');
        check(typeof e.type === 'string', 'error.type');
        check(e.retryable === c.retryable, `error.retryable should be ${c.retryable}, is ${e.retryable}`);
        check(c.status.includes(e.provider_status ?? null),
          `error.provider_status should be ${c.status.map(String).join(' or ')}, is ${e.provider_status}`);
        check(task.attempts === c.attempts, `attempts should be ${c.attempts}, is ${task.attempts}`);
        check(task.result === null, 'a failed task has result null');
        if (c.message) check(String(e.message).includes(c.message), `error.message should keep "${c.message}"`);
        const calls = routeCount(stats.by_route, DIALECT_MODELS[alias].routes);
        check(calls === c.attempts, `the mock saw ${calls} submissions, expected ${c.attempts} (by_route ${JSON.stringify(stats.by_route)})`);
      }
      assert.deepEqual(problems, [], `${c.name}:\n  ${problems.join('\n  ')}`);
    });
  }

  test('still healthy after every fault: each dialect completes again', { timeout: 90_000 }, async () => {
    await mock.reset();
    const results = await runAll(ALL, 'after the storm');
    for (const { dialect, task } of results) {
      assert.equal(task.status, 'completed', `${dialect}: ${JSON.stringify(task).slice(0, 500)}`);
      assert.equal(task.attempts, 1, `${dialect}: ${JSON.stringify(task).slice(0, 500)}`);
    }
  });
});
