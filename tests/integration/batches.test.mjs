// The OpenAI Batch API, driven by the official OpenAI Node SDK:
//  - a 10,000-line JSONL uploaded with files.create, batches.create, polled with
//    batches.retrieve to `completed`, output and error files downloaded with files.content:
//    every custom_id exactly once across the two files, each result the mock's answer to that
//    very line, the lines the mock failed (a seeded 3 % answered 400) in the error file with the
//    provider's status, request_counts adding up, and the batch.completed webhook verified with
//    the standardwebhooks library;
//  - validation: bad lines reported with their line numbers and codes, the batch failed, nothing
//    submitted;
//  - cancel while running: cancelling → cancelled, counts and files agree with what ran;
//  - list, tenant isolation and bad create requests (OpenAI's error envelope).
//
// Needs `npm ci` in tests/integration first (the SDK, standardwebhooks).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { Webhook } from 'standardwebhooks';
import { Cluster, assertErrorEnvelope, sleep, waitFor, startWebhookReceiver,
} from './lib/harness.mjs';

const BATCH_ID_RE = /^batch_[a-z2-7]{26}$/;
const N = 10000;
const FAIL_RATE = 0.03;

function line(i, { url = '/v1/chat/completions', model = 'mock-chat', customId } = {}) {
  return JSON.stringify({
    custom_id: customId ?? `req-${i}`,
    method: 'POST',
    url,
    body: { model, messages: [{ role: 'user', content: `line ${i}` }] },
  });
}

/** Polls the batch until its status is one of `statuses`. */
async function waitBatch(openai, id, statuses, timeoutMs) {
  let last;
  await waitFor(async () => {
    last = await openai.batches.retrieve(id);
    return statuses.includes(last.status);
  }, { timeoutMs, intervalMs: 250, what: `batch ${id} to reach ${statuses}` }).catch((e) => {
    throw new Error(`${e.message}; last: ${JSON.stringify(last)}`);
  });
  return last;
}

async function download(openai, fileId) {
  const res = await openai.files.content(fileId);
  const text = await res.text();
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

describe('batches', () => {
  const cl = new Cluster('batches');
  const secret = 'whsec_' + crypto.randomBytes(24).toString('base64');
  let mock;
  let openai;
  let openaiBeta;
  let api;
  let receiver;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ seed: 7 });
    receiver = await startWebhookReceiver();
    const sluice = await cl.startSluice('serve', await cl.configFor({
      redis, mock,
      overrides: {
        blobs: { dir: path.join(cl.dir, 'blobs') },
        files: { max_lines: N },
        webhooks: { secrets: { alpha: [secret] }, allow_hosts: ['127.0.0.1'] },
      },
    }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    openai = new OpenAI({ apiKey: cl.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0 });
    openaiBeta = new OpenAI({ apiKey: cl.keys.beta, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0 });
  });
  after(async () => {
    await receiver?.close();
    await cl.stop();
  });

  test('10,000 lines through the SDK: output and error files matched by custom_id', { timeout: 300_000 }, async () => {
    const inputPath = path.join(cl.dir, 'input.jsonl');
    fs.writeFileSync(inputPath, Array.from({ length: N }, (_, i) => line(i)).join('\n') + '\n');
    const file = await openai.files.create({ file: fs.createReadStream(inputPath), purpose: 'batch' });
    await mock.config({ error_rate: FAIL_RATE, error_status: 400 });
    const statsBefore = await mock.stats();

    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { run: 'acceptance' },
      webhook: { url: receiver.url },
    });
    assert.match(created.id, BATCH_ID_RE);
    assert.equal(created.object, 'batch');
    assert.equal(created.status, 'validating');
    assert.equal(created.input_file_id, file.id);
    assert.equal(created.completion_window, '24h');
    assert.deepEqual(created.metadata, { run: 'acceptance' });
    assert.ok(created.expires_at >= created.created_at + 24 * 3600 - 1, JSON.stringify(created));

    // request_counts are kept current while it runs: never more done than total
    let sawInProgress = false;
    const batch = await (async () => {
      const deadline = Date.now() + 240_000;
      while (Date.now() < deadline) {
        const b = await openai.batches.retrieve(created.id);
        const c = b.request_counts;
        assert.ok(c.completed + c.failed <= c.total, JSON.stringify(b));
        if (b.status === 'in_progress') sawInProgress = true;
        if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return b;
        await sleep(200);
      }
      throw new Error('batch did not finish within 240 s');
    })();
    await mock.config({ error_rate: 0 });
    assert.equal(batch.status, 'completed', JSON.stringify(batch));
    assert.ok(sawInProgress, 'in_progress was visible while it ran');
    for (const f of ['in_progress_at', 'finalizing_at', 'completed_at']) {
      assert.equal(typeof batch[f], 'number', `${f}: ${JSON.stringify(batch)}`);
    }
    const counts = batch.request_counts;
    assert.equal(counts.total, N);
    assert.equal(counts.completed + counts.failed, N);

    // The mock's own count of the 400s it gave during the batch is the failed count (a 400 is
    // not retried, so one call per failed line).
    const statsAfter = await mock.stats();
    const fails = (statsAfter.by_status['400'] ?? 0) - (statsBefore.by_status['400'] ?? 0);
    assert.ok(fails > N * FAIL_RATE * 0.5 && fails < N * FAIL_RATE * 2, `mock failed ${fails} lines`);
    assert.equal(counts.failed, fails, 'failed = the mock\'s 400 answers');

    const output = await download(openai, batch.output_file_id);
    const errors = await download(openai, batch.error_file_id);
    assert.equal(output.length, counts.completed);
    assert.equal(errors.length, counts.failed);
    const seen = new Set();
    for (const o of output) {
      assert.match(o.custom_id, /^req-\d+$/);
      assert.ok(!seen.has(o.custom_id), `duplicate ${o.custom_id}`);
      seen.add(o.custom_id);
      assert.match(o.id, /^batch_req_/);
      assert.equal(o.error, null);
      assert.equal(o.response.status_code, 200);
      // the answer is to this very line: the mock echoes the line's content
      const i = o.custom_id.slice(4);
      assert.equal(o.response.body.choices[0].message.content, `mock reply: line ${i}`, JSON.stringify(o));
      assert.equal(o.response.body.object, 'chat.completion');
    }
    for (const e of errors) {
      assert.ok(!seen.has(e.custom_id), `duplicate ${e.custom_id}`);
      seen.add(e.custom_id);
      assert.equal(e.response.status_code, 400, JSON.stringify(e));
      assert.equal(typeof e.response.body.error.message, 'string');
      assert.equal(e.error, null);
    }
    assert.equal(seen.size, N, 'every custom_id exactly once across both files');

    // the batch's tasks are visible as tasks, at batch priority, carrying batch and custom id
    const t = (await api.request('GET', '/v1/tasks?limit=1')).json.data[0];
    assert.equal(t.batch_id, batch.id, JSON.stringify(t));
    assert.match(t.custom_id, /^req-\d+$/);
    assert.equal(t.priority, 'batch');

    // batch.completed, signed (Standard Webhooks), the batch object as data
    await waitFor(() => receiver.seen.length >= 1, { timeoutMs: 15000, what: 'the batch webhook' });
    const m = receiver.seen[0];
    const payload = new Webhook(secret).verify(m.body, {
      'webhook-id': m.headers['webhook-id'],
      'webhook-timestamp': m.headers['webhook-timestamp'],
      'webhook-signature': m.headers['webhook-signature'],
    });
    assert.equal(payload.type, 'batch.completed');
    assert.equal(payload.data.id, batch.id);
    assert.equal(payload.data.status, 'completed');
    assert.deepEqual(payload.data.request_counts, counts);
    assert.equal(payload.data.output_file_id, batch.output_file_id);

    // the output files are the tenant's files, with purpose batch_output
    const outFile = await openai.files.retrieve(batch.output_file_id);
    assert.equal(outFile.purpose, 'batch_output');
  });

  test('validation reports bad lines with their line numbers; the batch fails', { timeout: 60_000 }, async () => {
    const lines = [
      line(0),
      '{"custom_id": "broken", ',
      line(2),
      line(3, { url: '/v1/embeddings' }),
      line(4, { customId: 'req-0' }),
      line(5, { model: 'no-such-model' }),
      '',
      JSON.stringify({ custom_id: 'x7', method: 'GET', url: '/v1/chat/completions', body: {} }),
      JSON.stringify({ custom_id: 'x8', method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-chat', messages: [] } }),
    ];
    const stats0 = await mock.stats();
    const file = await openai.files.create({
      file: new File([lines.join('\n') + '\n'], 'bad.jsonl'), purpose: 'batch',
    });
    const b = await openai.batches.create({
      input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h',
    });
    const done = await waitBatch(openai, b.id, ['failed', 'completed'], 30000);
    assert.equal(done.status, 'failed', JSON.stringify(done));
    assert.equal(typeof done.failed_at, 'number');
    const got = done.errors.data.map((e) => [e.line, e.code]).sort((x, y) => x[0] - y[0]);
    assert.deepEqual(got, [
      [2, 'invalid_json_line'],
      [4, 'invalid_url'],
      [5, 'duplicate_custom_id'],
      [6, 'model_not_found'],
      [8, 'invalid_method'],
      [9, 'invalid_request'],
    ], JSON.stringify(done.errors));
    for (const e of done.errors.data) assert.equal(typeof e.message, 'string');
    assert.equal(done.output_file_id, null);
    const stats1 = await mock.stats();
    assert.equal(stats1.requests, stats0.requests, 'nothing of a failed batch reached the provider');
  });

  test('cancel while running: cancelling, then cancelled with counts and files that agree', { timeout: 120_000 }, async () => {
    const n = 3000;
    await mock.config({ latency_ms: 50 });
    try {
      const file = await openai.files.create({
        file: new File([Array.from({ length: n }, (_, i) => line(i)).join('\n')], 'c.jsonl'), purpose: 'batch',
      });
      const b = await openai.batches.create({
        input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h',
      });
      await waitFor(async () => (await openai.batches.retrieve(b.id)).request_counts.completed >= 50,
        { timeoutMs: 30000, what: 'some lines done' });
      const c = await openai.batches.cancel(b.id);
      assert.ok(['cancelling', 'cancelled'].includes(c.status), c.status);
      assert.equal(typeof c.cancelling_at, 'number');
      const done = await waitBatch(openai, b.id, ['cancelled'], 60000);
      const counts = done.request_counts;
      assert.ok(counts.completed >= 50 && counts.completed < n, JSON.stringify(counts));
      assert.equal(counts.completed + counts.failed, counts.total, JSON.stringify(counts));
      const output = done.output_file_id ? await download(openai, done.output_file_id) : [];
      const errors = done.error_file_id ? await download(openai, done.error_file_id) : [];
      assert.equal(output.length, counts.completed);
      assert.equal(errors.length, counts.failed);
      for (const e of errors) assert.equal(e.error.code, 'batch_cancelled', JSON.stringify(e));
      // cancelling a cancelled batch is harmless; a finished one cannot be
      assert.equal((await openai.batches.cancel(b.id)).status, 'cancelled');
    } finally {
      await mock.config({ latency_ms: 0 });
    }
  });

  test('list, tenant isolation and bad requests', { timeout: 30_000 }, async () => {
    const page = await openai.batches.list({ limit: 2 });
    assert.equal(page.data.length, 2);
    assert.ok(page.has_more);
    const all = [];
    for await (const b of openai.batches.list({ limit: 2 })) all.push(b);
    assert.equal(all.length, 3, 'three batches in this file');
    assert.ok(all[0].created_at >= all[2].created_at, 'newest first');
    assert.equal((await openaiBeta.batches.list()).data.length, 0, 'beta sees none of alpha\'s');
    try {
      await openaiBeta.batches.retrieve(all[0].id);
      assert.fail('beta read alpha\'s batch');
    } catch (e) {
      assert.equal(e.status, 404);
    }
    const file = await openai.files.create({ file: new File([line(1) + '\n'], 'one.jsonl'), purpose: 'batch' });
    const completed = all.find((b) => b.status === 'completed');
    const bad = [
      [{ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h' }, 400],
      [{ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '1h' }, 400],
      [{ input_file_id: 'file_' + 'a'.repeat(26), endpoint: '/v1/chat/completions', completion_window: '24h' }, 404],
      [{ endpoint: '/v1/chat/completions', completion_window: '24h' }, 400],
      [{ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: 'x' }, 400],
    ];
    for (const [body, status] of bad) {
      assertErrorEnvelope(await api.request('POST', '/v1/batches', { body }), status);
    }
    const other = await openaiBeta.files.create({ file: new File([line(1) + '\n'], 'b.jsonl'), purpose: 'batch' });
    try {
      await openai.batches.create({ input_file_id: other.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      assert.fail('alpha used beta\'s file');
    } catch (e) {
      assert.equal(e.status, 404);
    }
    try {
      await openai.batches.cancel(completed.id);
      assert.fail('cancelled a completed batch');
    } catch (e) {
      assert.equal(e.status, 409);
    }
  });
});
