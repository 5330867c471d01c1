// The Responses API (issue 14) through the official OpenAI Node SDK, changed in nothing but its
// apiKey and baseURL, on four chat aliases served by one sluice-mock:
//   chat-openai     an OpenAI deployment: sluice calls the mock's native POST /v1/responses;
//   chat-anthropic  Anthropic Messages, translated;
//   chat-gemini     Gemini generateContent, translated;
//   chat-compat     an OpenAI-compatible server without /responses (`responses: false`): chat
//                   completions, translated.
// On each: responses.create plain, with instructions (and metadata echoed), a two-turn
// conversation with previous_response_id (the second upstream call carries the first turn), a
// function-tool loop, text.format json_schema, max_output_tokens → incomplete, the SDK's stream
// helper to its final response, background polled to completed, a background response cancelled
// while the mock holds its call (and no completion after), a background stream resumed with
// starting_after, inputItems.list paged, and the refusals (a built-in tool, an unknown field, a
// field the dialect cannot honour: 400 naming it, no upstream call). Once: responses.delete,
// store: false, another tenant's id, cancel of a finished response, GET /v1/tasks/{resp id} and
// POST /v1/tasks {kind: "response"}, the `webhook` extension, and at the end no task left
// unfinished.
//
// Every upstream request is found in the mock's record by a nonce in the prompt, so each test
// checks exactly what sluice sent for it: never previous_response_id, background or webhook, and
// store false on the native path.
//
// Needs `npm ci` in tests/integration first (openai, standardwebhooks).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import OpenAI from 'openai';
import { Webhook } from 'standardwebhooks';
import {
  COMPAT_CHAT, Cluster, DIALECT_MODELS, MOCK_REPLY_PREFIX, compatChatOverrides, deepMerge, expectedMockReply,
  openaiClient, sleep, waitFor,
  startWebhookReceiver,
} from './lib/harness.mjs';

const RESP_ID_RE = /^resp_[a-z2-7]{26}$/;
const HOLD_MS = 3000; // the mock's latency while a response is cancelled in flight
const CHUNK_MS = 250; // the mock's pace between stream events while a stream is resumed
const MAX_EVENTS = 500; // a stream that sends more is broken

/** Per alias: the upstream model and the mock paths its calls go to. */
const ALIASES = {
  'chat-openai': { ...DIALECT_MODELS['chat-openai'], kind: 'native', paths: ['/v1/responses'] },
  'chat-anthropic': { ...DIALECT_MODELS['chat-anthropic'], kind: 'anthropic', paths: ['/anthropic/v1/messages'] },
  'chat-gemini': {
    ...DIALECT_MODELS['chat-gemini'],
    kind: 'gemini',
    paths: ['/gemini/v1beta/models/gemini-2.0-flash:generateContent',
      '/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent'],
  },
  [COMPAT_CHAT.alias]: { ...COMPAT_CHAT, kind: 'compat', paths: ['/v1/chat/completions'] },
};

const WEATHER_TOOL = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: true,
};

const CITY_SCHEMA = {
  type: 'object',
  properties: {
    city: { type: 'string' },
    population: { type: 'integer', minimum: 1000 },
    tags: { type: 'array', items: { type: 'string', enum: ['coastal', 'inland'] } },
  },
  required: ['city', 'population', 'tags'],
  additionalProperties: false,
};

const nonce = () => crypto.randomBytes(5).toString('hex');

/** The SDK's error as a short string for assertion messages. */
function sdkErr(e) {
  return `${e?.constructor?.name} status=${e?.status} param=${e?.param} ${String(e?.message).slice(0, 300)}`;
}

/** The error a promise rejects with; fails when it resolves. */
async function rejection(promise, what) {
  const r = await promise.then((v) => ({ ok: v }), (e) => ({ err: e }));
  if (!('err' in r)) assert.fail(`${what}: expected an error, got ${JSON.stringify(r.ok).slice(0, 400)}`);
  return r.err;
}

/** The text of a message content: a string, or parts with `text`. */
function textOf(content) {
  if (typeof content === 'string') return content;
  return (content ?? []).map((p) => p?.text ?? '').join('');
}

/** The output_text of a raw response object (the SDK computes output_text only for its own calls). */
function outputTextOf(resp) {
  return (resp.output ?? []).filter((o) => o.type === 'message')
    .flatMap((o) => o.content ?? []).filter((c) => c.type === 'output_text').map((c) => c.text).join('');
}

function isUnixSeconds(v) {
  return Number.isInteger(v) && v > 1577836800 && v < 4102444800;
}

/** What every response object has, whatever its state; status when given. */
function assertResponseObject(r, { alias, status }) {
  const ctx = JSON.stringify(r).slice(0, 800);
  assert.match(String(r.id), RESP_ID_RE, `id: ${ctx}`);
  assert.equal(r.object, 'response', ctx);
  assert.ok(isUnixSeconds(r.created_at), `created_at: ${ctx}`);
  if (status !== undefined) assert.equal(r.status, status, `status: ${ctx}`);
  assert.equal(r.model, alias, `model is the alias the client named: ${ctx}`);
  assert.ok(Array.isArray(r.output), `output: ${ctx}`);
  for (const f of ['error', 'incomplete_details', 'instructions', 'metadata', 'previous_response_id', 'usage']) {
    assert.ok(f in r, `${f} missing: ${ctx}`);
  }
  assert.ok(Array.isArray(r.tools), `tools echoed: ${ctx}`);
  assert.equal(typeof r.parallel_tool_calls, 'boolean', `parallel_tool_calls: ${ctx}`);
  assert.ok('tool_choice' in r && 'temperature' in r && 'top_p' in r, `settings echoed: ${ctx}`);
}

/** A completed (or incomplete) response: usage in the Responses names, no error. */
function assertFinished(r, { alias, status = 'completed' }) {
  assertResponseObject(r, { alias, status });
  const ctx = JSON.stringify(r).slice(0, 800);
  assert.equal(r.error, null, ctx);
  const u = r.usage;
  assert.ok(u && typeof u === 'object', `usage: ${ctx}`);
  for (const f of ['input_tokens', 'output_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(u[f]) && u[f] >= 0, `usage.${f}: ${ctx}`);
  }
  assert.ok(u.input_tokens > 0 && u.output_tokens > 0, `usage counts tokens: ${ctx}`);
  assert.equal(u.total_tokens, u.input_tokens + u.output_tokens, `usage.total_tokens: ${ctx}`);
  assert.ok(Number.isInteger(u.input_tokens_details?.cached_tokens), `cached_tokens: ${ctx}`);
  assert.ok(Number.isInteger(u.output_tokens_details?.reasoning_tokens), `reasoning_tokens: ${ctx}`);
}

/** The single assistant message of a response, with one output_text part; returns its text. */
function messageText(r) {
  const ctx = JSON.stringify(r.output).slice(0, 600);
  const msgs = r.output.filter((o) => o.type === 'message');
  assert.equal(msgs.length, 1, `one message item: ${ctx}`);
  assert.equal(msgs[0].role, 'assistant', ctx);
  assert.equal(typeof msgs[0].id, 'string', ctx);
  assert.equal(msgs[0].content.length, 1, ctx);
  assert.equal(msgs[0].content[0].type, 'output_text', ctx);
  assert.ok(Array.isArray(msgs[0].content[0].annotations), ctx);
  return msgs[0].content[0].text;
}

/** The system text an upstream request carries, in its dialect's shape. */
function upstreamSystem(kind, body) {
  switch (kind) {
    case 'native': return body.instructions ?? '';
    case 'anthropic': return textOf(body.system);
    case 'gemini': return textOf(body.systemInstruction?.parts);
    default: return (body.messages ?? []).filter((m) => m.role === 'system' || m.role === 'developer')
      .map((m) => textOf(m.content)).join('');
  }
}

/** The output-token cap an upstream request carries, in its dialect's shape. */
function upstreamMaxTokens(kind, body) {
  switch (kind) {
    case 'native': return body.max_output_tokens;
    case 'anthropic': return body.max_tokens;
    case 'gemini': return body.generationConfig?.maxOutputTokens;
    default: return body.max_completion_tokens ?? body.max_tokens;
  }
}

describe('the Responses API through the official OpenAI SDK', () => {
  const cl = new Cluster('responses');
  const secret = 'whsec_' + crypto.randomBytes(24).toString('base64');
  let mock;
  let api;
  let openai;
  let openaiBeta;
  let receiver;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ record: 2000 });
    receiver = await startWebhookReceiver();
    const config = await cl.dialectConfigFor({
      redis,
      mock,
      overrides: deepMerge(compatChatOverrides(mock.root), {
        webhooks: { secrets: { alpha: [secret] }, allow_hosts: ['127.0.0.1'] },
      }),
    });
    const sluice = await cl.startSluice('serve', config);
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    // The drop-in promise: only the key and the base URL differ from talking to OpenAI. No SDK
    // retries, so a server error shows as what it is.
    openai = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0, timeout: 60_000 });
    openaiBeta = openaiClient(OpenAI, { apiKey: cl.keys.beta, baseURL: `${sluice.baseUrl}/v1`, maxRetries: 0, timeout: 60_000 });
  });
  after(async () => {
    await receiver?.close();
    await cl.stop();
  });

  /** The upstream requests whose body contains text (a test's nonce), oldest first. */
  async function upstream(text) {
    const s = await mock.stats();
    return (s.last_requests ?? []).filter((r) => JSON.stringify(r.body ?? null).includes(text));
  }

  /**
   * The one upstream request for text: on the alias's paths, to its upstream model, and never
   * carrying what is sluice's own (previous_response_id, background, webhook, metadata on the
   * translated paths); on the native path store is false.
   */
  async function oneUpstream(alias, text) {
    const a = ALIASES[alias];
    const reqs = await upstream(text);
    assert.equal(reqs.length, 1, `one upstream call for "${text}", got ${reqs.map((r) => r.path).join(', ')}`);
    const [req] = reqs;
    assert.ok(a.paths.includes(req.path), `${alias} calls ${a.paths.join(' or ')}, not ${req.path}`);
    const body = req.body;
    if (a.kind !== 'gemini') assert.equal(body.model, a.model, `upstream model: ${JSON.stringify(body).slice(0, 300)}`);
    for (const f of ['previous_response_id', 'background', 'webhook']) {
      assert.ok(!(f in body), `${f} must not go upstream: ${JSON.stringify(body).slice(0, 400)}`);
    }
    if (a.kind === 'native') assert.equal(body.store, false, 'the native call is made with store: false');
    return body;
  }

  /** Polls a response until its status is one of `statuses` (bounded), returning it. */
  async function pollResponse(id, statuses, timeoutMs = 30000) {
    let last;
    await waitFor(async () => {
      last = await openai.responses.retrieve(id);
      return statuses.includes(last.status);
    }, { timeoutMs, intervalMs: 150, what: `response ${id} to reach ${statuses}` }).catch((e) => {
      throw new Error(`${e.message}; last: ${JSON.stringify(last).slice(0, 600)}`);
    });
    return last;
  }

  /** Reads an SDK event stream to its end (bounded), checking sequence numbers increase. */
  async function drain(stream, what) {
    const events = [];
    for await (const ev of stream) {
      events.push(ev);
      assert.ok(events.length <= MAX_EVENTS, `${what}: a bounded number of events`);
    }
    return events;
  }

  function assertIncreasing(events, what) {
    for (let i = 0; i < events.length; i++) {
      assert.ok(Number.isInteger(events[i].sequence_number), `${what}: event ${i} has a sequence_number: ${JSON.stringify(events[i]).slice(0, 200)}`);
      if (i > 0) {
        assert.ok(events[i].sequence_number > events[i - 1].sequence_number,
          `${what}: sequence_number increases (${events[i - 1].sequence_number} then ${events[i].sequence_number})`);
      }
    }
  }

  /** The event types of a text answer in the order OpenAI sends them; last is the terminal one. */
  function assertTextEventOrder(events, terminal, what) {
    const types = events.map((e) => e.type);
    const at = (t) => types.indexOf(t);
    const order = ['response.created', 'response.in_progress', 'response.output_item.added',
      'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
      'response.content_part.done', 'response.output_item.done', terminal];
    for (const t of order) assert.ok(at(t) >= 0, `${what}: ${t} missing from ${types.join(' ')}`);
    for (let i = 1; i < order.length; i++) {
      assert.ok(at(order[i - 1]) < at(order[i]), `${what}: ${order[i - 1]} before ${order[i]}: ${types.join(' ')}`);
    }
    assert.equal(types.at(-1), terminal, `${what}: the stream ends with ${terminal}`);
    assert.equal(types.filter((t) => t === terminal).length, 1, `${what}: one ${terminal}`);
  }

  for (const [alias, a] of Object.entries(ALIASES)) {
    describe(`${alias} (${a.kind === 'native' ? 'native /responses' : `translated to ${a.kind}`})`, () => {
      test('responses.create, plain', { timeout: 60_000 }, async () => {
        const text = `Hello responses ${alias} ${nonce()}`;
        const r = await openai.responses.create({ model: alias, input: text })
          .catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        assertFinished(r, { alias });
        assert.equal(messageText(r), expectedMockReply(text));
        assert.equal(r.output_text, expectedMockReply(text), 'the SDK computes output_text from the output');
        assert.equal(r.store, true, 'store defaults to true');
        assert.equal(r.background, false);
        const body = await oneUpstream(alias, text);
        assert.ok(JSON.stringify(body).includes(text), 'the input went upstream');
      });

      test('responses.create with instructions and metadata', { timeout: 60_000 }, async () => {
        const text = `With instructions ${nonce()}`;
        const instructions = `Answer as a terse test oracle ${nonce()}.`;
        const r = await openai.responses.create({
          model: alias, input: text, instructions, metadata: { suite: 'responses', alias },
        }).catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        assertFinished(r, { alias });
        assert.equal(r.output_text, expectedMockReply(text));
        assert.equal(r.instructions, instructions, 'instructions echoed');
        assert.deepEqual(r.metadata, { suite: 'responses', alias }, 'metadata echoed');
        const body = await oneUpstream(alias, text);
        assert.ok(upstreamSystem(a.kind, body).includes(instructions),
          `the instructions went upstream as the dialect's system text: ${JSON.stringify(body).slice(0, 500)}`);
      });

      test('a two-turn conversation with previous_response_id', { timeout: 60_000 }, async () => {
        const first = `Turn one ${nonce()}`;
        const second = `Turn two ${nonce()}`;
        const r1 = await openai.responses.create({ model: alias, input: first, instructions: 'Only for turn one.' })
          .catch((e) => assert.fail(`turn 1: ${sdkErr(e)}`));
        assertFinished(r1, { alias });
        const r2 = await openai.responses.create({ model: alias, input: second, previous_response_id: r1.id })
          .catch((e) => assert.fail(`turn 2: ${sdkErr(e)}`));
        assertFinished(r2, { alias });
        assert.notEqual(r2.id, r1.id);
        assert.equal(r2.previous_response_id, r1.id, 'previous_response_id echoed');
        assert.equal(r2.output_text, expectedMockReply(second), 'the answer is to the second turn');
        assert.equal(r2.instructions, null, 'instructions are not carried over');
        const body = await oneUpstream(alias, second);
        const sent = JSON.stringify(body);
        assert.ok(sent.includes(first), `turn 2's upstream request carries turn 1's input: ${sent.slice(0, 600)}`);
        assert.ok(sent.includes(expectedMockReply(first)), `… and turn 1's answer: ${sent.slice(0, 600)}`);
        assert.ok(sent.indexOf(first) < sent.indexOf(expectedMockReply(first)) &&
          sent.indexOf(expectedMockReply(first)) < sent.indexOf(second), `in conversation order: ${sent.slice(0, 600)}`);
        assert.ok(!upstreamSystem(a.kind, body).includes('Only for turn one.'), 'turn 1 instructions not sent again');
      });

      test('a function-tool loop: function_call → function_call_output → answer', { timeout: 60_000 }, async () => {
        const question = `Weather in Paris? ${nonce()}`;
        const r1 = await openai.responses.create({ model: alias, input: question, tools: [WEATHER_TOOL] })
          .catch((e) => assert.fail(`turn 1: ${sdkErr(e)}`));
        assertFinished(r1, { alias });
        const calls = r1.output.filter((o) => o.type === 'function_call');
        assert.equal(calls.length, 1, `one function_call item: ${JSON.stringify(r1.output)}`);
        const [call] = calls;
        assert.equal(call.name, 'get_weather');
        assert.equal(typeof call.call_id, 'string');
        assert.ok(call.call_id.length > 0);
        assert.deepEqual(JSON.parse(call.arguments), { q: 'mock' }, 'the mock\'s arguments, intact');
        assert.equal(r1.output_text, '', 'no text beside the call');
        const body1 = await oneUpstream(alias, question);
        assert.ok(JSON.stringify(body1).includes('get_weather'), 'the tool went upstream');

        const result = `sunny-${nonce()}`;
        const r2 = await openai.responses.create({
          model: alias,
          tools: [WEATHER_TOOL],
          input: [
            { role: 'user', content: question },
            ...r1.output,
            { type: 'function_call_output', call_id: call.call_id, output: result },
          ],
        }).catch((e) => assert.fail(`turn 2: ${sdkErr(e)}`));
        assertFinished(r2, { alias });
        assert.equal(r2.output.filter((o) => o.type === 'function_call').length, 0, 'the loop ends');
        const answer = messageText(r2);
        assert.ok(answer.startsWith(MOCK_REPLY_PREFIX), answer);
        // The mock echoes the last user text; Anthropic carries the tool result in the user turn.
        if (a.kind === 'anthropic') assert.equal(answer, expectedMockReply(result));
        else if (a.kind !== 'gemini') assert.equal(answer, expectedMockReply(question));
        const body2 = await oneUpstream(alias, result);
        const sent = JSON.stringify(body2);
        assert.ok(sent.includes('get_weather'), `turn 2 carries the call: ${sent.slice(0, 600)}`);
        if (a.kind !== 'gemini') assert.ok(sent.includes(call.call_id), `turn 2 carries the call id: ${sent.slice(0, 600)}`);
      });

      test('text.format json_schema: the output parses and matches the schema', { timeout: 60_000 }, async () => {
        const text = `A city as JSON ${nonce()}`;
        const format = { type: 'json_schema', name: 'city_info', schema: CITY_SCHEMA, strict: true };
        const r = await openai.responses.create({ model: alias, input: text, text: { format } })
          .catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        assertFinished(r, { alias });
        assert.equal(r.text?.format?.type, 'json_schema', 'text.format echoed');
        const value = JSON.parse(messageText(r));
        assert.deepEqual(Object.keys(value).sort(), ['city', 'population', 'tags']);
        assert.equal(typeof value.city, 'string');
        assert.ok(Number.isInteger(value.population) && value.population >= 1000, JSON.stringify(value));
        assert.ok(Array.isArray(value.tags) && value.tags.length >= 1, JSON.stringify(value));
        assert.ok(value.tags.every((t) => ['coastal', 'inland'].includes(t)), JSON.stringify(value));
        const body = await oneUpstream(alias, text);
        if (a.kind === 'native') assert.ok(isDeepStrictEqual(body.text?.format?.schema, CITY_SCHEMA), JSON.stringify(body.text));
        if (a.kind === 'compat') assert.ok(isDeepStrictEqual(body.response_format?.json_schema?.schema, CITY_SCHEMA), JSON.stringify(body.response_format));
        if (a.kind === 'anthropic') assert.equal(body.tool_choice?.type, 'tool', `a forced tool: ${JSON.stringify(body).slice(0, 500)}`);
        if (a.kind === 'gemini') assert.equal(body.generationConfig?.responseMimeType, 'application/json');
      });

      test('max_output_tokens below the answer → incomplete', { timeout: 60_000 }, async () => {
        const text = `Tell a long story about a lighthouse keeper and the sea ${nonce()}`;
        const r = await openai.responses.create({ model: alias, input: text, max_output_tokens: 16 })
          .catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        assertFinished(r, { alias, status: 'incomplete' });
        assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
        assert.equal(r.max_output_tokens, 16, 'max_output_tokens echoed');
        assert.equal(r.usage.output_tokens, 16, 'the provider stopped at the cap');
        const body = await oneUpstream(alias, text);
        assert.equal(upstreamMaxTokens(a.kind, body), 16, `the cap went upstream: ${JSON.stringify(body).slice(0, 400)}`);
      });

      test('stream: true through the SDK\'s stream helper to its final response', { timeout: 60_000 }, async () => {
        const text = `Stream me ${nonce()}`;
        const stream = openai.responses.stream({ model: alias, input: text });
        const events = await drain(stream, 'stream').catch((e) => assert.fail(`stream: ${sdkErr(e)}`));
        const final = await stream.finalResponse();
        assertFinished(final, { alias });
        assert.equal(final.output_text, expectedMockReply(text));
        assertIncreasing(events, 'stream');
        assert.equal(events[0].sequence_number, 0, 'sequence numbers start at 0');
        assertTextEventOrder(events, 'response.completed', 'stream');
        const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
        assert.equal(deltas, expectedMockReply(text), 'the deltas add up to the text');
        const done = events.find((e) => e.type === 'response.output_text.done');
        assert.equal(done.text, expectedMockReply(text));
        assert.equal(events[0].response.id, final.id, 'response.created names the same response');
        assert.equal(events[0].response.status, 'in_progress');
        assert.equal(events.at(-1).response.id, final.id);
        const body = await oneUpstream(alias, text);
        if (a.kind === 'native' || a.kind === 'compat' || a.kind === 'anthropic') assert.equal(body.stream, true, 'a streamed upstream call');
        // Stored like any response: retrieve gives the same answer.
        const again = await openai.responses.retrieve(final.id);
        assertFinished(again, { alias });
        assert.equal(again.output_text, final.output_text);
      });

      test('background: true answers queued at once, then retrieve polls it to completed', { timeout: 60_000 }, async () => {
        const text = `In the background ${nonce()}`;
        const r = await openai.responses.create({ model: alias, input: text, background: true })
          .catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        assertResponseObject(r, { alias, status: 'queued' });
        assert.equal(r.background, true);
        assert.deepEqual(r.output, []);
        assert.equal(r.usage, null);
        const done = await pollResponse(r.id, ['completed', 'failed', 'cancelled', 'incomplete']);
        assertFinished(done, { alias });
        assert.equal(done.id, r.id);
        assert.equal(done.created_at, r.created_at, 'created_at is the task\'s creation, queued or done');
        assert.equal(done.background, true);
        assert.equal(done.output_text, expectedMockReply(text));
        await oneUpstream(alias, text);
      });

      test('a background response cancelled while the mock holds its call', { timeout: 60_000 }, async () => {
        const text = `Hold me ${nonce()}`;
        await mock.config({ latency_ms: HOLD_MS });
        try {
          const r = await openai.responses.create({ model: alias, input: text, background: true })
            .catch((e) => assert.fail(`create: ${sdkErr(e)}`));
          assert.equal(r.status, 'queued');
          await waitFor(async () => (await upstream(text)).length === 1, { timeoutMs: 10000, intervalMs: 50, what: 'the upstream call' });
          const heldAt = Date.now();
          const inFlight = await openai.responses.retrieve(r.id);
          assert.equal(inFlight.status, 'in_progress', 'in progress while the mock holds the call');
          const c = await openai.responses.cancel(r.id).catch((e) => assert.fail(`cancel: ${sdkErr(e)}`));
          assertResponseObject(c, { alias, status: 'cancelled' });
          assert.equal(c.id, r.id);
          assert.deepEqual(c.output, []);
          await waitFor(async () => (await api.getTask(r.id)).json?.status === 'cancelled',
            { timeoutMs: 15000, what: `task ${r.id} cancelled` });
          // Past the moment the mock answers: nothing completes it.
          await sleep(Math.max(0, HOLD_MS + 1500 - (Date.now() - heldAt)));
          const later = await openai.responses.retrieve(r.id);
          assert.equal(later.status, 'cancelled', JSON.stringify(later).slice(0, 400));
          assert.deepEqual(later.output, []);
          const task = (await api.getTask(r.id)).json;
          assert.equal(task.status, 'cancelled', JSON.stringify(task).slice(0, 400));
          assert.equal(task.result, null);
          assert.equal((await upstream(text)).length, 1, 'no second call');
        } finally {
          await mock.config({ latency_ms: 0 });
        }
      });

      test('a background stream resumed with starting_after', { timeout: 90_000 }, async () => {
        const text = `Resume me ${nonce()}`;
        await mock.config({ stream_chunk_ms: CHUNK_MS });
        try {
          const stream = await openai.responses.create({ model: alias, input: text, background: true, stream: true })
            .catch((e) => assert.fail(`create: ${sdkErr(e)}`));
          const head = [];
          for await (const ev of stream) {
            head.push(ev);
            if (head.length >= 3) break; // closes the connection; the response runs on
          }
          assert.equal(head.length, 3, `three events before leaving: ${head.map((e) => e.type).join(' ')}`);
          const id = head.find((e) => e.response)?.response?.id;
          assert.match(String(id), RESP_ID_RE, `a lifecycle event names the response: ${JSON.stringify(head).slice(0, 400)}`);
          const n = head.at(-1).sequence_number;
          const running = await openai.responses.retrieve(id);
          assert.equal(running.status, 'in_progress', 'still running when resumed: the tail is followed live');
          const tail = await drain(await openai.responses.retrieve(id, { stream: true, starting_after: n }), 'resumed');
          assert.ok(tail.length >= 1, 'events after N');
          assert.ok(tail.every((e) => e.sequence_number > n), `only events after ${n}: ${tail.map((e) => e.sequence_number).join(',')}`);
          const joined = [...head, ...tail];
          assertIncreasing(joined, 'head + resumed tail');
          assertTextEventOrder(joined, 'response.completed', 'head + resumed tail');
          const deltas = joined.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
          assert.equal(deltas, expectedMockReply(text), 'nothing lost between the two connections');

          // The whole stream replays from the start, the same events, and from any N.
          const all = await drain(await openai.responses.retrieve(id, { stream: true }), 'replay');
          assert.deepEqual(all.map((e) => [e.sequence_number, e.type]), joined.map((e) => [e.sequence_number, e.type]));
          const mid = all[Math.floor(all.length / 2)].sequence_number;
          const after = await drain(await openai.responses.retrieve(id, { stream: true, starting_after: mid }), 'replay after mid');
          assert.deepEqual(after.map((e) => e.sequence_number), all.filter((e) => e.sequence_number > mid).map((e) => e.sequence_number));

          const final = await openai.responses.retrieve(id);
          assertFinished(final, { alias });
          assert.equal(final.output_text, expectedMockReply(text));
          assert.equal(final.background, true);
          await oneUpstream(alias, text);
        } finally {
          await mock.config({ stream_chunk_ms: 0 });
        }
      });

      test('inputItems.list pages through the expanded input', { timeout: 60_000 }, async () => {
        const k = nonce();
        const r1 = await openai.responses.create({ model: alias, input: `first ${k}` });
        const r2 = await openai.responses.create({
          model: alias,
          previous_response_id: r1.id,
          input: [`a ${k}`, `b ${k}`, `c ${k}`].map((t) => ({ role: 'user', content: t })),
        }).catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        assertFinished(r2, { alias });
        const want = [`first ${k}`, expectedMockReply(`first ${k}`), `a ${k}`, `b ${k}`, `c ${k}`];
        const asc = [];
        for await (const item of openai.responses.inputItems.list(r2.id, { limit: 2, order: 'asc' })) {
          asc.push(item);
          assert.ok(asc.length <= 20, 'bounded');
        }
        assert.deepEqual(asc.map((i) => textOf(i.content)), want, JSON.stringify(asc).slice(0, 800));
        assert.deepEqual(asc.map((i) => i.role), ['user', 'assistant', 'user', 'user', 'user']);
        assert.ok(asc.every((i) => typeof i.id === 'string' && i.id.length > 0), 'every item has an id');
        assert.equal(new Set(asc.map((i) => i.id)).size, asc.length, 'ids are unique');

        const page1 = await openai.responses.inputItems.list(r2.id, { limit: 2 });
        assert.equal(page1.data.length, 2);
        assert.equal(page1.has_more, true);
        assert.deepEqual(page1.data.map((i) => textOf(i.content)), [`c ${k}`, `b ${k}`], 'newest first by default');
        // The list envelope as sent (the SDK's page keeps only data and has_more).
        const raw = await api.request('GET', `/v1/responses/${r2.id}/input_items?limit=2`);
        assert.equal(raw.status, 200, raw.text);
        assert.equal(raw.json.object, 'list', raw.text);
        assert.deepEqual(raw.json.data.map((i) => i.id), page1.data.map((i) => i.id), raw.text);
        assert.equal(raw.json.first_id, page1.data[0].id, raw.text);
        assert.equal(raw.json.last_id, page1.data[1].id, raw.text);
        assert.equal(raw.json.has_more, true, raw.text);
        const page2 = await page1.getNextPage();
        assert.deepEqual(page2.data.map((i) => textOf(i.content)), [`a ${k}`, expectedMockReply(`first ${k}`)]);
        const page3 = await page2.getNextPage();
        assert.deepEqual(page3.data.map((i) => textOf(i.content)), [`first ${k}`]);
        assert.equal(page3.has_more, false);
        assert.equal(page3.hasNextPage(), false);
        // As OpenAI lists them, every item says its type, even one sent in the short form.
        assert.ok(asc.every((i) => i.type === 'message'), `item types: ${asc.map((i) => i.type).join(',')}`);
      });

      test('refused before any upstream call: a built-in tool, an unknown field, what the dialect cannot do', { timeout: 60_000 }, async () => {
        const k = nonce();
        const cases = [
          [{ tools: [{ type: 'web_search' }] }, /^tools/, /web_search/],
          [{ frobnicate: 1 }, /^frobnicate$/, /frobnicate/],
          [{ background: true, store: false }, /^(background|store)$/, /./],
        ];
        if (a.kind === 'anthropic') cases.push([{ temperature: 1.5 }, /^temperature$/, /temperature/]);
        if (a.kind === 'gemini') cases.push([{ tools: [WEATHER_TOOL], parallel_tool_calls: false }, /^parallel_tool_calls$/, /parallel_tool_calls/]);
        if (a.kind === 'compat') cases.push([{ reasoning: { summary: 'auto' } }, /^reasoning\.summary$/, /summary/]);
        for (const [extra, param, message] of cases) {
          const text = `Refuse ${Object.keys(extra).join('+')} ${k}`;
          const e = await rejection(openai.responses.create({ model: alias, input: text, ...extra }), JSON.stringify(extra));
          const ctx = `${JSON.stringify(extra)} → ${sdkErr(e)}`;
          assert.ok(e instanceof OpenAI.BadRequestError, ctx);
          assert.equal(e.status, 400, ctx);
          assert.match(String(e.param), param, ctx);
          assert.match(String(e.message), message, ctx);
          assert.equal(e.type, 'invalid_request_error', ctx);
          assert.equal((await upstream(text)).length, 0, `no upstream call: ${ctx}`);
        }
      });
    });
  }

  describe('the API around a response', () => {
    const alias = 'chat-openai';

    test('GET /v1/tasks/{resp id} shows the same work', { timeout: 60_000 }, async () => {
      for (const name of Object.keys(ALIASES)) {
        const text = `Same work ${nonce()}`;
        const r = await openai.responses.create({ model: name, input: text });
        assertFinished(r, { alias: name });
        const res = await api.getTask(r.id);
        assert.equal(res.status, 200, res.text);
        const t = res.json;
        const ctx = JSON.stringify(t).slice(0, 800);
        assert.equal(t.id, r.id, ctx);
        assert.equal(t.object, 'task', ctx);
        assert.equal(t.kind, 'response', ctx);
        assert.equal(t.model, name, ctx);
        assert.equal(t.status, 'completed', ctx);
        assert.equal(t.attempts, 1, ctx);
        assert.equal(t.error, null, ctx);
        assert.equal(t.result?.id, r.id, ctx);
        assert.equal(t.result?.object, 'response', ctx);
        assert.equal(outputTextOf(t.result), r.output_text, ctx);
        assert.equal(t.provider?.name, ALIASES[name].provider, ctx);
        assert.equal(t.provider?.model, ALIASES[name].model, ctx);
        assert.equal(t.usage?.prompt_tokens, r.usage.input_tokens, ctx);
        assert.equal(t.usage?.completion_tokens, r.usage.output_tokens, ctx);
        const price = ALIASES[name].price;
        const want = (r.usage.input_tokens * price.input_per_mtok + r.usage.output_tokens * price.output_per_mtok) / 1e6;
        assert.ok(Math.abs(t.cost?.amount - want) <= Math.max(1e-9, want * 0.01), `cost ${t.cost?.amount} should be ${want}: ${ctx}`);
        assert.equal(t.attempt_log?.length, 1, ctx);
      }
    });

    test('POST /v1/tasks with kind response is the same thing through the task API', { timeout: 60_000 }, async () => {
      const text = `Task API ${nonce()}`;
      const res = await api.submit('response', { model: alias, input: text }, { wait: 20 });
      assert.equal(res.status, 200, res.text);
      const t = res.json;
      assert.match(String(t.id), RESP_ID_RE, res.text.slice(0, 400));
      assert.equal(t.kind, 'response');
      assert.equal(t.status, 'completed', res.text.slice(0, 400));
      assert.equal(outputTextOf(t.result), expectedMockReply(text), res.text.slice(0, 600));
      const r = await openai.responses.retrieve(t.id);
      assertFinished(r, { alias });
      assert.equal(r.output_text, expectedMockReply(text));
      await oneUpstream(alias, text);
    });

    test('responses.delete: gone for retrieve, tasks and a second delete', { timeout: 60_000 }, async () => {
      const r = await openai.responses.create({ model: alias, input: `Delete me ${nonce()}` });
      assertFinished(r, { alias });
      await openai.responses.delete(r.id).catch((e) => assert.fail(`delete: ${sdkErr(e)}`));
      const e = await rejection(openai.responses.retrieve(r.id), 'retrieve after delete');
      assert.ok(e instanceof OpenAI.NotFoundError, sdkErr(e));
      assert.equal((await api.getTask(r.id)).status, 404);
      const again = await rejection(openai.responses.delete(r.id), 'second delete');
      assert.equal(again.status, 404, sdkErr(again));
      // The raw answer of a delete.
      const r2 = await openai.responses.create({ model: alias, input: `Delete me raw ${nonce()}` });
      const res = await api.request('DELETE', `/v1/responses/${r2.id}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { id: r2.id, object: 'response', deleted: true });
    });

    test('a response not finished cannot be deleted; a finished one cannot be cancelled', { timeout: 60_000 }, async () => {
      const text = `Busy ${nonce()}`;
      await mock.config({ latency_ms: HOLD_MS });
      let id;
      try {
        const r = await openai.responses.create({ model: alias, input: text, background: true });
        id = r.id;
        const e = await rejection(openai.responses.delete(id), 'delete while running');
        assert.equal(e.status, 409, sdkErr(e));
      } finally {
        await mock.config({ latency_ms: 0 });
      }
      const done = await pollResponse(id, ['completed'], HOLD_MS + 20000);
      assert.equal(done.output_text, expectedMockReply(text));
      const e = await rejection(openai.responses.cancel(id), 'cancel after completion');
      assert.equal(e.status, 409, sdkErr(e));
      assert.equal((await openai.responses.retrieve(id)).status, 'completed', 'still completed');
    });

    test('store: false answers, then keeps nothing', { timeout: 60_000 }, async () => {
      const text = `Forget me ${nonce()}`;
      const r = await openai.responses.create({ model: alias, input: text, store: false });
      assertFinished(r, { alias });
      assert.equal(r.store, false);
      assert.equal(r.output_text, expectedMockReply(text));
      await oneUpstream(alias, text);
      await waitFor(async () => (await api.getTask(r.id)).status === 404, { timeoutMs: 5000, what: 'the task gone' });
      const e = await rejection(openai.responses.retrieve(r.id), 'retrieve');
      assert.equal(e.status, 404, sdkErr(e));
      const cont = await rejection(openai.responses.create({ model: alias, input: 'more', previous_response_id: r.id }), 'continue');
      assert.equal(cont.status, 404, sdkErr(cont));
    });

    test('another tenant\'s response is a 404 everywhere', { timeout: 60_000 }, async () => {
      const r = await openai.responses.create({ model: alias, input: `Mine ${nonce()}` });
      for (const [what, call] of [
        ['retrieve', () => openaiBeta.responses.retrieve(r.id)],
        ['cancel', () => openaiBeta.responses.cancel(r.id)],
        ['delete', () => openaiBeta.responses.delete(r.id)],
        ['inputItems', () => openaiBeta.responses.inputItems.list(r.id)],
        ['previous_response_id', () => openaiBeta.responses.create({ model: alias, input: 'x', previous_response_id: r.id })],
      ]) {
        const e = await rejection(call(), what);
        assert.equal(e.status, 404, `${what}: ${sdkErr(e)}`);
      }
      assert.equal((await openai.responses.retrieve(r.id)).status, 'completed', 'untouched for its owner');
      const unknown = await rejection(openai.responses.retrieve('resp_aaaaaaaaaaaaaaaaaaaaaaaaaa'), 'unknown id');
      assert.equal(unknown.status, 404, sdkErr(unknown));
    });

    test('the webhook extension: response.completed delivered, signed, never sent upstream', { timeout: 60_000 }, async () => {
      const text = `Hook me ${nonce()}`;
      // Not an OpenAI field: the SDK sends the body as given.
      const r = await openai.responses.create({ model: alias, input: text, background: true, webhook: { url: receiver.url } });
      assert.equal(r.status, 'queued');
      await pollResponse(r.id, ['completed']);
      const typeOf = (m) => { try { return JSON.parse(m.body).type; } catch { return null; } };
      const hit = await waitFor(() => receiver.seen.find((m) => m.body.includes(r.id) && typeOf(m) === 'response.completed'),
        { timeoutMs: 15000, what: `a response.completed delivery for ${r.id}` });
      const payload = new Webhook(secret).verify(hit.body, {
        'webhook-id': hit.headers['webhook-id'],
        'webhook-timestamp': hit.headers['webhook-timestamp'],
        'webhook-signature': hit.headers['webhook-signature'],
      });
      assert.equal(payload.type, 'response.completed', JSON.stringify(payload).slice(0, 400));
      assert.ok(JSON.stringify(payload.data).includes(expectedMockReply(text)), 'the delivery carries the answer');
      await oneUpstream(alias, text);
      const bad = await rejection(openai.responses.create({ model: alias, input: 'x', webhook: { url: 'ftp://nope' } }), 'bad webhook');
      assert.equal(bad.status, 400, sdkErr(bad));
      assert.match(String(bad.param), /^webhook/, sdkErr(bad));
    });

    test('afterwards no task is left unfinished', { timeout: 30_000 }, async () => {
      for (const status of ['queued', 'in_progress', 'cancelling']) {
        await waitFor(async () => {
          const res = await api.list({ status, limit: 100 });
          return res.status === 200 && res.json.data.length === 0;
        }, { timeoutMs: 10000, what: `no ${status} task` });
      }
      const s = await mock.stats();
      assert.equal(s.in_flight, 0, 'the mock holds no call');
    });
  });
});
