// The Files API (the part the Batch API needs), driven by the official OpenAI SDK and by raw
// HTTP: upload of a 10,000-line JSONL (files.create with a read stream), retrieve, content
// byte-identical with application/jsonl, list (newest first, limit/after, the SDK's
// auto-pagination, order=asc), delete (metadata, list entry and bytes gone), tenant isolation
// (another tenant's file is a 404 like a missing one), bad purposes and malformed uploads, a
// batch file over files.max_lines, a 200 MB upload (files.max_bytes) and one byte more (413),
// and JSON routes still answering 413 above limits.max_body_bytes now that evhttp's cap is
// above 200 MB.
//
// Needs `npm ci` in tests/integration first (the SDK).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { Cluster, assertErrorEnvelope, sdkErr, sendLargeBody, sleep } from './lib/harness.mjs';

const FILE_ID_RE = /^file_[a-z2-7]{26}$/;
const MAX_LINES = 10000; // files.max_lines in this file's config
const MAX_BYTES = 200 * 1024 * 1024; // files.max_bytes: the default, 200 MB

/** A batch input line as OpenAI's Batch API expects it (with a non-ASCII character). */
function batchLine(i) {
  return JSON.stringify({
    custom_id: `req-${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'mock-chat', messages: [{ role: 'user', content: `hello ${i} – ü` }] },
  }) + '\n';
}

function jsonl(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += batchLine(i);
  return s;
}

/** Awaits p, expecting the SDK to throw an APIError with `status`; returns the error. */
async function sdkRejects(p, status, what) {
  try {
    const v = await p;
    assert.fail(`${what}: expected HTTP ${status}, got success ${JSON.stringify(v).slice(0, 300)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.equal(e.status, status, `${what}: ${sdkErr(e)}`);
    return e;
  }
}

/** Every field of an OpenAI file object. */
function assertFileObject(f, { bytes, filename, purpose = 'batch' } = {}) {
  const ctx = JSON.stringify(f);
  assert.match(String(f.id), FILE_ID_RE, ctx);
  assert.equal(f.object, 'file', ctx);
  if (bytes !== undefined) assert.equal(f.bytes, bytes, ctx);
  assert.ok(Number.isInteger(f.bytes) && f.bytes >= 0, ctx);
  assert.ok(Number.isInteger(f.created_at), ctx);
  assert.ok(Math.abs(f.created_at - Date.now() / 1000) < 600, `created_at is Unix seconds, now-ish: ${ctx}`);
  if (filename !== undefined) assert.equal(f.filename, filename, ctx);
  assert.equal(f.purpose, purpose, ctx);
  assert.equal(f.status, 'processed', ctx);
  assert.ok('expires_at' in f && f.expires_at === null, `expires_at null: ${ctx}`);
  assert.ok('status_details' in f && f.status_details === null, `status_details null: ${ctx}`);
}

/**
 * POST /v1/files as multipart/form-data with node:http, streaming `pieces` (Buffers, strings or
 * {path} of files on disk) as the file part, so a 200 MB upload never sits in this process's
 * memory. fields: extra text fields (purpose...). → {status, headers, json, text}.
 */
function uploadStream(baseUrl, key, { fields = {}, filename = 'data.jsonl', pieces, timeoutMs = 120000 }) {
  const boundary = `----sluice-test-${crypto.randomBytes(8).toString('hex')}`;
  let head = '';
  for (const [k, v] of Object.entries(fields)) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  }
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
    'Content-Type: application/octet-stream\r\n\r\n';
  const tail = `\r\n--${boundary}--\r\n`;
  const sizes = pieces.map((p) => (p.path ? fs.statSync(p.path).size : Buffer.byteLength(p)));
  const length = Buffer.byteLength(head) + sizes.reduce((a, b) => a + b, 0) + Buffer.byteLength(tail);
  const url = new URL(baseUrl + '/v1/files');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': length,
      },
    });
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`no response within ${timeoutMs} ms`)); }, timeoutMs);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, json, text });
      });
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    (async () => {
      // Errors reach the 'error' handler above; a write waits for 'drain' when the socket is full.
      const write = (chunk) => {
        if (req.destroyed) throw new Error('the upload connection closed early');
        return req.write(chunk) ? Promise.resolve() : new Promise((res) => req.once('drain', res));
      };
      await write(head);
      for (const p of pieces) {
        if (p.path) {
          for await (const chunk of fs.createReadStream(p.path, { highWaterMark: 1 << 20 })) await write(chunk);
        } else {
          await write(p);
        }
      }
      req.end(tail);
    })().catch((e) => { clearTimeout(timer); req.destroy(); reject(e); });
  });
}

/** GET baseUrl+p streamed into SHA-256 → {status, headers, bytes, sha256}. */
function downloadSha256(baseUrl, key, p) {
  return new Promise((resolve, reject) => {
    const req = http.get(baseUrl + p, { headers: { authorization: `Bearer ${key}` } }, (res) => {
      const h = crypto.createHash('sha256');
      let bytes = 0;
      res.on('data', (c) => { h.update(c); bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes, sha256: h.digest('hex') }));
      res.on('error', reject);
    });
    req.setTimeout(120000, () => req.destroy(new Error('download timed out')));
    req.on('error', reject);
  });
}

async function sha256File(p) {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(p, { highWaterMark: 1 << 20 })) h.update(chunk);
  return h.digest('hex');
}

describe('the Files API', () => {
  const cl = new Cluster('files');
  let redis;
  let sluice;
  let alpha;
  let beta;
  let openai;
  let openaiBeta;
  let blobs;
  let dataDir;
  let inputPath;
  let input;
  let uploaded; // the 10,000-line file's object

  before(async () => {
    redis = await cl.startRedis();
    blobs = path.join(cl.dir, 'blobs');
    dataDir = path.join(cl.dir, 'data');
    fs.mkdirSync(dataDir);
    // The API role alone serves the Files API; no worker or provider is needed.
    sluice = await cl.startSluice('api', await cl.configFor({
      redis,
      overrides: { blobs: { dir: blobs }, files: { max_lines: MAX_LINES } },
    }));
    alpha = cl.client(sluice.baseUrl, cl.keys.alpha);
    beta = cl.client(sluice.baseUrl, cl.keys.beta);
    openai = new OpenAI({ apiKey: cl.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0 });
    openaiBeta = new OpenAI({ apiKey: cl.keys.beta, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0 });
    input = Buffer.from(jsonl(MAX_LINES), 'utf8');
    inputPath = path.join(dataDir, 'batch-input.jsonl');
    fs.writeFileSync(inputPath, input);
  });
  after(() => cl.stop());

  test('files.create uploads a 10,000-line JSONL; retrieve and content give it back byte for byte', { timeout: 60_000 }, async () => {
    uploaded = await openai.files.create({ file: fs.createReadStream(inputPath), purpose: 'batch' })
      .catch((e) => assert.fail(`files.create: ${sdkErr(e)}`));
    assertFileObject(uploaded, { bytes: input.length, filename: 'batch-input.jsonl' });
    assert.deepEqual(Object.keys(uploaded).sort(),
      ['bytes', 'created_at', 'expires_at', 'filename', 'id', 'object', 'purpose', 'status', 'status_details']);

    // Storage: the bytes under blobs/files/<id>, the metadata hash and the tenant's list entry.
    const onDisk = path.join(blobs, 'files', uploaded.id);
    assert.ok(fs.readFileSync(onDisk).equals(input), 'the stored bytes are the uploaded bytes');
    assert.equal(fs.readdirSync(path.join(blobs, 'files')).filter((n) => n.endsWith('.part')).length, 0, 'no .part left');
    assert.equal(await redis.cli('hget', `{sl}:f:${uploaded.id}`, 'tenant'), 'alpha');
    assert.equal(await redis.cli('hget', `{sl}:f:${uploaded.id}`, 'bytes'), String(input.length));
    assert.ok(Number(await redis.cli('zscore', '{sl}:fn:alpha', uploaded.id)) > 0, 'listed for alpha');

    const got = await openai.files.retrieve(uploaded.id).catch((e) => assert.fail(`retrieve: ${sdkErr(e)}`));
    assert.deepEqual(got, uploaded);

    const res = await openai.files.content(uploaded.id).catch((e) => assert.fail(`content: ${sdkErr(e)}`));
    assert.match(res.headers.get('content-type') ?? '', /^application\/jsonl/);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.length, input.length);
    assert.ok(bytes.equals(input), 'content is byte-identical to the upload');

    const raw = await alpha.request('GET', `/v1/files/${uploaded.id}/content`, { binary: true });
    assert.equal(raw.status, 200);
    assert.equal(Number(raw.headers['content-length']), input.length);
    assert.ok(raw.bytes.equals(input));
  });

  test('list: newest first, limit and after, the SDK auto-paginates, order=asc', { timeout: 60_000 }, async () => {
    assert.ok(uploaded, 'needs the upload of the first test');
    const ids = [uploaded.id];
    for (let i = 0; i < 4; i++) {
      await sleep(5); // distinct created ms, so newest-first is the upload order reversed
      const f = await openai.files.create({ file: await toFile(Buffer.from(jsonl(i + 1)), `small-${i}.jsonl`), purpose: 'batch' });
      assertFileObject(f, { filename: `small-${i}.jsonl`, bytes: Buffer.byteLength(jsonl(i + 1)) });
      ids.push(f.id);
    }
    const newestFirst = [...ids].reverse();

    const page1 = await alpha.request('GET', '/v1/files?limit=2');
    assert.equal(page1.status, 200, page1.text);
    assert.equal(page1.json.object, 'list');
    assert.deepEqual(page1.json.data.map((f) => f.id), newestFirst.slice(0, 2));
    for (const f of page1.json.data) assertFileObject(f);
    assert.equal(page1.json.first_id, newestFirst[0]);
    assert.equal(page1.json.last_id, newestFirst[1]);
    assert.equal(page1.json.has_more, true);
    const page2 = await alpha.request('GET', `/v1/files?limit=2&after=${page1.json.last_id}`);
    assert.deepEqual(page2.json.data.map((f) => f.id), newestFirst.slice(2, 4));
    assert.equal(page2.json.has_more, true);
    const page3 = await alpha.request('GET', `/v1/files?limit=2&after=${page2.json.last_id}`);
    assert.deepEqual(page3.json.data.map((f) => f.id), newestFirst.slice(4));
    assert.equal(page3.json.has_more, false);

    const all = await alpha.request('GET', '/v1/files');
    assert.deepEqual(all.json.data.map((f) => f.id), newestFirst, 'default limit 20 holds all five');
    assert.equal(all.json.has_more, false);
    assert.deepEqual(all.json.data[4], uploaded);

    const viaSdk = [];
    for await (const f of openai.files.list({ limit: 2 })) viaSdk.push(f.id);
    assert.deepEqual(viaSdk, newestFirst, 'the SDK follows has_more/after across three pages');

    const asc = await alpha.request('GET', '/v1/files?order=asc&limit=3');
    assert.deepEqual(asc.json.data.map((f) => f.id), ids.slice(0, 3));
    const asc2 = await alpha.request('GET', `/v1/files?order=asc&limit=3&after=${asc.json.last_id}`);
    assert.deepEqual(asc2.json.data.map((f) => f.id), ids.slice(3));

    for (const q of ['limit=0', 'limit=101', 'limit=x', 'after=nope', 'after=file_aaaaaaaaaaaaaaaaaaaaaaaaaa',
      'order=up', 'purpose=batch']) {
      assertErrorEnvelope(await alpha.request('GET', `/v1/files?${q}`), 400);
    }
  });

  test('another tenant sees none of it: 404 like a missing file, an empty list', async () => {
    assert.ok(uploaded, 'needs the upload of the first test');
    for (const [method, p] of [['GET', `/v1/files/${uploaded.id}`], ['GET', `/v1/files/${uploaded.id}/content`],
      ['DELETE', `/v1/files/${uploaded.id}`]]) {
      const res = await beta.request(method, p);
      assertErrorEnvelope(res, 404);
      const missing = await alpha.request(method, p.replace(uploaded.id, 'file_aaaaaaaaaaaaaaaaaaaaaaaaaa'));
      assertErrorEnvelope(missing, 404);
      assert.equal(res.json.error.message.replace(uploaded.id, 'X'), missing.json.error.message.replace('file_aaaaaaaaaaaaaaaaaaaaaaaaaa', 'X'),
        'the same answer as for a file that does not exist');
    }
    await sdkRejects(openaiBeta.files.retrieve(uploaded.id), 404, 'beta retrieves alpha\'s file');
    await sdkRejects(openaiBeta.files.delete(uploaded.id), 404, 'beta deletes alpha\'s file');
    const betaList = await beta.request('GET', '/v1/files');
    assert.deepEqual(betaList.json, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });

    const mine = await openaiBeta.files.create({ file: await toFile(Buffer.from(jsonl(3)), 'beta.jsonl'), purpose: 'batch' });
    assertFileObject(mine, { filename: 'beta.jsonl' });
    await sdkRejects(openai.files.retrieve(mine.id), 404, 'alpha retrieves beta\'s file');
    const alphaIds = (await alpha.request('GET', '/v1/files?limit=100')).json.data.map((f) => f.id);
    assert.ok(!alphaIds.includes(mine.id), 'beta\'s file is not in alpha\'s list');
    assert.deepEqual((await beta.request('GET', '/v1/files')).json.data.map((f) => f.id), [mine.id]);
    // alpha's file survived beta's DELETE
    assert.equal((await openai.files.retrieve(uploaded.id)).id, uploaded.id);
  });

  test('delete removes the metadata, the list entry and the bytes', async () => {
    const f = await openai.files.create({ file: await toFile(Buffer.from(jsonl(5)), 'doomed.jsonl'), purpose: 'batch' });
    const onDisk = path.join(blobs, 'files', f.id);
    assert.ok(fs.existsSync(onDisk));
    const del = await openai.files.delete(f.id).catch((e) => assert.fail(`delete: ${sdkErr(e)}`));
    assert.deepEqual(del, { id: f.id, object: 'file', deleted: true });
    assert.ok(!fs.existsSync(onDisk), 'the bytes are gone');
    assert.equal(await redis.cli('exists', `{sl}:f:${f.id}`), '0');
    assert.equal(await redis.cli('zscore', '{sl}:fn:alpha', f.id), '');
    await sdkRejects(openai.files.retrieve(f.id), 404, 'retrieve after delete');
    await sdkRejects(openai.files.content(f.id), 404, 'content after delete');
    await sdkRejects(openai.files.delete(f.id), 404, 'delete twice');
    const ids = (await alpha.request('GET', '/v1/files?limit=100')).json.data.map((x) => x.id);
    assert.ok(!ids.includes(f.id), 'not listed after delete');
  });

  test('bad purposes and malformed uploads are 400s with the error envelope', async () => {
    for (const purpose of ['fine-tune', 'assistants', 'batch_output', 'BATCH', '']) {
      const e = await sdkRejects(openai.files.create({ file: await toFile(Buffer.from(jsonl(1)), 'x.jsonl'), purpose }),
        400, `purpose "${purpose}"`);
      assert.equal(e.param, 'purpose', sdkErr(e));
    }
    const form = (parts) => {
      const fd = new FormData();
      for (const [k, v, name] of parts) {
        if (name) fd.append(k, new Blob([v]), name);
        else fd.append(k, v);
      }
      return fd;
    };
    const post = async (body, headers = {}) => {
      const res = await fetch(`${sluice.baseUrl}/v1/files`, {
        method: 'POST', body, headers: { authorization: `Bearer ${cl.keys.alpha}`, ...headers },
      });
      const text = await res.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: Object.fromEntries(res.headers), json, text };
    };
    const noPurpose = await post(form([['file', jsonl(1), 'a.jsonl']]));
    assertErrorEnvelope(noPurpose, 400);
    assert.equal(noPurpose.json.error.param, 'purpose');
    const noFile = await post(form([['purpose', 'batch']]));
    assertErrorEnvelope(noFile, 400);
    assert.equal(noFile.json.error.param, 'file');
    const textFile = await post(form([['purpose', 'batch'], ['file', jsonl(1)]]));
    assertErrorEnvelope(textFile, 400);
    assert.equal(textFile.json.error.param, 'file');
    assertErrorEnvelope(await post(form([['purpose', 'batch'], ['file', jsonl(1), 'a.jsonl'], ['file', jsonl(1), 'b.jsonl']])), 400);
    assertErrorEnvelope(await post(JSON.stringify({ purpose: 'batch', file: 'x' }), { 'content-type': 'application/json' }), 400);
    assertErrorEnvelope(await post('--nope\r\n', { 'content-type': 'multipart/form-data; boundary=b0undary' }), 400);
    assertErrorEnvelope(await post(form([['purpose', 'batch'], ['file', '', 'empty.jsonl']])), 400);
    const noKey = await fetch(`${sluice.baseUrl}/v1/files`, { method: 'POST', body: form([['purpose', 'batch'], ['file', 'x', 'a']]) });
    assert.equal(noKey.status, 401);
    await noKey.arrayBuffer();
    assertErrorEnvelope(await alpha.request('GET', '/v1/files/not-a-file-id'), 404);
    assertErrorEnvelope(await alpha.request('PUT', '/v1/files'), 405);
  });

  test(`a batch file over files.max_lines (${MAX_LINES}) is refused; exactly the limit is fine`, { timeout: 60_000 }, async () => {
    const over = await openai.files.create({ file: await toFile(Buffer.from(jsonl(MAX_LINES + 1)), 'over.jsonl'), purpose: 'batch' })
      .then((v) => assert.fail(`expected 400, got ${JSON.stringify(v)}`), (e) => e);
    assert.equal(over.status, 400, sdkErr(over));
    assert.equal(over.code, 'too_many_lines', sdkErr(over));
    // The last line without its newline still counts as a line.
    const noFinalNewline = jsonl(MAX_LINES + 1).slice(0, -1);
    await sdkRejects(openai.files.create({ file: await toFile(Buffer.from(noFinalNewline), 'over2.jsonl'), purpose: 'batch' }),
      400, `${MAX_LINES + 1} lines without a final newline`);
    const exact = jsonl(MAX_LINES).slice(0, -1);
    const ok = await openai.files.create({ file: await toFile(Buffer.from(exact), 'exact.jsonl'), purpose: 'batch' })
      .catch((e) => assert.fail(`${MAX_LINES} lines: ${sdkErr(e)}`));
    assertFileObject(ok, { bytes: Buffer.byteLength(exact) });
    await openai.files.delete(ok.id);
    assert.equal(fs.readdirSync(path.join(blobs, 'files')).filter((n) => n.endsWith('.part')).length, 0,
      'refused uploads leave no .part files');
  });

  test('JSON routes still answer 413 above limits.max_body_bytes though evhttp now takes 200 MB', { timeout: 60_000 }, async () => {
    // limits.max_body_bytes is 1 MB here. 20 MB is above the old evhttp cap (16 MB) and below
    // the new one (200 MB + framing): it must reach api_read_json and get the JSON 413.
    for (const mb of [2, 20]) {
      const body = JSON.stringify({
        kind: 'chat',
        input: { model: 'mock-chat', messages: [{ role: 'user', content: 'x'.repeat(mb * 1024 * 1024) }] },
      });
      const res = await sendLargeBody(sluice.baseUrl, cl.keys.alpha, 'POST', '/v1/tasks', body);
      assertErrorEnvelope(res, 413);
      assert.equal(res.json.error.code, 'request_too_large');
      const chat = await sendLargeBody(sluice.baseUrl, cl.keys.alpha, 'POST', '/v1/chat/completions', body);
      assertErrorEnvelope(chat, 413);
    }
    assert.equal((await alpha.request('GET', '/healthz')).status, 200);
  });

  test('a 200 MB upload (files.max_bytes) goes through; one byte more is a 413', { timeout: 300_000 }, async () => {
    // 2,048 lines of exactly 100 KiB: 200 MiB, well under max_lines.
    const bigPath = path.join(dataDir, 'big.jsonl');
    const LINE = 100 * 1024;
    const fd = fs.openSync(bigPath, 'w');
    for (let i = 0; i < MAX_BYTES / LINE; i++) {
      const headPart = `{"custom_id":"big-${String(i).padStart(4, '0')}","pad":"`;
      const line = headPart + 'x'.repeat(LINE - headPart.length - 3) + '"}\n';
      fs.writeSync(fd, line);
    }
    fs.closeSync(fd);
    assert.equal(fs.statSync(bigPath).size, MAX_BYTES);

    const res = await uploadStream(sluice.baseUrl, cl.keys.alpha, { fields: { purpose: 'batch' }, filename: 'big.jsonl', pieces: [{ path: bigPath }] });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assertFileObject(res.json, { bytes: MAX_BYTES, filename: 'big.jsonl' });
    const down = await downloadSha256(sluice.baseUrl, cl.keys.alpha, `/v1/files/${res.json.id}/content`);
    assert.equal(down.status, 200);
    assert.equal(down.bytes, MAX_BYTES);
    assert.equal(down.sha256, await sha256File(bigPath), 'the 200 MB come back unchanged');
    assert.deepEqual(await openai.files.delete(res.json.id), { id: res.json.id, object: 'file', deleted: true });

    const tooBig = await uploadStream(sluice.baseUrl, cl.keys.alpha, { fields: { purpose: 'batch' }, pieces: [{ path: bigPath }, 'x'] });
    assertErrorEnvelope(tooBig, 413);
    fs.rmSync(bigPath);
    assert.equal((await alpha.request('GET', '/healthz')).status, 200);
  });
});
