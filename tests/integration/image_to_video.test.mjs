// Image-to-video (issue 15, item 7): a video task's reference image (`input_reference`, as
// OpenAI's video API names it) through the unchanged official OpenAI SDK and POST /v1/tasks, on
// every video dialect the harness configures (openai-compatible, fal, Replicate, Gemini/Veo).
//
// The SDK sends the image as a multipart file part; sluice keeps it in the task's input as a
// data: URI and each dialect hands it on in its own form (OpenAI: the file part input_reference
// of a multipart /videos; fal: image_url; Replicate: the model's first-frame field; Veo:
// instances[0].image.bytesBase64Encoded). sluice-mock records the reference image every video
// submission brought (GET /_mock/video_inputs: dialect, job, sha256 of the decoded bytes), so
// each test checks the provider got exactly the client's bytes, for the job sluice then polled.
// Refusals: a file that is no image is a 400 naming input_reference before any task exists; a
// URL on Veo (which takes bytes only) fails the task with a 422-class error naming it.
//
// Needs `npm ci` in tests/integration first (the SDK is the one npm dependency).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { Cluster, DIALECT_MODELS, PNG_MAGIC, pngBytes, sdkErr, sleep } from './lib/harness.mjs';

const JOB_MS = 300; // the mock's upstream job duration

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/** Every video alias of the harness, with the mock dialect that records its submissions. */
const VIDEO_ALIASES = Object.entries(DIALECT_MODELS)
  .filter(([, m]) => m.kind === 'video')
  .map(([alias, m]) => ({ alias, dialect: m.provider }));

describe('image-to-video: input_reference on every video dialect', () => {
  const cl = new Cluster('image_to_video');
  let mock;
  let api;
  let openai;

  before(async () => {
    ({ mock, api, openai } = await cl.startSdkStack(OpenAI, {
      mock: { jobMs: JOB_MS }, pollIntervalMs: 100, sdk: { maxRetries: 0 },
    }));
  });
  after(() => cl.stop());

  async function videoInputs() {
    const res = await fetch(`${mock.root}/_mock/video_inputs`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.ok(Array.isArray(body.data), JSON.stringify(body).slice(0, 300));
    return body.data;
  }

  async function clearVideoInputs() {
    const res = await fetch(`${mock.root}/_mock/video_inputs`, { method: 'DELETE', signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.deepEqual(await videoInputs(), [], 'DELETE /_mock/video_inputs clears the record');
  }

  /** The paths of the requests the mock recorded (its stats' last_requests). */
  async function recordedPaths() {
    const stats = await mock.stats();
    return (stats.last_requests ?? []).map((r) => String(r.path ?? ''));
  }

  /** videos.retrieve every 150 ms until completed or failed (bounded) → the last video. */
  async function untilDone(id) {
    let last;
    for (let round = 0; round < 200; round++) {
      last = await openai.videos.retrieve(id).catch((e) => assert.fail(`videos.retrieve: ${sdkErr(e)}`));
      if (last.status === 'completed' || last.status === 'failed') return last;
      await sleep(150);
    }
    assert.fail(`video ${id} never finished: ${JSON.stringify(last)}`);
  }

  /** The one reference the mock recorded, checked against bytes, and polled by sluice. */
  async function assertReceived(dialect, bytes, contentType) {
    const inputs = await videoInputs();
    assert.equal(inputs.length, 1, `one reference image recorded: ${JSON.stringify(inputs)}`);
    const got = inputs[0];
    assert.equal(got.dialect, dialect, JSON.stringify(got));
    assert.equal(got.sha256, sha256(bytes), `the provider got exactly the client's ${bytes.length} bytes: ${JSON.stringify(got)}`);
    assert.equal(got.bytes, bytes.length, JSON.stringify(got));
    assert.equal(got.url, null, JSON.stringify(got));
    assert.equal(got.content_type, contentType, JSON.stringify(got));
    assert.equal(typeof got.job, 'string');
    assert.ok(got.job.length > 0, JSON.stringify(got));
    const paths = await recordedPaths();
    assert.ok(paths.some((p) => p.includes(got.job) && !p.startsWith('/_mock')),
      `sluice polled the job that received the image (${got.job}): ${JSON.stringify(paths.slice(-20))}`);
  }

  for (const { alias, dialect } of VIDEO_ALIASES) {
    test(`videos.create with input_reference (a PNG file) on ${alias}: completed, the ${dialect} provider got exactly its bytes`, { timeout: 60_000 }, async () => {
      await clearVideoInputs();
      const png = pngBytes(`i2v-${alias}`);
      const v = await openai.videos.create({
        model: alias, prompt: `the picture comes alive (${alias})`, seconds: '4', size: '1280x720',
        input_reference: await toFile(png, 'ref.png', { type: 'image/png' }),
      }).catch((e) => assert.fail(`videos.create: ${sdkErr(e)}`));
      assert.equal(v.object, 'video', JSON.stringify(v));
      const last = await untilDone(v.id);
      assert.equal(last.status, 'completed', JSON.stringify(last));
      assert.equal(last.progress, 100);
      await assertReceived(dialect, png, 'image/png');
      const content = await openai.videos.downloadContent(v.id).catch((e) => assert.fail(`downloadContent: ${sdkErr(e)}`));
      const mp4 = Buffer.from(await content.arrayBuffer());
      assert.ok(mp4.length > 0 && mp4.subarray(4, 8).toString('latin1') === 'ftyp', 'the content is the mock\'s MP4');
    });
  }

  test('videos.create with a file of no declared type: its magic says PNG, the provider gets its bytes', { timeout: 60_000 }, async () => {
    await clearVideoInputs();
    const png = pngBytes('untyped');
    const v = await openai.videos.create({
      model: 'video-fal', prompt: 'untyped first frame',
      input_reference: await toFile(png, 'ref.bin', { type: 'application/octet-stream' }),
    }).catch((e) => assert.fail(`videos.create: ${sdkErr(e)}`));
    assert.equal((await untilDone(v.id)).status, 'completed');
    await assertReceived('fal', png, 'image/png');
  });

  test('videos.create with input_reference {image_url: data URI} (the SDK\'s object form)', { timeout: 60_000 }, async () => {
    await clearVideoInputs();
    const png = pngBytes('object-form');
    const v = await openai.videos.create({
      model: 'video-gemini', prompt: 'object form', size: '1280x720',
      input_reference: { image_url: `data:image/png;base64,${png.toString('base64')}` },
    }).catch((e) => assert.fail(`videos.create: ${sdkErr(e)}`));
    assert.equal((await untilDone(v.id)).status, 'completed');
    await assertReceived('gemini', png, 'image/png');
  });

  test('POST /v1/tasks kind video with input_reference as a data: URI', { timeout: 60_000 }, async () => {
    for (const alias of ['video-replicate', 'video-openai']) {
      await clearVideoInputs();
      const png = pngBytes(`task-${alias}`);
      const res = await api.submit('video', {
        model: alias, prompt: 'a task with a first frame', input_reference: `data:image/png;base64,${png.toString('base64')}`,
      });
      assert.equal(res.status, 202, res.text.slice(0, 300));
      const [task] = await api.waitTerminal([res.json.id], 30_000);
      assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 400));
      await assertReceived(DIALECT_MODELS[alias].provider, png, 'image/png');
    }
  });

  test('an http(s) URL reaches fal and Replicate as the URL', { timeout: 60_000 }, async () => {
    for (const alias of ['video-fal', 'video-replicate']) {
      await clearVideoInputs();
      const url = `https://images.example.com/${alias}/first-frame.png`;
      const res = await api.submit('video', { model: alias, prompt: 'from a URL', input_reference: url });
      assert.equal(res.status, 202, res.text.slice(0, 300));
      const [task] = await api.waitTerminal([res.json.id], 30_000);
      assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 400));
      const inputs = await videoInputs();
      assert.equal(inputs.length, 1, JSON.stringify(inputs));
      assert.equal(inputs[0].dialect, DIALECT_MODELS[alias].provider);
      assert.equal(inputs[0].url, url);
      assert.equal(inputs[0].sha256, null);
    }
  });

  test('a file that is no image: 400 naming input_reference, no task, nothing upstream', { timeout: 30_000 }, async () => {
    await clearVideoInputs();
    const before = await mock.byRoute();
    const err = await openai.videos.create({
      model: 'video-openai', prompt: 'x',
      input_reference: await toFile(Buffer.from('just some text\n'), 'notes.txt', { type: 'text/plain' }),
    }).then(() => null, (e) => e);
    assert.ok(err, 'refused');
    assert.equal(err.status, 400, sdkErr(err));
    assert.equal(err.param ?? err.error?.param, 'input_reference', sdkErr(err));
    // the same over JSON: a data: URI of no image type, and a string that is neither URI nor URL
    for (const ref of ['data:text/plain;base64,aGVsbG8=', 'not a url', 'data:image/png;base64,!!!!']) {
      const res = await api.request('POST', '/v1/videos', { body: { model: 'video-fal', prompt: 'x', input_reference: ref } });
      assert.equal(res.status, 400, `${ref}: ${res.text.slice(0, 300)}`);
      assert.equal(res.json?.error?.param, 'input_reference', res.text.slice(0, 300));
    }
    const task = await api.submit('video', { model: 'video-fal', prompt: 'x', input_reference: 'ftp://example.com/a.png' });
    if (task.status === 202) {
      // POST /v1/tasks' validation lives in api/task_validate.c; the dialect refuses it at the worker
      const [t] = await api.waitTerminal([task.json.id], 30_000);
      assert.equal(t.status, 'failed', JSON.stringify(t).slice(0, 400));
      assert.equal(t.error?.param, 'input_reference', JSON.stringify(t.error));
    } else {
      assert.equal(task.status, 400, task.text.slice(0, 300));
      assert.equal(task.json?.error?.param, 'input.input_reference', task.text.slice(0, 300));
    }
    assert.deepEqual(await videoInputs(), [], 'nothing reached a provider');
    const after = await mock.byRoute();
    for (const alias of ['video-openai', 'video-fal']) {
      for (const r of DIALECT_MODELS[alias].routes) {
        assert.equal(after[r] ?? 0, before[r] ?? 0, `no ${r} submission`);
      }
    }
  });

  test('a URL on Veo fails the task with a 422-class error naming input_reference, nothing upstream', { timeout: 30_000 }, async () => {
    await clearVideoInputs();
    const before = await mock.byRoute();
    const res = await api.request('POST', '/v1/videos', {
      body: { model: 'video-gemini', prompt: 'x', input_reference: 'https://images.example.com/frame.png' },
    });
    assert.equal(res.status, 200, res.text.slice(0, 300)); // the dialect judges it at the worker
    const last = await untilDone(res.json.id);
    assert.equal(last.status, 'failed', JSON.stringify(last));
    const task = (await api.getTask(res.json.id)).json;
    assert.equal(task.error?.param, 'input_reference', JSON.stringify(task.error));
    assert.equal(task.error?.retryable, false, JSON.stringify(task.error));
    assert.equal(task.attempts, 1, 'a refusal is not retried');
    assert.match(String(task.error?.message), /bytes/, JSON.stringify(task.error));
    assert.equal((await mock.byRoute())['gemini.videos.create'] ?? 0, before['gemini.videos.create'] ?? 0, 'nothing sent to Veo');
    assert.deepEqual(await videoInputs(), []);
  });

  test('a reference image past the body limit as the task keeps it (base64): 413 naming input_reference', { timeout: 30_000 }, async () => {
    await clearVideoInputs();
    // under limits.max_body_bytes (1 MiB) as multipart, over it in base64
    const err = await openai.videos.create({
      model: 'video-openai', prompt: 'x',
      input_reference: await toFile(Buffer.concat([PNG_MAGIC, Buffer.alloc(850 * 1024)]), 'big.png', { type: 'image/png' }),
    }).then(() => null, (e) => e);
    assert.ok(err, 'refused');
    assert.equal(err.status, 413, sdkErr(err));
    assert.equal(err.param ?? err.error?.param, 'input_reference', sdkErr(err));
    assert.deepEqual(await videoInputs(), []);
  });
});
