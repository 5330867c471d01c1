// Issue 12, finding 5: what a tenant may store. Task inputs and results count against the
// tenant's max_stored_bytes from submit until the finished task is swept; past it a submit is a
// 429 storage_quota_exceeded naming the limit, other tenants are unaffected, /metrics shows each
// tenant's stored bytes, and the space returns when the tasks expire.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, waitFor } from './lib/harness.mjs';

const LIMIT = 20_000;
const ART_LIMIT = 2_000;

describe('storage quotas', () => {
  const cl = new Cluster('hardening_quota');
  let sluice;
  let alpha;
  let beta;

  before(async () => {
    const redis = await cl.startRedis();
    const mock = await cl.startMock({ jobMs: 200 });
    sluice = await cl.startSluice('serve', await cl.dialectConfigFor({
      redis, mock, overrides: {
        tasks: { retention_s: 2 },
        quotas: { tenants: {
          alpha: { max_stored_bytes: LIMIT, max_artifact_bytes: ART_LIMIT },
          beta: { max_files: 2, max_file_bytes: 4096 },
        } },
        models: { 'mock-chat': { kind: 'chat', strategy: 'ordered', deployments: [{ provider: 'openai', model: 'mock-gpt' }] } },
      },
    }));
    alpha = cl.client(sluice.baseUrl, cl.keys.alpha);
    beta = cl.client(sluice.baseUrl, cl.keys.beta);
  });
  after(() => cl.stop());

  const stored = async (tenant) =>
    (await alpha.metrics()).get('sluice_tenant_storage_bytes', { tenant, kind: 'tasks' }) ?? 0;

  test('inputs and results count; past the limit a 429 names it; expiry gives the space back', { timeout: 60_000 }, async () => {
    const big = 'x'.repeat(3000);
    let accepted = 0;
    let refused;
    for (let i = 0; i < 20 && !refused; i++) {
      const res = await alpha.submitChat('mock-chat', `${big} ${i}`, { headers: { prefer: 'wait=10' } });
      if (res.status === 429) {
        refused = res;
      } else {
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.status, 'completed');
        accepted++;
      }
    }
    assert.ok(refused, 'the limit was reached');
    assert.ok(accepted >= 3 && accepted <= 6, `${accepted} accepted under ${LIMIT} bytes of 3 kB inputs`);
    assert.equal(refused.json.error.code, 'storage_quota_exceeded', refused.text);
    assert.match(refused.json.error.message, /max_stored_bytes \(20000\)/);
    const used = await stored('alpha');
    assert.ok(used > accepted * 3000 && used <= LIMIT, `stored ${used} bytes`);
    // another tenant is not held by alpha's quota
    const b = await beta.submitChat('mock-chat', big, { headers: { prefer: 'wait=10' } });
    assert.equal(b.status, 200, b.text);
    assert.ok(await stored('beta') > 3000);
    // finished tasks expire after retention_s: the space comes back and alpha submits again
    await waitFor(async () => (await stored('alpha')) === 0, { timeoutMs: 20_000, intervalMs: 250, what: 'alpha back to 0 bytes' });
    const again = await alpha.submitChat('mock-chat', big, { headers: { prefer: 'wait=10' } });
    assert.equal(again.status, 200, again.text);
  });

  test('files count against max_files and max_file_bytes; a delete gives the room back', { timeout: 60_000 }, async () => {
    const upload = async (bytes) => {
      const form = new FormData();
      form.append('purpose', 'batch');
      const line = JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-chat', messages: [] } });
      form.append('file', new Blob([line + ' '.repeat(Math.max(0, bytes - line.length - 1)) + '\n']), 'in.jsonl');
      const res = await fetch(`${sluice.baseUrl}/v1/files`, { method: 'POST', body: form, headers: { authorization: `Bearer ${cl.keys.beta}` } });
      return { status: res.status, json: await res.json() };
    };
    const a = await upload(1000);
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const b = await upload(1000);
    assert.equal(b.status, 200, JSON.stringify(b.json));
    const c = await upload(1000);
    assert.equal(c.status, 429, JSON.stringify(c.json));
    assert.equal(c.json.error.code, 'storage_quota_exceeded');
    assert.match(c.json.error.message, /max_files \(2\)/);
    const del = await beta.request('DELETE', `/v1/files/${a.json.id}`);
    assert.equal(del.status, 200, del.text);
    const big = await upload(3500); // 1000 + 3500 > 4096
    assert.equal(big.status, 429, JSON.stringify(big.json));
    assert.match(big.json.error.message, /max_file_bytes \(4096\)/);
    const ok = await upload(1000);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const list = await beta.request('GET', '/v1/files');
    assert.equal(list.json.data.length, 2, 'a refused upload leaves no file behind');
    const m = await alpha.metrics();
    assert.equal(m.get('sluice_tenant_storage_bytes', { tenant: 'beta', kind: 'files' }), 2000);
  });

  test('kept artifacts count against max_artifact_bytes; the sweep removes them and gives the space back', { timeout: 60_000 }, async () => {
    const image = () => alpha.submit('image', { model: 'image-openai', prompt: 'a quota', n: 1 }, { wait: 10 });
    const ids = [];
    let refused;
    for (let i = 0; i < 20 && !refused; i++) {
      const res = await image();
      if (res.status === 429) {
        refused = res;
      } else {
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.status, 'completed', res.text);
        ids.push(res.json.id);
      }
    }
    assert.ok(refused && ids.length >= 1, `refused after ${ids.length} images`);
    assert.equal(refused.json.error.code, 'storage_quota_exceeded');
    assert.match(refused.json.error.message, /max_artifact_bytes \(2000\)/);
    const kept = (await alpha.metrics()).get('sluice_tenant_storage_bytes', { tenant: 'alpha', kind: 'artifacts' });
    assert.ok(kept >= ART_LIMIT, `${kept} artifact bytes counted`);
    const blobs = path.join(cl.dir, 'blobs');
    assert.ok(ids.every((id) => fs.existsSync(path.join(blobs, id))), 'the artifacts are kept');
    // chat is not an artifact: still accepted
    const chat = await alpha.submitChat('mock-chat', 'still fine', { headers: { prefer: 'wait=10' } });
    assert.equal(chat.status, 200, chat.text);
    await waitFor(async () => (await alpha.metrics()).get('sluice_tenant_storage_bytes', { tenant: 'alpha', kind: 'artifacts' }) === 0,
      { timeoutMs: 20_000, intervalMs: 250, what: 'artifact bytes back to 0' });
    await waitFor(() => ids.every((id) => !fs.existsSync(path.join(blobs, id))), { timeoutMs: 5000, what: 'blob folders removed' });
    const again = await image();
    assert.equal(again.status, 200, again.text);
  });
});
