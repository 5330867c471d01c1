// The dashboard page in a real browser (issue 17, item 1): Debian's headless Chromium, driven by
// playwright-core, against `sluice serve` with a real redis-server and three sluice-mocks — one
// slowed down for a burst (and serving the image alias), one answering every call 429 with a
// 600 s retry-after (a paused deployment), one whose faults the test switches (a failure, a 500
// then a success).
//
// Checked through the page's DOM only (data-testid attributes), never by calling the JSON API
// for what the page should show: the shell is served without a key under a strict CSP and runs
// without a console error or CSP violation; a wrong key is refused in the form; the 429'd
// deployment is marked PAUSED with its until-when; a failure is listed and its link (focused,
// kept focused across the 1 s refreshes, opened with Enter) leads to its task page; a task that
// got a 500 first shows both upstream attempts in its timeline; a burst of 200 tasks (two bulk
// POSTs) shows the queue depth rise and drain to 0, a 60-line batch its progress bar until it
// completes, the tenant its spend against its hour budget as a bar; an image task shows its
// preview (fetched with the key into a blob: URL); a tenant key sees its own tenant only
// (another tenant's task is "not found", its name appears nowhere) and sign-out forgets the key
// and the data; at 390×844 nothing scrolls sideways; text contrast ≥ 4.5:1; Tab reaches the
// navigation with a visible focus outline.
//
// Screenshots go to $SLUICE_TEST_ARTIFACTS (default <tmpdir>/sluice-artifacts), printed at the
// end. With SLUICE_DASHBOARD_SCREENSHOT=<path> the overview shot taken mid-burst is also copied
// there (how docs/dashboard.png is made). Needs `npm ci` in tests/integration (playwright-core)
// and /usr/bin/chromium: without either the test FAILS saying so.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, ADMIN_KEY, mockProvider, sleep, waitFor } from './lib/harness.mjs';
import { openBrowser, screenshot, pageWidths, lowContrast, assertNoProblems, artifactsDir } from './lib/browser.mjs';

const BURST_N = 200;
const BURST_CONCURRENCY = 8; // max_concurrency of the burst deployment
const BATCH_N = 60;
const ALPHA_BUDGET_USD = 0.25; // an hour: far above what the test spends, shown as a bar
const BURST_LATENCY_MS = 150; // so 200 tasks take ~4 s: seen by the 1 s poll
const PAUSE_RETRY_AFTER_S = 600;
const CHAT_PRICE = { input_per_mtok: 0.15, output_per_mtok: 0.6 };
const TASK_NOT_FOUND_404 = /status of 404/;

/** Signs in through the page's form (the key goes to sessionStorage) and waits for the view. */
async function signIn(page, baseUrl, key, hash = '') {
  await page.goto(`${baseUrl}/dashboard${hash}`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Open dashboard' }).click();
  await page.waitForSelector('#login', { state: 'hidden' });
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Live'));
}

/** The queue depth the page shows for an alias (all priorities; no row = nothing queued). */
function shownDepth(page, alias) {
  return page.evaluate((a) => {
    const cells = [...document.querySelectorAll('#queues tr[data-testid="queue"]')]
      .filter((tr) => tr.dataset.model === a)
      .map((tr) => tr.querySelector('[data-testid="queue-depth"]').textContent.replace(/,/g, ''));
    return { rows: cells.length, depth: cells.reduce((s, c) => s + Number(c), 0), cells };
  }, alias);
}

/** Uploads a JSONL of n chat lines for chat-openai and starts a batch of it; → its id. */
async function createBatchFor(client, baseUrl, key, n) {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({
    custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions',
    body: { model: 'chat-openai', messages: [{ role: 'user', content: `batch line ${i}` }] },
  })).join('\n') + '\n';
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([lines], { type: 'application/jsonl' }), 'dashboard.jsonl');
  const up = await fetch(`${baseUrl}/v1/files`, {
    method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form, signal: AbortSignal.timeout(15000),
  });
  const file = await up.json();
  assert.equal(up.status, 200, `POST /v1/files: ${up.status} ${JSON.stringify(file).slice(0, 300)}`);
  const b = await client.request('POST', '/v1/batches', {
    body: { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' },
  });
  assert.equal(b.status, 200, `POST /v1/batches: ${b.status} ${b.text.slice(0, 300)}`);
  return b.json.id;
}

describe('dashboard page: a live browser view of queues, deployments, tenants and tasks', () => {
  const cl = new Cluster('dashboard');
  const shots = [];
  let sluice;
  let alpha;
  let beta;
  let slowMock;
  let pauseMock;
  let flakyMock;
  let browser;
  let admin; // the admin's page, signed in once
  let failedId;
  let retriedId;
  let imageId;

  const createBatch = (n) => createBatchFor(alpha, sluice.baseUrl, cl.keys.alpha, n);

  async function shot(page, name) {
    shots.push(await screenshot(page, name));
  }

  before(async () => {
    const redis = await cl.startRedis();
    slowMock = await cl.startMock({ latencyMs: BURST_LATENCY_MS });
    pauseMock = await cl.startMock();
    flakyMock = await cl.startMock();
    const chat = (provider, extra = {}) => ({
      kind: 'chat', strategy: 'ordered',
      deployments: [{ provider, model: 'mock-gpt', price: { ...CHAT_PRICE }, ...extra }],
    });
    const config = await cl.configFor({
      redis, mock: slowMock, overrides: {
        providers: { 'mock-pause': mockProvider(pauseMock), 'mock-flaky': mockProvider(flakyMock) },
        models: {
          'chat-openai': chat('mock', { model: 'gpt-4o-mini', max_concurrency: BURST_CONCURRENCY }),
          'image-openai': {
            kind: 'image', strategy: 'ordered',
            deployments: [{ provider: 'mock', model: 'gpt-image-1', price: { per_image: 0.04 } }],
          },
          'pause-chat': chat('mock-pause'),
          'flaky-chat': chat('mock-flaky'),
        },
        blobs: { dir: path.join(cl.dir, 'blobs'), allow_hosts: ['127.0.0.1'] },
      },
    });
    sluice = await cl.startSluice('serve', config);
    alpha = cl.client(sluice.baseUrl, cl.keys.alpha);
    beta = cl.client(sluice.baseUrl, cl.keys.beta);
    const budget = await cl.client(sluice.baseUrl, ADMIN_KEY).request('PUT', '/v1/admin/tenants/alpha/budget', {
      body: { limits: [{ window: 'hour', max_usd: ALPHA_BUDGET_USD }], policy: 'pace' },
    });
    assert.equal(budget.status, 200, `PUT alpha's budget: ${budget.status} ${budget.text.slice(0, 300)}`);
    browser = await openBrowser();
    admin = await browser.newPage();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (shots.length > 0) process.stdout.write(`# dashboard screenshots: ${shots.join(', ')}\n`);
    await cl.stop();
  });

  test('the shell loads without a key under a strict CSP; a wrong key is refused in the form', { timeout: 60_000 }, async () => {
    const res = await admin.goto(`${sluice.baseUrl}/dashboard`);
    assert.equal(res.status(), 200, 'GET /dashboard');
    const csp = res.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/, `CSP header on the page: "${csp}"`);
    assert.match(res.headers()['content-type'] ?? '', /text\/html/);
    for (const asset of ['/dashboard/app.js', '/dashboard/app.css', '/dashboard/']) {
      const r = await fetch(sluice.baseUrl + asset, { signal: AbortSignal.timeout(5000) });
      await r.arrayBuffer();
      assert.equal(r.status, 200, `GET ${asset} without a key`);
    }
    await admin.getByLabel('API key').fill('sk-not-a-key');
    await admin.getByRole('button', { name: 'Open dashboard' }).click();
    await admin.waitForFunction(() => /refused/.test(document.getElementById('login-error').textContent));
    assert.equal(await admin.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
    admin.problems.length = 0; // the 401 of the refused key is the console line Chromium prints for it

    await signIn(admin, sluice.baseUrl, ADMIN_KEY);
    assert.equal(await admin.textContent('[data-testid="scope"]'), 'Admin view: all tenants');
    // landmarks, one h1 in view, every form control labelled, table headers
    const a11y = await admin.evaluate(() => ({
      header: document.querySelectorAll('header').length,
      nav: document.querySelectorAll('nav').length,
      main: document.querySelectorAll('main').length,
      h1: [...document.querySelectorAll('h1')].filter((h) => h.offsetParent !== null).map((h) => h.textContent),
      unlabelled: [...document.querySelectorAll('input, select')]
        .filter((c) => c.labels.length === 0 && !c.getAttribute('aria-label')).map((c) => c.id),
      tablesWithoutTh: [...document.querySelectorAll('table')]
        .filter((t) => t.querySelectorAll('thead th[scope="col"]').length === 0).map((t) => t.id),
      live: document.getElementById('status').getAttribute('aria-live'),
    }));
    assert.deepEqual({ ...a11y, h1: a11y.h1.length },
      { header: 1, nav: 1, main: 1, h1: 1, unlabelled: [], tablesWithoutTh: [], live: 'polite' }, JSON.stringify(a11y));
    assertNoProblems(admin);
  });

  test('a deployment paused by a 429 with a long retry-after is marked PAUSED with its until-when', { timeout: 60_000 }, async () => {
    await pauseMock.config({ error_rate: 1, error_status: 429, retry_after_s: PAUSE_RETRY_AFTER_S });
    const r = await alpha.submitChat('pause-chat', 'held by a paused deployment');
    assert.equal(r.status, 202, r.text.slice(0, 300));
    const row = 'tr[data-testid="deployment"][data-model="pause-chat"]';
    await admin.waitForSelector(`${row} [data-testid="paused-badge"]`, { timeout: 30000 });
    const text = await admin.textContent(row);
    assert.match(text, /PAUSED/, text);
    assert.match(text, /until \d\d:\d\d:\d\d/, `the until-when is shown: ${text}`);
    assert.equal(await admin.getAttribute(row, 'data-paused'), 'true');
    // the other deployments are not
    const others = await admin.$$eval('tr[data-testid="deployment"]', (trs) => trs
      .filter((tr) => tr.dataset.model !== 'pause-chat' && tr.dataset.paused !== 'false').map((tr) => tr.dataset.model));
    assert.deepEqual(others, [], 'only pause-chat is paused');
    assert.ok((await pauseMock.stats()).requests >= 1, 'the paused deployment was called (and answered 429)');
  });

  test('a failure is listed by code and deployment and links to its task page', { timeout: 60_000 }, async () => {
    await flakyMock.config({ fail_first: 1, error_status: 400, error_message: 'dashboard: refused by the provider' });
    const r = await alpha.submitChat('flaky-chat', 'this one fails');
    assert.equal(r.status, 202, r.text.slice(0, 300));
    failedId = r.json.id;
    const [task] = await alpha.waitTerminal([failedId], 30000);
    assert.equal(task.status, 'failed', JSON.stringify(task).slice(0, 400));

    const row = 'tr[data-testid="failure"]';
    await admin.waitForFunction((id) => [...document.querySelectorAll('tr[data-testid="failure"]')]
      .some((tr) => tr.textContent.includes(id)), failedId, { timeout: 20000 });
    const rowText = await admin.$$eval(row, (trs, id) => trs.find((tr) => tr.textContent.includes(id)).textContent, failedId);
    assert.match(rowText, /flaky-chat/, rowText);
    // keyboard: the link keeps the focus across the 1 s refreshes, and Enter opens the task
    const link = `${row} a[href="#/tasks/${failedId}"]`;
    await admin.focus(link);
    await sleep(2500);
    assert.equal(await admin.evaluate(() => document.activeElement?.getAttribute('href')), `#/tasks/${failedId}`,
      'the focused link still has the focus after two refreshes');
    await admin.keyboard.press('Enter');
    await admin.waitForSelector('[data-testid="attempt"]');
    assert.equal(await admin.textContent('[data-testid="task-status"]'), 'failed');
    const attempts = await admin.$$eval('[data-testid="attempt"]', (li) => li.map((x) => x.dataset.status));
    assert.deepEqual(attempts, ['400'], 'a 400 is not retried: one attempt, shown with its status');
    assert.match(await admin.textContent('#task-error'), /refused by the provider/);
  });

  test('a task that got a 500 first shows both upstream attempts, reached from the task list', { timeout: 60_000 }, async () => {
    await flakyMock.config({ fail_first: 1, error_status: 500, error_message: null });
    const r = await alpha.submitChat('flaky-chat', 'retried <b>once</b>');
    assert.equal(r.status, 202, r.text.slice(0, 300));
    retriedId = r.json.id;
    const [task] = await alpha.waitTerminal([retriedId], 30000);
    assert.equal(task.status, 'completed', JSON.stringify(task).slice(0, 400));

    await admin.goto(`${sluice.baseUrl}/dashboard#/tasks?model=flaky-chat`);
    const link = `tr[data-testid="task-row"][data-task-id="${retriedId}"] a`;
    await admin.waitForSelector(link);
    await admin.focus(link);
    await admin.keyboard.press('Enter'); // keyboard reachable
    await admin.waitForFunction((id) => location.hash === `#/tasks/${id}`, retriedId);
    await admin.waitForFunction(() => document.querySelectorAll('[data-testid="attempt"]').length >= 2);
    const attempts = await admin.$$eval('[data-testid="attempt"]', (li) => li.map((x) => ({ status: x.dataset.status, text: x.textContent })));
    assert.ok(attempts.length >= 2, JSON.stringify(attempts));
    assert.equal(attempts[0].status, '500', `the first attempt got the 500: ${JSON.stringify(attempts)}`);
    assert.equal(attempts.at(-1).status, '200', `the last one succeeded: ${JSON.stringify(attempts)}`);
    assert.match(attempts[0].text, /mock-flaky/, 'each attempt names its provider');
    for (const step of ['tl-queued', 'tl-started', 'tl-end']) {
      assert.equal(await admin.locator(`[data-testid="${step}"]`).count(), 1, `timeline step ${step}`);
    }
    // the result is shown as text: the markup in the reply is not parsed
    const result = await admin.textContent('#task-result');
    assert.match(result, /mock reply: retried <b>once<\/b>/, result.slice(0, 300));
    assert.equal(await admin.locator('#task-result b').count(), 0, 'no element made from data');
    await shot(admin, 'dashboard-task');
  });

  test(`a burst of ${BURST_N} tasks shows the queue rise and drain to 0`, { timeout: 120_000 }, async () => {
    await admin.goto(`${sluice.baseUrl}/dashboard#/`);
    await admin.waitForSelector('#view-overview:not([hidden])');
    const batchId = await createBatch(BATCH_N);
    // Two bulk requests, so the queue builds up however slow this machine is at single POSTs.
    const ids = [];
    const submitting = (async () => {
      for (let part = 0; part < 2; part++) {
        const tasks = Array.from({ length: BURST_N / 2 }, (_, i) => ({
          kind: 'chat', input: { model: 'chat-openai', messages: [{ role: 'user', content: `burst ${part}-${i}` }] },
        }));
        const r = await alpha.request('POST', '/v1/tasks', { body: { tasks } });
        assert.equal(r.status, 202, r.text.slice(0, 300));
        assert.equal(r.json.created, BURST_N / 2, r.text.slice(0, 300));
        for (const e of r.json.data) ids.push(e.task.id);
      }
    })();
    let peak = 0;
    let batchSeen = null;
    let shotTaken = false;
    await waitFor(async () => {
      const d = await shownDepth(admin, 'chat-openai');
      peak = Math.max(peak, d.depth);
      // (while the batch's file is still being read its total is 0: the bar waits for the count)
      batchSeen ??= await admin.evaluate(([id, n]) => {
        const p = document.querySelector(`tr[data-testid="batch"][data-batch="${id}"] progress`);
        return p && p.max === n ? { max: p.max, value: p.value } : null;
      }, [batchId, BATCH_N]);
      if (!shotTaken && d.depth >= 40 && batchSeen) {
        shotTaken = true;
        await shot(admin, 'dashboard-overview-burst');
        if (process.env.SLUICE_DASHBOARD_SCREENSHOT) {
          fs.copyFileSync(shots.at(-1), process.env.SLUICE_DASHBOARD_SCREENSHOT);
          shots.push(process.env.SLUICE_DASHBOARD_SCREENSHOT);
        }
      }
      return peak >= 40 && batchSeen;
    }, { timeoutMs: 30000, intervalMs: 100, what: 'the page to show ≥ 40 tasks queued for chat-openai and the batch in progress' });
    const budgetBar = await admin.$eval('tr[data-testid="tenant"][data-tenant="alpha"] meter',
      (m) => ({ max: m.max, value: m.value, label: m.getAttribute('aria-label') }));
    assert.equal(budgetBar.max, ALPHA_BUDGET_USD, `alpha's hour budget as a bar: ${JSON.stringify(budgetBar)}`);
    assert.ok(budgetBar.value > 0 && budgetBar.value < ALPHA_BUDGET_USD, `some of it spent: ${JSON.stringify(budgetBar)}`);
    assert.equal(batchSeen.max, BATCH_N, `the batch's progress bar counts its ${BATCH_N} lines: ${JSON.stringify(batchSeen)}`);
    await submitting;
    await waitFor(async () => {
      const d = await shownDepth(admin, 'chat-openai');
      return d.depth === 0 ? d : null;
    }, { timeoutMs: 60000, intervalMs: 250, what: 'the page to show the chat-openai queue drained to 0' });
    const done = await alpha.waitTerminal(ids, 30000);
    assert.ok(done.every((t) => t.status === 'completed'), 'every burst task completed');
    assert.ok(peak <= BURST_N + BATCH_N, `peak ${peak} ≤ ${BURST_N} + ${BATCH_N} (the burst and the batch)`);
    // the chart has drawn a line for the alias
    const series = await admin.$$eval('#queue-chart polyline', (ps) => ps.map((p) => p.dataset.series));
    assert.ok(series.some((s) => s.startsWith('chat-openai|')), `chart series: ${series}`);
    await waitFor(async () => {
      const b = await alpha.request('GET', `/v1/batches/${batchId}`);
      return b.json?.status === 'completed' ? b.json : null;
    }, { timeoutMs: 60000, intervalMs: 250, what: `batch ${batchId} completed` });
    await admin.waitForSelector(`tr[data-testid="batch"][data-batch="${batchId}"]`, { state: 'detached', timeout: 10000 });
    await shot(admin, 'dashboard-overview-drained');
  });

  test('an image task shows its preview from a blob: URL fetched with the key', { timeout: 60_000 }, async () => {
    const r = await alpha.submit('image', { model: 'image-openai', prompt: 'a dashboard preview', n: 1 }, { wait: 20 });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    imageId = r.json.id;
    await admin.goto(`${sluice.baseUrl}/dashboard#/tasks/${imageId}`);
    await admin.waitForSelector('[data-testid="media"] img');
    const img = await admin.waitForFunction(() => {
      const i = document.querySelector('[data-testid="media"] img');
      return i && i.complete && i.naturalWidth > 0 ? { src: i.src, w: i.naturalWidth, alt: i.alt } : null;
    });
    const v = await img.jsonValue();
    assert.match(v.src, /^blob:/, JSON.stringify(v));
    assert.ok(v.w > 0 && v.alt.length > 0, JSON.stringify(v));
  });

  test('a tenant key sees only its own tenant', { timeout: 60_000 }, async () => {
    const r = await beta.submitChat('chat-openai', 'beta\'s own task');
    assert.equal(r.status, 202, r.text.slice(0, 300));
    const betaId = r.json.id;
    await beta.waitTerminal([betaId], 30000);
    const page = await browser.newPage();
    await signIn(page, sluice.baseUrl, cl.keys.beta);
    assert.equal(await page.textContent('[data-testid="scope"]'), 'Tenant view: beta');
    const tenants = await page.$$eval('tr[data-testid="tenant"]', (trs) => trs.map((tr) => tr.dataset.tenant));
    assert.ok(tenants.every((t) => t === 'beta'), `tenants shown: ${tenants}`);
    assert.equal(await page.locator('#f-tenant-wrap').isHidden(), true, 'no tenant filter for a tenant');

    await page.goto(`${sluice.baseUrl}/dashboard#/tasks`);
    await page.waitForSelector(`tr[data-testid="task-row"][data-task-id="${betaId}"]`);
    const listed = await page.$$eval('tr[data-testid="task-row"]', (trs) => trs.map((tr) => tr.dataset.taskId));
    for (const id of [failedId, retriedId, imageId]) assert.ok(!listed.includes(id), `alpha's ${id} listed for beta`);
    await page.goto(`${sluice.baseUrl}/dashboard#/tasks/${retriedId}`);
    await page.waitForSelector('[data-testid="task-not-found"]', { state: 'visible' });
    assert.equal(await page.locator('#task-body').isHidden(), true);
    await page.goto(`${sluice.baseUrl}/dashboard#/`);
    await page.waitForSelector('#view-overview:not([hidden])');
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Live'));
    const body = await page.evaluate(() => document.body.innerText);
    for (const id of [failedId, retriedId, imageId]) assert.ok(!body.includes(id), `alpha's task ${id} shown to beta`);
    assert.ok(!/\balpha\b/.test(body), 'the other tenant\'s name appears nowhere on beta\'s page');
    await shot(page, 'dashboard-tenant-beta');
    assertNoProblems(page, [TASK_NOT_FOUND_404]);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForSelector('#login', { state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sign out forgets the key');
    assert.equal(await page.locator('#view-overview').isHidden(), true, 'no data shown after sign out');
    assert.equal(await page.locator('main tbody tr').count(), 0, 'and none left in the page for the next key');
    await page.context().close();
  });

  test('readable on a phone (390×844): no horizontal scroll; contrast ≥ 4.5:1; focus is visible', { timeout: 60_000 }, async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await signIn(phone, sluice.baseUrl, ADMIN_KEY);
    await phone.waitForSelector('tr[data-testid="deployment"]');
    for (const hash of ['#/', '#/tasks', `#/tasks/${retriedId}`]) {
      await phone.goto(`${sluice.baseUrl}/dashboard${hash}`);
      await phone.waitForFunction(() => document.getElementById('status').textContent.startsWith('Live'));
      await sleep(300);
      const w = await pageWidths(phone);
      assert.ok(w.scrollWidth <= w.clientWidth, `${hash}: page scrolls sideways at 390 px: ${JSON.stringify(w)}`);
    }
    await phone.goto(`${sluice.baseUrl}/dashboard#/`);
    await phone.waitForSelector('tr[data-testid="deployment"]');
    await shot(phone, 'dashboard-phone');
    for (const [page, name] of [[phone, 'phone'], [admin, 'desktop']]) {
      const low = await lowContrast(page);
      assert.deepEqual(low, [], `${name}: text under 4.5:1 contrast: ${JSON.stringify(low.slice(0, 5))}`);
    }
    // keyboard: Tab from the top reaches the nav links and the sign-out button, each with an outline
    // a fresh load (signed in from sessionStorage), so the walk starts at the top of the document
    await admin.goto(`${sluice.baseUrl}/dashboard#/`);
    await admin.reload();
    await admin.waitForSelector('#view-overview:not([hidden])');
    await admin.waitForFunction(() => document.getElementById('status').textContent.startsWith('Live'));
    const reached = [];
    for (let i = 0; i < 6; i++) {
      await admin.keyboard.press('Tab');
      reached.push(await admin.evaluate(() => {
        const a = document.activeElement;
        const o = getComputedStyle(a);
        return { text: a.textContent.trim().slice(0, 40), outline: o.outlineStyle !== 'none' && parseFloat(o.outlineWidth) > 0 };
      }));
    }
    for (const name of ['Overview', 'Tasks', 'Sign out']) {
      const hit = reached.find((r) => r.text === name);
      assert.ok(hit, `Tab reaches "${name}": ${JSON.stringify(reached)}`);
      assert.ok(hit.outline, `"${name}" shows a focus outline`);
    }
    assertNoProblems(phone);
    assertNoProblems(admin, [TASK_NOT_FOUND_404]);
    await phone.context().close();
    assert.ok(fs.existsSync(artifactsDir()));
  });
});
