// The sluice CLI (issue 17, item 2): the `sluice` binary's client subcommands against a real
// `sluice serve` (redis-server + sluice-mock):
//  - `submit --wait` exit codes: 0 completed, 1 failed (the mock refuses with a 400), 4 API
//    error (unknown model, the envelope's message on stderr), 5 nothing listening, 2 bad flag;
//    `wait --timeout` 6, a cancelled task 3; `get --field`;
//  - `tail ID` prints the statuses and the attempt through completion; `tail --once` lists;
//  - `usage` prints a table whose numbers are the API's;
//  - `batch run` on a 1,000-line file (--model rewrites every line's body.model; the mock fails a
//    seeded share with 400): output file = the successes, error file = the failures, every
//    custom_id once; piped (plain lines, no \r, no ANSI) and in a pseudo-terminal under
//    `script -qfec` (the bar's \r updates and a final 100%); SIGINT mid-way prints the resume
//    command, `batch run --resume` finishes the files;
//  - `top --once` and `top` in a pseudo-terminal (q quits, the terminal is restored) render the
//    deployments, against a fixture server of the dashboard contract and against sluice itself.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import { Cluster, ADMIN_KEY, expectedMockReply, freePort, startWebhookReceiver } from './lib/harness.mjs';

const N = 1000;
const FAIL_RATE = 0.05;
const ANSI_RE = /\x1b\[/;
const SGR_RE = /\x1b\[[0-9;]*m/g; // colour codes

/** The CLI binary (the same `sluice` as the server), resolved like the harness does. */
function cliBin() {
  const bin = process.env.SLUICE_BIN;
  if (!bin) throw new Error('SLUICE_BIN is not set (ctest sets it; by hand: SLUICE_BIN=build/sluice node <test>)');
  return path.resolve(bin);
}

/** `script` from util-linux runs a command in a pseudo-terminal; the pty tests need it. */
function requireScript() {
  const r = spawnSync('script', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error('the pseudo-terminal tests need `script` (util-linux): apt-get install util-linux');
  }
}

/**
 * Runs the CLI with args (env adds to ours; SLUICE_URL/SLUICE_API_KEY come from `env`), stdout
 * and stderr piped; resolves {code, signal, stdout, stderr}. Killed (and the test fails) after
 * timeoutMs. onStdout(text so far, child) is called on each chunk.
 */
function runCli(args, { env = {}, timeoutMs = 60000, onStdout, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cliBin(), args, { env: { ...process.env, NO_COLOR: '', ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sluice ${args.join(' ')}: still running after ${timeoutMs} ms\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => { stdout += d; onStdout?.(stdout, child); });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** Quotes one word for sh -c. */
const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/**
 * Runs the CLI in a pseudo-terminal (`script -qfec CMD /dev/null`), with env set in the command
 * line; resolves {code, out} (out: what the terminal received, \r and escapes included).
 * onOutput(text so far, child) may write keys to child.stdin. Killed after timeoutMs.
 */
function runPty(args, { env = {}, timeoutMs = 60000, onOutput, cwd } = {}) {
  const envs = Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`).join(' ');
  const cmd = `env ${envs} COLUMNS=160 ${shq(cliBin())} ${args.map(shq).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pty sluice ${args.join(' ')}: still running after ${timeoutMs} ms; output: ${JSON.stringify(out.slice(-2000))}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => { out += d; onOutput?.(out, child); });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
}

/** The JSONL lines of a file, parsed. */
function readJsonl(p) {
  return fs.readFileSync(p, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

/** A batch input of n chat lines whose body.model is a placeholder that --model replaces. */
function writeBatchInput(p, n, tag) {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({
    custom_id: `${tag}-${i}`, method: 'POST', url: '/v1/chat/completions',
    body: { model: 'replace-me', messages: [{ role: 'user', content: `${tag} line ${i}` }] },
  }));
  fs.writeFileSync(p, lines.join('\n') + '\n');
}

/** Checks a finished batch's two files: every custom_id once, successes and failures apart. */
function checkBatchFiles(outPath, errPath, n, tag) {
  const out = readJsonl(outPath);
  const errs = readJsonl(errPath);
  const ids = [...out, ...errs].map((l) => l.custom_id).sort();
  assert.equal(ids.length, n, `${out.length} output + ${errs.length} error lines`);
  assert.deepEqual(ids, Array.from({ length: n }, (_, i) => `${tag}-${i}`).sort());
  for (const l of out) {
    assert.equal(l.response.status_code, 200, JSON.stringify(l));
    const i = Number(l.custom_id.split('-').pop());
    assert.equal(l.response.body.choices[0].message.content, expectedMockReply(`${tag} line ${i}`));
  }
  for (const l of errs) assert.equal(l.response?.status_code ?? l.error?.code, l.response ? 400 : l.error.code, JSON.stringify(l));
  return { out: out.length, errs: errs.length };
}

/** A dashboard.state document as the contract (i17_dash_api.md) describes it. */
function fixtureState() {
  return {
    object: 'dashboard.state', now: Math.floor(Date.now() / 1000), scope: { admin: true, tenant: null },
    totals: { queued: 3, in_progress: 2, delayed: 0, parked: 1, accepted_total: 1234, completed_total: 1200, failed_total: 3 },
    rates: { accepted_per_s: 1.5, completed_per_s: null },
    queues: [{ model: 'gpt-4o-mini', priority: 'interactive', depth: 12, oldest_queued_at: Math.floor(Date.now() / 1000) - 10 }],
    deployments: [
      { model: 'gpt-4o-mini', index: 0, provider: 'openai', upstream_model: 'gpt-4o-mini', in_flight: 2, max_concurrency: 10,
        rpm: 500, requests_available: 480.5, tpm: 200000, tokens_available: 150000, paused: false, paused_until: null,
        pause_reason: null, breaker: 'closed', breaker_until: null, latency_ewma_ms: 812.0, rate_limited_total: 4, cost_last_hour_usd: 0.0123 },
      { model: 'claude-fixture', index: 1, provider: 'anthropic', upstream_model: 'claude-sonnet-4', in_flight: 0, max_concurrency: null,
        rpm: null, requests_available: null, tpm: null, tokens_available: null, paused: true, paused_until: Math.floor(Date.now() / 1000) + 60,
        pause_reason: 'rate_limited', breaker: 'open', breaker_until: null, latency_ewma_ms: null, rate_limited_total: 17, cost_last_hour_usd: null },
    ],
    tenants: [{ tenant: 'acme', queued: 3, running: 2, spent_usd: { hour: 0.12, day: 1.5, month: 20.1 },
      budget: { policy: 'reject', limits: [{ window: 'hour', max_usd: 1, spent_usd: 0.12, remaining_usd: 0.88 }] } }],
    batches: [{ id: 'batch_fixture', tenant: 'acme', status: 'in_progress', model: 'gpt-4o-mini', total: 1000, completed: 400, failed: 2, created_at: 1764899000 }],
    pipelines: [], failures: [],
  };
}

describe('sluice CLI', () => {
  const cl = new Cluster('cli');
  let mock;
  let sluice;
  let api;
  let env;
  let fixture;
  let fixtureUrl;
  let receiver;

  before(async () => {
    receiver = await startWebhookReceiver();
    const redis = await cl.startRedis();
    mock = await cl.startMock({ seed: 11 });
    sluice = await cl.startSluice('serve', await cl.configFor({
      redis, mock,
      overrides: {
        blobs: { dir: path.join(cl.dir, 'blobs') }, files: { max_lines: 5000 },
        webhooks: { secrets: { alpha: ['whsec_' + crypto.randomBytes(24).toString('base64')] }, allow_hosts: ['127.0.0.1'] },
      },
    }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    env = { SLUICE_URL: sluice.baseUrl, SLUICE_API_KEY: cl.keys.alpha };
    fixture = http.createServer((req, res) => {
      if (req.url === '/v1/dashboard/state' && req.headers.authorization === 'Bearer fixture-key') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(fixtureState()));
        return;
      }
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'fixture: bad key or path', type: 'authentication_error', param: null, code: 'invalid_api_key' } }));
    });
    const port = await freePort();
    await new Promise((resolve) => fixture.listen(port, '127.0.0.1', resolve));
    fixtureUrl = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await new Promise((resolve) => (fixture ? fixture.close(resolve) : resolve()));
    await receiver?.close();
    await cl.stop();
  });

  test('submit --wait: exit 0 with the id and the final status; get --field', async () => {
    const r = await runCli(['submit', '--model', 'mock-chat', '--prompt', 'hello cli', '--metadata', 'run=cli', '--wait', '--timeout', '30'], { env });
    assert.equal(r.code, 0, JSON.stringify(r));
    const [id] = r.stdout.split('\n');
    assert.match(id, /^task_[a-z2-7]{26}$/);
    assert.match(r.stdout, new RegExp(`${id} completed \\(`));
    assert.doesNotMatch(r.stdout, /\r|\x1b\[/, 'no spinner when piped');
    const got = await runCli(['get', id, '--field', 'result.choices.0.message.content'], { env });
    assert.equal(got.code, 0, JSON.stringify(got));
    assert.equal(got.stdout, `${expectedMockReply('hello cli')}\n`);
    const meta = await runCli(['get', id, '--field', 'metadata'], { env });
    assert.deepEqual(JSON.parse(meta.stdout), { run: 'cli' });
    const full = await runCli(['get', id, '--json'], { env });
    assert.equal(JSON.parse(full.stdout).status, 'completed');
  });

  test('submit --wait: exit 1 on a failed task, 4 on an API error, 5 with nothing listening, 2 on a bad flag', async () => {
    await mock.config({ error_rate: 1, error_status: 400, error_message: 'mock refuses this' });
    try {
      const failed = await runCli(['submit', '--model', 'mock-chat', '--prompt', 'refused', '--wait', '--timeout', '30'], { env });
      assert.equal(failed.code, 1, JSON.stringify(failed));
      assert.match(failed.stdout, /failed \(.*\): .*mock refuses this/);
    } finally {
      await mock.reset();
    }
    const bad = await runCli(['submit', '--model', 'no-such-model', '--prompt', 'x', '--wait'], { env });
    assert.equal(bad.code, 4, JSON.stringify(bad));
    assert.match(bad.stderr, /404|400/);
    assert.match(bad.stderr, /no-such-model/);
    const unauth = await runCli(['get', 'task_aaaaaaaaaaaaaaaaaaaaaaaaaa'], { env: { ...env, SLUICE_API_KEY: 'sk-wrong' } });
    assert.equal(unauth.code, 4, JSON.stringify(unauth));
    assert.match(unauth.stderr, /401/);
    const closed = await runCli(['submit', '--model', 'mock-chat', '--prompt', 'x', '--wait', '--url', `http://127.0.0.1:${await freePort()}`], { env });
    assert.equal(closed.code, 5, JSON.stringify(closed));
    assert.match(closed.stderr, /cannot reach sluice/);
    const flag = await runCli(['submit', '--model', 'mock-chat', '--no-such-flag'], { env });
    assert.equal(flag.code, 2, JSON.stringify(flag));
    assert.match(flag.stderr, /unknown flag '--no-such-flag'/);
    const missing = await runCli(['submit', '--prompt', 'x'], { env });
    assert.equal(missing.code, 2, JSON.stringify(missing));
  });

  test('wait --timeout exits 6; cancel; wait on a cancelled task exits 3', async () => {
    await mock.config({ latency_ms: 4000 });
    try {
      const sub = await runCli(['submit', '--model', 'mock-chat', '--prompt', 'slow one'], { env });
      assert.equal(sub.code, 0, JSON.stringify(sub));
      const id = sub.stdout.trim();
      const w = await runCli(['wait', id, '--timeout', '1'], { env });
      assert.equal(w.code, 6, JSON.stringify(w));
      assert.match(w.stderr, /still (queued|in_progress)/);
      const c = await runCli(['cancel', id], { env });
      assert.equal(c.code, 0, JSON.stringify(c));
      assert.match(c.stdout, new RegExp(`^${id} (cancelling|cancelled)\\n$`));
      const w2 = await runCli(['wait', id, '--timeout', '30'], { env });
      assert.equal(w2.code, 3, JSON.stringify(w2));
      assert.match(w2.stdout, /cancelled/);
    } finally {
      await mock.reset();
    }
  });

  test('tail ID prints the statuses, the attempt and the webhook delivery through completion; tail --once lists', async () => {
    await mock.config({ latency_ms: 1500 });
    try {
      const sub = await runCli(['submit', '--model', 'mock-chat', '--prompt', 'tail me', '--webhook', receiver.url], { env });
      assert.equal(sub.code, 0, JSON.stringify(sub));
      const id = sub.stdout.trim();
      const t = await runCli(['tail', id], { env, timeoutMs: 30000 });
      assert.equal(t.code, 0, JSON.stringify(t));
      const lines = t.stdout.trim().split('\n');
      const statuses = lines.filter((l) => / status /.test(l)).map((l) => l.split(' status ')[1]);
      assert.ok(statuses.includes('in_progress'), t.stdout);
      assert.equal(statuses.at(-1), 'completed', t.stdout);
      assert.ok(lines.some((l) => /attempt 1 {2}mock\/mock-gpt {2}HTTP 200 {2}\d+ ms {2}completed/.test(l)), t.stdout);
      assert.match(lines.at(-1), /webhook task\.completed attempt 1 {2}HTTP 200 {2}\d+ ms {2}delivered$/, t.stdout);
      assert.ok(receiver.seen.some((d) => d.body.includes(id)), 'the receiver got the delivery');
      const once = await runCli(['tail', '--once', '--limit', '5'], { env });
      assert.equal(once.code, 0, JSON.stringify(once));
      assert.match(once.stdout, new RegExp(`${id} chat +mock-chat +new completed`));
    } finally {
      await mock.reset();
    }
  });

  test('usage prints a table with the API\'s numbers', async () => {
    const want = await api.request('GET', '/v1/usage?bucket=day&group_by=model');
    assert.equal(want.status, 200, want.text);
    const r = await runCli(['usage', '--bucket', 'day', '--group-by', 'model'], { env });
    assert.equal(r.code, 0, JSON.stringify(r));
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^START \(UTC\) +GROUP +REQUESTS +COMPLETED +FAILED +IN TOKENS +OUT TOKENS +COST USD/);
    const row = lines.find((l) => l.includes('model=mock-chat'));
    assert.ok(row, r.stdout);
    const api0 = want.json.data.find((d) => d.group.model === 'mock-chat');
    assert.ok(api0.requests >= 4, JSON.stringify(api0));
    assert.ok(row.includes(` ${api0.requests} `) && row.includes(` ${api0.completed} `), `${row} vs ${JSON.stringify(api0)}`);
    assert.match(lines.at(-1), /^TOTAL/);
    const bad = await runCli(['usage', '--bucket', 'week'], { env });
    assert.equal(bad.code, 2);
  });

  test('batch run, piped: 1,000 lines, plain progress lines, output and error files', { timeout: 180_000 }, async () => {
    const input = path.join(cl.dir, 'piped.jsonl');
    const outPath = path.join(cl.dir, 'piped.out.jsonl');
    const errPath = path.join(cl.dir, 'piped.err.jsonl');
    writeBatchInput(input, N, 'piped');
    await mock.config({ error_rate: FAIL_RATE, error_status: 400 });
    try {
      const r = await runCli(['batch', 'run', input, '--model', 'mock-chat', '--out', outPath, '--errors', errPath], { env, timeoutMs: 150_000 });
      assert.equal(r.code, 0, JSON.stringify(r));
      assert.doesNotMatch(r.stdout, /\r/, 'no \\r when piped');
      assert.doesNotMatch(r.stdout, ANSI_RE, 'no ANSI when piped');
      const progress = r.stdout.trim().split('\n');
      assert.match(progress.at(-1), /^completed 1000\/1000 done \(100%\) \d+ failed/);
      assert.match(r.stderr, /uploaded .*piped\.jsonl \(1000 lines\) as file-?\w+; batch batch_[a-z2-7]{26}/);
      const { out, errs } = checkBatchFiles(outPath, errPath, N, 'piped');
      assert.ok(errs > 0 && out > 0, `${out} ok, ${errs} failed`);
      assert.match(progress.at(-1), new RegExp(`^completed 1000/1000 done \\(100%\\) ${errs} failed`));
      assert.match(r.stderr, new RegExp(`wrote ${outPath.replace(/[.]/g, '\\.')} \\(${out} lines\\)`));
      // the model the lines named was replaced: the mock saw the deployment's upstream model
      const stats = await mock.stats();
      assert.ok(stats.last_requests.length > 0);
      for (const q of stats.last_requests.filter((x) => x.path === '/v1/chat/completions')) {
        assert.equal(JSON.parse(typeof q.body === 'string' ? q.body : JSON.stringify(q.body)).model, 'mock-gpt');
      }
    } finally {
      await mock.reset();
    }
  });

  test('batch run in a pseudo-terminal: the bar updates with \\r and ends at 100%', { timeout: 180_000 }, async () => {
    requireScript();
    const input = path.join(cl.dir, 'tty.jsonl');
    writeBatchInput(input, N, 'tty');
    await mock.config({ error_rate: FAIL_RATE, error_status: 400, latency_ms: 5 });
    try {
      const r = await runPty(['batch', 'run', input, '--model', 'mock-chat', '--out', 'tty.out.jsonl', '--errors', 'tty.err.jsonl'],
        { env, cwd: cl.dir, timeoutMs: 150_000 });
      assert.equal(r.code, 0, JSON.stringify(r.out.slice(-3000)));
      assert.match(r.out, SGR_RE, 'colours on a terminal without NO_COLOR');
      const plain = r.out.replace(SGR_RE, '');
      const frames = plain.split('\r\x1b[K').filter((f) => /^\[[#-]{30}\] +\d+%/.test(f));
      assert.ok(frames.length >= 2, `bar redrawn with \\r: ${JSON.stringify(plain.slice(-1500))}`);
      assert.match(frames.at(-1), /^\[#{30}\] 100% {2}1000\/1000 done {2}\d+ failed {2}[\d.]+\/s {2}ETA - {2}completed\r\n/);
      assert.ok(frames.slice(0, -1).some((f) => !/completed\r\n/.test(f)), `an update before the final frame: ${JSON.stringify(frames)}`);
      checkBatchFiles(path.join(cl.dir, 'tty.out.jsonl'), path.join(cl.dir, 'tty.err.jsonl'), N, 'tty');
    } finally {
      await mock.reset();
    }
  });

  test('batch run: SIGINT mid-way prints the resume command; --resume finishes the files', { timeout: 240_000 }, async () => {
    const input = path.join(cl.dir, 'resume.jsonl');
    const outPath = path.join(cl.dir, 'resume.out.jsonl');
    const errPath = path.join(cl.dir, 'resume.err.jsonl');
    writeBatchInput(input, N, 'resume');
    // slow enough that the batch is still running when the CLI is interrupted
    await mock.config({ latency_ms: 3000, error_rate: FAIL_RATE, error_status: 400 });
    let interruptedAt = null;
    try {
      const r = await runCli(['batch', 'run', input, '--model', 'mock-chat', '--out', outPath, '--errors', errPath], {
        env, timeoutMs: 60_000,
        onStdout: (text, child) => {
          if (interruptedAt === null && /^in_progress \d+\/1000/m.test(text)) {
            interruptedAt = text;
            child.kill('SIGINT');
          }
        },
      });
      assert.ok(interruptedAt, `saw a progress line: ${JSON.stringify(r)}`);
      assert.equal(r.code, 130, JSON.stringify(r));
      const m = /resume with: sluice batch run --resume (batch_[a-z2-7]{26}) --out (\S+) --errors (\S+)/.exec(r.stderr);
      assert.ok(m, r.stderr);
      assert.equal(m[2], outPath);
      assert.equal(fs.existsSync(outPath), false, 'no output file before the batch ended');
      const b = await api.request('GET', `/v1/batches/${m[1]}`);
      assert.ok(!['completed', 'failed', 'cancelled'].includes(b.json.status), `still running: ${b.text}`);
      await mock.config({ latency_ms: 0 });
      const again = await runCli(['batch', 'run', '--resume', m[1], '--out', outPath, '--errors', errPath], { env, timeoutMs: 150_000 });
      assert.equal(again.code, 0, JSON.stringify(again));
      assert.match(again.stdout.trim().split('\n').at(-1), /^completed 1000\/1000 done \(100%\)/);
      checkBatchFiles(outPath, errPath, N, 'resume');
      const bad = await runCli(['batch', 'run', '--resume', 'not-a-batch'], { env });
      assert.equal(bad.code, 2);
    } finally {
      await mock.reset();
    }
  });

  test('top --once against the fixture of the dashboard contract renders every section', async () => {
    const r = await runCli(['top', '--once', '--url', fixtureUrl, '--key', 'fixture-key']);
    assert.equal(r.code, 0, JSON.stringify(r));
    assert.doesNotMatch(r.stdout, ANSI_RE);
    assert.match(r.stdout, /^tasks +queued 3 +in progress 2 +delayed 0 +parked 1 +accepted 1234 +completed 1200 +failed 3$/m);
    assert.match(r.stdout, /^rates +accepted 1\.50\/s +completed -\/s$/m, 'null shows as -, never invented');
    assert.match(r.stdout, /^gpt-4o-mini +interactive +12 +10s$/m);
    assert.match(r.stdout, /^gpt-4o-mini +0 openai +gpt-4o-mini +2\/10 ok +812ms +4 +0\.0123 +480\/500 +150000\/200000 +$/m);
    assert.match(r.stdout, /^claude-fixture +1 anthropic +claude-sonnet-4 +0\/- paused +- +17 +- +-\/- +-\/- +rate_limited until \d\d:\d\d:\d\d$/m);
    assert.match(r.stdout, /^acme +3 +2 +0\.1200 +1\.5000 +20\.1000 +hour 0\.12\/1\.00$/m);
    assert.match(r.stdout, /^batch_fixture +acme +in_progress +gpt-4o-mini +402\/1000 done, 2 failed$/m);
    const unauth = await runCli(['top', '--once', '--url', fixtureUrl, '--key', 'wrong']);
    assert.equal(unauth.code, 4);
    assert.match(unauth.stderr, /401 \(invalid_api_key\): fixture: bad key or path/);
  });

  test('top in a pseudo-terminal: alternate screen, deployments rendered, q restores the terminal', { timeout: 60_000 }, async () => {
    requireScript();
    let sent = false;
    const r = await runPty(['top', '--url', fixtureUrl, '--key', 'fixture-key'], {
      env: { NO_COLOR: '1' }, timeoutMs: 30_000,
      onOutput: (out, child) => {
        if (!sent && out.includes('DEPLOYMENTS (2)') && out.includes('claude-fixture')) {
          sent = true;
          child.stdin.write('q');
        }
      },
    });
    assert.ok(sent, `a frame was rendered: ${JSON.stringify(r.out.slice(-2000))}`);
    assert.equal(r.code, 0, JSON.stringify(r.out.slice(-2000)));
    assert.ok(r.out.indexOf('\x1b[?1049h') >= 0 && r.out.indexOf('\x1b[?1049h') < r.out.indexOf('DEPLOYMENTS'), 'alternate screen first');
    assert.ok(r.out.lastIndexOf('\x1b[?1049l') > r.out.lastIndexOf('DEPLOYMENTS'), 'alternate screen left at the end');
    assert.ok(r.out.lastIndexOf('\x1b[?25h') > r.out.lastIndexOf('\x1b[?25l'), 'cursor shown again');
    assert.match(r.out, /claude-fixture +1 anthropic +claude-sonnet-4 +0\/- paused .* rate_limited until \d\d:\d\d:\d\d\x1b\[K/);
    assert.doesNotMatch(r.out, SGR_RE, 'NO_COLOR: no colour codes');
  });

  test('top against sluice itself (GET /v1/dashboard/state): --once and in a pseudo-terminal', { timeout: 60_000 }, async () => {
    requireScript();
    const probe = await cl.client(sluice.baseUrl, ADMIN_KEY).request('GET', '/v1/dashboard/state');
    assert.equal(probe.status, 200, `GET /v1/dashboard/state must answer (issue 17's dashboard API): ${probe.status} ${probe.text.slice(0, 200)}`);
    const admin = { SLUICE_URL: sluice.baseUrl, SLUICE_API_KEY: ADMIN_KEY };
    const r = await runCli(['top', '--once'], { env: admin });
    assert.equal(r.code, 0, JSON.stringify(r));
    assert.match(r.stdout, /^DEPLOYMENTS \(\d+\)$/m);
    assert.match(r.stdout, /^mock-chat +0 mock +mock-gpt +\d+\//m);
    let sent = false;
    const p = await runPty(['top'], {
      env: admin, timeoutMs: 30_000,
      onOutput: (out, child) => {
        if (!sent && /mock-chat +0 mock +mock-gpt/.test(out)) {
          sent = true;
          child.stdin.write('q');
        }
      },
    });
    assert.ok(sent, JSON.stringify(p.out.slice(-2000)));
    assert.equal(p.code, 0);
  });
});
