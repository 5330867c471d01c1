// The Batch API with endpoint /v1/responses, driven by the official OpenAI Node SDK: 1,000
// Responses lines spread over the four chat aliases (OpenAI native /responses, Anthropic,
// Gemini, an OpenAI-compatible chat-only server) are uploaded with files.create, run with
// batches.create, polled with batches.retrieve to `completed`, and the output file downloaded:
// exactly one output line per custom_id, each a 200 whose body is a response object (resp_ id,
// status completed, usage) whose output text is the mock's answer to that very line; no error
// file; request_counts adding up; the mock called once per line on the alias's route; a line's
// response is a task of the batch (GET /v1/tasks/{resp id}). A file with a line that asks for
// background or stream fails validation with that line's number, and nothing runs.
//
// Needs `npm ci` in tests/integration first (the SDK).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import {
  COMPAT_CHAT, Cluster, DIALECT_MODELS, compatChatOverrides, deepMerge, expectedMockReply, routeCount, sleep,
} from './lib/harness.mjs';

const N = 1000;
const RESP_ID_RE = /^resp_[a-z2-7]{26}$/;
const ALIASES = ['chat-openai', 'chat-anthropic', 'chat-gemini', COMPAT_CHAT.alias];
const ROUTES = {
  'chat-openai': ['openai.responses'],
  'chat-anthropic': DIALECT_MODELS['chat-anthropic'].routes,
  'chat-gemini': DIALECT_MODELS['chat-gemini'].routes,
  [COMPAT_CHAT.alias]: COMPAT_CHAT.routes,
};

const aliasOf = (i) => ALIASES[i % ALIASES.length];
const promptOf = (i) => `batch line ${i} for ${aliasOf(i)}`;

function line(i, extra = {}) {
  return JSON.stringify({
    custom_id: `resp-${i}`,
    method: 'POST',
    url: '/v1/responses',
    body: { model: aliasOf(i), input: promptOf(i), ...extra },
  });
}

/** The output_text of a raw response object. */
function outputTextOf(resp) {
  return (resp?.output ?? []).filter((o) => o.type === 'message')
    .flatMap((o) => o.content ?? []).filter((c) => c.type === 'output_text').map((c) => c.text).join('');
}

async function download(openai, fileId) {
  const res = await openai.files.content(fileId);
  const text = await res.text();
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

/** Polls the batch until it is terminal (bounded), checking its counts on the way. */
async function waitBatch(openai, id, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let b;
  while (Date.now() < deadline) {
    b = await openai.batches.retrieve(id);
    const c = b.request_counts;
    if (c) assert.ok(c.completed + c.failed <= c.total, JSON.stringify(b));
    if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return b;
    await sleep(250);
  }
  throw new Error(`batch ${id} not finished after ${timeoutMs} ms: ${JSON.stringify(b)}`);
}

describe('batches of /v1/responses', () => {
  const cl = new Cluster('responses_batch');
  let mock;
  let api;
  let openai;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ record: 0 });
    const config = await cl.dialectConfigFor({
      redis,
      mock,
      overrides: deepMerge(compatChatOverrides(mock.root), { files: { max_lines: 5000 } }),
    });
    const sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    openai = new OpenAI({ apiKey: cl.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0, timeout: 60_000 });
  });
  after(() => cl.stop());

  test(`${N} response lines: one output line per custom_id, each the mock's answer to its line`, { timeout: 300_000 }, async () => {
    const inputPath = path.join(cl.dir, 'responses.jsonl');
    fs.writeFileSync(inputPath, Array.from({ length: N }, (_, i) => line(i)).join('\n') + '\n');
    const file = await openai.files.create({ file: fs.createReadStream(inputPath), purpose: 'batch' });
    const before = await mock.byRoute();

    const created = await openai.batches.create({
      input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h',
    });
    assert.equal(created.object, 'batch');
    assert.equal(created.endpoint, '/v1/responses');
    assert.equal(created.input_file_id, file.id);
    const batch = await waitBatch(openai, created.id, 240_000);
    assert.equal(batch.status, 'completed', JSON.stringify(batch));
    assert.deepEqual(batch.request_counts, { total: N, completed: N, failed: 0 }, JSON.stringify(batch));
    assert.ok(batch.output_file_id, JSON.stringify(batch));
    if (batch.error_file_id) {
      const errors = await download(openai, batch.error_file_id);
      assert.deepEqual(errors, [], 'no line failed');
    }

    const out = await download(openai, batch.output_file_id);
    assert.equal(out.length, N, `${N} output lines`);
    const byId = new Map();
    for (const o of out) {
      assert.ok(!byId.has(o.custom_id), `custom_id ${o.custom_id} once`);
      byId.set(o.custom_id, o);
    }
    const respIds = new Set();
    for (let i = 0; i < N; i++) {
      const o = byId.get(`resp-${i}`);
      const ctx = () => JSON.stringify(o).slice(0, 600);
      assert.ok(o, `line resp-${i} has an output line`);
      assert.equal(o.error, null, ctx());
      assert.equal(o.response?.status_code, 200, ctx());
      const body = o.response.body;
      assert.equal(body.object, 'response', ctx());
      assert.match(String(body.id), RESP_ID_RE, ctx());
      assert.ok(!respIds.has(body.id), `response ids are unique: ${body.id}`);
      respIds.add(body.id);
      assert.equal(body.status, 'completed', ctx());
      assert.equal(body.model, aliasOf(i), ctx());
      assert.equal(outputTextOf(body), expectedMockReply(promptOf(i)), ctx());
      assert.ok(Number.isInteger(body.usage?.input_tokens) && body.usage.input_tokens > 0, ctx());
      assert.equal(body.usage.total_tokens, body.usage.input_tokens + body.usage.output_tokens, ctx());
    }

    // One upstream call per line, on the route of its alias's dialect.
    const after = await mock.byRoute();
    for (const alias of ALIASES) {
      const calls = routeCount(after, ROUTES[alias]) - routeCount(before, ROUTES[alias]);
      assert.equal(calls, N / ALIASES.length, `${alias}: ${calls} upstream calls`);
    }

    // A line's response is a task of the batch, with its custom_id.
    for (const i of [0, 1, 2, 3, N - 1]) {
      const body = byId.get(`resp-${i}`).response.body;
      const res = await api.getTask(body.id);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.kind, 'response', res.text.slice(0, 400));
      assert.equal(res.json.batch_id, created.id, res.text.slice(0, 400));
      assert.equal(res.json.custom_id, `resp-${i}`, res.text.slice(0, 400));
      assert.equal(res.json.priority, 'batch', res.text.slice(0, 400));
    }
  });

  test('a line asking for background or stream fails validation with its line number', { timeout: 60_000 }, async () => {
    const lines = [line(0), line(1, { background: true }), line(2), line(3, { stream: true })];
    const inputPath = path.join(cl.dir, 'bad.jsonl');
    fs.writeFileSync(inputPath, lines.join('\n') + '\n');
    const file = await openai.files.create({ file: fs.createReadStream(inputPath), purpose: 'batch' });
    const before = await mock.stats();
    const created = await openai.batches.create({
      input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h',
    });
    const batch = await waitBatch(openai, created.id, 30_000);
    assert.equal(batch.status, 'failed', JSON.stringify(batch));
    const errs = batch.errors?.data ?? [];
    assert.deepEqual(errs.map((e) => e.line).sort((x, y) => x - y), [2, 4], JSON.stringify(errs));
    assert.ok(errs.every((e) => typeof e.message === 'string' && e.message.length > 0), JSON.stringify(errs));
    await sleep(1000); // a line that slipped through would have reached the mock by now
    assert.equal((await mock.stats()).requests, before.requests, 'nothing ran');
  });
});
