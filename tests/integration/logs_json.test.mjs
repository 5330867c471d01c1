// JSON logs (log.format "json"): `sluice serve` at log.level debug runs a task that fails once
// (a 500) and then completes, and a task that fails (a 400 whose message carries quotes, a
// backslash and a newline). After a clean stop, every line sluice wrote parses as one JSON
// object with ts (RFC 3339, milliseconds, UTC), level, role and msg; every line that mentions
// either task id carries it as its `task` member; every line whose msg is about one task or
// attempt has a `task`; numbers are numbers; the provider's message survives escaping; no key
// appears in the log. Last, an unknown log.format is refused at start, naming the field.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, ADMIN_KEY, TASK_ID_RE, assertAccepted, assertCompletedChatTask, assertTaskError } from './lib/harness.mjs';

const TS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const LEVELS = new Set(['debug', 'info', 'warn', 'error']);
// The lines the harness itself writes into a process's log file (its command line, its exit).
const HARNESS_LINE_RE = /^# (\d{4}-\d\d-\d\dT\S+ \$ |exited code=|spawn error: )/;
const NASTY_MESSAGE = 'mock says: "quoted" \\ back\nslash';

describe('logs: log.format json', () => {
  const cl = new Cluster('logs-json');
  let mock;
  let sluice;
  let api;
  let retried;
  let failed;
  let lines; // [{raw, obj}] of sluice's log after it stopped

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock();
    const overrides = { log: { format: 'json', level: 'debug' }, breaker: { min_requests: 100000 } };
    sluice = await cl.startSluice('serve', await cl.configFor({ redis, mock, overrides }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);

    await mock.config({ fail_first: 1, error_status: 500 });
    const a = assertAccepted(await api.submitChat('mock-chat', 'fail once, then complete'), sluice.baseUrl);
    [retried] = await api.waitTerminal([a.id], 30_000, { intervalMs: 100 });
    await mock.reset();
    await mock.config({ error_status: 400, error_rate: 1, error_message: NASTY_MESSAGE });
    const b = assertAccepted(await api.submitChat('mock-chat', 'fail for good'), sluice.baseUrl);
    [failed] = await api.waitTerminal([b.id], 30_000, { intervalMs: 100 });

    const exit = await sluice.stop('SIGTERM', 10_000);
    assert.equal(exit.code, 0, `sluice stopped cleanly: ${JSON.stringify(exit)}`);
    await sluice.proc.closed;
    const text = fs.readFileSync(sluice.proc.logPath, 'utf8');
    lines = text.split('\n').filter((l) => l !== '' && !HARNESS_LINE_RE.test(l)).map((raw) => {
      let obj;
      try {
        obj = JSON.parse(raw);
      } catch {
        obj = undefined;
      }
      return { raw, obj };
    });
  });
  after(() => cl.stop());

  test('the tasks ran as planned', () => {
    assertCompletedChatTask(retried, { lastUserContent: 'fail once, then complete', attempts: 2 });
    assertTaskError(failed, { retryable: false, providerStatus: 400, attempts: 1 });
  });

  test('every line is one JSON object with ts, level, role and msg', () => {
    assert.ok(lines.length >= 5, `sluice wrote ${lines.length} lines`);
    for (const { raw, obj } of lines) {
      assert.ok(obj !== null && typeof obj === 'object' && !Array.isArray(obj), `not a JSON object: ${raw}`);
      assert.match(obj.ts, TS_RE, raw);
      assert.ok(LEVELS.has(obj.level), raw);
      assert.equal(obj.role, 'serve', raw);
      assert.equal(typeof obj.msg, 'string', raw);
    }
    const msgs = lines.map((l) => l.obj.msg);
    for (const m of ['listening', 'redis connected', 'ready', 'shutting down', 'stopped']) {
      assert.ok(msgs.includes(m), `a "${m}" line among ${JSON.stringify(msgs)}`);
    }
    assert.ok(lines.some((l) => l.obj.level === 'debug'), 'log.level debug reached the log');
  });

  test('every line that mentions a task id carries it as `task`', () => {
    for (const id of [retried.id, failed.id]) {
      const about = lines.filter((l) => l.raw.includes(id));
      assert.ok(about.length >= 1, `at least one line mentions ${id}`);
      for (const { raw, obj } of about) assert.equal(obj.task, id, `task member of ${raw}`);
    }
  });

  test('every line about one task or attempt has a `task` member', () => {
    const aboutOne = lines.filter((l) => /\b(task|attempt)\b/i.test(l.obj.msg));
    assert.ok(aboutOne.length >= 2, `lines about a task: ${aboutOne.map((l) => l.raw).join('\n')}`);
    for (const { raw, obj } of aboutOne) assert.match(String(obj.task), TASK_ID_RE, raw);
  });

  test('numbers are numbers; the provider message survives escaping', () => {
    const attempts = lines.filter((l) => l.obj.msg === 'attempt failed');
    const first = attempts.find((l) => l.obj.task === retried.id);
    assert.ok(first, `an "attempt failed" line for ${retried.id}`);
    assert.equal(first.obj.attempt, 1);
    assert.equal(first.obj.status, 500);
    assert.equal(typeof first.obj.retryable, 'number');
    const last = attempts.find((l) => l.obj.task === failed.id);
    assert.ok(last, `an "attempt failed" line for ${failed.id}`);
    assert.equal(last.obj.status, 400);
    assert.ok(String(last.obj.error).includes(NASTY_MESSAGE),
      `error member ${JSON.stringify(last.obj.error)} includes ${JSON.stringify(NASTY_MESSAGE)}`);
    assert.ok(last.raw.includes('\\"quoted\\" \\\\ back\\nslash'), `escaped in the raw line: ${last.raw}`);
  });

  test('no key appears in the log', () => {
    const text = lines.map((l) => l.raw).join('\n');
    for (const [name, key] of Object.entries({ admin: ADMIN_KEY, ...cl.keys })) {
      assert.ok(!text.includes(key), `the ${name} key is not in the log`);
    }
  });

  test('an unknown log.format is refused at start, naming the field', async () => {
    const bin = process.env.SLUICE_BIN;
    assert.ok(bin, 'SLUICE_BIN is set');
    const configPath = path.join(cl.dir, 'bad-log.json');
    fs.writeFileSync(configPath, JSON.stringify({ ...sluice.config, log: { format: 'xml' } }));
    const res = await new Promise((resolve) => {
      execFile(bin, ['serve', '--config', configPath], { timeout: 10_000, env: { ...process.env, SLUICE_TEST_KEY_A: cl.keys.alpha, SLUICE_TEST_KEY_B: cl.keys.beta, SLUICE_TEST_MOCK_KEY: cl.keys.mock, SLUICE_TEST_ADMIN_KEY: ADMIN_KEY } },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr }));
    });
    assert.equal(res.code, 2, `exit status 2, stderr: ${res.stderr}`);
    assert.match(res.stderr, /log\.format: must be "logfmt" or "json"/);
  });
});
