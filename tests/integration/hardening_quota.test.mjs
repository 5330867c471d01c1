// Issue 12, finding 5: what a tenant may store. Task inputs and results count against the
// tenant's max_stored_bytes from submit until the finished task is swept; past it a submit is a
// 429 storage_quota_exceeded naming the limit, other tenants are unaffected, /metrics shows each
// tenant's stored bytes, and the space returns when the tasks expire.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, waitFor } from './lib/harness.mjs';

const LIMIT = 20_000;

describe('storage quotas', () => {
  const cl = new Cluster('hardening_quota');
  let sluice;
  let alpha;
  let beta;

  before(async () => {
    const redis = await cl.startRedis();
    const mock = await cl.startMock({});
    sluice = await cl.startSluice('serve', await cl.configFor({
      redis, mock, overrides: {
        tasks: { retention_s: 2 },
        quotas: { tenants: { alpha: { max_stored_bytes: LIMIT } } },
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
});
