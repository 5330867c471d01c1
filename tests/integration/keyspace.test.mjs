// The keyspace's hash tag is a parameter (redis_key_tag): two sluice deployments share one Redis
// under two tags and never see each other. Each runs its tasks to completion (the sync path too),
// a task of one is a 404 in the other, and every key in Redis starts with one of the two
// prefixes. A bad tag is refused at start.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Cluster, assertAccepted, assertCompletedChatTask, assertErrorEnvelope } from './lib/harness.mjs';

describe('keyspace: redis_key_tag', () => {
  const cl = new Cluster('keyspace');
  let redis;
  let mock;

  before(async () => {
    redis = await cl.startRedis();
    mock = await cl.startMock();
  });
  after(() => cl.stop());

  test('two deployments, one Redis, two tags', { timeout: 120_000 }, async () => {
    const a = await cl.startSluice('serve', await cl.configFor({ redis, mock }));
    const b = await cl.startSluice('serve', await cl.configFor({ redis, mock, overrides: { redis_key_tag: 'team-b.2' } }));
    const ca = cl.client(a.baseUrl, cl.keys.alpha);
    const cb = cl.client(b.baseUrl, cl.keys.alpha);

    const idsA = [];
    const idsB = [];
    for (let i = 0; i < 20; i++) {
      idsA.push(assertAccepted(await ca.submitChat('mock-chat', `ks a ${i}`), a.baseUrl).id);
      idsB.push(assertAccepted(await cb.submitChat('mock-chat', `ks b ${i}`), b.baseUrl).id);
    }
    const doneA = await ca.waitTerminal(idsA, 60000);
    const doneB = await cb.waitTerminal(idsB, 60000);
    doneA.forEach((t, i) => assertCompletedChatTask(t, { lastUserContent: `ks a ${i}` }));
    doneB.forEach((t, i) => assertCompletedChatTask(t, { lastUserContent: `ks b ${i}` }));

    // the synchronous path (the waiter's channel and the r message) under the second tag
    const sync = await cb.request('POST', '/v1/chat/completions', {
      body: { model: 'mock-chat', messages: [{ role: 'user', content: 'ks sync' }] },
    });
    assert.equal(sync.status, 200, sync.text);
    assert.equal(sync.json.object, 'chat.completion');

    // each deployment sees only its own tasks
    assertErrorEnvelope(await cb.getTask(idsA[0]), 404);
    assertErrorEnvelope(await ca.getTask(idsB[0]), 404);
    const listB = await cb.list({ limit: 100 });
    assert.equal(listB.status, 200);
    const seen = new Set(listB.json.data.map((t) => t.id));
    assert.ok(idsB.every((id) => seen.has(id)), 'B lists its tasks');
    assert.ok(idsA.every((id) => !seen.has(id)), 'B does not list A\'s tasks');

    // every key is under one of the two prefixes, and each task hash under its own
    const keys = (await redis.cli('--scan')).split('\n').filter(Boolean);
    const stray = keys.filter((k) => !k.startsWith('{sl}:') && !k.startsWith('{team-b.2}:'));
    assert.deepEqual(stray, [], 'keys outside the two keyspaces');
    assert.ok(keys.includes(`{sl}:t:${idsA[0]}`));
    assert.ok(keys.includes(`{team-b.2}:t:${idsB[0]}`));
    assert.ok(!keys.includes(`{sl}:t:${idsB[0]}`));
    assert.ok(keys.some((k) => k.startsWith('{team-b.2}:dep:mock-chat:')), 'B paces under its own tag');
  });

  test('a bad tag is refused at start, naming the field', { timeout: 30_000 }, async () => {
    const cfg = await cl.configFor({ redis, mock, overrides: { redis_key_tag: 'no spaces{}' } });
    const file = path.join(cl.dir, 'bad-tag.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    const r = spawnSync(process.env.SLUICE_BIN, ['serve', '--config', file], { encoding: 'utf8', timeout: 10000 });
    assert.notEqual(r.status, 0, 'sluice must refuse to start');
    assert.match(r.stderr, /redis_key_tag/);
  });
});
