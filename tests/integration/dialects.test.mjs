// Provider dialects behind the OpenAI shape: aliases served by Anthropic Messages and Gemini
// generateContent (and OpenAI, as the baseline) answer OpenAI-shaped chat completions with the
// finish_reason mapped (stop, length, tool_calls), usage in OpenAI's names, tool calls both ways,
// and cost from the price table; the upstream request is in the provider's own shape (Anthropic:
// system apart, max_tokens from default_max_tokens, tool_result blocks; Gemini: contents,
// systemInstruction, generationConfig, functionDeclarations). A prompt Gemini blocks fails at
// once, not retried.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  Cluster, DIALECT_MODELS, MOCK_REPLY_PREFIX, expectedMockReply, assertErrorEnvelope, assertTaskObject,
  recordedBody, recordedHeader, routeCount, parseSse,
} from './lib/harness.mjs';

const ALIASES = ['chat-openai', 'chat-anthropic', 'chat-gemini'];
const LONG = 'the quick brown fox jumps over the lazy dog and keeps on running far away ';

const TOOL = {
  type: 'function',
  function: {
    name: 'lookup_order',
    description: 'Finds an order by id',
    parameters: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
  },
};

const tag = () => `m${crypto.randomBytes(6).toString('hex')}`;

describe('dialects: Anthropic and Gemini behind the OpenAI shape', () => {
  const cl = new Cluster('dialects');
  let mock;
  let sluice;
  let api;

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ record: 5000 });
    sluice = await cl.startSluice('serve', await cl.dialectConfigFor({ redis, mock }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
  });
  after(() => cl.stop());

  /** POST /v1/chat/completions (synchronous) → {status, json, text, headers}. */
  function chat(body, headers) {
    return api.request('POST', '/v1/chat/completions', { body, headers, timeoutMs: 60_000 });
  }

  /** The one request the mock recorded whose body mentions `marker`. */
  async function upstreamWith(marker) {
    const stats = await mock.stats();
    const found = (stats.last_requests ?? []).filter((r) => JSON.stringify(r.body ?? '').includes(marker));
    assert.equal(found.length, 1, `the mock should have exactly one request mentioning ${marker}, found ${found.length}`);
    return found[0];
  }

  function assertUsage(u, ctx) {
    assert.ok(u && typeof u === 'object', `usage: ${ctx}`);
    for (const f of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
      assert.ok(Number.isInteger(u[f]) && u[f] >= 0, `usage.${f}: ${ctx}`);
    }
    assert.ok(u.prompt_tokens > 0, `prompt_tokens > 0: ${ctx}`);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, `total = prompt + completion: ${ctx}`);
  }

  function assertCompletion(r, ctx) {
    assert.equal(r?.object, 'chat.completion', ctx);
    assert.equal(typeof r.id, 'string', ctx);
    assert.ok(Number.isInteger(r.created), `created: ${ctx}`);
    assert.ok(Array.isArray(r.choices) && r.choices.length === 1, ctx);
    assert.equal(r.choices[0].index, 0, ctx);
    assert.equal(r.choices[0].message?.role, 'assistant', ctx);
    assertUsage(r.usage, ctx);
  }

  for (const alias of ALIASES) {
    const spec = DIALECT_MODELS[alias];
    describe(`${alias} (${spec.provider})`, () => {
      test('plain reply: finish_reason stop, usage, cost, and the upstream request shape', async () => {
        const m = tag();
        const text = `${m} ${LONG}`;
        const res = await chat({
          model: alias,
          messages: [{ role: 'system', content: `System rules ${m}` }, { role: 'user', content: text }],
        });
        const ctx = `${res.status} ${res.text.slice(0, 600)}`;
        assert.equal(res.status, 200, ctx);
        assertCompletion(res.json, ctx);
        assert.equal(res.json.choices[0].message.content, expectedMockReply(text), ctx);
        assert.equal(res.json.choices[0].finish_reason, 'stop', ctx);

        const up = await upstreamWith(m);
        const body = recordedBody(up);
        assert.equal(up.method, 'POST');
        if (spec.provider === 'anthropic') {
          assert.equal(up.path, '/anthropic/v1/messages');
          assert.equal(recordedHeader(up, 'x-api-key'), cl.keys.mock, 'Anthropic key in x-api-key');
          assert.ok(recordedHeader(up, 'anthropic-version'), 'anthropic-version header');
          assert.equal(body.model, spec.model);
          assert.equal(body.max_tokens, 1024, 'max_tokens from the provider\'s default_max_tokens');
          assert.ok(JSON.stringify(body.system ?? '').includes(`System rules ${m}`), `system apart: ${JSON.stringify(body).slice(0, 400)}`);
          assert.ok(body.messages.every((x) => x.role === 'user' || x.role === 'assistant'), 'only user/assistant turns');
        } else if (spec.provider === 'gemini') {
          assert.equal(up.path, `/gemini/v1beta/models/${spec.model}:generateContent`);
          const key = recordedHeader(up, 'x-goog-api-key') ?? new URLSearchParams(up.query ?? '').get('key');
          assert.equal(key, cl.keys.mock, 'Gemini key in x-goog-api-key (or ?key=)');
          assert.ok(Array.isArray(body.contents) && body.contents.length >= 1, 'contents');
          assert.ok(body.contents.every((c) => c.role === 'user' || c.role === 'model'), 'only user/model turns');
          assert.ok(JSON.stringify(body.systemInstruction ?? body.system_instruction ?? '').includes(`System rules ${m}`),
            `systemInstruction: ${JSON.stringify(body).slice(0, 400)}`);
        } else {
          assert.equal(up.path, '/v1/chat/completions');
          assert.equal(body.model, spec.model);
        }

        // The same request as a native task: task-level usage and cost from the price table.
        const t = await api.submit('chat', { model: alias, messages: [{ role: 'user', content: text }] }, { wait: 30 });
        assert.equal(t.status, 200, `Prefer: wait=30 → 200: ${t.status} ${t.text.slice(0, 400)}`);
        const task = t.json;
        assertTaskObject(task, { kind: 'chat', model: alias });
        assert.equal(task.status, 'completed', t.text.slice(0, 600));
        assert.equal(task.attempts, 1);
        assert.equal(task.provider?.name, spec.provider);
        assert.equal(task.provider?.model, spec.model);
        assertUsage(task.usage, t.text.slice(0, 600));
        assert.equal(task.usage.prompt_tokens, task.result.usage.prompt_tokens);
        assert.equal(task.usage.completion_tokens, task.result.usage.completion_tokens);
        const want = (task.usage.prompt_tokens * spec.price.input_per_mtok + task.usage.completion_tokens * spec.price.output_per_mtok) / 1e6;
        assert.ok(Math.abs(task.cost.amount - want) <= Math.max(1e-9, want * 0.01), `cost ${task.cost.amount} should be ${want}`);
      });

      test('a small max_tokens: finish_reason length, completion_tokens within it', async () => {
        const m = tag();
        const res = await chat({ model: alias, max_tokens: 3, messages: [{ role: 'user', content: `${m} ${LONG}` }] });
        const ctx = `${res.status} ${res.text.slice(0, 600)}`;
        assert.equal(res.status, 200, ctx);
        assertCompletion(res.json, ctx);
        assert.equal(res.json.choices[0].finish_reason, 'length', ctx);
        assert.ok(res.json.usage.completion_tokens <= 3, `completion_tokens <= 3: ${ctx}`);
        const body = recordedBody(await upstreamWith(m));
        if (spec.provider === 'anthropic') assert.equal(body.max_tokens, 3, 'the client\'s max_tokens wins over the default');
        if (spec.provider === 'gemini') assert.equal(body.generationConfig?.maxOutputTokens, 3, `generationConfig.maxOutputTokens: ${JSON.stringify(body).slice(0, 400)}`);

        // max_completion_tokens is the newer name for the same thing.
        const res2 = await chat({ model: alias, max_completion_tokens: 2, messages: [{ role: 'user', content: `${tag()} ${LONG}` }] });
        assert.equal(res2.status, 200, res2.text.slice(0, 400));
        assert.equal(res2.json.choices[0].finish_reason, 'length', res2.text.slice(0, 400));
        assert.ok(res2.json.usage.completion_tokens <= 2, res2.text.slice(0, 400));
      });

      test('tools: tool_calls with finish_reason tool_calls, then the tool result goes back', async () => {
        const m = tag();
        const question = `${m} where is order 42?`;
        const res = await chat({ model: alias, tools: [TOOL], messages: [{ role: 'user', content: question }] });
        const ctx = `${res.status} ${res.text.slice(0, 800)}`;
        assert.equal(res.status, 200, ctx);
        assertCompletion(res.json, ctx);
        const choice = res.json.choices[0];
        assert.equal(choice.finish_reason, 'tool_calls', ctx);
        const calls = choice.message.tool_calls;
        assert.ok(Array.isArray(calls) && calls.length >= 1, `tool_calls: ${ctx}`);
        assert.equal(calls[0].type, 'function', ctx);
        assert.ok(typeof calls[0].id === 'string' && calls[0].id.length > 0, `tool call id: ${ctx}`);
        assert.equal(calls[0].function.name, 'lookup_order', ctx);
        assert.equal(typeof calls[0].function.arguments, 'string', `arguments is a JSON string: ${ctx}`);
        assert.doesNotThrow(() => JSON.parse(calls[0].function.arguments), `arguments parse: ${ctx}`);
        assert.ok(choice.message.content === null || choice.message.content === '', `no text with a tool call: ${ctx}`);

        const body = recordedBody(await upstreamWith(m));
        if (spec.provider === 'anthropic') {
          assert.ok(Array.isArray(body.tools) && body.tools[0]?.name === 'lookup_order' && body.tools[0]?.input_schema,
            `Anthropic tools {name, input_schema}: ${JSON.stringify(body.tools)}`);
        } else if (spec.provider === 'gemini') {
          const decls = (body.tools ?? []).flatMap((t) => t.functionDeclarations ?? t.function_declarations ?? []);
          assert.ok(decls.some((d) => d.name === 'lookup_order'), `Gemini functionDeclarations: ${JSON.stringify(body.tools)}`);
        }

        // Second turn: the assistant's tool call and the tool's answer.
        const m2 = tag();
        const res2 = await chat({
          model: alias,
          tools: [TOOL],
          messages: [
            { role: 'user', content: `${m2} where is order 42?` },
            { role: 'assistant', content: null, tool_calls: calls },
            { role: 'tool', tool_call_id: calls[0].id, content: '{"status":"shipped"}' },
          ],
        });
        const ctx2 = `${res2.status} ${res2.text.slice(0, 600)}`;
        assert.equal(res2.status, 200, ctx2);
        assert.equal(res2.json.choices[0].finish_reason, 'stop', ctx2);
        assert.ok(String(res2.json.choices[0].message.content).startsWith(MOCK_REPLY_PREFIX), ctx2);
        const body2 = recordedBody(await upstreamWith(m2));
        const s2 = JSON.stringify(body2);
        if (spec.provider === 'anthropic') {
          const blocks = body2.messages.flatMap((x) => (Array.isArray(x.content) ? x.content : []));
          assert.ok(blocks.some((b) => b.type === 'tool_use' && b.name === 'lookup_order'), `tool_use block: ${s2.slice(0, 600)}`);
          assert.ok(blocks.some((b) => b.type === 'tool_result' && b.tool_use_id === calls[0].id), `tool_result block: ${s2.slice(0, 600)}`);
        } else if (spec.provider === 'gemini') {
          const parts = body2.contents.flatMap((c) => c.parts ?? []);
          assert.ok(parts.some((p) => (p.functionCall ?? p.function_call)?.name === 'lookup_order'), `functionCall part: ${s2.slice(0, 600)}`);
          assert.ok(parts.some((p) => (p.functionResponse ?? p.function_response)?.name === 'lookup_order'), `functionResponse part: ${s2.slice(0, 600)}`);
        }
      });

      test('stream with include_usage: OpenAI chunks, a usage chunk, [DONE]', async () => {
        const text = `${tag()} stream me please`;
        const res = await chat({ model: alias, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: text }] });
        assert.equal(res.status, 200, `${res.status} ${res.text.slice(0, 400)}`);
        assert.match(String(res.headers['content-type']), /^text\/event-stream/);
        const events = parseSse(res.text);
        assert.ok(events.length >= 3, `events: ${res.text.slice(0, 600)}`);
        assert.equal(events.at(-1).data, '[DONE]', 'the stream ends with data: [DONE]');
        const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
        let content = '';
        let finish = null;
        let usage = null;
        for (const c of chunks) {
          assert.equal(c.object, 'chat.completion.chunk', JSON.stringify(c));
          for (const ch of c.choices ?? []) {
            if (typeof ch.delta?.content === 'string') content += ch.delta.content;
            if (ch.finish_reason) finish = ch.finish_reason;
          }
          if (c.usage) usage = c.usage;
        }
        assert.equal(content, expectedMockReply(text));
        assert.equal(finish, 'stop');
        assertUsage(usage, `usage chunk of ${res.text.slice(-600)}`);
      });
    });
  }

  test('Gemini blocks a prompt ("mock:block"): 400 at once, never retried', async () => {
    const routes = DIALECT_MODELS['chat-gemini'].routes;
    const before = routeCount(await mock.byRoute(), routes);
    const res = await chat({ model: 'chat-gemini', messages: [{ role: 'user', content: `mock:block ${tag()} something unsafe` }] });
    assertErrorEnvelope(res, 400);
    const afterSync = routeCount(await mock.byRoute(), routes);
    assert.equal(afterSync - before, 1, 'one upstream call for the synchronous request');

    const t = await api.submit('chat', { model: 'chat-gemini', messages: [{ role: 'user', content: `mock:block ${tag()} again` }] }, { wait: 30 });
    assert.equal(t.status, 200, `Prefer: wait=30 → 200 with the failed task: ${t.status} ${t.text.slice(0, 400)}`);
    const task = t.json;
    const ctx = JSON.stringify(task).slice(0, 800);
    assertTaskObject(task, { kind: 'chat', model: 'chat-gemini' });
    assert.equal(task.status, 'failed', ctx);
    assert.equal(task.attempts, 1, `not retried: ${ctx}`);
    assert.equal(task.result, null, ctx);
    assert.ok(task.error && typeof task.error.message === 'string' && task.error.message.length > 0, ctx);
    assert.equal(task.error.retryable, false, `a blocked prompt is not retryable: ${ctx}`);
    assert.ok(task.error.provider_status === null || Number.isInteger(task.error.provider_status), ctx);
    assert.equal(routeCount(await mock.byRoute(), routes) - afterSync, 1, 'one upstream call for the task');
  });
});
