// Issue 12, findings 1 and 2: the HTTP front end under hostile clients.
//
// Finding 1 — a body is read only after its headers passed. A missing or wrong key is a 401 before
// any byte of the body is read (the connection then closes), a declared length over the route's
// limit a 413, `100 Continue` only for headers that passed; an upload streams to its file as it
// arrives. Measured: sluice's RSS while 4 unauthenticated and then 4 authenticated 150 MB uploads
// run at once (before the fix evhttp buffered every body whole: 12 MB → 590 MB); the uploads stored
// byte for byte; a client that disconnects mid-upload leaves no temporary file; a chunked upload
// with a request pipelined behind it on the same connection.
//
// Finding 2 — connections are bounded in number and in time. A head must arrive within
// limits.header_timeout_s, a body must keep up limits.min_body_rate (408 otherwise); at
// limits.max_connections sluice stops accepting and resumes when one closes (20,000 slow-header
// connections attempted against a cap of 200: sluice's descriptors stay within the cap, a
// keep-alive client is served throughout, the cap is logged at most once per 5 s); when accept()
// fails with EMFILE (a process limited to 128 descriptors, cap above it) sluice pauses accepting
// instead of spinning and logging each failure, and resumes once descriptors free.
//
// Loopback only; every wait is bounded.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Cluster, assertErrorEnvelope, sleep, waitFor } from './lib/harness.mjs';

const MB = 1024 * 1024;
const UPLOAD_BYTES = 150 * MB;
const UPLOADS = 4;
const RSS_LIMIT = 64 * MB;
const LINE = 64 * 1024; // upload lines: 2,400 of them in 150 MB, under files.max_lines
const MAX_BODY = 1 * MB; // limits.max_body_bytes of the first sluice
const HEADER_TIMEOUT_S = 2;
const MIN_BODY_RATE = 1000; // bytes/s, over windows of BODY_WINDOW_S
const BODY_WINDOW_S = 2;
const CAP = 200;
const ATTEMPTS = Number(process.env.SLUICE_HARDENING_ATTEMPTS ?? 20000);
const ATTACK_CONCURRENCY = 800;

// ---------------------------------------------------------------------------------------------
// Helpers

/** The port of a sluice base URL. */
const portOf = (baseUrl) => Number(new URL(baseUrl).port);

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM), or 0 once the process is gone. */
function procStatusBytes(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Open descriptors of a process. */
const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** CPU seconds (user + system) a process has used. */
function cpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // CLK_TCK is 100 on Linux
}

/** Samples fn() every intervalMs until stop() is called; stop() returns the maximum seen. */
function sampler(fn, intervalMs = 50) {
  let max = fn();
  const timer = setInterval(() => { max = Math.max(max, fn()); }, intervalMs);
  return () => {
    clearInterval(timer);
    return Math.max(max, fn());
  };
}

/** True when the sluice binary was built with AddressSanitizer (its RSS has ASan's overhead). */
function sanitized() {
  const bin = fs.readFileSync(path.resolve(process.env.SLUICE_BIN));
  return bin.includes('__asan_init');
}

/**
 * A raw HTTP/1.1 exchange on a fresh socket: writes each of `writes` (strings or Buffers; a
 * number waits that many ms), collects what comes back until the server closes or waitMs passes.
 * → {text, status, responseMs (first byte), closedMs (server closed; null if it did not), error}.
 */
function rawExchange(port, writes, { waitMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    let responseMs = null;
    let closedMs = null;
    let error = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, responseMs, closedMs, error });
    };
    const timer = setTimeout(finish, waitMs);
    s.on('data', (d) => {
      if (responseMs === null) responseMs = Date.now() - t0;
      chunks.push(d);
    });
    s.on('error', (e) => { error = e.code; });
    s.on('end', () => { closedMs = Date.now() - t0; finish(); });
    s.on('close', () => { if (closedMs === null) closedMs = Date.now() - t0; finish(); });
    (async () => {
      for (const w of writes) {
        if (done || s.destroyed) return;
        if (typeof w === 'number') await sleep(w);
        else s.write(w);
      }
    })();
  });
}

/** The JSON body of a raw HTTP response (Content-Length framed), or undefined. */
function rawJson(text) {
  const at = text.indexOf('\r\n\r\n');
  const m = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, at));
  if (at < 0 || !m) return undefined;
  try {
    return JSON.parse(text.slice(at + 4, at + 4 + Number(m[1])));
  } catch {
    return undefined;
  }
}

/** 1 MiB of JSONL: 16 lines of LINE bytes, tagged with seed so each upload differs. */
function uploadBlock(seed) {
  const line = Buffer.alloc(LINE, 'x');
  const tag = Buffer.from(`{"seed":"${seed}","pad":"`);
  tag.copy(line);
  line.write('"}\n', LINE - 3);
  return Buffer.concat(Array.from({ length: MB / LINE }, () => line));
}

const FORM_HEAD = (boundary, filename) => Buffer.from(
  `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
  `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
  'Content-Type: application/jsonl\r\n\r\n');
const FORM_TAIL = (boundary) => Buffer.from(`\r\n--${boundary}--\r\n`);

/**
 * Streams a multipart upload of `bytes` (whole 1 MiB blocks) to POST /v1/files on a raw socket,
 * honouring backpressure, and reads the answer. key null: no Authorization. Stops writing once the
 * server answered or closed. → {status, json, sha256 (of the file part sent), sentBytes, error}.
 */
function streamUpload(port, key, { bytes, seed, timeoutMs = 120000 }) {
  const boundary = `b-${crypto.randomBytes(6).toString('hex')}`;
  const head = FORM_HEAD(boundary, `${seed}.jsonl`);
  const tail = FORM_TAIL(boundary);
  const block = uploadBlock(seed);
  const length = head.length + bytes + tail.length;
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const hash = crypto.createHash('sha256');
    const chunks = [];
    let sent = 0;
    let error = null;
    let done = false;
    let answered = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, json: rawJson(text), sha256: hash.digest('hex'), sentBytes: sent, error });
    };
    const timer = setTimeout(() => { error = error ?? 'timeout'; finish(); }, timeoutMs);
    s.on('data', (d) => {
      chunks.push(d);
      answered = true;
      const text = Buffer.concat(chunks).toString('latin1');
      const at = text.indexOf('\r\n\r\n');
      const m = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, Math.max(at, 0)));
      if (at >= 0 && m && text.length >= at + 4 + Number(m[1])) finish();
    });
    s.on('error', (e) => { error = e.code; finish(); });
    s.on('close', finish);
    s.on('connect', async () => {
      const write = (buf) => (s.write(buf) ? Promise.resolve() : new Promise((r) => s.once('drain', r)));
      const auth = key ? `Authorization: Bearer ${key}\r\n` : '';
      await write(`POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\n\r\n`);
      await write(head);
      for (let at = 0; at < bytes && !answered && !done; at += block.length) {
        hash.update(block);
        sent += block.length;
        await write(block);
      }
      if (!answered && !done) await write(tail);
    });
  });
}

async function sha256File(p) {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(p, { highWaterMark: MB })) h.update(chunk);
  return h.digest('hex');
}

/** GET path over agent (keep-alive) → {status, ms}; status 0 on a transport error. */
function timedGet(baseUrl, p, { agent, timeoutMs = 15000 } = {}) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.get(`${baseUrl}${p}`, { agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Date.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, ms: Date.now() - t0, error: e.message }));
  });
}

/** Lines of a process's log matching re. */
const logLines = (proc, re) => fs.readFileSync(proc.logPath, 'utf8').split('\n').filter((l) => re.test(l));

// ---------------------------------------------------------------------------------------------

describe('finding 1: a body is read only after its headers passed', () => {
  const cl = new Cluster('hardening_http_1');
  let redis;
  let sluice;
  let port;
  let blobs;

  before(async () => {
    redis = await cl.startRedis();
    blobs = path.join(cl.dir, 'blobs');
    sluice = await cl.startSluice('api', await cl.configFor({
      redis,
      overrides: {
        blobs: { dir: blobs },
        files: { max_lines: 10000 },
        limits: { max_body_bytes: MAX_BODY, header_timeout_s: HEADER_TIMEOUT_S, min_body_rate: MIN_BODY_RATE, body_rate_window_s: BODY_WINDOW_S },
      },
    }), { env: { ASAN_OPTIONS: 'quarantine_size_mb=16:detect_leaks=1' } });
    port = portOf(sluice.baseUrl);
  });
  after(() => cl.stop());

  test('a missing or wrong key is a 401 on the headers alone, and the connection closes', { timeout: 30_000 }, async () => {
    for (const [p, ct] of [['/v1/files', 'multipart/form-data; boundary=x'], ['/v1/tasks', 'application/json'], ['/v1/chat/completions', 'application/json']]) {
      for (const [auth, code] of [['', 'missing_api_key'], ['Authorization: Bearer sk-wrong\r\n', 'invalid_api_key']]) {
        // Headers only: the body is declared (150 MB) and never sent. Before the fix evhttp waited
        // for it, and nothing came back.
        const res = await rawExchange(port, [`POST ${p} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: ${ct}\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`], { waitMs: 5000 });
        const what = `${p} ${code}: ${res.text.slice(0, 200)}`;
        assert.equal(res.status, 401, what);
        assert.ok(res.responseMs < 2000, `answered in ${res.responseMs} ms: ${what}`);
        assert.equal(rawJson(res.text)?.error?.code, code, what);
        assert.match(res.text, /\r\nConnection: close\r\n/i, what);
        assert.ok(res.closedMs !== null && res.closedMs < 4000, `the server closed the connection (${res.closedMs}): ${what}`);
      }
    }
  });

  test('a declared length over the route\'s limit is a 413 before the body; 100-continue only for headers that passed', { timeout: 30_000 }, async () => {
    const key = cl.keys.alpha;
    const json = await rawExchange(port, [`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`]);
    assert.equal(json.status, 413, json.text.slice(0, 300));
    assert.equal(rawJson(json.text)?.error?.code, 'request_too_large');
    assert.match(rawJson(json.text)?.error?.message, new RegExp(`${MAX_BODY + 1} bytes is larger than the limit of ${MAX_BODY} bytes`));
    // an upload may be larger than a JSON body, up to files.max_bytes (200 MB) and its form
    const big = await rawExchange(port, [`POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: ${201 * MB}\r\n\r\n`]);
    assert.equal(big.status, 413, big.text.slice(0, 300));
    assert.equal(rawJson(big.text)?.error?.param, 'file');

    // Expect: 100-continue with a wrong key or too large a body: the final answer, no 100
    for (const [auth, len, status] of [['Bearer sk-wrong', 10, 401], [`Bearer ${key}`, MAX_BODY + 1, 413]]) {
      const res = await rawExchange(port, [`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: ${len}\r\nExpect: 100-continue\r\n\r\n`]);
      assert.equal(res.status, status, res.text.slice(0, 300));
      assert.doesNotMatch(res.text, /100 Continue/);
    }
    // headers that pass: 100 Continue first, then the body is read and answered
    const body = JSON.stringify({ kind: 'chat', input: { model: 'mock-chat', messages: [{ role: 'user', content: 'hi' }] } });
    const ok = await rawExchange(port, [`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`, 300, body]);
    assert.match(ok.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /, ok.text.slice(0, 300));
  });

  test(`RSS stays under ${RSS_LIMIT / MB} MB during ${UPLOADS} unauthenticated and ${UPLOADS} authenticated ${UPLOAD_BYTES / MB} MB uploads; the files are stored byte for byte`, { timeout: 300_000 }, async () => {
    const pid = sluice.pid;
    const idle = procStatusBytes(pid, 'VmRSS');
    // A sanitized build carries ASan's shadow memory and allocator: there the bound is on growth.
    const limit = sanitized() ? idle + RSS_LIMIT : RSS_LIMIT;

    let stop = sampler(() => procStatusBytes(pid, 'VmRSS'));
    const refused = await Promise.all(Array.from({ length: UPLOADS }, (_, i) => streamUpload(port, null, { bytes: UPLOAD_BYTES, seed: `anon-${i}` })));
    const unauthMax = stop();
    for (const r of refused) {
      assert.equal(r.status, 401, `an unauthenticated upload: ${JSON.stringify({ ...r, json: undefined })}`);
      assert.equal(r.json?.error?.code, 'missing_api_key');
    }

    stop = sampler(() => procStatusBytes(pid, 'VmRSS'));
    const stored = await Promise.all(Array.from({ length: UPLOADS }, (_, i) => streamUpload(port, cl.keys.alpha, { bytes: UPLOAD_BYTES, seed: `alpha-${i}` })));
    const authMax = stop();
    const hwm = procStatusBytes(pid, 'VmHWM');
    process.stderr.write(`# sluice api RSS: idle ${(idle / MB).toFixed(1)} MB, ${UPLOADS} unauthenticated ${UPLOAD_BYTES / MB} MB uploads ` +
      `${(unauthMax / MB).toFixed(1)} MB, ${UPLOADS} authenticated ${(authMax / MB).toFixed(1)} MB, VmHWM ${(hwm / MB).toFixed(1)} MB\n`);
    for (const r of stored) {
      assert.equal(r.status, 200, `an authenticated upload: ${JSON.stringify({ ...r, json: r.json })}`);
      assert.equal(r.json.bytes, UPLOAD_BYTES);
      assert.equal(r.sentBytes, UPLOAD_BYTES);
      assert.equal(await sha256File(path.join(blobs, 'files', r.json.id)), r.sha256, 'the stored file is the uploaded one');
    }
    assert.ok(unauthMax < limit, `RSS during the unauthenticated uploads: ${(unauthMax / MB).toFixed(1)} MB (limit ${(limit / MB).toFixed(1)})`);
    assert.ok(authMax < limit, `RSS during the authenticated uploads: ${(authMax / MB).toFixed(1)} MB (limit ${(limit / MB).toFixed(1)})`);
    assert.ok(hwm < limit + 8 * MB, `VmHWM ${(hwm / MB).toFixed(1)} MB`);
    for (const r of stored) fs.rmSync(path.join(blobs, 'files', r.json.id));
  });

  test('a client that disconnects mid-upload leaves no temporary file', { timeout: 30_000 }, async () => {
    const boundary = 'cut';
    const res = await rawExchange(port, [
      `POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cl.keys.alpha}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${10 * MB}\r\n\r\n`,
      FORM_HEAD(boundary, 'cut.jsonl'), uploadBlock('cut'), 300,
    ], { waitMs: 600 }); // then the socket is destroyed, mid-body
    assert.equal(res.status, null, 'no answer to a body that never ended');
    const parts = () => fs.readdirSync(path.join(blobs, 'files')).filter((n) => n.endsWith('.part'));
    await waitFor(() => parts().length === 0, { timeoutMs: 5000, what: 'no .part file left' });
  });

  test('a chunked upload is stored byte for byte, and a request pipelined behind it is answered', { timeout: 30_000 }, async () => {
    const boundary = 'chunky';
    const content = Buffer.from('{"a":1}\r\n{"b":"\r\n--chunk"}\n{"c":3}\n');
    const body = Buffer.concat([FORM_HEAD(boundary, 'c.jsonl'), content, FORM_TAIL(boundary)]);
    const writes = [`POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cl.keys.alpha}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nTransfer-Encoding: chunked\r\n\r\n`];
    for (let at = 0; at < body.length; at += 13) {
      const piece = body.subarray(at, at + 13);
      writes.push(`${piece.length.toString(16)}\r\n`, piece, '\r\n');
    }
    writes.push('0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const res = await rawExchange(port, writes, { waitMs: 5000 });
    const answers = res.text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, res.text);
    assert.match(answers[0], /^HTTP\/1\.1 200 /);
    const file = rawJson(answers[0]);
    assert.equal(file.bytes, content.length);
    assert.ok(fs.readFileSync(path.join(blobs, 'files', file.id)).equals(content));
    assert.match(answers[1], /^HTTP\/1\.1 200 /);
    assert.ok(res.closedMs !== null, 'closed after the Connection: close request');
  });
});

describe('finding 2: connections are bounded in number and in time', () => {
  const cl = new Cluster('hardening_http_2');
  let redis;
  let sluice;

  before(async () => {
    redis = await cl.startRedis();
    sluice = await cl.startSluice('api', await cl.configFor({
      redis,
      overrides: { limits: { header_timeout_s: HEADER_TIMEOUT_S, min_body_rate: MIN_BODY_RATE, body_rate_window_s: BODY_WINDOW_S } },
    }));
  });
  after(() => cl.stop());

  test('a slow head, a silent connection and a slow body are cut off', { timeout: 30_000 }, async () => {
    const port = portOf(sluice.baseUrl);
    const key = cl.keys.alpha;
    // a header line every 500 ms: before the fix each line reset evhttp's 30 s timeout, forever
    const slowHead = ['GET /healthz HTTP/1.1\r\n'];
    for (let i = 0; i < 16; i++) slowHead.push(500, `X-Slow-${i}: 1\r\n`);
    const [head, silent, body] = await Promise.all([
      rawExchange(port, slowHead, { waitMs: 8000 }),
      rawExchange(port, [], { waitMs: 8000 }),
      // a body at 100 bytes/s where MIN_BODY_RATE is 1,000
      rawExchange(port, [`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 100000\r\n\r\n`,
        ...Array.from({ length: 60 }, () => [100, 'x'.repeat(10)]).flat()], { waitMs: 8000 }),
    ]);
    assert.equal(head.status, 408, head.text.slice(0, 300));
    assert.equal(rawJson(head.text)?.error?.code, 'request_timeout');
    assert.ok(head.closedMs < (HEADER_TIMEOUT_S + 1.5) * 1000, `slow head closed after ${head.closedMs} ms`);
    assert.equal(silent.status, null, 'a connection that sent nothing gets no answer');
    assert.ok(silent.closedMs !== null && silent.closedMs < (HEADER_TIMEOUT_S + 1.5) * 1000, `silent connection closed after ${silent.closedMs} ms`);
    assert.equal(body.status, 408, body.text.slice(0, 300));
    assert.ok(body.closedMs < (2 * BODY_WINDOW_S + 2) * 1000, `slow body closed after ${body.closedMs} ms`);
    assertErrorEnvelope({ status: body.status, json: rawJson(body.text), text: body.text, headers: { 'content-type': 'application/json' } }, 408);
  });

  test(`at max_connections (${CAP}) sluice stops accepting, keeps serving, and resumes: ${ATTEMPTS} slow-header connections attempted`, { timeout: 240_000 }, async () => {
    const capped = await cl.startSluice('api', await cl.configFor({
      redis,
      overrides: { limits: { max_connections: CAP, header_timeout_s: HEADER_TIMEOUT_S } },
    }));
    const port = portOf(capped.baseUrl);
    const pid = capped.pid;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await timedGet(capped.baseUrl, '/healthz', { agent })).status, 200);
    const baseline = fdCount(pid);
    const stopFds = sampler(() => fdCount(pid), 100);

    // The normal client: a request every 100 ms on its keep-alive connection, throughout.
    const normal = [];
    let attacking = true;
    const normalLoop = (async () => {
      while (attacking) {
        normal.push(await timedGet(capped.baseUrl, '/healthz', { agent, timeoutMs: 10000 }));
        await sleep(100);
      }
    })();

    // The attack: ATTEMPTS connections, ATTACK_CONCURRENCY at a time; each sends half a head and
    // holds the connection up to 2.5 s (slow-header), or gives up after 1 s if never accepted.
    let attempted = 0;
    let answered408 = 0;
    const t0 = Date.now();
    const attacker = () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      const holdMs = 500 + Math.floor(Math.random() * 2000);
      const timer = setTimeout(() => s.destroy(), holdMs);
      s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
      s.on('data', (d) => { got += d.toString('latin1'); });
      s.on('error', () => {});
      s.on('close', () => {
        clearTimeout(timer);
        if (got.startsWith('HTTP/1.1 408')) answered408++;
        resolve();
      });
    });
    await Promise.all(Array.from({ length: ATTACK_CONCURRENCY }, async () => {
      while (attempted < ATTEMPTS) {
        attempted++;
        await attacker();
      }
    }));
    const attackS = (Date.now() - t0) / 1000;
    attacking = false;
    await normalLoop;
    const maxFds = stopFds();

    // after the attack: a new connection is accepted at once
    const fresh = await timedGet(capped.baseUrl, '/healthz', { agent: false, timeoutMs: 5000 });
    agent.destroy();
    const capLines = logLines(capped.proc, /connection cap reached/);
    const slow = normal.filter((r) => r.status !== 200 || r.ms > 2000);
    process.stderr.write(`# cap: ${attempted} attempts in ${attackS.toFixed(1)} s, ${answered408} answered 408; sluice fds ` +
      `${baseline} before, at most ${maxFds}; normal client ${normal.length} requests, slowest ${Math.max(...normal.map((r) => r.ms))} ms; ` +
      `${capLines.length} cap log lines\n`);

    assert.ok(maxFds <= baseline + CAP + 8, `sluice held ${maxFds} descriptors (baseline ${baseline}, cap ${CAP})`);
    assert.ok(normal.length >= 10, `the normal client made ${normal.length} requests`);
    assert.deepEqual(slow, [], 'every request of the keep-alive client was answered 200 within 2 s');
    assert.equal(fresh.status, 200, `a fresh connection after the attack: ${JSON.stringify(fresh)}`);
    assert.ok(fresh.ms < 2000, `a fresh connection after the attack was served in ${fresh.ms} ms`);
    assert.ok(capLines.length >= 1, 'the cap was reached and logged');
    assert.ok(capLines.length <= Math.ceil(attackS / 5) + 1, `${capLines.length} cap log lines in ${attackS.toFixed(1)} s: at most one per 5 s`);
    assert.match(capLines[0], /times=\d+/);
    await capped.stop();
  });

  test('a keep-alive connection carries request after request through the guard: a streamed answer, then a pipelined pair', { timeout: 30_000 }, async () => {
    const mock = await cl.startMock({});
    const serve = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    const body = JSON.stringify({ model: 'mock-chat', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const res = await rawExchange(portOf(serve.baseUrl), [
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cl.keys.alpha}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      1500,
      `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cl.keys.alpha}\r\n\r\n`,
      500,
      // a refusal ends the connection: what was sent behind it is never answered
      'GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
    ], { waitMs: 8000 });
    const statuses = [...res.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 200, 200, 401], res.text.slice(-1500));
    assert.match(res.text, /data: \[DONE\]/);
    assert.ok(res.closedMs !== null, 'closed after the refusal');
    await serve.stop();
  });

  test('EMFILE: sluice pauses accepting instead of spinning, keeps serving, and resumes', { timeout: 60_000 }, async () => {
    // The process gets 128 descriptors and a cap above them, so accept() itself fails.
    const wrapper = path.join(cl.dir, 'sluice-128-fds.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\nulimit -n 128 || exit 97\nexec "${path.resolve(process.env.SLUICE_BIN)}" "$@"\n`, { mode: 0o755 });
    const realBin = process.env.SLUICE_BIN;
    let starved;
    process.env.SLUICE_BIN = wrapper;
    try {
      starved = await cl.startSluice('api', await cl.configFor({
        redis, overrides: { limits: { max_connections: 1000, header_timeout_s: 10 } },
      }));
    } finally {
      process.env.SLUICE_BIN = realBin;
    }
    const port = portOf(starved.baseUrl);
    const pid = starved.pid;
    assert.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max open files\s+128\s+128/);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await timedGet(starved.baseUrl, '/healthz', { agent })).status, 200);

    // 300 silent connections: about 110 are accepted, then accept() fails with EMFILE.
    const flood = [];
    for (let i = 0; i < 300; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      flood.push(s);
    }
    await waitFor(() => logLines(starved.proc, /accept failed/).length > 0, { timeoutMs: 10000, what: 'an accept failure logged' });
    const cpu0 = cpuSeconds(pid);
    const w0 = Date.now();
    const during = [];
    for (let i = 0; i < 10; i++) {
      during.push(await timedGet(starved.baseUrl, '/healthz', { agent, timeoutMs: 5000 }));
      await sleep(300);
    }
    const cpuShare = (cpuSeconds(pid) - cpu0) / ((Date.now() - w0) / 1000);
    const failLines = logLines(starved.proc, /accept failed/);
    const libeventLines = logLines(starved.proc, /Error from accept/);
    for (const s of flood) s.destroy();
    const fresh = await waitFor(async () => {
      const r = await timedGet(starved.baseUrl, '/healthz', { agent: false, timeoutMs: 2000 });
      return r.status === 200 ? r : null;
    }, { timeoutMs: 5000, what: 'a fresh connection accepted once descriptors freed' });
    agent.destroy();
    process.stderr.write(`# EMFILE: sluice CPU ${(cpuShare * 100).toFixed(0)} % of a core while starved; ` +
      `${failLines.length} "accept failed" lines, ${libeventLines.length} libevent accept errors; fresh connection after: ${fresh.ms} ms\n`);

    assert.ok(cpuShare < 0.3, `sluice used ${(cpuShare * 100).toFixed(0)} % of a core while accept() failed (spinning is ~100 %)`);
    assert.equal(libeventLines.length, 0, 'no accept error logged per failure');
    assert.ok(failLines.length <= 3, `${failLines.length} "accept failed" lines: at most one per 5 s`);
    assert.match(failLines[0], /errno=24 .*times=\d+/);
    assert.deepEqual(during.filter((r) => r.status !== 200), [], 'the keep-alive client is served while accept() fails');
    await starved.stop();
  });
});
