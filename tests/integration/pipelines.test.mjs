// Pipelines (issue 15): a DAG of task steps run as one durable job, on a real redis-server, one
// sluice-mock speaking every dialect and `sluice serve`.
//  - chat → image → video: the chat writes the image prompt ({{script.text}}), the image goes to
//    the video step by reference ({"$ref": "img.artifacts[0]"}) and the mock received exactly the
//    bytes the image step produced; every step completes, usage and cost are the tasks' sums, the
//    output is the video step's, and the pipeline.completed webhook (verified with the
//    `standardwebhooks` library) carries it;
//  - fan-out: a structured-output chat's list of 5 prompts → 5 image tasks (for_each), the step's
//    output the list of their outputs;
//  - a failing middle step (the provider fails the job) skips its dependents and fails the
//    pipeline, while an independent branch completes;
//  - cancel mid-pipeline: the running video step's upstream job is cancelled at the provider,
//    the waiting steps are skipped, the pipeline ends cancelled;
//  - a reference that cannot resolve fails its step with a 422-class error naming it;
//  - the API: 400/404/422 for bad specs, tenant isolation, the list.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { Cluster, sleep, startWebhookReceiver } from './lib/harness.mjs';

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const newSecret = () => `whsec_${crypto.randomBytes(32).toString('base64')}`;

describe('pipelines', () => {
  const cl = new Cluster('pipelines');
  const secret = newSecret();
  let mock;
  let sluice;
  let api;
  let other;
  let hooks;

  async function create(body) {
    return api.request('POST', '/v1/pipelines', { body });
  }

  async function waitPipeline(id, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    let p;
    while (Date.now() < deadline) {
      p = await api.request('GET', `/v1/pipelines/${id}`);
      assert.equal(p.status, 200, p.text.slice(0, 300));
      if (TERMINAL.has(p.json.status)) return p.json;
      await sleep(100);
    }
    assert.fail(`pipeline ${id} did not end: ${JSON.stringify(p?.json).slice(0, 800)}`);
  }

  const step = (pl, id) => pl.steps.find((s) => s.id === id);

  async function task(id) {
    const r = await api.getTask(id);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    return r.json;
  }

  before(async () => {
    const redis = await cl.startRedis();
    mock = await cl.startMock({ jobMs: 150 });
    hooks = await startWebhookReceiver();
    sluice = await cl.startSluice('serve', await cl.dialectConfigFor({
      redis, mock, pollIntervalMs: 100,
      overrides: {
        webhooks: { secrets: { alpha: [secret] }, allow_hosts: ['127.0.0.1'], timeout_ms: 2000 },
        pipelines: { poll_ms: 50 },
      },
    }));
    api = cl.client(sluice.baseUrl, cl.keys.alpha);
    other = cl.client(sluice.baseUrl, cl.keys.beta);
  });
  after(async () => {
    await hooks.close();
    await cl.stop();
  });

  test('chat → image → video: the prompt is written by the chat, the image bytes reach the video provider', { timeout: 90_000 }, async () => {
    await mock.control('DELETE', '/_mock/video_inputs');
    const r = await create({
      metadata: { run: 'cv1' },
      webhook: { url: hooks.url, events: ['pipeline.completed', 'pipeline.failed'] },
      steps: [
        { id: 'script', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: 'a fox in snow' }] } },
        { id: 'img', kind: 'image', input: { model: 'image-fal', prompt: 'Poster: {{script.text}}' } },
        { id: 'clip', kind: 'video', input: { model: 'video-replicate', prompt: 'make it move', seconds: 4, input_reference: { $ref: 'img.artifacts[0]' } } },
      ],
    });
    assert.equal(r.status, 202, r.text.slice(0, 400));
    assert.match(r.json.id, /^pipe_[a-z2-7]{26}$/);
    assert.equal(r.json.object, 'pipeline');
    assert.equal(r.json.status, 'queued');
    assert.deepEqual(r.json.steps.map((s) => [s.id, s.status, s.task_ids.length]),
      [['script', 'waiting', 0], ['img', 'waiting', 0], ['clip', 'waiting', 0]]);
    assert.deepEqual(r.json.metadata, { run: 'cv1' });

    const pl = await waitPipeline(r.json.id);
    assert.equal(pl.status, 'completed', JSON.stringify(pl).slice(0, 1500));
    for (const s of pl.steps) {
      assert.equal(s.status, 'completed', JSON.stringify(s));
      assert.equal(s.task_ids.length, 1);
      assert.ok(s.started_at >= pl.created_at && s.completed_at >= s.started_at, JSON.stringify(s));
      assert.equal(s.error, null);
    }
    // each step started after the one it depends on completed
    assert.ok(step(pl, 'img').started_at >= step(pl, 'script').completed_at);
    assert.ok(step(pl, 'clip').started_at >= step(pl, 'img').completed_at);

    const [chatTask, imgTask, clipTask] = await Promise.all(pl.steps.map((s) => task(s.task_ids[0])));
    const scriptText = chatTask.result.choices[0].message.content;
    assert.equal(scriptText, 'mock reply: a fox in snow');
    // the image provider got the prompt the chat wrote
    const stats = await mock.stats();
    const falSubmits = stats.last_requests.filter((q) => q.method === 'POST' && q.path.startsWith('/fal/fal-ai/flux'));
    assert.ok(falSubmits.some((q) => q.body?.prompt === `Poster: ${scriptText}`),
      JSON.stringify(falSubmits.map((q) => q.body?.prompt)));
    // the video provider got exactly the bytes the image step produced
    const content = await api.request('GET', `/v1/tasks/${imgTask.id}/content`, { binary: true });
    assert.equal(content.status, 200);
    const inputs = await mock.control('GET', '/_mock/video_inputs');
    const rec = inputs.data.find((x) => x.job === clipTask.provider.upstream_id);
    assert.ok(rec, JSON.stringify(inputs.data));
    assert.equal(rec.dialect, 'replicate');
    assert.equal(rec.sha256, sha256(content.bytes));
    assert.equal(rec.bytes, content.bytes.length);
    // usage and cost are the tasks' sums
    const costs = [chatTask, imgTask, clipTask].map((t) => t.cost.amount);
    assert.ok(Math.abs(pl.cost.amount - costs.reduce((a, b) => a + b, 0)) < 1e-9, `${pl.cost.amount} vs ${costs}`);
    assert.equal(pl.cost.currency, 'USD');
    assert.equal(pl.usage.prompt_tokens, chatTask.usage.prompt_tokens);
    assert.equal(pl.usage.completion_tokens, chatTask.usage.completion_tokens);
    assert.equal(pl.usage.images, imgTask.usage.images);
    assert.equal(pl.usage.seconds, clipTask.usage.seconds);
    // the output is the final step's
    assert.deepEqual(Object.keys(pl.output), ['clip']);
    assert.equal(pl.output.clip.task_id, clipTask.id);
    assert.equal(pl.output.clip.status, 'completed');
    assert.equal(pl.output.clip.artifacts[0].url, `/v1/tasks/${clipTask.id}/content?index=0`);
    assert.equal(pl.output.clip.result.id, clipTask.result.id);
    // the tasks carry the pipeline's priority and show as ordinary tasks
    assert.equal(clipTask.priority, 'normal');

    // pipeline.completed, signed, with the output
    const wh = new Webhook(secret);
    let msg;
    for (let i = 0; i < 100 && !msg; i++) {
      msg = hooks.seen.find((m) => JSON.parse(m.body).data?.id === pl.id);
      if (!msg) await sleep(100);
    }
    assert.ok(msg, 'the pipeline.completed webhook arrived');
    const payload = wh.verify(msg.body, {
      'webhook-id': msg.headers['webhook-id'],
      'webhook-timestamp': msg.headers['webhook-timestamp'],
      'webhook-signature': msg.headers['webhook-signature'],
    });
    assert.equal(payload.type, 'pipeline.completed');
    assert.equal(payload.data.status, 'completed');
    assert.equal(payload.data.output.clip.task_id, clipTask.id);
    assert.equal(hooks.seen.filter((m) => JSON.parse(m.body).data?.id === pl.id).length, 1);
  });

  test('fan-out: a structured-output chat writes 5 prompts, for_each makes 5 image tasks', { timeout: 90_000 }, async () => {
    const r = await create({
      steps: [
        {
          id: 'plan', kind: 'chat',
          input: {
            model: 'chat-openai', messages: [{ role: 'user', content: 'five shots' }],
            response_format: { type: 'json_schema', json_schema: { name: 'shots', strict: true, schema: {
              type: 'object', properties: { prompts: { type: 'array', minItems: 5, items: { type: 'string' } } },
              required: ['prompts'], additionalProperties: false } } },
          },
        },
        { id: 'frames', kind: 'image', for_each: 'plan.json.prompts', input: { model: 'image-fal', prompt: '{{item}} #{{index}}' } },
      ],
    });
    assert.equal(r.status, 202, r.text.slice(0, 400));
    const pl = await waitPipeline(r.json.id);
    assert.equal(pl.status, 'completed', JSON.stringify(pl).slice(0, 1500));
    const frames = step(pl, 'frames');
    assert.equal(frames.task_ids.length, 5);
    assert.equal(new Set(frames.task_ids).size, 5);
    assert.ok(Array.isArray(pl.output.frames) && pl.output.frames.length === 5, JSON.stringify(pl.output).slice(0, 400));
    assert.deepEqual(pl.output.frames.map((o) => o.task_id), frames.task_ids);
    for (const o of pl.output.frames) {
      assert.equal(o.status, 'completed');
      assert.equal(o.artifacts.length, 1);
    }
    const stats = await mock.stats();
    const prompts = stats.last_requests.filter((q) => q.method === 'POST' && q.path.startsWith('/fal/fal-ai/flux'))
      .map((q) => q.body?.prompt);
    for (let i = 0; i < 5; i++) assert.ok(prompts.includes(`mock #${i}`), JSON.stringify(prompts));
    assert.equal(pl.usage.images, 5);
    const tasks = await Promise.all(frames.task_ids.map(task));
    assert.ok(tasks.every((t) => t.status === 'completed' && t.kind === 'image'));
  });

  test('a failing middle step skips its dependents and fails the pipeline; an independent branch completes', { timeout: 90_000 }, async () => {
    const r = await create({
      steps: [
        { id: 'a', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: 'branch one' }] } },
        { id: 'b', kind: 'image', input: { model: 'image-replicate', prompt: 'mock:fail {{a.text}}' } },
        { id: 'c', kind: 'video', input: { model: 'video-fal', prompt: 'move', input_reference: { $ref: 'b.artifacts[0]' } } },
        { id: 'd', kind: 'chat', input: { model: 'chat-anthropic', messages: [{ role: 'user', content: 'branch two' }] } },
        { id: 'e', kind: 'image', input: { model: 'image-fal', prompt: '{{d.text}}' } },
      ],
    });
    assert.equal(r.status, 202, r.text.slice(0, 400));
    const pl = await waitPipeline(r.json.id);
    assert.equal(pl.status, 'failed', JSON.stringify(pl).slice(0, 1500));
    assert.deepEqual(pl.steps.map((s) => [s.id, s.status]),
      [['a', 'completed'], ['b', 'failed'], ['c', 'skipped'], ['d', 'completed'], ['e', 'completed']]);
    assert.equal(step(pl, 'c').task_ids.length, 0);
    assert.equal(typeof step(pl, 'b').error.message, 'string');
    const bTask = await task(step(pl, 'b').task_ids[0]);
    assert.equal(bTask.status, 'failed');
    assert.deepEqual(step(pl, 'b').error.message, bTask.error.message);
    assert.equal(pl.output, null);
    const eTask = await task(step(pl, 'e').task_ids[0]);
    assert.equal(eTask.status, 'completed');
  });

  test('cancel mid-pipeline cancels the running video job upstream and skips what waits', { timeout: 90_000 }, async () => {
    await mock.config({ job_ms: 30_000 });
    try {
      const r = await create({
        steps: [
          { id: 'clip', kind: 'video', input: { model: 'video-fal', prompt: 'a long take' } },
          { id: 'after', kind: 'image', input: { model: 'image-fal', prompt: 'thumb' }, after: ['clip'] },
        ],
      });
      assert.equal(r.status, 202, r.text.slice(0, 400));
      let pl;
      for (let i = 0; i < 100; i++) {
        pl = (await api.request('GET', `/v1/pipelines/${r.json.id}`)).json;
        const t = step(pl, 'clip').task_ids[0];
        if (t && (await task(t)).provider?.upstream_id) break;
        await sleep(100);
      }
      const clipTaskId = step(pl, 'clip').task_ids[0];
      assert.ok(clipTaskId, JSON.stringify(pl));
      const upstream = (await task(clipTaskId)).provider.upstream_id;
      const c = await api.request('POST', `/v1/pipelines/${r.json.id}/cancel`);
      assert.equal(c.status, 200, c.text.slice(0, 300));
      assert.ok(['cancelling', 'cancelled'].includes(c.json.status), c.json.status);
      const end = await waitPipeline(r.json.id, 30_000);
      assert.equal(end.status, 'cancelled', JSON.stringify(end).slice(0, 800));
      assert.deepEqual(end.steps.map((s) => [s.id, s.status]), [['clip', 'cancelled'], ['after', 'skipped']]);
      assert.equal((await task(clipTaskId)).status, 'cancelled');
      const stats = await mock.stats();
      const cancels = stats.last_requests.filter((q) => q.method === 'PUT' && q.path.includes(`/requests/${upstream}/cancel`));
      assert.equal(cancels.length, 1, JSON.stringify(stats.by_route));
      // cancelling again: the pipeline has ended
      const again = await api.request('POST', `/v1/pipelines/${r.json.id}/cancel`);
      assert.equal(again.status, 409, again.text.slice(0, 300));
    } finally {
      await mock.config({ job_ms: 150 });
    }
  });

  test('one image to two providers in their own forms: an OpenAI edit (multipart) and Veo (inline bytes)', { timeout: 90_000 }, async () => {
    await mock.control('DELETE', '/_mock/video_inputs');
    const editsBefore = (await mock.control('GET', '/_mock/edits')).data;
    const lastEdit = editsBefore.length ? editsBefore[editsBefore.length - 1].seq : 0;
    const r = await create({
      steps: [
        { id: 'img', kind: 'image', input: { model: 'image-replicate', prompt: 'a lighthouse' } },
        { id: 'edit', kind: 'image', input: { model: 'image-openai', prompt: 'at night', edit: true, image: [{ $ref: 'img.artifacts[0]' }] } },
        { id: 'veo', kind: 'video', input: { model: 'video-gemini', prompt: 'waves', input_reference: { $ref: 'img.artifacts[0]' } } },
      ],
    });
    assert.equal(r.status, 202, r.text.slice(0, 400));
    const pl = await waitPipeline(r.json.id);
    assert.equal(pl.status, 'completed', JSON.stringify(pl).slice(0, 1500));
    assert.deepEqual(Object.keys(pl.output).sort(), ['edit', 'veo']);
    const imgTask = await task(step(pl, 'img').task_ids[0]);
    const veoTask = await task(step(pl, 'veo').task_ids[0]);
    const content = await api.request('GET', `/v1/tasks/${imgTask.id}/content`, { binary: true });
    assert.equal(content.status, 200);
    // OpenAI got the image as a multipart file part
    const edits = (await mock.control('GET', '/_mock/edits')).data.filter((e) => e.seq > lastEdit);
    const got = edits.filter((e) => e.route === 'openai.images.edits' && e.field === 'image');
    assert.equal(got.length, 1, JSON.stringify(edits.map((e) => [e.route, e.field])));
    assert.equal(sha256(Buffer.from(got[0].b64, 'base64')), sha256(content.bytes));
    // Veo got its bytes inline
    // (the record was cleared before this pipeline: its one Veo submission is this step's)
    const inputs = (await mock.control('GET', '/_mock/video_inputs')).data.filter((x) => x.dialect === 'gemini');
    assert.equal(inputs.length, 1, JSON.stringify(inputs));
    assert.ok(veoTask.provider.upstream_id.endsWith(inputs[0].job) || veoTask.provider.upstream_id.includes(inputs[0].job),
      `${veoTask.provider.upstream_id} vs ${inputs[0].job}`);
    assert.equal(inputs[0].sha256, sha256(content.bytes));
  });

  test("the tasks' own events when the pipeline's webhook lists them", { timeout: 60_000 }, async () => {
    const r = await create({
      webhook: { url: hooks.url, events: ['pipeline.completed', 'task.completed'] },
      steps: [
        { id: 'a', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: 'ev one' }] } },
        { id: 'b', kind: 'chat', input: { model: 'chat-gemini', messages: [{ role: 'user', content: '{{a.text}}' }] } },
      ],
    });
    assert.equal(r.status, 202, r.text.slice(0, 400));
    const pl = await waitPipeline(r.json.id);
    assert.equal(pl.status, 'completed');
    const taskIds = new Set(pl.steps.flatMap((s) => s.task_ids));
    const mine = () => hooks.seen.map((m) => JSON.parse(m.body))
      .filter((b) => b.data?.id === pl.id || taskIds.has(b.data?.id));
    for (let i = 0; i < 100 && mine().length < 3; i++) await sleep(100);
    const types = mine().map((b) => `${b.type}:${b.data.id}`).sort();
    assert.deepEqual(types, [...[...taskIds].map((id) => `task.completed:${id}`), `pipeline.completed:${pl.id}`].sort());
  });

  test('a deadline that passes ends the pipeline expired and cancels its running job', { timeout: 60_000 }, async () => {
    await mock.config({ job_ms: 30_000 });
    try {
      const r = await create({
        deadline: 2,
        steps: [
          { id: 'clip', kind: 'video', input: { model: 'video-replicate', prompt: 'slow' } },
          { id: 'next', kind: 'chat', after: ['clip'], input: { model: 'chat-openai', messages: [{ role: 'user', content: 'x' }] } },
        ],
      });
      assert.equal(r.status, 202, r.text.slice(0, 400));
      assert.ok(r.json.deadline_at >= r.json.created_at + 1);
      const pl = await waitPipeline(r.json.id, 30_000);
      assert.equal(pl.status, 'expired', JSON.stringify(pl).slice(0, 800));
      assert.equal(step(pl, 'next').status, 'skipped');
      assert.ok(['cancelled', 'failed'].includes(step(pl, 'clip').status), step(pl, 'clip').status);
      const t = await task(step(pl, 'clip').task_ids[0]);
      assert.ok(['expired', 'cancelled'].includes(t.status), t.status);
    } finally {
      await mock.config({ job_ms: 150 });
    }
  });

  test('a reference that cannot resolve fails its step (422-class, naming it) and skips its dependents', { timeout: 60_000 }, async () => {
    const r = await create({
      steps: [
        { id: 'a', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: 'plain text' }] } },
        { id: 'b', kind: 'image', input: { model: 'image-fal', prompt: { $ref: 'a.json.prompt' } } },
        { id: 'c', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: '{{b.text}}' }] } },
      ],
    });
    assert.equal(r.status, 202, r.text.slice(0, 400));
    const pl = await waitPipeline(r.json.id);
    assert.equal(pl.status, 'failed');
    assert.deepEqual(pl.steps.map((s) => s.status), ['completed', 'failed', 'skipped']);
    const err = step(pl, 'b').error;
    assert.equal(err.param, 'a.json.prompt', JSON.stringify(err));
    assert.match(err.message, /a\.json\.prompt/);
    assert.equal(step(pl, 'b').task_ids.length, 0);
  });

  test('bad specs are refused before anything runs: 400, 404, 422 in the error envelope', async () => {
    const chat = (content) => ({ model: 'chat-openai', messages: [{ role: 'user', content }] });
    const cases = [
      [{}, 400, 'steps'],
      [{ steps: [] }, 400, null],
      [{ steps: [{ id: 'a', kind: 'chat', input: chat('x') }], colour: 'blue' }, 400, 'colour'],
      [{ steps: [{ id: 'a', kind: 'chat', input: chat('x'), foreach: 'x' }] }, 400, 'steps[0].foreach'],
      [{ steps: [{ id: 'a b', kind: 'chat', input: chat('x') }] }, 400, 'steps[0].id'],
      [{ steps: [{ id: 'a', kind: 'sound', input: chat('x') }] }, 400, 'steps[0].kind'],
      [{ steps: [{ id: 'a', kind: 'chat', input: { model: 'nope', messages: [] } }] }, 404, 'steps[0].input.model'],
      [{ steps: [{ id: 'a', kind: 'image', input: chat('x') }] }, 400, 'steps[0].input.model'],
      [{ steps: [{ id: 'a', kind: 'chat', input: chat('{{zz.text}}') }] }, 422, null],
      [{ steps: [{ id: 'a', kind: 'chat', input: chat('{{b.text}}') }, { id: 'b', kind: 'chat', input: chat('{{a.text}}') }] }, 422, null],
      [{ steps: [{ id: 'a', kind: 'chat', input: chat('{{item}}') }] }, 422, null],
      [{ steps: [{ id: 'a', kind: 'chat', input: chat('x') }], priority: 'urgent' }, 400, 'priority'],
    ];
    for (const [body, status, param] of cases) {
      const res = await create(body);
      assert.equal(res.status, status, `${JSON.stringify(body)} → ${res.text.slice(0, 300)}`);
      assert.equal(typeof res.json?.error?.message, 'string', res.text.slice(0, 300));
      if (param) assert.equal(res.json.error.param, param, res.text.slice(0, 300));
    }
    const bad = await api.request('POST', '/v1/pipelines', { rawBody: '{"steps": [' });
    assert.equal(bad.status, 400);
  });

  test('tenants see only their own pipelines; the list pages newest first', { timeout: 60_000 }, async () => {
    const mk = (content) => create({ steps: [{ id: 's', kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content }] } }] });
    const first = await mk('one');
    const second = await mk('two');
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    const mine = await api.request('GET', '/v1/pipelines?limit=2');
    assert.equal(mine.status, 200);
    assert.equal(mine.json.object, 'list');
    assert.deepEqual(mine.json.data.map((p) => p.id), [second.json.id, first.json.id]);
    assert.equal(mine.json.has_more, true);
    const next = await api.request('GET', `/v1/pipelines?limit=100&after=${first.json.id}`);
    assert.ok(!next.json.data.some((p) => p.id === first.json.id || p.id === second.json.id));
    const theirs = await other.request('GET', `/v1/pipelines/${first.json.id}`);
    assert.equal(theirs.status, 404);
    assert.equal(theirs.json.error.code, 'pipeline_not_found');
    const theirCancel = await other.request('POST', `/v1/pipelines/${first.json.id}/cancel`);
    assert.equal(theirCancel.status, 404);
    const theirList = await other.request('GET', '/v1/pipelines');
    assert.ok(!theirList.json.data.some((p) => p.id === first.json.id));
    const unknown = await api.request('GET', '/v1/pipelines/pipe_aaaaaaaaaaaaaaaaaaaaaaaaaa');
    assert.equal(unknown.status, 404);
    const malformed = await api.request('GET', '/v1/pipelines/not-an-id');
    assert.equal(malformed.status, 404);
    await waitPipeline(first.json.id);
    await waitPipeline(second.json.id);
  });
});
