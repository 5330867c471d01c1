// Batches survive their process and end when their window does:
//  - sluice serve is killed with SIGKILL while a 6,000-line batch is being expanded (slowed by a
//    queue quota of 1,000, which the runner waits on rather than failing lines) and run; a
//    new process takes the batch up where Redis says it was (its runner's lease, shortened to
//    2 s here, runs out): the batch completes, every custom_id lands exactly once in the output
//    file, request_counts add up to the line count, and no line became two tasks;
//  - a batch whose completion window (batches.window_s, 3 s here) runs out while lines are still
//    queued ends `expired`: what completed is in the output file, the rest in the error file as
//    batch_expired, and the counts add up.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { Cluster, waitFor } from './lib/harness.mjs';

function jsonl(n, prefix) {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += JSON.stringify({
      custom_id: `${prefix}-${i}`, method: 'POST', url: '/v1/chat/completions',
      body: { model: 'mock-chat', messages: [{ role: 'user', content: `${prefix} ${i}` }] },
    }) + '\n';
  }
  return s;
}

async function download(openai, fileId) {
  if (!fileId) return [];
  const text = await (await openai.files.content(fileId)).text();
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

describe('batch recovery and expiry', () => {
  const cl = new Cluster('batch-recovery');
  let redis;
  let mock;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock();
  });
  after(() => cl.stop());

  const overrides = (extra = {}) => ({
    blobs: { dir: path.join(cl.dir, 'blobs') },
    tasks: { lease_ms: 2000 },
    scheduler: { tick_ms: 200 },
    batches: { lease_ms: 2000, poll_ms: 100, ...extra },
  });

  test('SIGKILL mid-batch: a new process finishes it, every line exactly once', { timeout: 180_000 }, async () => {
    const n = 6000;
    // A queue quota of 1,000 keeps the expansion going for most of the batch (the runner backs
    // off when the tenant's queue is full), so the kill lands in the middle of it.
    const config = await cl.configFor({
      redis, mock, overrides: { ...overrides(), quotas: { default_max_queued: 1000 } },
    });
    let sluice = await cl.startSluice('serve', config);
    const client = (s) => new OpenAI({ apiKey: cl.keys.alpha, baseURL: `${s.baseUrl}/v1`, maxRetries: 2 });
    let openai = client(sluice);
    const inputPath = path.join(cl.dir, 'crash.jsonl');
    fs.writeFileSync(inputPath, jsonl(n, 'crash'));
    const file = await openai.files.create({ file: fs.createReadStream(inputPath), purpose: 'batch' });
    await mock.config({ latency_ms: 20 });
    const b = await openai.batches.create({
      input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h',
    });
    await waitFor(async () => (await openai.batches.retrieve(b.id)).request_counts.completed >= 200,
      { timeoutMs: 60000, intervalMs: 20, what: 'the batch under way' });
    const mid = await openai.batches.retrieve(b.id);
    sluice.kill('SIGKILL');
    const expandedAtKill = Number(await redis.cli('HGET', `{sl}:b:${b.id}`, 'expanded'));
    const exit = await sluice.waitExit(10000);
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(mid.request_counts.completed < n, `killed mid-batch: ${JSON.stringify(mid.request_counts)}`);
    assert.ok(expandedAtKill < n, `killed mid-expansion: ${expandedAtKill} of ${n} lines submitted`);

    sluice = await cl.startSluice('serve', config);
    openai = client(sluice);
    let done;
    await waitFor(async () => {
      done = await openai.batches.retrieve(b.id);
      return done.status === 'completed';
    }, { timeoutMs: 120000, intervalMs: 250, what: 'the batch to complete after the restart' });
    await mock.config({ latency_ms: 0 });
    assert.deepEqual(done.request_counts, { total: n, completed: n, failed: 0 });
    const output = await download(openai, done.output_file_id);
    assert.equal(output.length, n);
    const ids = new Set(output.map((o) => o.custom_id));
    assert.equal(ids.size, n, 'every custom_id exactly once');
    for (const o of output) {
      assert.equal(o.response.body.choices[0].message.content, `mock reply: ${o.custom_id.replace('-', ' ')}`);
    }
    assert.equal(done.error_file_id, null);
    // One task per line: the line's task id is derived from the batch and the line, so a chunk
    // submitted again after the crash found its tasks there.
    const taskKeys = Number(await redis.cli('EVAL',
      "local n = 0 for _, k in ipairs(redis.call('KEYS', '{sl}:t:*')) do " +
      "if redis.call('HGET', k, 'batch') == ARGV[1] then n = n + 1 end end return n", '0', b.id));
    assert.equal(taskKeys, n, 'tasks of the batch in Redis');
    await sluice.stop();
  });

  test('a batch past its completion window ends expired', { timeout: 120_000 }, async () => {
    const n = 1500;
    const config = await cl.configFor({ redis, mock, overrides: overrides({ window_s: 3 }) });
    config.worker = { ...config.worker, concurrency: 16 };
    const sluice = await cl.startSluice('serve', config);
    const openai = new OpenAI({ apiKey: cl.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0 });
    await mock.config({ latency_ms: 200 });
    try {
      const file = await openai.files.create({ file: new File([jsonl(n, 'exp')], 'e.jsonl'), purpose: 'batch' });
      const b = await openai.batches.create({
        input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h',
      });
      assert.ok(b.expires_at - b.created_at <= 4, JSON.stringify(b));
      let done;
      await waitFor(async () => {
        done = await openai.batches.retrieve(b.id);
        return ['expired', 'completed'].includes(done.status);
      }, { timeoutMs: 60000, intervalMs: 250, what: 'the batch to expire' });
      assert.equal(done.status, 'expired', JSON.stringify(done));
      assert.equal(typeof done.expired_at, 'number');
      const c = done.request_counts;
      assert.equal(c.total, n);
      assert.equal(c.completed + c.failed, n, JSON.stringify(c));
      assert.ok(c.completed > 0 && c.completed < n, JSON.stringify(c));
      const output = await download(openai, done.output_file_id);
      const errors = await download(openai, done.error_file_id);
      assert.equal(output.length, c.completed);
      assert.equal(errors.length, c.failed);
      for (const e of errors) assert.equal(e.error.code, 'batch_expired', JSON.stringify(e));
      assert.equal(new Set([...output, ...errors].map((l) => l.custom_id)).size, n);
    } finally {
      await mock.config({ latency_ms: 0 });
    }
  });
});
