// Issue 12 ("Hardening"), findings 3 and 8: what a worker does with the artifacts a provider
// names, on real redis-server, sluice-mock and sluice, loopback only.
//
// Finding 3, artifact downloads were an SSRF with full read-back: a provider's reply named any URL
// and the worker fetched it and served the bytes to the tenant. Now every download goes through
// the address guard webhooks use, with its own allow list (blobs.allow_hosts), refuses URLs with
// credentials, never follows a redirect, and sends the provider's key only to the provider's own
// origin. Here blobs.allow_hosts is ["localhost"]: the mock's own blob URLs (127.0.0.1) are
// refused, the same blobs named through http://localhost:PORT are fetched. The mock's
// artifact_url switch makes Replicate's and fal's replies name a chosen URL; paths under /_probe/
// are ones the mock records when anything requests them (unknown paths are recorded), so "the
// mock's log holds no /_probe/ request" means nothing was fetched. The content_redirect switch
// turns OpenAI's video download into a 302.
//
// Finding 8, disk errors on artifacts: a base64 artifact on a full disk failed the task for good
// with "could not be decoded" and left a 0-byte file at the final path. Now every artifact is
// written to a temporary file, flushed and renamed; a write error is a retryable storage_error and
// leaves nothing at the final path. The disk error is real and needs no root: the worker runs
// under RLIMIT_FSIZE (`ulimit -f`, SIGXFSZ ignored), so its writes past 4 KiB fail with EFBIG —
// the same failed write(2) a full disk gives (ENOSPC), through the same code. The mock's PNG is
// 12 kB and its MP4 64 kB, so every artifact write fails. Afterwards an unlimited worker takes the
// parked task over and keeps the artifact: the storage error was retryable, not final.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster } from './lib/harness.mjs';

const JOB_MS = 200; // the mock's upstream job duration
const TASK_WAIT_MS = 30_000;
const FSIZE_BLOCKS = 8; // ulimit -f: 4 KiB in dash's 512-byte blocks (8 KiB in bash's)
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Paths the mock received under /_probe/ (it records unknown paths; control routes it does not). */
async function probes(mock) {
  const stats = await mock.stats();
  return (stats.last_requests ?? []).filter((r) => String(r.path ?? '').startsWith('/_probe/'));
}

/** The files in a task's blob folder (none when the folder does not exist). */
function blobFiles(blobsDir, id) {
  const dir = path.join(blobsDir, id);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** Submits one task of kind/alias and waits until it is terminal; returns the final task. */
async function runTask(api, kind, alias, prompt) {
  const res = await api.submit(kind, { model: alias, prompt });
  assert.equal(res.status, 202, `submit ${alias}: ${res.status} ${res.text.slice(0, 300)}`);
  const [task] = await api.waitTerminal([res.json.id], TASK_WAIT_MS, { intervalMs: 100 });
  return task;
}

/** The task failed for good because its artifact was refused, with `phrase` in the reason. */
function assertRefused(task, phrase, what) {
  const ctx = `${what}: ${JSON.stringify(task).slice(0, 700)}`;
  assert.equal(task.status, 'failed', ctx);
  assert.equal(task.error?.code, 'artifact_refused', ctx);
  assert.equal(task.error?.retryable, false, ctx);
  assert.ok(String(task.error?.message).includes(phrase), `reason should include "${phrase}": ${ctx}`);
  assert.equal(task.result, null, ctx);
}

describe('artifact downloads: address guard, credentials, redirects, the provider key', () => {
  const cl = new Cluster('hardening_artifacts');
  let mock;
  let api;
  let blobsDir;
  let port;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: JOB_MS });
    port = mock.port;
    blobsDir = path.join(cl.dir, 'blobs');
    const config = await cl.dialectConfigFor({
      redis, mock, pollIntervalMs: 100,
      overrides: {
        blobs: { allow_hosts: ['localhost'] },
        // OpenAI's video download comes from its own origin, which is then localhost (allowed)
        providers: { openai: { base_url: `http://localhost:${port}/v1` } },
      },
    });
    const sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  test('the probe works: a request to /_probe/ shows in the mock\'s log', async () => {
    const res = await fetch(`${mock.root}/_probe/self-check`, { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    assert.deepEqual((await probes(mock)).map((r) => r.path), ['/_probe/self-check']);
    await mock.reset();
    assert.deepEqual(await probes(mock), []);
  });

  test('the mock\'s own loopback blob URLs are refused without an allow entry', { timeout: 60_000 }, async () => {
    for (const [kind, alias] of [['image', 'image-replicate'], ['image', 'image-fal'], ['video', 'video-fal']]) {
      const task = await runTask(api, kind, alias, `guard default ${alias}`);
      assertRefused(task, 'address refused: 127.0.0.1 is loopback', alias);
      assert.ok(task.error.message.includes('blobs.allow_hosts'), `the reason names the setting: ${task.error.message}`);
      assert.deepEqual(blobFiles(blobsDir, task.id), [], `${alias}: nothing kept`);
    }
  });

  // Provider-named URLs the worker must not fetch, and a phrase of the reason.
  const HOSTILE = [
    { name: 'loopback', url: (p) => `http://127.0.0.1:${p}/_probe/loopback.png`, phrase: '127.0.0.1 is loopback' },
    { name: 'loopback as a decimal number', url: (p) => `http://2130706433:${p}/_probe/decimal.png`, phrase: '127.0.0.1 is loopback' },
    { name: 'IPv4-mapped IPv6 loopback', url: (p) => `http://[::ffff:127.0.0.1]:${p}/_probe/mapped.png`, phrase: 'is loopback' },
    { name: '0.0.0.0 (the local host on Linux)', url: (p) => `http://0.0.0.0:${p}/_probe/zero.png`, phrase: '0.0.0.0 is unspecified' },
    { name: 'the mock\'s request log, which holds sluice\'s provider key', url: (p) => `http://127.0.0.1:${p}/_mock/stats`, phrase: '127.0.0.1 is loopback' },
    { name: 'credentials in the URL (on an allowed host)', url: (p) => `http://user:pw@localhost:${p}/_probe/creds.png`, phrase: 'credentials in URLs are refused' },
    { name: 'a scheme other than http(s)', url: () => 'file:///etc/passwd', phrase: '' },
  ];

  for (const h of HOSTILE) {
    test(`a provider-named artifact URL is not fetched: ${h.name}`, { timeout: 60_000 }, async () => {
      await mock.reset();
      await mock.config({ artifact_url: h.url(port) });
      try {
        for (const alias of ['image-replicate', 'image-fal']) {
          const task = await runTask(api, 'image', alias, `hostile ${h.name} via ${alias}`);
          const ctx = `${alias}: ${JSON.stringify(task).slice(0, 700)}`;
          if (h.phrase) {
            assertRefused(task, h.phrase, alias);
          } else {
            // the dialects refuse a non-http URL themselves, before the worker sees it
            assert.equal(task.status, 'failed', ctx);
            assert.equal(task.error?.retryable, false, ctx);
          }
          assert.deepEqual(blobFiles(blobsDir, task.id), [], `${alias}: nothing kept`);
          const content = await api.request('GET', `/v1/tasks/${task.id}/content?index=0`);
          assert.notEqual(content.status, 200, `no content served: ${content.text.slice(0, 200)}`);
        }
        assert.deepEqual(await probes(mock), [], 'the mock saw no request for the hostile URL');
      } finally {
        await mock.config({ artifact_url: null });
      }
    });
  }

  test('an allowed host is fetched: the same blob named through localhost is kept', { timeout: 60_000 }, async () => {
    const blobUrl = `http://localhost:${port}/_mock/blob/allowed-0.png`;
    const want = Buffer.from(await (await fetch(`${mock.root}/_mock/blob/allowed-0.png`)).arrayBuffer());
    await mock.config({ artifact_url: blobUrl });
    try {
      for (const alias of ['image-replicate', 'image-fal']) {
        const task = await runTask(api, 'image', alias, `allowed via ${alias}`);
        assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 700));
        const content = await api.request('GET', `/v1/tasks/${task.id}/content?index=0`, { binary: true });
        assert.equal(content.status, 200);
        assert.ok(content.bytes.equals(want), `${alias}: the kept bytes are the blob's (${content.bytes.length} vs ${want.length})`);
        assert.deepEqual(blobFiles(blobsDir, task.id), ['0'], `${alias}: one file, no temporary left`);
      }
    } finally {
      await mock.config({ artifact_url: null });
    }
  });

  test('OpenAI\'s video download goes to the provider\'s own origin with its key; a redirect is not followed', { timeout: 60_000 }, async () => {
    await mock.reset();
    const ok = await runTask(api, 'video', 'video-openai', 'keyed download');
    assert.equal(ok.status, 'completed', JSON.stringify(ok).slice(0, 700));
    const downloads = (await mock.stats()).last_requests.filter((r) => /^\/v1\/videos\/[^/]+\/content$/.test(r.path));
    assert.equal(downloads.length, 1, 'one content download');
    assert.equal(downloads[0].headers.authorization, `Bearer ${cl.keys.mock}`, 'the key went to the provider itself');
    assert.deepEqual(blobFiles(blobsDir, ok.id), ['0']);

    await mock.config({ content_redirect: `http://localhost:${port}/_probe/redirected.mp4` });
    try {
      const task = await runTask(api, 'video', 'video-openai', 'redirected download');
      assertRefused(task, 'redirects are not followed', 'video-openai');
      assert.deepEqual(blobFiles(blobsDir, task.id), []);
      assert.deepEqual(await probes(mock), [], 'the redirect target was not requested');
    } finally {
      await mock.config({ content_redirect: null });
    }
  });
});

describe('disk errors on artifacts: a retryable storage_error, nothing at the final path', () => {
  const cl = new Cluster('hardening_artifacts_disk');
  let redis;
  let mock;
  let blobsDir;
  let config;
  let limited;

  /** Starts `sluice serve` through a shell that limits the size of the files it writes. */
  async function startLimited() {
    const wrapper = path.join(cl.dir, 'sluice-fsize-limited.sh');
    fs.writeFileSync(wrapper, [
      '#!/bin/sh',
      '# sluice with RLIMIT_FSIZE: a write past the limit fails with EFBIG (SIGXFSZ ignored, and',
      '# an ignored signal stays ignored across exec)',
      "trap '' XFSZ",
      `ulimit -f ${FSIZE_BLOCKS}`,
      'exec "$SLUICE_REAL_BIN" "$@"',
      '',
    ].join('\n'), { mode: 0o755 });
    const real = path.resolve(process.env.SLUICE_BIN);
    const saved = process.env.SLUICE_BIN;
    process.env.SLUICE_BIN = wrapper;
    try {
      return await cl.startSluice('serve', config, { env: { SLUICE_REAL_BIN: real } });
    } finally {
      process.env.SLUICE_BIN = saved;
    }
  }

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: JOB_MS });
    blobsDir = path.join(cl.dir, 'blobs');
    config = await cl.dialectConfigFor({
      redis, mock, pollIntervalMs: 100,
      overrides: { tasks: { max_attempts: 2, backoff_base_ms: 100, backoff_max_ms: 200 } },
    });
    limited = await startLimited();
  });
  after(() => cl.stop());

  test('a base64 image the disk refuses: storage_error, retryable, no file left', { timeout: 60_000 }, async () => {
    const api = cl.client(limited.baseUrl, cl.keys.alpha);
    const task = await runTask(api, 'image', 'image-openai', 'b64 on a full disk');
    const ctx = JSON.stringify(task).slice(0, 900);
    assert.equal(task.status, 'failed', ctx);
    assert.equal(task.error?.code, 'storage_error', ctx);
    assert.equal(task.error?.retryable, true, ctx);
    assert.equal(task.attempts, 2, `a retryable error is tried max_attempts times: ${ctx}`);
    assert.match(task.error.message, /File too large/, ctx);
    assert.doesNotMatch(task.error.message, /decoded/, ctx);
    for (const a of task.attempt_log ?? []) {
      assert.equal(a.error?.code, 'storage_error', `every attempt: ${ctx}`);
    }
    assert.deepEqual(blobFiles(blobsDir, task.id), [], 'no file at the final path, no temporary file');
  });

  test('a download the disk refuses is retried, and kept once the disk takes it', { timeout: 90_000 }, async () => {
    const api = cl.client(limited.baseUrl, cl.keys.alpha);
    const res = await api.submit('image', { model: 'image-replicate', prompt: 'download on a full disk' });
    assert.equal(res.status, 202, res.text);
    const id = res.json.id;

    // The upstream job is parked and polled again after each storage error (a poll's failure
    // goes to the worker's log, not to the task's attempt log): the task stays in progress and
    // no file appears.
    const failures = () => fs.readFileSync(limited.proc.logPath, 'utf8').split('\n')
      .filter((l) => l.includes('msg="attempt failed"') && l.includes(`task=${id}`));
    const deadline = Date.now() + TASK_WAIT_MS;
    while (failures().length < 2) {
      assert.ok(Date.now() < deadline, `no storage errors logged for ${id}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const line of failures()) {
      assert.match(line, /retryable=1 .*error="cannot keep the artifact: writing the file in the blob directory failed: File too large"/);
    }
    const task = (await api.getTask(id)).json;
    const ctx = JSON.stringify(task).slice(0, 900);
    assert.equal(task.status, 'in_progress', `a storage error is not final: ${ctx}`);
    assert.equal(task.error, null, ctx);
    assert.deepEqual(blobFiles(blobsDir, id), [], 'no file at the final path, no temporary file');

    // A worker whose disk takes the bytes finishes the same task.
    await limited.stop();
    const sluice = await cl.startSluice('serve', config);
    const healthy = cl.client(sluice.baseUrl, cl.keys.alpha);
    const [done] = await healthy.waitTerminal([id], TASK_WAIT_MS, { intervalMs: 100 });
    assert.equal(done.status, 'completed', JSON.stringify(done).slice(0, 900));
    const content = await healthy.request('GET', `/v1/tasks/${id}/content?index=0`, { binary: true });
    assert.equal(content.status, 200);
    assert.ok(content.bytes.subarray(0, 8).equals(PNG_SIGNATURE), 'a PNG');
    const poll = (await mock.stats()).last_requests.find((r) => /^\/replicate\/v1\/predictions\/[^/]+$/.test(r.path));
    const upstream = poll.path.split('/').pop();
    const want = Buffer.from(await (await fetch(`${mock.root}/_mock/blob/${upstream}-0.png`)).arrayBuffer());
    assert.ok(content.bytes.equals(want), `the whole blob (${content.bytes.length} of ${want.length} bytes)`);
    assert.deepEqual(blobFiles(blobsDir, id), ['0'], 'the artifact and no temporary file');
  });
});
