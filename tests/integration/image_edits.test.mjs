// Image edits (issue 15, item 8): POST /v1/images/edits as the official OpenAI SDK sends it
// (multipart: `image` — `image[]` when several —, `mask`, `prompt`, `n`, `size`,
// `response_format`), and the image kind's edit form on POST /v1/tasks, on the OpenAI, fal and
// Replicate dialects.
//
// The files become data: URIs in the task's input; each dialect hands them on in its own form
// (OpenAI: a multipart body to /images/edits; fal: the model's image_url; Replicate:
// input.image). sluice-mock records every file an edit brought (GET /_mock/edits: the decoded
// bytes, by route and field), so each test checks the provider got exactly the client's bytes.
//
// Needs `npm ci` in tests/integration first (the SDK is the one npm dependency).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { Cluster, PNG_MAGIC, pngBytes, sdkErr } from './lib/harness.mjs';

const JOB_MS = 200; // the mock's upstream job duration (Replicate, fal)

const ALIASES = {
  'image-openai': { route: 'openai.images.edits', field: 'image', maskField: 'mask' },
  'image-fal': { route: 'fal.submit', field: 'image_url', maskField: 'mask_url' },
  'image-replicate': { route: 'replicate.create_model', field: 'image', maskField: 'mask' },
};

describe('image edits through the OpenAI SDK and the edit form', () => {
  const cl = new Cluster('image_edits');
  let mock;
  let sluice;
  let api;
  let openai;

  /** The files the mock recorded since `after` (a seq), as {route, field, bytes}. */
  async function editsSince(after) {
    const res = await fetch(`${mock.root}/_mock/edits`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    const body = await res.json();
    return body.data.filter((e) => e.seq > after)
      .map((e) => ({ seq: e.seq, route: e.route, field: e.field, bytes: Buffer.from(e.b64 ?? '', 'base64') }));
  }

  async function lastSeq() {
    const all = await editsSince(0);
    return all.length ? all[all.length - 1].seq : 0;
  }

  before(async () => {
    ({ mock, sluice, api, openai } = await cl.startSdkStack(OpenAI, {
      mock: { jobMs: JOB_MS }, pollIntervalMs: 100, sdk: { maxRetries: 0 },
    }));
  });
  after(() => cl.stop());

  for (const [alias, spec] of Object.entries(ALIASES)) {
    for (const format of ['b64_json', 'url']) {
      test(`images.edit with a PNG file through ${alias} (${format}): the provider got exactly its bytes`, { timeout: 60_000 }, async () => {
        const png = pngBytes(`${alias}-${format}`);
        const since = await lastSeq();
        const r = await openai.images.edit({
          model: alias, prompt: `add a hat (${alias})`, response_format: format,
          image: await toFile(png, 'in.png', { type: 'image/png' }),
        }).catch((e) => assert.fail(`images.edit: ${sdkErr(e)}`));
        const ctx = JSON.stringify(r).slice(0, 300);
        assert.equal(r.data.length, 1, ctx);
        if (format === 'b64_json') {
          assert.equal(typeof r.data[0].b64_json, 'string', ctx);
          assert.equal(r.data[0].url, undefined, ctx);
          assert.ok(Buffer.from(r.data[0].b64_json, 'base64').subarray(0, 8).equals(PNG_MAGIC), 'the answer is a PNG');
        } else {
          assert.equal(typeof r.data[0].url, 'string', ctx);
          assert.equal(r.data[0].b64_json, undefined, ctx);
          assert.ok(r.data[0].url.startsWith(sluice.baseUrl), `sluice's own URL: ${r.data[0].url}`);
          const img = Buffer.from(await (await fetch(r.data[0].url)).arrayBuffer());
          assert.ok(img.subarray(0, 8).equals(PNG_MAGIC), 'the URL serves a PNG');
        }
        const got = await editsSince(since);
        assert.equal(got.length, 1, JSON.stringify(got.map((e) => [e.route, e.field])));
        assert.equal(got[0].route, spec.route);
        assert.equal(got[0].field, spec.field);
        assert.ok(got[0].bytes.equals(png), `the provider got the client's ${png.length} bytes (got ${got[0].bytes.length})`);
      });
    }
  }

  test('images.edit with a mask (OpenAI, fal, Replicate): image and mask both arrive as sent', { timeout: 60_000 }, async () => {
    for (const [alias, spec] of Object.entries(ALIASES)) {
      const png = pngBytes(`${alias}-masked`);
      const mask = pngBytes(`${alias}-mask`);
      const since = await lastSeq();
      const r = await openai.images.edit({
        model: alias, prompt: 'inpaint the sky', response_format: 'b64_json',
        image: await toFile(png, 'in.png'), mask: await toFile(mask, 'mask.png'),
      }).catch((e) => assert.fail(`images.edit ${alias}: ${sdkErr(e)}`));
      assert.equal(r.data.length, 1);
      const got = await editsSince(since);
      const byField = Object.fromEntries(got.map((e) => [e.field, e]));
      assert.ok(byField[spec.field]?.bytes.equals(png), `${alias}: the image (${JSON.stringify(Object.keys(byField))})`);
      assert.ok(byField[spec.maskField]?.bytes.equals(mask), `${alias}: the mask`);
    }
  });

  test('images.edit with two images on OpenAI: image[] parts, in order', { timeout: 60_000 }, async () => {
    const a = pngBytes('first');
    const b = pngBytes('second');
    const since = await lastSeq();
    const r = await openai.images.edit({
      model: 'image-openai', prompt: 'combine them', n: 2, size: '1024x1024',
      image: [await toFile(a, 'a.png'), await toFile(b, 'b.png')],
    }).catch((e) => assert.fail(`images.edit: ${sdkErr(e)}`));
    assert.equal(r.data.length, 2, 'n reached the provider');
    const got = await editsSince(since);
    assert.deepEqual(got.map((e) => e.field), ['image[]', 'image[]']);
    assert.ok(got[0].bytes.equals(a) && got[1].bytes.equals(b));
  });

  test('images.edit with a file that is no image: 400 naming image, nothing sent upstream', { timeout: 30_000 }, async () => {
    const since = await lastSeq();
    const err = await openai.images.edit({
      model: 'image-openai', prompt: 'x', image: await toFile(Buffer.from('just some text\n'), 'notes.txt', { type: 'text/plain' }),
    }).then(() => null, (e) => e);
    assert.ok(err, 'refused');
    assert.equal(err.status, 400, sdkErr(err));
    assert.equal(err.error?.param ?? err.param, 'image', sdkErr(err));
    assert.deepEqual(await editsSince(since), []);
  });

  test('images.edit on a model whose dialect takes one image refuses two with 400 naming image', { timeout: 30_000 }, async () => {
    const err = await openai.images.edit({
      model: 'image-replicate', prompt: 'x', image: [await toFile(pngBytes('1'), 'a.png'), await toFile(pngBytes('2'), 'b.png')],
    }).then(() => null, (e) => e);
    assert.ok(err, 'refused');
    assert.equal(err.status, 400, sdkErr(err));
    assert.equal(err.param, 'image', sdkErr(err));
  });

  test('the body limit of a JSON request bounds an edit, and the task it makes (limits.max_body_bytes: 1 MiB)', { timeout: 30_000 }, async () => {
    const since = await lastSeq();
    const big = await openai.images.edit({
      model: 'image-openai', prompt: 'x', image: await toFile(pngBytes('big'), 'big.png'),
      // the body passes the limit: refused by the connection guard, before any handler
      mask: await toFile(Buffer.concat([PNG_MAGIC, Buffer.alloc(1100 * 1024)]), 'mask.png'),
    }).then(() => null, (e) => e);
    assert.ok(big, 'refused');
    assert.equal(big.status, 413, sdkErr(big));
    // under the limit as multipart, over it as the task's input (the files in base64)
    const mid = await openai.images.edit({
      model: 'image-openai', prompt: 'x', image: await toFile(Buffer.concat([PNG_MAGIC, Buffer.alloc(850 * 1024)]), 'mid.png'),
    }).then(() => null, (e) => e);
    assert.ok(mid, 'refused');
    assert.equal(mid.status, 413, sdkErr(mid));
    assert.equal(mid.param, 'image', sdkErr(mid));
    assert.deepEqual(await editsSince(since), [], 'nothing reached a provider');
  });

  test('POST /v1/tasks with the image kind\'s edit form', { timeout: 60_000 }, async () => {
    const png = pngBytes('task-form');
    const since = await lastSeq();
    const res = await api.submit('image', {
      model: 'image-fal', prompt: 'make it blue', edit: true,
      image: [`data:image/png;base64,${png.toString('base64')}`],
    });
    assert.equal(res.status, 202, res.text.slice(0, 300));
    const [task] = await api.waitTerminal([res.json.id], 30_000);
    assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 400));
    const got = await editsSince(since);
    assert.equal(got.length, 1);
    assert.equal(got[0].field, 'image_url');
    assert.ok(got[0].bytes.equals(png), 'fal got the bytes of the data: URI');

    const bad = await api.submit('image', { model: 'image-fal', prompt: 'x', edit: true, image: ['https://example.com/a.png'] });
    assert.equal(bad.status, 400, bad.text.slice(0, 300));
    assert.equal(bad.json.error.param, 'input.image');
    const stray = await api.submit('image', { model: 'image-fal', prompt: 'x', image: [`data:image/png;base64,${png.toString('base64')}`] });
    assert.equal(stray.status, 400, stray.text.slice(0, 300));
    assert.equal(stray.json.error.param, 'input.image');
  });
});
