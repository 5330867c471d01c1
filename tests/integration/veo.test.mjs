// Veo behind /v1/videos: the Gemini dialect's long-running video generation through real HTTP.
//
// sluice-mock plays the Gemini API: POST /gemini/v1beta/models/{model}:predictLongRunning starts an
// operation, GET .../models/{model}/operations/{id} reports it running until the mock's job time
// has passed and then done with a video URI on the mock's files/{id}:download, which answers only
// with the key (the mock runs with --api-key). Checked:
//   1. POST /v1/videos on the `video-gemini` alias, GET until completed, GET content → exactly the
//      bytes the mock serves for that file; the upstream request carried the translated body
//      (instances[0].prompt, parameters.aspectRatio/durationSeconds/resolution); one submission.
//   2. The download carried x-goog-api-key (the file host is the base_url's origin).
//   3. An operation that ends with an error ("mock:fail") is a failed video.
//   4. A size Veo cannot make (square) fails the task, not retried, with an error naming `size`;
//      nothing goes upstream.
//   5. The official SDK's videos.create / retrieve / downloadContent on the same alias.
//
// Needs `npm ci` in tests/integration first (the SDK is the one npm dependency).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  Cluster, DIALECT_MODELS, TASK_ID_RE, mockRequests, recordedBody, recordedHeader, routeCount, sdkErr,
  sleep,
} from './lib/harness.mjs';

const JOB_MS = 1500; // the mock's operation duration
const ALIAS = 'video-gemini';
const MODEL = DIALECT_MODELS[ALIAS].model;
const SUBMIT_PATH = `/gemini/v1beta/models/${MODEL}:predictLongRunning`;

describe('Veo (Gemini long-running video) behind /v1/videos', () => {
  const cl = new Cluster('veo');
  let mock;
  let api;
  let openai;

  before(async () => {
    ({ mock, api, openai } = await cl.startSdkStack(OpenAI, { mock: { jobMs: JOB_MS }, pollIntervalMs: 200 }));
  });
  after(() => cl.stop());

  /** GET /v1/videos/{id} every 200 ms until completed or failed → the last video object. */
  async function untilDone(id) {
    let last;
    for (let round = 0; round < 300; round++) {
      const res = await api.request('GET', `/v1/videos/${id}`);
      assert.equal(res.status, 200, `GET video: ${res.status} ${res.text.slice(0, 300)}`);
      last = res.json;
      assert.equal(last.id, id);
      assert.ok(Number.isInteger(last.progress) && last.progress >= 0 && last.progress <= 100, JSON.stringify(last));
      if (last.status === 'completed' || last.status === 'failed') return last;
      await sleep(200);
    }
    assert.fail(`video ${id} never finished: ${JSON.stringify(last)}`);
  }

  /** The bytes the mock serves for a Veo file: the same renderer as /_mock/blob/{id}.mp4. */
  async function mockFileBytes(fileId) {
    const res = await fetch(`${mock.root}/_mock/blob/${fileId}.mp4`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  }

  /** The ids of the operations sluice polled, from the mock's recorded requests. */
  function operationIds(stats) {
    const ids = new Set();
    for (const r of stats.last_requests ?? []) {
      const m = /\/gemini\/v1beta\/models\/[^/]+\/operations\/([^/?]+)$/.exec((r.path ?? '').split('?')[0]);
      if (m) ids.add(m[1]);
    }
    return ids;
  }

  test('POST /v1/videos, GET until completed, GET content → the mock\'s exact bytes', { timeout: 60_000 }, async () => {
    await mock.reset();
    const before = await mock.byRoute();
    const res = await api.request('POST', '/v1/videos', {
      body: { model: ALIAS, prompt: 'a paper boat drifting down a rainy street', seconds: '8', size: '1280x720' },
    });
    assert.ok(res.status === 200 || res.status === 202, `POST /v1/videos: ${res.status} ${res.text.slice(0, 300)}`);
    const v = res.json;
    assert.match(String(v.id), TASK_ID_RE, JSON.stringify(v));
    assert.equal(v.object, 'video');

    const last = await untilDone(v.id);
    assert.equal(last.status, 'completed', JSON.stringify(last));
    assert.equal(last.progress, 100);

    const stats = await mock.stats();
    const submits = mockRequests(stats, SUBMIT_PATH);
    assert.equal(submits.length, 1, `one predictLongRunning: ${JSON.stringify(stats.by_route)}`);
    assert.equal(recordedHeader(submits[0], 'x-goog-api-key'), cl.keys.mock, 'the submit carries the key');
    assert.deepEqual(recordedBody(submits[0]), {
      instances: [{ prompt: 'a paper boat drifting down a rainy street' }],
      parameters: { aspectRatio: '16:9', resolution: '720p', durationSeconds: 8 },
    });
    assert.equal(routeCount(await mock.byRoute(), DIALECT_MODELS[ALIAS].routes) - routeCount(before, DIALECT_MODELS[ALIAS].routes), 1);

    const ops = [...operationIds(stats)];
    assert.equal(ops.length, 1, `one operation polled: ${ops.join(',')}`);
    const downloads = mockRequests(stats, `/gemini/v1beta/files/${ops[0]}:download`);
    assert.equal(downloads.length, 1, 'the video was downloaded once');
    assert.equal(recordedHeader(downloads[0], 'x-goog-api-key'), cl.keys.mock,
      'the download carries the key: the file host is the base_url origin');
    const keyless = await fetch(`${mock.root}/gemini/v1beta/files/${ops[0]}:download?alt=media`, { signal: AbortSignal.timeout(5000) });
    assert.equal(keyless.status, 403, 'the mock\'s file answers only with the key');

    const content = await api.request('GET', `/v1/videos/${v.id}/content`, { binary: true });
    assert.equal(content.status, 200, `content: ${content.status} ${String(content.text).slice(0, 200)}`);
    assert.match(String(content.headers['content-type']), /^video\/mp4/);
    assert.ok(content.bytes.equals(await mockFileBytes(ops[0])), 'the kept bytes are the mock\'s file');

    const task = (await api.getTask(v.id)).json;
    assert.equal(task.status, 'completed');
    assert.equal(task.attempts, 1);
    assert.equal(task.provider?.name, 'gemini');
    assert.equal(task.provider?.model, MODEL);
    assert.equal(Number(task.usage?.seconds), 8, JSON.stringify(task.usage));
    assert.ok(Math.abs(task.cost?.amount - 8 * DIALECT_MODELS[ALIAS].price.per_video_second) < 1e-9, JSON.stringify(task.cost));
  });

  test('an operation that ends with an error is a failed video', { timeout: 60_000 }, async () => {
    const res = await api.request('POST', '/v1/videos', { body: { model: ALIAS, prompt: 'mock:fail a storm' } });
    assert.ok(res.status === 200 || res.status === 202, `${res.status} ${res.text.slice(0, 300)}`);
    const last = await untilDone(res.json.id);
    assert.equal(last.status, 'failed', JSON.stringify(last));
    assert.match(String(last.error?.message), /mock:fail/, JSON.stringify(last));
    const task = (await api.getTask(res.json.id)).json;
    assert.equal(task.attempts, 1, 'a finished operation is not polled or submitted again');
    const content = await api.request('GET', `/v1/videos/${res.json.id}/content`);
    assert.ok(content.status >= 400 && content.status < 500, `no content: ${content.status}`);
  });

  test('a size Veo cannot make fails the task with a 400-class error naming size, nothing sent upstream', { timeout: 30_000 }, async () => {
    await mock.reset();
    const res = await api.request('POST', '/v1/videos', { body: { model: ALIAS, prompt: 'a square video', size: '1024x1024' } });
    assert.equal(res.status, 200, res.text.slice(0, 300)); // the dialect judges the input at the worker
    const last = await untilDone(res.json.id);
    assert.equal(last.status, 'failed', JSON.stringify(last));
    assert.match(String(last.error?.message), /16:9 or 9:16/, JSON.stringify(last));
    const task = (await api.getTask(res.json.id)).json;
    assert.equal(task.error?.param, 'size', JSON.stringify(task.error));
    assert.equal(task.attempts, 1, 'not retried');
    assert.equal(routeCount(await mock.byRoute(), DIALECT_MODELS[ALIAS].routes), 0, 'no upstream submission');
  });

  test('the official SDK: videos.create, retrieve until completed, downloadContent', { timeout: 60_000 }, async () => {
    assert.equal(typeof openai.videos?.create, 'function', 'the installed openai package has videos');
    const v = await openai.videos.create({ model: ALIAS, prompt: 'a hummingbird at a feeder', seconds: '4', size: '720x1280' })
      .catch((e) => assert.fail(`videos.create: ${sdkErr(e)}`));
    assert.match(String(v.id), TASK_ID_RE);
    let last = v;
    for (let round = 0; round < 300 && !['completed', 'failed'].includes(last.status); round++) {
      await sleep(200);
      last = await openai.videos.retrieve(v.id).catch((e) => assert.fail(`videos.retrieve: ${sdkErr(e)}`));
    }
    assert.equal(last.status, 'completed', JSON.stringify(last));
    const resp = await openai.videos.downloadContent(v.id).catch((e) => assert.fail(`downloadContent: ${sdkErr(e)}`));
    const bytes = Buffer.from(await resp.arrayBuffer());
    assert.equal(bytes.subarray(4, 8).toString('latin1'), 'ftyp', 'an MP4 from the mock');
    const viaTasks = await api.request('GET', `/v1/tasks/${v.id}/content?index=0`, { binary: true });
    assert.ok(viaTasks.bytes.equals(bytes), 'the same bytes from /v1/tasks/{id}/content');
  });
});
