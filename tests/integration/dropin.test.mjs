// Drop-in correctness, as a new user's program meets it (issue 11): the official OpenAI SDK,
// pointed at sluice and changed in nothing else, against every chat dialect.
// - the plain streaming loop (no stream_options) reads choices[0] of every chunk to the end; every
//   chunk carries usage: null; the usage chunk comes only when stream_options.include_usage asks;
// - a request the dialect cannot serve is a 400 naming the field (the SDK does not retry it), and
//   its claimed call slot goes back: max_concurrency 1, two refused requests, then one completes;
// - response_format json_schema on the Anthropic alias yields content that satisfies the schema
//   (the mock received one forced tool); logprobs refused on Anthropic, mapped on Gemini;
// - Anthropic without max_tokens completes; Gemini tool call ids are unique and OpenAI-shaped,
//   streamed Gemini tool calls keep their names;
// - x-request-id on every answer and request_id in error bodies, OpenAI's error types, and
//   chatcmpl- ids with message.refusal and logprobs null on every dialect.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  Cluster, DIALECT_MODELS, mockRequests, recordedBody, parseMetrics, ADMIN_KEY, openaiClient, sdkErr,
} from './lib/harness.mjs';

const CHAT_ALIASES = ['chat-openai', 'chat-anthropic', 'chat-gemini'];
const CALL_ID_RE = /^call_[A-Za-z0-9]{24}$/;

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

const PERSON_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    age: { type: 'integer', minimum: 0 },
    tags: { type: 'array', items: { type: 'string' } },
    role: { type: 'string', enum: ['admin', 'user'] },
  },
  required: ['name', 'age', 'tags', 'role'],
  additionalProperties: false,
};

/** A small JSON Schema check: enough for the schemas of this file. */
function satisfies(value, schema, where = '$') {
  if (schema.enum) assert.ok(schema.enum.includes(value), `${where}: ${JSON.stringify(value)} not in enum`);
  switch (schema.type) {
    case 'object':
      assert.ok(value && typeof value === 'object' && !Array.isArray(value), `${where}: not an object`);
      for (const k of schema.required ?? []) assert.ok(k in value, `${where}.${k} missing`);
      if (schema.additionalProperties === false) {
        for (const k of Object.keys(value)) assert.ok(k in schema.properties, `${where}.${k} not allowed`);
      }
      for (const [k, s] of Object.entries(schema.properties ?? {})) {
        if (k in value) satisfies(value[k], s, `${where}.${k}`);
      }
      break;
    case 'array':
      assert.ok(Array.isArray(value), `${where}: not an array`);
      value.forEach((v, i) => satisfies(v, schema.items ?? {}, `${where}[${i}]`));
      break;
    case 'string':
      assert.equal(typeof value, 'string', `${where}: not a string`);
      break;
    case 'integer':
      assert.ok(Number.isInteger(value), `${where}: not an integer`);
      if (schema.minimum !== undefined) assert.ok(value >= schema.minimum, `${where}: below minimum`);
      break;
    default:
      break;
  }
}

describe('drop-in correctness through the official SDK', () => {
  const cl = new Cluster('dropin');
  let mock;
  let sluice;
  let openai;
  let base;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({});
    const overrides = {
      // an Anthropic provider with no default_max_tokens: the model table decides
      providers: {},
      models: {
        // one call at a time: a leaked slot would hold every later task of this alias forever
        'claude-capped': {
          kind: 'chat', strategy: 'ordered',
          deployments: [{ provider: 'anthropic', model: 'claude-sonnet-4', max_concurrency: 1,
            price: { input_per_mtok: 3, output_per_mtok: 15 } }],
        },
        'claude-nomax': {
          kind: 'chat', strategy: 'ordered',
          deployments: [{ provider: 'anthropic-bare', model: 'claude-sonnet-4-5',
            price: { input_per_mtok: 3, output_per_mtok: 15 } }],
        },
      },
    };
    const config = await cl.dialectConfigFor({ redis, mock, overrides });
    config.providers['anthropic-bare'] = { ...config.providers.anthropic };
    delete config.providers['anthropic-bare'].default_max_tokens;
    sluice = await cl.startSluice('serve', config);
    base = sluice.baseUrl;
    // no retries: a 5xx the SDK would retry must show up as what it is
    openai = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${base}/v1`, maxRetries: 0 });
  });
  after(() => cl.stop());

  for (const alias of CHAT_ALIASES) {
    describe(`${alias} (${DIALECT_MODELS[alias].provider})`, () => {
      test('the plain streaming loop runs to the end; no usage chunk unless asked', { timeout: 60_000 }, async () => {
        const stream = await openai.chat.completions.create({
          model: alias,
          messages: [{ role: 'user', content: 'Stream me a short answer please.' }],
          stream: true,
        });
        let text = '';
        let n = 0;
        for await (const chunk of stream) {
          // the tutorial loop: throws on a chunk without choices[0]
          text += chunk.choices[0].delta.content ?? '';
          assert.equal(chunk.usage, null, `every chunk carries usage: null: ${JSON.stringify(chunk)}`);
          assert.ok(chunk.id.startsWith('chatcmpl-'), chunk.id);
          n++;
        }
        assert.ok(n >= 2, `${n} chunks`);
        assert.ok(text.length > 0, 'some text came');
      });

      test('with stream_options.include_usage the last chunk carries usage', { timeout: 60_000 }, async () => {
        const stream = await openai.chat.completions.create({
          model: alias,
          messages: [{ role: 'user', content: 'Stream with usage.' }],
          stream: true,
          stream_options: { include_usage: true },
        });
        const chunks = [];
        for await (const chunk of stream) chunks.push(chunk);
        const last = chunks.at(-1);
        assert.deepEqual(last.choices, [], JSON.stringify(last));
        assert.ok(last.usage.prompt_tokens > 0 && last.usage.completion_tokens > 0, JSON.stringify(last));
        for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null, JSON.stringify(c));
        assert.equal(chunks.filter((c) => c.choices.length === 0).length, 1, 'exactly one usage chunk');
      });

      test('a completion has OpenAI\'s shape: chatcmpl- id, refusal and logprobs null', { timeout: 60_000 }, async () => {
        const { data: r, response } = await openai.chat.completions.create({
          model: alias,
          messages: [{ role: 'user', content: 'Shape check.' }],
        }).withResponse();
        assert.ok(r.id.startsWith('chatcmpl-'), r.id);
        assert.equal(r.choices[0].message.refusal, null, JSON.stringify(r));
        assert.equal(r.choices[0].logprobs, null, JSON.stringify(r));
        assert.match(response.headers.get('x-request-id') ?? '', /^req_[a-z2-7]{26}$/);
      });
    });
  }

  test('a field the dialect cannot honour is a 400 naming it, and the SDK does not retry it', { timeout: 60_000 }, async () => {
    const before = await mock.byRoute();
    const retrying = openaiClient(OpenAI, { apiKey: cl.keys.alpha, baseURL: `${base}/v1` }); // default: 2 retries
    let err;
    const t0 = Date.now();
    await retrying.chat.completions.create({
      model: 'chat-anthropic', n: 2, messages: [{ role: 'user', content: 'two choices please' }],
    }).then(() => assert.fail('n: 2 on anthropic must be refused'), (e) => { err = e; });
    assert.equal(err.status, 400, sdkErr(err));
    assert.equal(err.param, 'n', sdkErr(err));
    assert.equal(err.type, 'invalid_request_error', sdkErr(err));
    assert.match(err.error?.request_id ?? '', /^req_/, JSON.stringify(err.error));
    assert.equal(err.requestID, err.error.request_id);
    assert.ok(Date.now() - t0 < 5000, 'answered at once, no retry backoff');
    const after = await mock.byRoute();
    assert.equal(after['anthropic.messages'] ?? 0, before['anthropic.messages'] ?? 0, 'no provider saw it');
  });

  test('refused requests return their call slot: max_concurrency 1, two refusals, then one completes', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 2; i++) {
      await openai.chat.completions.create({
        model: 'claude-capped', n: 2, messages: [{ role: 'user', content: `refused ${i}` }],
      }).then(() => assert.fail('must be refused'), (e) => assert.equal(e.status, 400, sdkErr(e)));
    }
    const r = await openai.chat.completions.create({
      model: 'claude-capped', messages: [{ role: 'user', content: 'now a valid one' }],
    }, { timeout: 20_000 }).catch((e) => assert.fail(`the valid request: ${sdkErr(e)}`));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const inflight = parseMetrics(await res.text()).all('sluice_deployment_in_flight', { model: 'claude-capped' });
    assert.ok(inflight.length > 0, 'the gauge is there');
    for (const s of inflight) assert.equal(s.value, 0, JSON.stringify(s));
  });

  test('response_format json_schema on the Anthropic alias: content satisfies the schema', { timeout: 60_000 }, async () => {
    await mock.reset();
    const r = await openai.chat.completions.create({
      model: 'chat-anthropic',
      messages: [{ role: 'user', content: 'Describe a person as JSON.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON_SCHEMA, strict: true } },
    }).catch((e) => assert.fail(sdkErr(e)));
    const ctx = JSON.stringify(r);
    assert.equal(r.choices[0].finish_reason, 'stop', ctx);
    assert.equal(r.choices[0].message.tool_calls, undefined, ctx);
    satisfies(JSON.parse(r.choices[0].message.content), PERSON_SCHEMA);
    // what Anthropic received: the schema as one forced tool
    const sent = mockRequests(await mock.stats(), '/anthropic/v1/messages').map(recordedBody).at(-1);
    assert.equal(sent.tools.length, 1, JSON.stringify(sent));
    assert.deepEqual(sent.tools[0].input_schema, PERSON_SCHEMA);
    assert.deepEqual(sent.tool_choice, { type: 'tool', name: sent.tools[0].name });
  });

  test('response_format json_schema streamed on the Anthropic alias', { timeout: 60_000 }, async () => {
    const stream = await openai.chat.completions.create({
      model: 'chat-anthropic',
      messages: [{ role: 'user', content: 'Describe a person as JSON, streamed.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON_SCHEMA } },
      stream: true,
    });
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0].delta.content ?? '';
      assert.equal(chunk.choices[0].delta.tool_calls, undefined, JSON.stringify(chunk));
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    assert.equal(finish, 'stop');
    satisfies(JSON.parse(text), PERSON_SCHEMA);
  });

  test('logprobs: refused on Anthropic, mapped on Gemini', { timeout: 60_000 }, async () => {
    await openai.chat.completions.create({
      model: 'chat-anthropic', logprobs: true, messages: [{ role: 'user', content: 'x' }],
    }).then(() => assert.fail('logprobs on anthropic must be refused'), (e) => {
      assert.equal(e.status, 400, sdkErr(e));
      assert.equal(e.param, 'logprobs', sdkErr(e));
    });
    const r = await openai.chat.completions.create({
      model: 'chat-gemini', logprobs: true, top_logprobs: 2,
      messages: [{ role: 'user', content: 'Give me some tokens with logprobs.' }],
    }).catch((e) => assert.fail(sdkErr(e)));
    const content = r.choices[0].logprobs?.content;
    assert.ok(Array.isArray(content) && content.length > 0, JSON.stringify(r));
    for (const t of content) {
      assert.equal(typeof t.token, 'string');
      assert.ok(t.logprob <= 0, JSON.stringify(t));
      assert.equal(t.top_logprobs.length, 2, JSON.stringify(t));
    }
  });

  test('OpenAI alias: response_format, n and logprobs reach the server and come back', { timeout: 60_000 }, async () => {
    const r = await openai.chat.completions.create({
      model: 'chat-openai', n: 2, logprobs: true, top_logprobs: 3,
      messages: [{ role: 'user', content: 'Describe a person as JSON.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON_SCHEMA, strict: true } },
    }).catch((e) => assert.fail(sdkErr(e)));
    const ctx = JSON.stringify(r);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1], ctx);
    for (const c of r.choices) {
      satisfies(JSON.parse(c.message.content), PERSON_SCHEMA);
      assert.ok(c.logprobs.content.length > 0, ctx);
      for (const t of c.logprobs.content) assert.equal(t.top_logprobs.length, 3, ctx);
      assert.equal(c.logprobs.content.map((t) => t.token).join(''), c.message.content, ctx);
    }
  });

  test('n: 2 on Gemini gives two choices', { timeout: 60_000 }, async () => {
    const r = await openai.chat.completions.create({
      model: 'chat-gemini', n: 2, messages: [{ role: 'user', content: 'Two answers.' }],
    }).catch((e) => assert.fail(sdkErr(e)));
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1], JSON.stringify(r));
  });

  test('Anthropic without max_tokens and without a configured default completes', { timeout: 60_000 }, async () => {
    await mock.reset();
    const r = await openai.chat.completions.create({
      model: 'claude-nomax', messages: [{ role: 'user', content: 'No max_tokens here.' }],
    }).catch((e) => assert.fail(sdkErr(e)));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const sent = mockRequests(await mock.stats(), '/anthropic/v1/messages').map(recordedBody).at(-1);
    assert.ok(Number.isInteger(sent.max_tokens) && sent.max_tokens >= 4096, JSON.stringify(sent));
  });

  test('Gemini tool call ids are unique and OpenAI-shaped, plain and streamed', { timeout: 60_000 }, async () => {
    const ids = [];
    for (let turn = 0; turn < 2; turn++) {
      const r = await openai.chat.completions.create({
        model: 'chat-gemini', tools: [WEATHER_TOOL], tool_choice: 'required',
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      }).catch((e) => assert.fail(sdkErr(e)));
      const call = r.choices[0].message.tool_calls[0];
      assert.match(call.id, CALL_ID_RE);
      assert.equal(call.function.name, 'get_weather');
      ids.push(call.id);
    }
    const stream = await openai.chat.completions.create({
      model: 'chat-gemini', tools: [WEATHER_TOOL], tool_choice: 'required', stream: true,
      messages: [{ role: 'user', content: 'What is the weather in Rome?' }],
    });
    let name = '';
    let id = null;
    for await (const chunk of stream) {
      for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
        name += tc.function?.name ?? '';
        id = tc.id ?? id;
      }
    }
    assert.equal(name, 'get_weather', 'a streamed Gemini tool name arrives intact');
    assert.match(id, CALL_ID_RE);
    ids.push(id);
    assert.equal(new Set(ids).size, ids.length, `ids repeat: ${ids}`);
  });

  test('a retried create with the same Idempotency-Key is the same completion, not a second call', { timeout: 60_000 }, async () => {
    const before = (await mock.byRoute())['openai.chat'] ?? 0;
    const body = { model: 'chat-openai', messages: [{ role: 'user', content: 'Only once, please.' }] };
    const key = `dropin-${Date.now()}`;
    const a = await openai.chat.completions.create(body, { idempotencyKey: key });
    const b = await openai.chat.completions.create(body, { idempotencyKey: key });
    assert.equal(b.id, a.id);
    assert.equal(b.choices[0].message.content, a.choices[0].message.content);
    assert.equal(((await mock.byRoute())['openai.chat'] ?? 0) - before, 1, 'one upstream call');
    // the same key with another body is a conflict, as sluice's idempotency promises
    await openai.chat.completions.create({ ...body, temperature: 0.5 }, { idempotencyKey: key })
      .then(() => assert.fail('must be a 409'), (e) => assert.equal(e.status, 409, sdkErr(e)));
  });

  test('OpenAI error types and request ids on errors sluice answers itself', { timeout: 30_000 }, async () => {
    const unknownModel = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cl.keys.alpha}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(unknownModel.status, 404);
    const body = await unknownModel.json();
    assert.equal(body.error.type, 'invalid_request_error', JSON.stringify(body));
    assert.equal(body.error.code, 'model_not_found', JSON.stringify(body));
    assert.equal(body.error.request_id, unknownModel.headers.get('x-request-id'));
    const route = await fetch(`${base}/v1/no/such/route`, { headers: { authorization: `Bearer ${cl.keys.alpha}` } });
    assert.equal(route.status, 404);
    assert.equal((await route.json()).error.type, 'invalid_request_error');
    const noKey = await fetch(`${base}/v1/models`);
    assert.equal(noKey.status, 401);
    assert.match(noKey.headers.get('x-request-id') ?? '', /^req_/);
    const health = await fetch(`${base}/healthz`);
    assert.match(health.headers.get('x-request-id') ?? '', /^req_/);
  });
});
