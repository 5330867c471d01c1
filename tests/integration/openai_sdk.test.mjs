// The official OpenAI Node SDK (npm `openai`, pinned in package.json), pointed at sluice's /v1 and
// changed in nothing else, works against every dialect sluice serves: chat (plain, streamed, tool
// calls) through OpenAI-, Anthropic- and Gemini-served aliases; embeddings; image generation
// through OpenAI, Replicate and fal; the video job API (create as multipart, retrieve, download)
// through OpenAI, Replicate and fal; and the model list. Artifact bytes of a media task come back
// from GET /v1/tasks/{id}/content with their Content-Type.
//
// Needs `npm ci` in tests/integration first (the SDK is the one npm dependency).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  Cluster, DIALECT_MODELS, ADMIN_KEY, TASK_ID_RE, MOCK_REPLY_PREFIX, PNG_MAGIC, expectedMockReply, routeCount,
  sdkErr, sleep,
} from './lib/harness.mjs';

const CHAT_ALIASES = ['chat-openai', 'chat-anthropic', 'chat-gemini'];
const IMAGE_ALIASES = ['image-openai', 'image-replicate', 'image-fal'];
const VIDEO_ALIASES = ['video-openai', 'video-replicate', 'video-fal'];
const JOB_MS = 1500; // the mock's upstream job duration (videos, Replicate, fal)

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

function closeTo(a, b, what) {
  assert.ok(Math.abs(a - b) <= Math.max(1e-9, Math.abs(b) * 0.01), `${what}: ${a} should be ${b}`);
}

describe('the official OpenAI SDK against sluice', () => {
  const cl = new Cluster('openai_sdk');
  let mock;
  let sluice;
  let api;
  let openai;

  before(async () => {
    // The drop-in promise: the SDK client gets only the key and the base URL, nothing else that
    // differs from talking to OpenAI.
    ({ mock, sluice, api, openai } = await cl.startSdkStack(OpenAI, { mock: { jobMs: JOB_MS }, pollIntervalMs: 200 }));
  });
  after(() => cl.stop());

  for (const alias of CHAT_ALIASES) {
    describe(`chat through ${alias} (${DIALECT_MODELS[alias].provider})`, () => {
      const text = `Hello from the SDK via ${alias}: please echo this sentence back in full.`;
      const want = expectedMockReply(text);

      test('chat.completions.create', { timeout: 60_000 }, async () => {
        const r = await openai.chat.completions.create({
          model: alias,
          messages: [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: text }],
        }).catch((e) => assert.fail(`create: ${sdkErr(e)}`));
        const ctx = JSON.stringify(r).slice(0, 600);
        assert.equal(r.object, 'chat.completion', ctx);
        assert.equal(typeof r.id, 'string', ctx);
        assert.equal(r.choices.length, 1, ctx);
        assert.equal(r.choices[0].message.role, 'assistant', ctx);
        assert.ok(String(r.choices[0].message.content).startsWith(MOCK_REPLY_PREFIX), ctx);
        assert.equal(r.choices[0].message.content, want, ctx);
        assert.equal(r.choices[0].finish_reason, 'stop', ctx);
        assert.ok(r.usage, `usage: ${ctx}`);
        assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0, ctx);
        assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens, ctx);
      });

      test('chat.completions.create with stream: true', { timeout: 60_000 }, async () => {
        const stream = await openai.chat.completions.create({
          model: alias,
          messages: [{ role: 'user', content: text }],
          stream: true,
        }).catch((e) => assert.fail(`create(stream): ${sdkErr(e)}`));
        let content = '';
        let chunks = 0;
        let finish = null;
        let role = null;
        const ids = new Set();
        for await (const chunk of stream) {
          chunks++;
          assert.ok(chunks <= 10_000, 'a bounded number of chunks');
          assert.equal(chunk.object, 'chat.completion.chunk', JSON.stringify(chunk));
          ids.add(chunk.id);
          for (const ch of chunk.choices ?? []) {
            if (ch.delta?.role) role = ch.delta.role;
            if (typeof ch.delta?.content === 'string') content += ch.delta.content;
            if (ch.finish_reason) {
              assert.equal(finish, null, 'finish_reason comes once');
              finish = ch.finish_reason;
            }
          }
        }
        assert.ok(chunks >= 2, `more than one chunk (got ${chunks})`);
        assert.equal(ids.size, 1, `every chunk has the same id: ${[...ids].join(', ')}`);
        assert.equal(role, 'assistant');
        assert.equal(content, want, 'the streamed deltas add up to the plain reply');
        assert.equal(finish, 'stop');
      });

      test('chat.completions.create with tools → tool_calls', { timeout: 60_000 }, async () => {
        const r = await openai.chat.completions.create({
          model: alias,
          messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
          tools: [WEATHER_TOOL],
        }).catch((e) => assert.fail(`create(tools): ${sdkErr(e)}`));
        const ctx = JSON.stringify(r).slice(0, 800);
        const msg = r.choices[0].message;
        assert.equal(r.choices[0].finish_reason, 'tool_calls', ctx);
        assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length >= 1, `tool_calls: ${ctx}`);
        const call = msg.tool_calls[0];
        assert.equal(call.type, 'function', ctx);
        assert.equal(typeof call.id, 'string', ctx);
        assert.ok(call.id.length > 0, ctx);
        assert.equal(call.function.name, 'get_weather', ctx);
        assert.equal(typeof call.function.arguments, 'string', `arguments are a JSON string: ${ctx}`);
        const args = JSON.parse(call.function.arguments);
        assert.ok(args && typeof args === 'object' && !Array.isArray(args), `arguments parse to an object: ${ctx}`);

        // The agent loop's second turn: the tool result goes back, a text answer comes.
        const r2 = await openai.chat.completions.create({
          model: alias,
          messages: [
            { role: 'user', content: 'What is the weather in Paris?' },
            { role: 'assistant', content: null, tool_calls: [call] },
            { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 21}' },
          ],
          tools: [WEATHER_TOOL],
        }).catch((e) => assert.fail(`create(tool result): ${sdkErr(e)}`));
        const ctx2 = JSON.stringify(r2).slice(0, 600);
        assert.equal(r2.choices[0].finish_reason, 'stop', ctx2);
        assert.ok(String(r2.choices[0].message.content).startsWith(MOCK_REPLY_PREFIX), ctx2);
      });
    });
  }

  test('an unknown model is the SDK\'s NotFoundError (404)', async () => {
    const err = await openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })
      .then(() => null, (e) => e);
    assert.ok(err, 'the call must fail');
    assert.ok(err instanceof OpenAI.NotFoundError, sdkErr(err));
    assert.equal(err.status, 404);
  });

  test('embeddings.create: 8 floats per input, as the SDK decodes them (base64 on the wire) and as floats', async () => {
    const r = await openai.embeddings.create({ model: 'embed-openai', input: ['first text', 'second text'] })
      .catch((e) => assert.fail(`embeddings: ${sdkErr(e)}`));
    const ctx = JSON.stringify(r).slice(0, 600);
    assert.equal(r.object, 'list', ctx);
    assert.equal(r.data.length, 2, ctx);
    r.data.forEach((d, i) => {
      assert.equal(d.object, 'embedding', ctx);
      assert.equal(d.index, i, ctx);
      assert.equal(d.embedding.length, 8, ctx);
      for (const v of d.embedding) assert.ok(Number.isFinite(v), ctx);
    });
    assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding, 'different inputs, different vectors');
    assert.ok(r.usage && r.usage.prompt_tokens > 0, `usage: ${ctx}`);

    // The same text with encoding_format float: the same vector (float32 precision).
    const f = await openai.embeddings.create({ model: 'embed-openai', input: 'first text', encoding_format: 'float' })
      .catch((e) => assert.fail(`embeddings(float): ${sdkErr(e)}`));
    assert.equal(f.data.length, 1);
    assert.equal(f.data[0].embedding.length, 8);
    f.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - r.data[0].embedding[i]) < 1e-6,
      `deterministic: ${JSON.stringify(f.data[0].embedding)} vs ${JSON.stringify(r.data[0].embedding)}`));
  });

  for (const alias of IMAGE_ALIASES) {
    test(`images.generate through ${alias}, then the task's content bytes`, { timeout: 90_000 }, async () => {
      const r = await openai.images.generate({ model: alias, prompt: `a lighthouse at dusk (${alias})` })
        .catch((e) => assert.fail(`images.generate: ${sdkErr(e)}`));
      const ctx = JSON.stringify(r).slice(0, 400);
      assert.ok(Array.isArray(r.data) && r.data.length >= 1, `data: ${ctx}`);
      const img = r.data[0];
      assert.ok(typeof img.url === 'string' || typeof img.b64_json === 'string', `data[0].url or b64_json: ${ctx}`);
      if (typeof img.b64_json === 'string') {
        const bytes = Buffer.from(img.b64_json, 'base64');
        assert.ok(bytes.subarray(0, 8).equals(PNG_MAGIC), `b64_json decodes to a PNG: ${bytes.subarray(0, 8).toString('hex')}`);
      } else {
        assert.match(img.url, /^https?:\/\//, `an absolute URL: ${ctx}`);
      }

      // The SDK does not show the task id: the same request as a native task, held with
      // Prefer: wait, then its artifact.
      const res = await api.submit('image', { model: alias, prompt: `a lighthouse at dawn (${alias})` }, { wait: 30 });
      assert.equal(res.status, 200, `POST /v1/tasks with Prefer: wait=30 → 200 with the finished task: ${res.status} ${res.text.slice(0, 400)}`);
      const task = res.json;
      assert.equal(task.status, 'completed', res.text.slice(0, 600));
      assert.equal(task.kind, 'image');
      assert.equal(task.provider?.name, DIALECT_MODELS[alias].provider, res.text.slice(0, 600));
      assert.equal(task.provider?.model, DIALECT_MODELS[alias].model, res.text.slice(0, 600));
      assert.ok(task.usage && task.usage.images >= 1, `usage.images: ${JSON.stringify(task.usage)}`);
      closeTo(task.cost?.amount, task.usage.images * DIALECT_MODELS[alias].price.per_image, `cost of ${alias}`);

      const content = await api.request('GET', `/v1/tasks/${task.id}/content?index=0`, { binary: true });
      assert.equal(content.status, 200, `GET content: ${content.status} ${content.text.slice(0, 300)}`);
      assert.match(String(content.headers['content-type']), /^image\/png/, 'Content-Type of the artifact');
      assert.ok(content.bytes.subarray(0, 8).equals(PNG_MAGIC), `PNG magic bytes, got ${content.bytes.subarray(0, 8).toString('hex')}`);
      const again = await api.request('GET', `/v1/tasks/${task.id}/content`, { binary: true });
      assert.equal(again.status, 200, 'index defaults to 0');
      assert.ok(again.bytes.equals(content.bytes), 'the same bytes');
      const none = await api.request('GET', `/v1/tasks/${task.id}/content?index=7`);
      assert.equal(none.status, 404, `a missing index is 404: ${none.status} ${none.text.slice(0, 200)}`);
    });
  }

  for (const alias of VIDEO_ALIASES) {
    test(`videos.create (multipart) through ${alias}, retrieve until completed, downloadContent`, { timeout: 120_000 }, async () => {
      const before = await mock.byRoute();
      const v = await openai.videos.create({ model: alias, prompt: `a paper boat on a river (${alias})`, seconds: '4', size: '720x1280' })
        .catch((e) => assert.fail(`videos.create: ${sdkErr(e)}`));
      const ctx = () => JSON.stringify(v).slice(0, 600);
      assert.match(String(v.id), TASK_ID_RE, `the video id is the task id: ${ctx()}`);
      assert.equal(v.object, 'video', ctx());
      assert.ok(['queued', 'in_progress'].includes(v.status), ctx());

      let last = v;
      const progress = [];
      const statuses = [];
      for (let round = 0; round < 300; round++) {
        last = await openai.videos.retrieve(v.id).catch((e) => assert.fail(`videos.retrieve: ${sdkErr(e)}`));
        assert.equal(last.id, v.id);
        assert.ok(['queued', 'in_progress', 'completed', 'failed'].includes(last.status), JSON.stringify(last));
        assert.ok(Number.isInteger(last.progress) && last.progress >= 0 && last.progress <= 100, `progress 0-100: ${JSON.stringify(last)}`);
        progress.push(last.progress);
        if (statuses.at(-1) !== last.status) statuses.push(last.status);
        if (last.status === 'completed' || last.status === 'failed') break;
        await sleep(200);
      }
      assert.equal(last.status, 'completed', `final video object: ${JSON.stringify(last)}`);
      assert.equal(last.progress, 100);
      for (let i = 1; i < progress.length; i++) {
        assert.ok(progress[i] >= progress[i - 1], `progress never goes back: ${progress.join(',')}`);
      }
      assert.ok(progress.some((p) => p > 0 && p < 100) || statuses.includes('in_progress'),
        `a job of ${JOB_MS} ms polled every 200 ms shows progress on the way (statuses ${statuses.join('→')}, progress ${progress.join(',')})`);

      const resp = await openai.videos.downloadContent(v.id).catch((e) => assert.fail(`downloadContent: ${sdkErr(e)}`));
      assert.equal(resp.status, 200);
      assert.match(String(resp.headers.get('content-type')), /^video\/mp4/);
      const bytes = Buffer.from(await resp.arrayBuffer());
      assert.ok(bytes.length > 8, `MP4 bytes: ${bytes.length}`);
      assert.ok(bytes.includes(Buffer.from('ftyp')), `the MP4 has an ftyp box: ${bytes.subarray(0, 16).toString('hex')}`);
      assert.equal(bytes.subarray(4, 8).toString('latin1'), 'ftyp', 'the first box is ftyp');

      const task = (await api.getTask(v.id)).json;
      assert.equal(task?.kind, 'video', JSON.stringify(task).slice(0, 400));
      assert.equal(task.status, 'completed');
      assert.equal(task.attempts, 1, 'one upstream submission');
      assert.equal(task.provider?.name, DIALECT_MODELS[alias].provider);
      assert.ok(task.usage && task.usage.seconds > 0, `usage.seconds: ${JSON.stringify(task.usage)}`);
      if (alias === 'video-openai') assert.equal(Number(task.usage.seconds), 4, 'seconds as requested');
      closeTo(task.cost?.amount, task.usage.seconds * DIALECT_MODELS[alias].price.per_video_second, `cost of ${alias}`);
      const viaTasks = await api.request('GET', `/v1/tasks/${v.id}/content?index=0`, { binary: true });
      assert.equal(viaTasks.status, 200);
      assert.ok(viaTasks.bytes.equals(bytes), 'the same MP4 from /v1/tasks/{id}/content');

      const afterStats = await mock.byRoute();
      const routes = DIALECT_MODELS[alias].routes;
      assert.equal(routeCount(afterStats, routes) - routeCount(before, routes), 1,
        `exactly one upstream job submission (${routes.join('+')}): ${JSON.stringify(afterStats)}`);
    });
  }

  test('a video whose upstream job fails ("mock:fail") is a failed video object', { timeout: 60_000 }, async () => {
    const v = await openai.videos.create({ model: 'video-openai', prompt: 'mock:fail this one', seconds: '4' })
      .catch((e) => assert.fail(`videos.create: ${sdkErr(e)}`));
    let last = v;
    for (let round = 0; round < 200 && !['completed', 'failed'].includes(last.status); round++) {
      await sleep(200);
      last = await openai.videos.retrieve(v.id);
    }
    assert.equal(last.status, 'failed', JSON.stringify(last));
    assert.ok(last.error && typeof last.error.message === 'string' && last.error.message.length > 0, JSON.stringify(last));
    const err = await openai.videos.downloadContent(v.id).then(() => null, (e) => e);
    assert.ok(err instanceof OpenAI.APIError && err.status >= 400 && err.status < 500,
      `no content for a failed video: ${err ? sdkErr(err) : 'it answered 2xx'}`);
  });

  test('models.list shows tenants every alias with its kind, price and limits; the admin view adds deployments', async () => {
    const seen = new Map();
    for await (const m of openai.models.list()) {
      seen.set(m.id, m);
      assert.ok(seen.size <= 1000, 'a bounded list');
    }
    for (const [alias, spec] of Object.entries(DIALECT_MODELS)) {
      const m = seen.get(alias);
      assert.ok(m, `models.list lacks ${alias}: has ${[...seen.keys()].join(', ')}`);
      assert.equal(m.object, 'model');
      assert.equal(m.kind, spec.kind, `kind of ${alias}`);
      for (const [k, v] of Object.entries(spec.price)) assert.equal(m.price?.[k], v, `price.${k} of ${alias}`);
      assert.ok('rpm' in m.limits && 'tpm' in m.limits && 'max_concurrency' in m.limits, `limits of ${alias}: ${JSON.stringify(m)}`);
      // provider internals are the admin's: no deployments, provider names or upstream models
      assert.equal(m.deployments, undefined, JSON.stringify(m));
      assert.ok(!JSON.stringify(m).includes(spec.model), `upstream model of ${alias} shown: ${JSON.stringify(m)}`);
      assert.ok(!JSON.stringify(m).includes(cl.keys.mock), 'no provider key in the model list');
    }
    const adminRes = await fetch(`${sluice.baseUrl}/v1/admin/models`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(adminRes.status, 200);
    const admin = new Map((await adminRes.json()).data.map((m) => [m.id, m]));
    for (const [alias, spec] of Object.entries(DIALECT_MODELS)) {
      const m = admin.get(alias);
      assert.ok(Array.isArray(m?.deployments) && m.deployments.length === 1, `admin deployments of ${alias}: ${JSON.stringify(m)}`);
      const d = m.deployments[0];
      assert.equal(d.provider, spec.provider);
      assert.equal(d.model, spec.model);
      for (const [k, v] of Object.entries(spec.price)) assert.equal(d.price?.[k], v, `price.${k} of ${alias}`);
      assert.ok('rpm' in d && 'tpm' in d, `rpm and tpm of ${alias}: ${JSON.stringify(d)}`);
      assert.ok(!JSON.stringify(m).includes(cl.keys.mock), 'no provider key in the admin view');
    }
    // a tenant key does not open the admin view
    const asTenant = await fetch(`${sluice.baseUrl}/v1/admin/models`, { headers: { authorization: `Bearer ${cl.keys.alpha}` } });
    assert.equal(asTenant.status, 401);
    const one = await openai.models.retrieve('chat-anthropic');
    assert.equal(one.id, 'chat-anthropic');
  });
});
