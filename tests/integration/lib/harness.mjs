// tests/integration/lib/harness.mjs — the integration tests' toolbox.
//
// A Cluster owns one temporary directory and every child process a test file starts in it
// (redis-server, sluice-mock, sluice roles). Children write their stdout/stderr to log files in
// that directory; stop() ends them all (SIGTERM, then SIGKILL after 5 s) and removes the
// directory. When the test file failed, the last 60 lines of every log are printed to stderr.
// Safety nets: an `exit`/SIGINT/SIGTERM/uncaught-exception handler kills leftover children, and a
// detached watchdog shell kills them if this node process itself is killed with SIGKILL.
//
// Everything here talks to 127.0.0.1 only, and every wait is bounded in time and count.

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);
export const TASK_ID_RE = /^task_[a-z2-7]{26}$/;
export const CHAT_PATH = '/v1/chat/completions';
export const MOCK_REPLY_PREFIX = 'mock reply: ';
export const MOCK_PRICE = { input_per_mtok: 0.15, output_per_mtok: 0.6 };
/**
 * An official OpenAI SDK client (the class is passed in: only some tests import the SDK) that
 * sends an Idempotency-Key with every POST, the same key on each of the SDK's own retries — as
 * sluice's README asks of clients, since a 503 on submit can mean "outcome unknown".
 */
export function openaiClient(OpenAIClass, opts) {
  const client = new OpenAIClass(opts);
  client.idempotencyHeader = 'Idempotency-Key';
  return client;
}

/** An SDK error as a short string for assertion messages: class, status and message. */
export function sdkErr(e) {
  return `${e?.constructor?.name} status=${e?.status} ${String(e?.message).slice(0, 300)}`;
}

/** The eight bytes every PNG file starts with. */
export const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A PNG-looking file for upload tests: the signature, then bytes unique to this call (tag and
 * `randomLen` random bytes, with NULs and CRLFs a multipart parser must carry through).
 */
export function pngBytes(tag, randomLen = 512) {
  return Buffer.concat([PNG_MAGIC, Buffer.from([0, 0, 0, 13, 0x0d, 0x0a, 0x2d, 0x2d]), Buffer.from(tag),
    crypto.randomBytes(randomLen)]);
}

/** The admin bearer key of every test config (admin_keys): /metrics and the admin views. */
export const ADMIN_KEY = `sk-test-admin-${crypto.randomBytes(12).toString('hex')}`;

const LOG_TAIL_LINES = 60;
const KILL_GRACE_MS = 5000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Small generic helpers

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs fn over items with at most `limit` calls in flight; results keep the items' order. */
export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function lane() {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/**
 * Polls `check` (async, returns a truthy value when done) every intervalMs until it succeeds or
 * timeoutMs passes; returns the truthy value, or throws naming `what` and the last value seen.
 * Errors thrown by check count as "not yet", except those with a truthy `fatal` property.
 */
export async function waitFor(check, { timeoutMs = 10000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  const maxRounds = Math.ceil(timeoutMs / Math.max(intervalMs, 1)) + 2;
  let last;
  for (let round = 0; round < maxRounds; round++) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      if (e?.fatal) throw e;
      last = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const shown = last instanceof Error ? `${last.name}: ${last.message}` : JSON.stringify(last);
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${shown})`);
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep merge of plain objects (arrays and scalars in `over` replace those in `base`). */
export function deepMerge(base, over) {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

function randomKey(prefix) {
  return `${prefix}-${crypto.randomBytes(16).toString('hex')}`;
}

/** A syntactically valid task id that no server has issued. */
export function randomTaskId() {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bytes = crypto.randomBytes(26);
  let s = 'task_';
  for (const b of bytes) s += alphabet[b % 32];
  return s;
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** One spawned child: its log file, line waiters and exit promise. */
class Proc {
  constructor(cluster, name, cmd, args, { env, kind = 'other' } = {}) {
    this.cluster = cluster;
    this.name = name;
    this.kind = kind; // 'sluice' | 'mock' | 'redis' | 'other'
    this.logPath = path.join(cluster.dir, 'logs', `${name}.log`);
    this.exitInfo = null;
    this.waiters = new Set();
    this.partial = { stdout: '', stderr: '' };
    fs.appendFileSync(this.logPath, `# ${new Date().toISOString()} $ ${cmd} ${args.map((a) => JSON.stringify(a)).join(' ')}\n`);
    this.child = spawn(cmd, args, {
      cwd: cluster.dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a signal reaches anything it spawned too (see signalGroup).
      detached: true,
    });
    this.pid = this.child.pid;
    // 'close' comes after 'exit' once the child's stdout/stderr are drained: the log is complete.
    this.closed = new Promise((resolve) => this.child.on('close', (code, signal) => {
      this.log(`# exited code=${code} signal=${signal}\n`);
      resolve();
    }));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        // spawn failure (e.g. ENOENT): there will be no 'exit' event.
        this.log(`# spawn error: ${err.message}\n`);
        if (!this.exitInfo) {
          this.exitInfo = { code: null, signal: null, error: err };
          this.onExit(resolve);
        }
      });
      this.child.on('exit', (code, signal) => {
        if (this.exitInfo) return;
        this.exitInfo = { code, signal };
        this.onExit(resolve);
      });
    });
    for (const stream of ['stdout', 'stderr']) {
      this.child[stream].on('data', (chunk) => this.onData(stream, chunk));
      this.child[stream].on('error', () => {});
    }
    cluster.track(this);
  }

  get alive() {
    return this.exitInfo === null && this.pid !== undefined;
  }

  log(text) {
    try {
      fs.appendFileSync(this.logPath, text);
    } catch {
      // the directory may already be gone during emergency cleanup
    }
  }

  onData(stream, chunk) {
    const text = chunk.toString('utf8');
    this.log(text);
    const lines = (this.partial[stream] + text).split('\n');
    this.partial[stream] = lines.pop();
    for (const line of lines) {
      for (const w of this.waiters) {
        if ((w.stream === 'any' || w.stream === stream) && w.test(line)) {
          this.waiters.delete(w);
          w.resolve(line);
        }
      }
    }
  }

  onExit(resolve) {
    // Anything the child left in its process group goes with it (the group id cannot have been
    // reused while members remain, so this is safe only now, not later).
    if (this.pid !== undefined) {
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // empty group
      }
    }
    this.cluster.untrack(this);
    for (const w of this.waiters) w.reject(new Error(`${this.name} exited (code=${this.exitInfo.code} signal=${this.exitInfo.signal}) while waiting for ${w.what}`));
    this.waiters.clear();
    resolve(this.exitInfo);
  }

  /** Resolves with the first line on `stream` ('stdout'|'stderr'|'any') that matches `test`. */
  waitLine(stream, test, timeoutMs, what) {
    if (!this.alive) return Promise.reject(new Error(`${this.name} is not running (waiting for ${what})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = {
        stream,
        what,
        test: typeof test === 'function' ? test : (line) => test.test(line),
        resolve: (line) => { clearTimeout(timer); resolve(line); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      };
      this.waiters.add(w);
    });
  }

  kill(signal = 'SIGTERM') {
    if (this.alive) signalGroup(this.pid, signal);
  }

  // Lets go of the pipes, which a leftover grandchild could otherwise hold open.
  releasePipes() {
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }

  /** {code, signal} once the process has exited; throws if it is still running after timeoutMs. */
  async waitExit(timeoutMs) {
    if (this.exitInfo) return this.exitInfo;
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
    const info = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (!info) throw new Error(`${this.name} (pid ${this.pid}) still running ${timeoutMs} ms after being asked to stop`);
    return info;
  }

  /** SIGTERM (or `signal`), then SIGKILL when it is still alive after graceMs. */
  async stop(signal = 'SIGTERM', graceMs = KILL_GRACE_MS) {
    if (!this.alive) return this.exitInfo;
    this.kill(signal);
    try {
      return await this.waitExit(graceMs);
    } catch {
      this.kill('SIGKILL');
      return this.waitExit(5000);
    }
  }

  /** The first sanitizer (ASan, LSan, UBSan) finding in this process's log, or null. */
  sanitizerReport() {
    let text;
    try {
      text = fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return null;
    }
    const m = /^.*(?:ERROR: (?:Address|Leak|Thread|Memory)Sanitizer|SUMMARY: \w+Sanitizer|:\d+:\d+: runtime error: ).*$/m.exec(text);
    return m ? m[0].slice(0, 300) : null;
  }

  /** The last n lines of this process's log file. */
  tail(n = LOG_TAIL_LINES) {
    try {
      const lines = fs.readFileSync(this.logPath, 'utf8').split('\n');
      if (lines.at(-1) === '') lines.pop();
      return lines.slice(-n).join('\n');
    } catch (e) {
      return `(log unavailable: ${e.message})`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster: temp dir, children, cleanup

const liveClusters = new Set(); // not yet stopped
const allClusters = new Set(); // for the failure output at exit
let safetyNetInstalled = false;

function installSafetyNet() {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('exit', (code) => {
    for (const c of liveClusters) c.emergencyCleanup();
    const failed = (code ?? 0) !== 0 || (process.exitCode ?? 0) !== 0;
    if (failed) for (const c of allClusters) c.printTails();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nharness: ${sig} received, killing child processes\n`);
      for (const c of liveClusters) c.emergencyCleanup();
      process.exit(128 + os.constants.signals[sig]);
    });
  }
  // node:test reports the exception itself; we only make sure no child outlives a broken run.
  process.on('uncaughtExceptionMonitor', (err) => {
    process.stderr.write(`\nharness: uncaught ${err?.stack ?? err}; killing child processes\n`);
    for (const c of liveClusters) c.emergencyCleanup();
  });
}


export class Cluster {
  /** `name` labels the temp dir and the failure output. Creates the temp dir at once. */
  constructor(name = 'sluice') {
    installSafetyNet();
    this.name = name;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-it-${name.replace(/[^A-Za-z0-9_-]/g, '_')}-`));
    fs.mkdirSync(path.join(this.dir, 'logs'));
    this.procs = new Set(); // live children
    this.everyProc = []; // every child ever spawned (for log tails)
    this.counters = new Map();
    this.redisServers = []; // checked for leaked call slots by stop()
    this.failed = false;
    this.stopped = false;
    this.tails = null; // captured by stop() before the dir goes away
    this.printed = false;
    this.keys = {
      alpha: randomKey('sk-test-alpha'),
      beta: randomKey('sk-test-beta'),
      mock: randomKey('sk-mock'),
    };
    this.pidFile = path.join(this.dir, 'children.pids');
    liveClusters.add(this);
    allClusters.add(this);
    this.startWatchdog();
  }

  // A detached shell that outlives us only to clean up: when this node process disappears
  // (even by SIGKILL), it kills every pid still listed in the pid file and removes the dir.
  startWatchdog() {
    const script = [
      'parent="$1"; dir="$2"',
      'n=0',
      'while kill -0 "$parent" 2>/dev/null && [ -d "$dir" ] && [ "$n" -lt 172800 ]; do sleep 0.5; n=$((n+1)); done',
      'if [ -f "$dir/children.pids" ]; then for p in $(cat "$dir/children.pids"); do kill -9 "-$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; fi',
      'case "$dir" in */sluice-it-*) rm -rf "$dir" ;; esac',
    ].join('\n');
    this.watchdog = spawn('/bin/sh', ['-c', script, 'sluice-it-watchdog', String(process.pid), this.dir], {
      detached: true,
      stdio: 'ignore',
    });
    this.watchdog.on('error', () => {});
    this.watchdog.unref();
  }

  writePidFile() {
    try {
      fs.writeFileSync(this.pidFile, [...this.procs].map((p) => p.pid).join('\n') + '\n');
    } catch {
      // dir removed
    }
  }

  track(proc) {
    if (proc.pid === undefined) return;
    this.procs.add(proc);
    this.everyProc.push(proc);
    this.writePidFile();
  }

  untrack(proc) {
    this.procs.delete(proc);
    if (!this.stopped) this.writePidFile();
  }

  nextName(base) {
    const n = (this.counters.get(base) ?? 0) + 1;
    this.counters.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  }

  spawn(name, cmd, args, opts) {
    if (this.stopped) throw new Error(`cluster ${this.name} is stopped`);
    return new Proc(this, name, cmd, args, opts);
  }

  /** Marks the run as failed so stop() prints the logs (process.exitCode is checked too). */
  markFailed() {
    this.failed = true;
  }

  /**
   * Ends every child (SIGTERM, SIGKILL after 5 s): sluice processes first, while Redis and the
   * mock are still up, then the rest. Prints the logs on failure and removes the dir. Throws
   * (failing the `after` hook, so the file) when a sluice process did not exit 0 on SIGTERM or a
   * sanitizer report shows up in the log of a sluice or mock process.
   */
  async stop() {
    if (this.stopped) return;
    const problems = [];
    const stopAll = (procs) => Promise.all(procs.map(async (p) => {
      const info = await p.stop('SIGTERM', KILL_GRACE_MS).catch((e) => ({ error: e }));
      if (p.kind === 'sluice' && info?.code !== 0) {
        problems.push(`${p.name} did not exit 0 on SIGTERM: ${JSON.stringify(info)}`);
      }
    }));
    await stopAll([...this.procs].filter((p) => p.kind === 'sluice'));
    if (problems.length === 0) {
      for (const r of this.redisServers) {
        const leak = await r.slotLeak().catch((e) => `could not check call slots: ${e.message}`);
        if (leak) problems.push(leak);
      }
    }
    await stopAll([...this.procs]);
    for (const p of this.everyProc) p.releasePipes();
    let timer;
    await Promise.race([
      Promise.all(this.everyProc.map((p) => p.closed)),
      new Promise((resolve) => { timer = setTimeout(resolve, 1000); }),
    ]);
    clearTimeout(timer);
    this.stopped = true;
    for (const p of this.everyProc) {
      if (p.kind !== 'sluice' && p.kind !== 'mock') continue;
      const report = p.sanitizerReport();
      if (report) problems.push(`${p.name}: sanitizer report: ${report}`);
    }
    if (problems.length > 0) this.failed = true;
    this.captureTails();
    if (this.failed || (process.exitCode ?? 0) !== 0) this.printTails();
    this.removeDir();
    liveClusters.delete(this);
    if (problems.length > 0) throw new Error(`${this.name}: ${problems.join('; ')}`);
  }

  captureTails() {
    if (this.tails) return;
    this.tails = this.everyProc.map((p) => ({ name: p.name, path: p.logPath, text: p.tail(LOG_TAIL_LINES) }));
  }

  printTails() {
    if (this.printed) return;
    this.printed = true;
    this.captureTails();
    const out = [`\n======== ${this.name}: last ${LOG_TAIL_LINES} lines of each child log (${this.dir}) ========`];
    for (const t of this.tails) out.push(`-------- ${t.name} --------`, t.text);
    out.push(`======== end of ${this.name} logs ========\n`);
    process.stderr.write(out.join('\n') + '\n');
  }

  removeDir() {
    try {
      this.watchdog?.kill('SIGKILL');
    } catch {
      // gone
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // Synchronous: usable from 'exit' and signal handlers.
  emergencyCleanup() {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.procs) signalGroup(p.pid, 'SIGKILL');
    this.captureTails();
    this.removeDir();
    liveClusters.delete(this);
  }

  // -------------------------------------------------------------------------------------------
  // redis-server

  /**
   * Starts redis-server on a free port with AOF (appendfsync always) in <dir>/redis
   * (redis-2, ... for a second server).
   * Returns {port, url, proc, stop(signal), restart(), cli(...args)}.
   */
  async startRedis() {
    const redisDir = path.join(this.dir, this.nextName('redis'));
    fs.mkdirSync(redisDir, { recursive: true });
    let lastErr;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const r = new RedisServer(this, port, redisDir);
      try {
        await r.start();
        this.redisServers.push(r);
        return r;
      } catch (e) {
        lastErr = e;
        await r.stop('SIGKILL').catch(() => {});
      }
    }
    throw lastErr;
  }

  // -------------------------------------------------------------------------------------------
  // sluice-mock

  /**
   * Starts $SLUICE_MOCK_BIN on an ephemeral port. opts: latencyMs, errorRate, errorStatus,
   * errorMessage, failFirst, rateLimit, retryAfter, hang, malformed, record (how many requests
   * /_mock/stats keeps, default 1000 here), seed, jobMs (upstream job duration of the video,
   * Replicate and fal jobs), apiKey (defaults to this.keys.mock; null for none), args (extra argv).
   */
  async startMock(opts = {}) {
    const bin = requireEnvBin('SLUICE_MOCK_BIN');
    const args = ['--listen', '127.0.0.1:0'];
    const flag = (name, v) => { if (v !== undefined && v !== null && v !== false) args.push(name, String(v)); };
    flag('--latency-ms', opts.latencyMs);
    flag('--error-rate', opts.errorRate);
    flag('--error-status', opts.errorStatus);
    flag('--error-message', opts.errorMessage);
    flag('--fail-first', opts.failFirst);
    flag('--rate-limit', opts.rateLimit);
    flag('--retry-after', opts.retryAfter);
    if (opts.hang) args.push('--hang');
    if (opts.malformed) args.push('--malformed');
    flag('--record', opts.record ?? 1000);
    flag('--seed', opts.seed);
    flag('--job-ms', opts.jobMs);
    const apiKey = opts.apiKey === undefined ? this.keys.mock : opts.apiKey;
    flag('--api-key', apiKey);
    if (opts.args) args.push(...opts.args);

    const proc = this.spawn(this.nextName('mock'), bin, args, { kind: 'mock' });
    const line = await proc.waitLine('stdout', /sluice-mock listening on 127\.0\.0\.1:\d+/, 10000,
      '"sluice-mock listening on 127.0.0.1:PORT" on stdout');
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)[1]);
    return new Mock(proc, port);
  }

  // -------------------------------------------------------------------------------------------
  // sluice

  /** makeConfig() with a fresh listen port; `redis`/`mock` are the objects start*() returned. */
  async configFor({ redis, mock, overrides } = {}) {
    return makeConfig({
      redisUrl: redis.url,
      mockBaseUrl: mock ? mock.baseUrl : 'http://127.0.0.1:9/v1',
      listenPort: await freePort(),
      overrides,
    });
  }

  /**
   * makeDialectConfig() with a fresh listen port: every provider dialect pointed at ONE mock,
   * blobs in <dir>/blobs. opts: pollIntervalMs, timeoutMs, overrides.
   */
  async dialectConfigFor({ redis, mock, pollIntervalMs, timeoutMs, overrides } = {}) {
    return makeDialectConfig({
      redisUrl: redis.url,
      mockRoot: mock.root,
      listenPort: await freePort(),
      blobsDir: path.join(this.dir, 'blobs'),
      pollIntervalMs,
      timeoutMs,
      overrides,
    });
  }

  /**
   * The stack of an SDK test: redis-server, sluice-mock (`mock` are its startMock options),
   * `sluice serve` on dialectConfigFor (with pollIntervalMs), a native client and an official
   * OpenAI SDK client (OpenAIClass, through openaiClient; `sdk` adds to its options), both with the
   * alpha key and sluice's base URL. Returns { redis, mock, sluice, api, openai }.
   */
  async startSdkStack(OpenAIClass, { mock: mockOpts = {}, pollIntervalMs, sdk = {} } = {}) {
    const redis = await this.startRedis();
    const mock = await this.startMock(mockOpts);
    const sluice = await this.startSluice('serve', await this.dialectConfigFor({ redis, mock, pollIntervalMs }));
    const api = this.client(sluice.baseUrl, this.keys.alpha);
    const openai = openaiClient(OpenAIClass, { apiKey: this.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, ...sdk });
    return { redis, mock, sluice, api, openai };
  }

  /**
   * Writes `config` to a file and starts `$SLUICE_BIN <role> --config <file>`; waits for
   * msg="ready" on stderr and, for serve/api, for GET /healthz = 200 (15 s in all).
   */
  async startSluice(role, config, { env = {}, readyTimeoutMs = 15000 } = {}) {
    assert.ok(['serve', 'api', 'worker', 'scheduler'].includes(role), `unknown sluice role ${role}`);
    const bin = requireEnvBin('SLUICE_BIN');
    const name = this.nextName(`sluice-${role}`);
    const configPath = path.join(this.dir, `${name}.json`);
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    const proc = this.spawn(name, bin, [role, '--config', configPath], {
      kind: 'sluice',
      env: {
        SLUICE_TEST_KEY_A: this.keys.alpha,
        SLUICE_TEST_KEY_B: this.keys.beta,
        SLUICE_TEST_MOCK_KEY: this.keys.mock,
        SLUICE_TEST_ADMIN_KEY: ADMIN_KEY,
        ...env,
      },
    });
    const started = Date.now();
    // logfmt (msg="ready") or log.format json ("msg":"ready")
    await proc.waitLine('stderr', (l) => l.includes('msg="ready"') || l.includes('"msg":"ready"'), readyTimeoutMs,
      'msg="ready" line on stderr');
    const baseUrl = `http://${config.listen}`;
    if (role === 'serve' || role === 'api') {
      const left = Math.max(1000, readyTimeoutMs - (Date.now() - started));
      await waitFor(async () => {
        if (!proc.alive) throw Object.assign(new Error(`${name} exited: ${JSON.stringify(proc.exitInfo)}`), { fatal: true });
        const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        return res.status === 200;
      }, { timeoutMs: left, intervalMs: 100, what: `${name} GET /healthz = 200` });
    }
    return {
      role,
      name,
      proc,
      pid: proc.pid,
      config,
      configPath,
      baseUrl,
      get alive() { return proc.alive; },
      kill: (signal = 'SIGTERM') => proc.kill(signal),
      waitExit: (timeoutMs = 10000) => proc.waitExit(timeoutMs),
      stop: (signal = 'SIGTERM', graceMs = KILL_GRACE_MS) => proc.stop(signal, graceMs),
    };
  }

  /** An HTTP client for a sluice base URL; key defaults to tenant alpha's. */
  client(baseUrl, key = this.keys.alpha) {
    return client(baseUrl, key);
  }
}

/** Sends signal to the process group led by pid (each child leads its own), else to pid. */
function signalGroup(pid, signal) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function requireEnvBin(name) {
  const bin = process.env[name];
  if (!bin) throw new Error(`${name} is not set (ctest sets it; by hand: ${name}=build/${name === 'SLUICE_BIN' ? 'sluice' : 'sluice-mock'} node <test>)`);
  if (!fs.existsSync(bin)) throw new Error(`${name}=${bin} does not exist`);
  // Children run in the cluster's temp dir: a path relative to ours must not be read from there.
  return bin.includes('/') ? path.resolve(bin) : bin;
}

// ---------------------------------------------------------------------------------------------
// redis-server

class RedisServer {
  constructor(cluster, port, dir) {
    this.cluster = cluster;
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}/0`;
    this.proc = null;
  }

  args() {
    return ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no',
      '--protected-mode', 'no'];
  }

  async start() {
    if (this.proc?.alive) throw new Error(`redis on ${this.port} is already running`);
    this.proc = this.cluster.spawn(this.cluster.nextName('redis-server'), 'redis-server', this.args(), { kind: 'redis' });
    const proc = this.proc;
    await waitFor(async () => {
      if (!proc.alive) throw Object.assign(new Error(`redis-server exited: ${JSON.stringify(proc.exitInfo)}`), { fatal: true });
      return (await this.cli('ping').catch(() => '')) === 'PONG';
    }, { timeoutMs: 10000, intervalMs: 50, what: `redis-server on port ${this.port} to answer PONG` });
    return this;
  }

  /** Stops this redis (SIGTERM by default, SIGKILL for a crash) and waits until it has exited. */
  async stop(signal = 'SIGTERM') {
    if (!this.proc) return null;
    return this.proc.stop(signal, KILL_GRACE_MS);
  }

  /** Starts redis again on the same port and dir (the AOF is replayed). */
  async restart() {
    if (this.proc?.alive) await this.stop('SIGTERM');
    // The port was ours a moment ago; give the kernel a few tries if it is slow to free it.
    let lastErr;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return await this.start();
      } catch (e) {
        lastErr = e;
        await this.proc?.stop('SIGKILL').catch(() => {});
        await sleep(200);
      }
    }
    throw lastErr;
  }

  /**
   * The call-slot invariant, checked by Cluster.stop() once every sluice process has exited:
   * the deployments' in-flight counts (`inf` of each {<tag>}:dep:* hash, any tag, what
   * sluice_deployment_in_flight shows) add up to the tasks that still hold a call slot
   * (in_progress or cancelling, claimed for a deployment, no upstream job: a worker was killed
   * and its lease has not been recovered yet). Once all tasks are terminal both are 0. Returns
   * null when it holds, else what is wrong; null too when this Redis is not running (nothing to
   * check).
   */
  async slotLeak() {
    if (!this.proc?.alive) return null;
    const script = `
      local function each(pattern, fn)
        local cur = '0'
        repeat
          local r = redis.call('SCAN', cur, 'MATCH', pattern, 'COUNT', 1000)
          cur = r[1]
          for _, k in ipairs(r[2]) do
            if redis.call('TYPE', k).ok == 'hash' then fn(k) end
          end
        until cur == '0'
      end
      local inf, held, deps = 0, 0, {}
      each('{*}:dep:*', function(k)
        local n = tonumber(redis.call('HGET', k, 'inf')) or 0
        inf = inf + n
        if n ~= 0 then deps[#deps + 1] = k .. '=' .. n end
      end)
      each('{*}:t:*', function(k)
        local f = redis.call('HMGET', k, 'status', 'up_id', 'dep')
        if (f[1] == 'in_progress' or f[1] == 'cancelling') and not f[2] and f[3] then
          held = held + 1
        end
      end)
      return {inf, held, table.concat(deps, ' ')}`;
    const out = (await this.cli('EVAL', script, '0')).split('\n');
    const [inf, held] = [Number(out[0]), Number(out[1])];
    if (inf === held) return null;
    return `call slots leaked: deployments count ${inf} calls in flight, tasks hold ${held} (${out[2] ?? ''})`;
  }

  /** INFO <section> as an object of strings ({used_memory: '1234', ...}). */
  async info(section = 'memory') {
    const out = await this.cli('info', section);
    const info = {};
    for (const line of out.split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) info[line.slice(0, i)] = line.slice(i + 1).trim();
    }
    return info;
  }

  /** redis-cli -p PORT ...args → trimmed stdout (rejects on non-zero exit or after 5 s). */
  cli(...args) {
    return new Promise((resolve, reject) => {
      execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...args.map(String)],
        { timeout: 5000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
          if (err) reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`));
          else resolve(stdout.trim());
        });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// sluice-mock control

class Mock {
  constructor(proc, port) {
    this.proc = proc;
    this.port = port;
    this.root = `http://127.0.0.1:${port}`;
    this.baseUrl = `${this.root}/v1`;
  }

  async control(method, p, body) {
    const res = await fetch(this.root + p, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (res.status < 200 || res.status > 299) throw new Error(`mock ${method} ${p}: ${res.status} ${text}`);
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /** {requests, in_flight, by_status, by_path, last_requests} */
  stats() {
    return this.control('GET', '/_mock/stats');
  }

  /** Changes the mock's behaviour: {latency_ms, error_rate, error_status, fail_first, ...}. */
  config(obj) {
    return this.control('POST', '/_mock/config', obj);
  }

  /** Clears the counters and request log (and the behaviour back to the command line's). */
  reset() {
    return this.control('POST', '/_mock/reset', {});
  }

  /** stats().by_route: provider requests counted by route name ("openai.chat", "fal.submit", ...). */
  async byRoute() {
    return (await this.stats()).by_route ?? {};
  }

  /** How many chat completion requests the mock received. */
  async chatCount() {
    const s = await this.stats();
    return s.by_path?.[CHAT_PATH] ?? 0;
  }

  stop(signal = 'SIGTERM') {
    return this.proc.stop(signal);
  }
}

/** The recorded requests of a stats object that went to `p` (default: chat completions). */
export function mockRequests(stats, p = CHAT_PATH) {
  return (stats.last_requests ?? []).filter((r) => (r.path ?? '').split('?')[0] === p);
}

/** A header of a recorded mock request (headers as an object or as [name, value] pairs). */
export function recordedHeader(req, name) {
  const h = req.headers ?? {};
  const lower = name.toLowerCase();
  const entries = Array.isArray(h) ? h : Object.entries(h);
  for (const [k, v] of entries) if (String(k).toLowerCase() === lower) return Array.isArray(v) ? v[0] : v;
  return undefined;
}

/** The parsed JSON body of a recorded mock request. */
export function recordedBody(req) {
  if (typeof req.body === 'string') {
    try {
      return JSON.parse(req.body);
    } catch {
      return undefined;
    }
  }
  return req.body;
}

// ---------------------------------------------------------------------------------------------
// sluice configuration

/** The sluice config the tests run with; `overrides` is deep-merged into it. */
export function makeConfig({ redisUrl, mockBaseUrl, listenPort, overrides = {} }) {
  const base = {
    listen: `127.0.0.1:${listenPort}`,
    redis: redisUrl,
    redis_timeout_ms: 2000,
    keys: [
      { key: 'env:SLUICE_TEST_KEY_A', tenant: 'alpha' },
      { key: 'env:SLUICE_TEST_KEY_B', tenant: 'beta' },
    ],
    admin_keys: ['env:SLUICE_TEST_ADMIN_KEY'],
    providers: {
      mock: { dialect: 'openai', base_url: mockBaseUrl, api_key: 'env:SLUICE_TEST_MOCK_KEY', timeout_ms: 10000 },
    },
    models: {
      'mock-chat': {
        kind: 'chat',
        strategy: 'ordered',
        deployments: [{ provider: 'mock', model: 'mock-gpt', price: { ...MOCK_PRICE } }],
      },
    },
    limits: { max_body_bytes: 1048576, max_header_bytes: 16384, max_json_depth: 64, request_timeout_s: 30 },
    tasks: { max_attempts: 3, lease_ms: 3000, retention_s: 3600, backoff_base_ms: 100, backoff_max_ms: 1000 },
    worker: { concurrency: 256, claim_batch: 32, shutdown_grace_ms: 3000 },
    scheduler: { tick_ms: 200 },
  };
  return deepMerge(base, overrides);
}

/**
 * The aliases of the multi-dialect config (makeDialectConfig): alias → {kind, provider, model
 * (upstream), price, routes (the mock's by_route names that count one upstream submission)}.
 */
export const DIALECT_MODELS = {
  'chat-openai': { kind: 'chat', provider: 'openai', model: 'gpt-4o-mini',
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }, routes: ['openai.chat'] },
  'chat-anthropic': { kind: 'chat', provider: 'anthropic', model: 'claude-sonnet-4',
    price: { input_per_mtok: 3, output_per_mtok: 15 }, routes: ['anthropic.messages'] },
  'chat-gemini': { kind: 'chat', provider: 'gemini', model: 'gemini-2.0-flash',
    price: { input_per_mtok: 0.1, output_per_mtok: 0.4 }, routes: ['gemini.generate', 'gemini.stream'] },
  'embed-openai': { kind: 'embedding', provider: 'openai', model: 'text-embedding-3-small',
    price: { input_per_mtok: 0.02 }, routes: ['openai.embeddings'] },
  'image-openai': { kind: 'image', provider: 'openai', model: 'gpt-image-1',
    price: { per_image: 0.04 }, routes: ['openai.images'] },
  'image-replicate': { kind: 'image', provider: 'replicate', model: 'black-forest-labs/flux-schnell',
    price: { per_image: 0.003 }, routes: ['replicate.create_model', 'replicate.create'] },
  'image-fal': { kind: 'image', provider: 'fal', model: 'fal-ai/flux/dev',
    price: { per_image: 0.025 }, routes: ['fal.submit'] },
  'video-openai': { kind: 'video', provider: 'openai', model: 'sora-2',
    price: { per_video_second: 0.1 }, routes: ['openai.videos.create'] },
  'video-replicate': { kind: 'video', provider: 'replicate', model: 'minimax/video-01',
    price: { per_video_second: 0.05 }, routes: ['replicate.create_model', 'replicate.create'] },
  'video-fal': { kind: 'video', provider: 'fal', model: 'fal-ai/kling-video',
    price: { per_video_second: 0.07 }, routes: ['fal.submit'] },
  'video-gemini': { kind: 'video', provider: 'gemini', model: 'veo-3.0-generate-001',
    price: { per_video_second: 0.4 }, routes: ['gemini.videos.create'] },
};

/** The mock's path prefix of each dialect (the provider's base_url is mock root + prefix). */
export const DIALECT_PREFIX = {
  openai: '/v1',
  anthropic: '/anthropic/v1',
  gemini: '/gemini/v1beta',
  replicate: '/replicate/v1',
  fal: '/fal',
};

/**
 * A sluice config with one provider per dialect (named like the dialect), all on one sluice-mock
 * at mockRoot ("http://127.0.0.1:PORT"), and every alias of DIALECT_MODELS; blobs in blobsDir.
 * `overrides` is deep-merged into it (e.g. {providers: {gemini: {timeout_ms: 1000}}}).
 */
export function makeDialectConfig({ redisUrl, mockRoot, listenPort, blobsDir, pollIntervalMs = 200,
  timeoutMs = 10000, overrides = {} }) {
  const providers = {};
  for (const [name, prefix] of Object.entries(DIALECT_PREFIX)) {
    providers[name] = {
      dialect: name,
      base_url: mockRoot + prefix,
      api_key: 'env:SLUICE_TEST_MOCK_KEY',
      timeout_ms: timeoutMs,
      poll_interval_ms: pollIntervalMs,
    };
  }
  providers.anthropic.default_max_tokens = 1024;
  const models = {};
  for (const [alias, m] of Object.entries(DIALECT_MODELS)) {
    models[alias] = {
      kind: m.kind,
      strategy: 'ordered',
      deployments: [{ provider: m.provider, model: m.model, price: { ...m.price } }],
    };
  }
  const base = makeConfig({ redisUrl, mockBaseUrl: mockRoot + '/v1', listenPort });
  base.providers = providers;
  base.models = models;
  base.blobs = { dir: blobsDir, allow_hosts: ['127.0.0.1'] }; // the mock's artifact URLs are loopback
  return deepMerge(base, overrides);
}

/**
 * The chat alias `chat-compat` of the Responses tests: an OpenAI-compatible server that has only
 * chat completions (provider `compat`, dialect openai, `responses: false`), so response tasks on
 * it are translated to chat like any other dialect's. compatChatOverrides(mockRoot) is the part
 * to deep-merge into a makeDialectConfig / dialectConfigFor config (on the same mock's /v1).
 */
export const COMPAT_CHAT = {
  alias: 'chat-compat', kind: 'chat', provider: 'compat', model: 'compat-chat-model',
  price: { input_per_mtok: 0.5, output_per_mtok: 1.5 }, routes: ['openai.chat'],
};

export function compatChatOverrides(mockRoot, { timeoutMs = 10000 } = {}) {
  return {
    providers: {
      [COMPAT_CHAT.provider]: {
        dialect: 'openai', base_url: mockRoot + DIALECT_PREFIX.openai, api_key: 'env:SLUICE_TEST_MOCK_KEY',
        timeout_ms: timeoutMs, responses: false,
      },
    },
    models: {
      [COMPAT_CHAT.alias]: {
        kind: COMPAT_CHAT.kind, strategy: 'ordered',
        deployments: [{ provider: COMPAT_CHAT.provider, model: COMPAT_CHAT.model, price: { ...COMPAT_CHAT.price } }],
      },
    },
  };
}

/** Sums a by_route object over route names. */
export function routeCount(byRoute, routes) {
  return routes.reduce((n, r) => n + (byRoute?.[r] ?? 0), 0);
}

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM, ...), or null when unreadable. */
export function procStatusKb(pid, field = 'VmRSS') {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Server-sent events of a text/event-stream body → [{event, data}] (data lines joined by "\n";
 * comments and empty events skipped).
 */
export function parseSse(text) {
  const events = [];
  for (const block of String(text).split(/\r?\n\r?\n/)) {
    let event = 'message';
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) events.push({ event, data: data.join('\n') });
  }
  return events;
}

// ---------------------------------------------------------------------------------------------
// HTTP client for sluice

/**
 * client(baseUrl, key): request(method, path, {body, headers, rawBody, timeoutMs, binary}) →
 * {status, headers, json, text, bytes, ms} (bytes: a Buffer, only with binary: true). key null
 * sends no Authorization header; a caller-supplied `authorization` header replaces the default one.
 */
export function client(baseUrl, key) {
  async function request(method, p, { body, headers = {}, rawBody, timeoutMs = 30000, binary = false } = {}) {
    const h = {};
    if (key !== null && key !== undefined) h.authorization = `Bearer ${key}`;
    let payload;
    if (rawBody !== undefined) payload = rawBody;
    else if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined) h['content-type'] = 'application/json';
    for (const [k, v] of Object.entries(headers)) {
      if (v === null || v === undefined) delete h[k.toLowerCase()];
      else h[k.toLowerCase()] = String(v);
    }
    const t0 = Date.now();
    const res = await fetch(baseUrl + p, { method, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    const bytes = binary ? Buffer.from(await res.arrayBuffer()) : undefined;
    const text = binary ? bytes.toString('latin1') : await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: Object.fromEntries(res.headers), json, text, bytes, ms: Date.now() - t0 };
  }

  /**
   * POST /v1/tasks for a chat task. `content` is the user message (or an array of messages);
   * extra: {headers, timeoutMs, input: {...merged into input}, ...other top-level fields}.
   */
  function submitChat(model, content, extra = {}) {
    const { headers, timeoutMs, input, ...fields } = extra;
    const messages = Array.isArray(content) ? content : [{ role: 'user', content }];
    const body = { kind: 'chat', input: { model, messages, ...input }, ...fields };
    return request('POST', '/v1/tasks', { body, headers, timeoutMs });
  }

  /**
   * POST /v1/tasks {kind, input, ...fields}; extra: {headers, timeoutMs, ...other top-level
   * fields}. `wait` (seconds) adds `Prefer: wait=N`.
   */
  function submit(kind, input, extra = {}) {
    const { headers = {}, timeoutMs, wait, ...fields } = extra;
    const h = { ...headers };
    if (wait !== undefined) h.prefer = `wait=${wait}`;
    return request('POST', '/v1/tasks', { body: { kind, input, ...fields }, headers: h,
      timeoutMs: timeoutMs ?? (wait !== undefined ? (wait + 15) * 1000 : undefined) });
  }

  /** GET /v1/tasks/{id} */
  function getTask(id, opts) {
    return request('GET', `/v1/tasks/${id}`, opts);
  }

  /** POST /v1/tasks/{id}/cancel */
  function cancel(id, opts) {
    return request('POST', `/v1/tasks/${id}/cancel`, opts);
  }

  /** GET /v1/tasks?... with the query given as an object. */
  function list(query = {}, opts) {
    const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
    const s = qs.toString();
    return request('GET', `/v1/tasks${s ? `?${s}` : ''}`, opts);
  }

  /**
   * Polls every task until all are terminal (bounded concurrency, a pause between rounds);
   * returns the final task objects in the order of `ids`. Throws after timeoutMs with a summary.
   */
  async function waitTerminal(ids, timeoutMs = 60000, { concurrency = 32, intervalMs = 200 } = {}) {
    const final = new Map();
    const last = new Map();
    const deadline = Date.now() + timeoutMs;
    const maxRounds = Math.ceil(timeoutMs / intervalMs) + 2;
    let pending = [...new Set(ids)];
    for (let round = 0; round < maxRounds && pending.length > 0; round++) {
      await mapLimit(pending, concurrency, async (id) => {
        const left = deadline - Date.now();
        if (left <= 0) return;
        let res;
        try {
          res = await getTask(id, { timeoutMs: Math.min(10000, Math.max(left, 500)) });
        } catch (e) {
          last.set(id, `error ${e.name}`);
          return;
        }
        if (res.status !== 200 || !res.json) {
          last.set(id, `HTTP ${res.status}`);
          return;
        }
        last.set(id, res.json.status);
        if (TERMINAL.has(res.json.status)) final.set(id, res.json);
      });
      pending = pending.filter((id) => !final.has(id));
      if (pending.length === 0 || Date.now() >= deadline) break;
      await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
    }
    if (pending.length > 0) {
      const counts = {};
      for (const id of pending) {
        const s = last.get(id) ?? 'never seen';
        counts[s] = (counts[s] ?? 0) + 1;
      }
      throw new Error(`waitTerminal: ${pending.length} of ${new Set(ids).size} tasks not terminal after ${timeoutMs} ms; ` +
        `their last states: ${JSON.stringify(counts)}; e.g. ${pending.slice(0, 3).join(', ')}`);
    }
    return ids.map((id) => final.get(id));
  }

  /** GET /metrics with the admin key, parsed (see parseMetrics); throws unless it answers 200. */
  async function metrics(opts = {}) {
    const headers = { authorization: `Bearer ${ADMIN_KEY}`, ...(opts.headers ?? {}) };
    const res = await request('GET', '/metrics', { ...opts, headers });
    if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.text.slice(0, 200)}`);
    return parseMetrics(res.text);
  }

  return { baseUrl, key, request, submit, submitChat, getTask, cancel, list, waitTerminal, metrics };
}

/**
 * Prometheus text → {text, samples: [{name, labels, value}], families (names in order of first
 * appearance), get(name, labels) (value of the first sample whose labels include `labels`, or
 * undefined), sum(name, labels) (over every such sample, 0 when none), all(name, labels)}.
 * Comment lines are skipped; values are numbers (NaN/+Inf as JS numbers).
 */
export function parseMetrics(text) {
  const samples = [];
  const families = [];
  const seen = new Set();
  for (const line of String(text).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) {
      samples.push({ name: null, labels: {}, value: NaN, bad: line });
      continue;
    }
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;
      let lm;
      while ((lm = re.exec(m[3])) !== null) labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const raw = m[4];
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: m[1], labels, value });
    if (!seen.has(m[1])) {
      seen.add(m[1]);
      families.push(m[1]);
    }
  }
  const matches = (s, name, labels) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === String(v));
  return {
    text,
    samples,
    families,
    all: (name, labels = {}) => samples.filter((s) => matches(s, name, labels)),
    get: (name, labels = {}) => samples.find((s) => matches(s, name, labels))?.value,
    sum: (name, labels = {}) => samples.filter((s) => matches(s, name, labels)).reduce((a, s) => a + s.value, 0),
  };
}

/**
 * A provider entry (openai dialect) for one sluice-mock, for configs with several mocks (one per
 * deployment): {dialect, base_url, api_key, timeout_ms, ...extra}.
 */
export function mockProvider(mock, extra = {}) {
  return { dialect: 'openai', base_url: mock.baseUrl, api_key: 'env:SLUICE_TEST_MOCK_KEY', timeout_ms: 10000, ...extra };
}

/**
 * Sends `body` (a string, possibly many MB) with node:http in chunks, stopping as soon as the
 * server answers, so a server that rejects early (413) and closes is still heard.
 * → {status, headers, json, text} or throws when no response came at all.
 */
export function sendLargeBody(baseUrl, key, method, p, body, { timeoutMs = 30000 } = {}) {
  const url = new URL(baseUrl + p);
  const buf = Buffer.from(body);
  return new Promise((resolve, reject) => {
    let settled = false;
    let gotResponse = false;
    const finish = (fn, v) => { if (!settled) { settled = true; clearTimeout(timer); fn(v); } };
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      method,
      headers: {
        'content-type': 'application/json',
        'content-length': buf.length,
        ...(key ? { authorization: `Bearer ${key}` } : {}),
      },
    });
    const timer = setTimeout(() => { req.destroy(); finish(reject, new Error(`no response within ${timeoutMs} ms`)); }, timeoutMs);
    req.on('response', (res) => {
      gotResponse = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', () => {});
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        finish(resolve, { status: res.statusCode, headers: res.headers, json, text });
        req.destroy();
      });
    });
    req.on('error', (err) => {
      // EPIPE/ECONNRESET after the server answered and closed is expected; wait for 'end'.
      if (!gotResponse) finish(reject, new Error(`request failed before any response: ${err.message}`));
    });
    const CHUNK = 64 * 1024;
    let off = 0;
    const pump = () => {
      while (off < buf.length && !gotResponse && !req.destroyed) {
        const ok = req.write(buf.subarray(off, off + CHUNK));
        off += CHUNK;
        if (!ok) {
          req.once('drain', pump);
          return;
        }
      }
      if (!gotResponse && !req.destroyed) req.end();
    };
    // Headers first: a server that rejects on Content-Length answers before any body byte, and
    // then there is no write racing its close.
    req.flushHeaders();
    setTimeout(pump, 300);
  });
}

// ---------------------------------------------------------------------------------------------
// Assertions

/** res has `status` and an OpenAI error envelope body. */
export function assertErrorEnvelope(res, status) {
  const ctx = `${res.status} ${String(res.text).slice(0, 300)}`;
  assert.equal(res.status, status, `expected HTTP ${status}, got ${ctx}`);
  assert.ok(res.json && typeof res.json === 'object' && !Array.isArray(res.json), `error body is not a JSON object: ${ctx}`);
  assert.deepEqual(Object.keys(res.json), ['error'], `error body must be exactly {"error": {...}}: ${ctx}`);
  const e = res.json.error;
  assert.ok(e && typeof e === 'object' && !Array.isArray(e), `"error" is not an object: ${ctx}`);
  assert.equal(typeof e.message, 'string', `error.message must be a string: ${ctx}`);
  assert.ok(e.message.length > 0, `error.message is empty: ${ctx}`);
  assert.equal(typeof e.type, 'string', `error.type must be a string: ${ctx}`);
  assert.ok('param' in e && (e.param === null || typeof e.param === 'string'), `error.param must be string|null: ${ctx}`);
  assert.ok('code' in e && (e.code === null || typeof e.code === 'string'), `error.code must be string|null: ${ctx}`);
  const ct = res.headers?.['content-type'] ?? '';
  assert.match(String(ct), /application\/json/, `error content-type should be JSON, got "${ct}"`);
}

function isUnixSeconds(v) {
  // Between 2020 and 2100, an integer: catches milliseconds and strings.
  return Number.isInteger(v) && v > 1577836800 && v < 4102444800;
}

/** Every field a task object must have, whatever its state. */
export function assertTaskObject(task, { kind = 'chat', model = 'mock-chat' } = {}) {
  const ctx = () => JSON.stringify(task).slice(0, 600);
  assert.ok(task && typeof task === 'object', 'task is not an object');
  assert.match(String(task.id), TASK_ID_RE, `task id: ${ctx()}`);
  assert.equal(task.object, 'task', `object: ${ctx()}`);
  assert.equal(task.kind, kind, `kind: ${ctx()}`);
  assert.equal(task.model, model, `model: ${ctx()}`);
  assert.ok(['queued', 'in_progress', 'completed', 'failed', 'cancelled', 'cancelling', 'expired'].includes(task.status), `status: ${ctx()}`);
  assert.ok(['interactive', 'normal', 'batch'].includes(task.priority), `priority: ${ctx()}`);
  assert.ok(isUnixSeconds(task.created_at), `created_at (Unix seconds): ${ctx()}`);
  for (const f of ['started_at', 'completed_at', 'expires_at']) {
    assert.ok(f in task, `${f} missing: ${ctx()}`);
    assert.ok(task[f] === null || isUnixSeconds(task[f]), `${f} must be Unix seconds or null: ${ctx()}`);
  }
  assert.ok(Number.isInteger(task.attempts) && task.attempts >= 0, `attempts: ${ctx()}`);
  assert.ok(Number.isInteger(task.max_attempts) && task.max_attempts >= 1, `max_attempts: ${ctx()}`);
  assert.ok(task.attempts <= task.max_attempts, `attempts > max_attempts: ${ctx()}`);
  for (const f of ['provider', 'result', 'error', 'usage', 'cost']) assert.ok(f in task, `${f} missing (null allowed): ${ctx()}`);
  assert.ok('metadata' in task, `metadata missing: ${ctx()}`);
}

/** The reply sluice-mock gives for a last user message. */
export function expectedMockReply(lastUserContent) {
  return MOCK_REPLY_PREFIX + Buffer.from(lastUserContent, 'utf8').subarray(0, 64).toString('utf8');
}

/** The content of choices[0].message of a task's result, or undefined. */
export function replyOf(task) {
  return task?.result?.choices?.[0]?.message?.content;
}

/**
 * A completed chat task from the mock deployment: result, usage, cost, provider, timestamps.
 * opts: lastUserContent (checks the reply text), attempts (exact), priority, metadata.
 */
export function assertCompletedChatTask(task, { lastUserContent, attempts, priority, metadata } = {}) {
  const ctx = () => JSON.stringify(task).slice(0, 800);
  assertTaskObject(task);
  assert.equal(task.status, 'completed', `status: ${ctx()}`);
  assert.equal(task.error, null, `a completed task has error null: ${ctx()}`);
  if (attempts !== undefined) assert.equal(task.attempts, attempts, `attempts: ${ctx()}`);
  else assert.ok(task.attempts >= 1, `attempts >= 1: ${ctx()}`);
  if (priority !== undefined) assert.equal(task.priority, priority, `priority: ${ctx()}`);
  if (metadata !== undefined) assert.deepEqual(task.metadata, metadata, `metadata: ${ctx()}`);

  assert.ok(isUnixSeconds(task.started_at) && isUnixSeconds(task.completed_at), `started_at/completed_at: ${ctx()}`);
  assert.ok(task.created_at <= task.started_at && task.started_at <= task.completed_at,
    `timestamps out of order (created ${task.created_at}, started ${task.started_at}, completed ${task.completed_at})`);

  const r = task.result;
  assert.ok(r && typeof r === 'object', `result: ${ctx()}`);
  assert.equal(r.object, 'chat.completion', `result.object: ${ctx()}`);
  assert.ok(Array.isArray(r.choices) && r.choices.length >= 1, `result.choices: ${ctx()}`);
  assert.equal(r.choices[0].message?.role, 'assistant', `choices[0].message.role: ${ctx()}`);
  const content = replyOf(task);
  assert.equal(typeof content, 'string', `choices[0].message.content: ${ctx()}`);
  assert.ok(content.startsWith(MOCK_REPLY_PREFIX), `reply should start with "${MOCK_REPLY_PREFIX}": ${ctx()}`);
  if (lastUserContent !== undefined) {
    const want = expectedMockReply(lastUserContent);
    assert.ok(content.startsWith(want), `reply "${content}" should start with "${want}"`);
  }

  const u = task.usage;
  assert.ok(u && typeof u === 'object', `usage: ${ctx()}`);
  for (const f of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(u[f]) && u[f] >= 0, `usage.${f}: ${ctx()}`);
  }
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, `usage.total_tokens: ${ctx()}`);
  if (r.usage) {
    assert.equal(u.prompt_tokens, r.usage.prompt_tokens, `usage matches result.usage: ${ctx()}`);
    assert.equal(u.completion_tokens, r.usage.completion_tokens, `usage matches result.usage: ${ctx()}`);
  }

  const p = task.provider;
  assert.ok(p && typeof p === 'object', `provider: ${ctx()}`);
  assert.equal(p.name, 'mock', `provider.name: ${ctx()}`);
  assert.equal(p.model, 'mock-gpt', `provider.model: ${ctx()}`);
  assert.ok('upstream_id' in p && (p.upstream_id === null || typeof p.upstream_id === 'string'), `provider.upstream_id: ${ctx()}`);

  const c = task.cost;
  assert.ok(c && typeof c === 'object', `cost: ${ctx()}`);
  assert.equal(typeof c.amount, 'number', `cost.amount: ${ctx()}`);
  assert.ok(Number.isFinite(c.amount) && c.amount >= 0, `cost.amount: ${ctx()}`);
  const want = (u.prompt_tokens * MOCK_PRICE.input_per_mtok + u.completion_tokens * MOCK_PRICE.output_per_mtok) / 1e6;
  assert.ok(Math.abs(c.amount - want) <= Math.max(1e-6, want * 0.01),
    `cost.amount ${c.amount} should be ${want} from the price table (usage ${JSON.stringify(u)})`);
}

/** A failed task's error record. */
export function assertTaskError(task, { retryable, providerStatus, attempts } = {}) {
  const ctx = () => JSON.stringify(task).slice(0, 800);
  assertTaskObject(task);
  assert.equal(task.status, 'failed', `status: ${ctx()}`);
  const e = task.error;
  assert.ok(e && typeof e === 'object', `error: ${ctx()}`);
  assert.equal(typeof e.message, 'string', `error.message: ${ctx()}`);
  assert.ok(e.message.length > 0, `error.message empty: ${ctx()}`);
  assert.equal(typeof e.type, 'string', `error.type: ${ctx()}`);
  assert.ok('code' in e && (e.code === null || typeof e.code === 'string'), `error.code: ${ctx()}`);
  assert.equal(typeof e.retryable, 'boolean', `error.retryable: ${ctx()}`);
  assert.ok(Number.isInteger(e.provider_status), `error.provider_status: ${ctx()}`);
  if (retryable !== undefined) assert.equal(e.retryable, retryable, `error.retryable: ${ctx()}`);
  if (providerStatus !== undefined) assert.equal(e.provider_status, providerStatus, `error.provider_status: ${ctx()}`);
  if (attempts !== undefined) assert.equal(task.attempts, attempts, `attempts: ${ctx()}`);
  assert.equal(task.result, null, `a failed task has result null: ${ctx()}`);
}

/** Asserts a POST /v1/tasks answer is a 202 with Location and a fresh queued task; returns it. */
export function assertAccepted(res, baseUrl) {
  assert.equal(res.status, 202, `POST /v1/tasks: expected 202, got ${res.status} ${String(res.text).slice(0, 300)}`);
  const task = res.json;
  assertTaskObject(task);
  assert.equal(task.status, 'queued', `a new task is queued: ${res.text.slice(0, 300)}`);
  const want = `/v1/tasks/${task.id}`;
  const loc = res.headers.location;
  assert.ok(loc === want || (baseUrl && loc === baseUrl + want), `Location should be ${want}, got ${loc}`);
  return task;
}

/** A receiver of webhook deliveries on a free loopback port that answers 200 and keeps each
 * delivery's headers and body in `seen`. */
export async function startWebhookReceiver() {
  const port = await freePort();
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      res.writeHead(200);
      res.end();
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}/hook`, seen, close: () => new Promise((r) => server.close(r)) };
}
