// sluice dashboard — a one-page app over the JSON of /v1/dashboard/* (plain ES2020, no framework,
// no third-party code). Served under `Content-Security-Policy: default-src 'self'; img-src 'self'
// blob: data:; media-src 'self' blob:`: no inline script, style or handler, so everything is wired
// here. Data from the server is only ever put into the page with textContent / DOM nodes, never
// as HTML.
//
// Routes (location.hash): #/ overview (polls the state every 1 s, the history every 10 s),
// #/tasks?status=&model=&tenant= a task list, #/tasks/<id> one task's page.
// The key lives in sessionStorage (this tab only) and goes out as `Authorization: Bearer`.

const KEY_STORE = 'sluice.dashboard.key';
const STATE_MS = 1000;
const HISTORY_MS = 10000;
const TASK_REFRESH_MS = 2000;
const FETCH_TIMEOUT_MS = 8000;
const HOUR_S = 3600;
const LIVE_SAMPLES_MAX = 3600; // one a second for an hour
const MEDIA_MAX = 8; // previews on one task page
const MEDIA_MAX_BYTES = 64 * 1024 * 1024;
const TASK_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;
const PRIORITY_ORDER = { interactive: 0, normal: 1, batch: 2 };
const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

// All mutable state of the page. `session` grows at each sign-in/sign-out so that a poll loop or
// a fetch started under an older session drops its answer instead of painting it.
const app = {
  key: null,
  session: 0,
  state: null,
  history: null,
  live: [], // [{t, queues: {"model|priority": depth}}] from the 1 s state polls
  stateTimer: 0,
  historyTimer: 0,
  taskTimer: 0,
  route: { view: 'overview' },
  tableShown: new WeakMap(), // tbody → the markup it shows (see fillTable)
  mediaUrls: [],
  mediaFor: null,
  status: '',
};

// ---------------------------------------------------------------------------------------------
// Small DOM and formatting helpers

/** An element with attributes (never `style` or `on*`) and children (nodes or text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'style' || /^on/i.test(k)) throw new Error(`el: attribute ${k} is not allowed`);
    if (v === null || v === undefined || v === false) continue;
    if (k === 'className') node.className = v;
    else if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function fmtNum(v, digits = 0) {
  if (!isNum(v)) return '—';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}

function fmtUsd(v) {
  if (!isNum(v)) return '—';
  if (v !== 0 && Math.abs(v) < 0.01) return `$${v.toLocaleString('en-US', { maximumSignificantDigits: 3 })}`;
  return `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: v < 1 ? 4 : 2 })}`;
}

function fmtRate(v) {
  return isNum(v) ? `${fmtNum(v, 2)}/s` : '—';
}

function fmtMs(v) {
  return isNum(v) ? `${fmtNum(v, v < 10 ? 1 : 0)} ms` : '—';
}

/** A duration in seconds as "42 s", "3 min 5 s", "2 h 10 min". */
function fmtAge(s) {
  if (!isNum(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < HOUR_S) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / HOUR_S)} h ${Math.floor((s % HOUR_S) / 60)} min`;
}

const pad2 = (n) => String(n).padStart(2, '0');

/** Unix seconds → "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM:SS", local time. */
function fmtClock(t) {
  if (!isNum(t)) return '—';
  const d = new Date(t * 1000);
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${time}`;
}

/** A <time> element for unix seconds t. */
function timeEl(t) {
  if (!isNum(t)) return document.createTextNode('—');
  return el('time', { datetime: new Date(t * 1000).toISOString(), text: fmtClock(t) });
}

function badge(text, tone, attrs = {}) {
  return el('span', { className: `badge ${tone}`, ...attrs }, text);
}

function note(text) {
  return el('span', { className: 'note' }, text);
}

/**
 * A small bar: a <meter> of value over max with its numbers written next to it ("480 / 500");
 * max null means unlimited, shown as text only.
 */
function bar(value, max, label, fmt = fmtNum) {
  if (!isNum(max)) {
    return el('span', {}, isNum(value) ? `${fmt(value)} / unlimited` : 'unlimited');
  }
  const v = isNum(value) ? Math.min(Math.max(value, 0), max) : 0;
  const text = `${fmt(value)} / ${fmt(max)}`;
  return el('span', { className: 'bar' },
    el('meter', { min: 0, max: Math.max(max, 1e-9), value: v, 'aria-label': `${label}: ${text}` }),
    el('span', {}, text));
}

/** A <progress> of done over total with the counts next to it. */
function progressBar(done, total, label, extra = '') {
  const ok = isNum(total) && total > 0;
  const text = ok ? `${fmtNum(done)} / ${fmtNum(total)}${extra}` : `${fmtNum(done)}${extra}`;
  return el('span', { className: 'bar' },
    el('progress', { max: ok ? total : 1, value: ok ? Math.min(done ?? 0, total) : 0, 'aria-label': `${label}: ${text}` }),
    el('span', {}, text));
}

function taskLink(id) {
  if (typeof id !== 'string' || !TASK_ID_RE.test(id)) return document.createTextNode(id ? String(id) : '—');
  return el('a', { href: `#/tasks/${id}`, className: 'mono wrap-any' }, id);
}

/**
 * Replaces the rows of table `id`. rows: [{attrs, cells: [content | {content, num, attrs}]}].
 * Each cell gets data-label = its column's header, which the phone layout prints before it.
 * The tables refresh every second: rows that did not change are left alone, and a focused link
 * keeps the focus in the new rows, so a keyboard user is not thrown back to the top.
 */
function fillTable(id, rows, emptyText) {
  const table = $(id);
  const labels = [...table.tHead.rows[0].cells].map((th) => th.textContent);
  const body = table.tBodies[0];
  const out = [];
  if (rows.length === 0) {
    out.push(el('tr', {}, el('td', { colspan: labels.length, className: 'empty' }, emptyText)));
  }
  for (const row of rows) {
    const tr = el('tr', row.attrs ?? {});
    row.cells.forEach((cell, i) => {
      const spec = cell !== null && typeof cell === 'object' && !(cell instanceof Node) && !Array.isArray(cell)
        ? cell : { content: cell };
      const td = el('td', { 'data-label': labels[i], className: spec.num ? 'num' : null, ...(spec.attrs ?? {}) });
      const parts = Array.isArray(spec.content) ? spec.content : [spec.content];
      for (const p of parts) {
        if (p === null || p === undefined) continue;
        td.append(p instanceof Node ? p : document.createTextNode(String(p)));
      }
      tr.append(td);
    });
    out.push(tr);
  }
  const signature = out.map((tr) => tr.outerHTML).join('');
  if (app.tableShown.get(body) === signature) return;
  app.tableShown.set(body, signature);
  const active = document.activeElement;
  const href = active && body.contains(active) ? active.getAttribute('href') : null;
  body.replaceChildren(...out);
  if (href) body.querySelector(`a[href="${CSS.escape(href)}"]`)?.focus();
}

/** The status line (an aria-live region): changed only when its text changes, so it is quiet. */
function setStatus(text) {
  if (app.status === text) return;
  app.status = text;
  $('status').textContent = text;
}

// ---------------------------------------------------------------------------------------------
// The API

class AuthError extends Error {}

/**
 * GET path with the key; → {status, json} for 200 and 404, throws on anything else (an
 * AuthError on 401/403, after signing out).
 */
async function api(path, { asBlob = false } = {}) {
  const session = app.session;
  const res = await fetch(path, {
    headers: { authorization: `Bearer ${app.key}` },
    cache: 'no-store',
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (res.status === 401 || res.status === 403) {
    if (session === app.session) signOut(`The key was refused (HTTP ${res.status}). Sign in again.`);
    throw new AuthError(`HTTP ${res.status}`);
  }
  if (res.status === 404) return { status: 404, json: null };
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try {
      msg += `: ${(await res.json())?.error?.message ?? ''}`;
    } catch {
      // not JSON
    }
    throw new Error(msg);
  }
  return { status: res.status, json: asBlob ? null : await res.json(), blob: asBlob ? await res.blob() : null };
}

// ---------------------------------------------------------------------------------------------
// Overview

function scopeText(scope) {
  if (!scope) return '';
  return scope.admin ? 'Admin view: all tenants' : `Tenant view: ${scope.tenant}`;
}

function queueKey(q) {
  return `${q.model}|${q.priority}`;
}

function sortQueues(qs) {
  return [...qs].sort((a, b) => String(a.model).localeCompare(String(b.model)) ||
    (PRIORITY_ORDER[a.priority] ?? 9) - (PRIORITY_ORDER[b.priority] ?? 9));
}

function renderTotals(s) {
  const t = s.totals ?? {};
  const oldest = (s.queues ?? []).map((q) => q.oldest_queued_at).filter(isNum);
  const oldestAge = oldest.length > 0 && isNum(s.now) ? s.now - Math.min(...oldest) : null;
  const cards = [
    ['queued', 'Queued', fmtNum(t.queued)],
    ['in-progress', 'In progress', fmtNum(t.in_progress)],
    ['delayed', 'Delayed', fmtNum(t.delayed)],
    ['parked', 'Parked', fmtNum(t.parked)],
    ['accepted-rate', 'Accepted', fmtRate(s.rates?.accepted_per_s)],
    ['completed-rate', 'Completed', fmtRate(s.rates?.completed_per_s)],
    ['oldest', 'Oldest waiting', fmtAge(oldestAge)],
    ['accepted-total', 'Accepted (total)', fmtNum(t.accepted_total)],
    ['completed-total', 'Completed (total)', fmtNum(t.completed_total)],
    ['failed-total', 'Failed (total)', fmtNum(t.failed_total)],
  ];
  $('totals').replaceChildren(...cards.map(([id, label, value]) =>
    el('div', {}, el('dt', {}, label), el('dd', { 'data-testid': `total-${id}` }, value))));
}

function renderQueues(s) {
  const rows = sortQueues(s.queues ?? []).map((q) => ({
    attrs: { 'data-testid': 'queue', 'data-queue': queueKey(q), 'data-model': q.model },
    cells: [
      q.model,
      q.priority,
      { content: fmtNum(q.depth), num: true, attrs: { 'data-testid': 'queue-depth' } },
      isNum(q.oldest_queued_at) && isNum(s.now) ? fmtAge(s.now - q.oldest_queued_at) : '—',
    ],
  }));
  fillTable('queues', rows, 'No queued work.');
}

function pauseCell(d, now) {
  const parts = [];
  if (d.paused) {
    parts.push(badge('PAUSED', 'bad', { 'data-testid': 'paused-badge' }));
    if (isNum(d.paused_until)) {
      const left = isNum(now) ? ` (in ${fmtAge(d.paused_until - now)})` : '';
      parts.push(note(`until ${fmtClock(d.paused_until)}${left}`));
    }
    if (d.pause_reason) parts.push(note(`reason: ${d.pause_reason}`));
  } else {
    parts.push(badge('active', 'ok'));
  }
  const tone = { closed: 'ok', half_open: 'warn', open: 'bad' }[d.breaker] ?? 'warn';
  parts.push(badge(`breaker ${String(d.breaker ?? 'unknown').replace('_', '-')}`, tone, { 'data-testid': 'breaker' }));
  if (d.breaker !== 'closed' && isNum(d.breaker_until)) parts.push(note(`breaker until ${fmtClock(d.breaker_until)}`));
  return parts;
}

function renderDeployments(s) {
  const rows = (s.deployments ?? []).map((d) => ({
    attrs: {
      'data-testid': 'deployment', 'data-model': d.model, 'data-index': d.index,
      'data-paused': d.paused ? 'true' : 'false',
    },
    cells: [
      [el('strong', {}, `${d.model} #${d.index}`), note(`${d.provider ?? '—'} · ${d.upstream_model ?? '—'}`)],
      pauseCell(d, s.now),
      bar(d.requests_available, d.rpm, 'requests available per minute'),
      bar(d.tokens_available, d.tpm, 'tokens available per minute'),
      bar(d.in_flight, d.max_concurrency, 'calls in flight'),
      { content: fmtMs(d.latency_ewma_ms), num: true },
      { content: fmtNum(d.rate_limited_total), num: true, attrs: { 'data-testid': 'rate-limited' } },
      { content: fmtUsd(d.cost_last_hour_usd), num: true },
    ],
  }));
  fillTable('deployments', rows, 'No deployments.');
}

function budgetCell(b) {
  if (!b) return 'none';
  const parts = [badge(String(b.policy ?? 'budget'), b.policy === 'reject' ? 'warn' : 'ok')];
  for (const l of b.limits ?? []) {
    parts.push(el('span', { className: 'note' }, `${l.window}: `), bar(l.spent_usd, l.max_usd, `spent of the ${l.window} budget`, fmtUsd));
  }
  return parts;
}

function renderTenants(s) {
  const rows = (s.tenants ?? []).map((t) => ({
    attrs: { 'data-testid': 'tenant', 'data-tenant': t.tenant },
    cells: [
      t.tenant,
      { content: fmtNum(t.queued), num: true },
      { content: fmtNum(t.running), num: true },
      `${fmtUsd(t.spent_usd?.hour)} / ${fmtUsd(t.spent_usd?.day)} / ${fmtUsd(t.spent_usd?.month)}`,
      budgetCell(t.budget),
    ],
  }));
  fillTable('tenants', rows, 'No tenants with work or spend.');
}

function renderBatches(s) {
  const rows = (s.batches ?? []).map((b) => ({
    attrs: { 'data-testid': 'batch', 'data-batch': b.id },
    cells: [
      el('span', { className: 'mono wrap-any' }, b.id),
      b.tenant ?? '—',
      b.model ?? '—',
      b.status,
      progressBar((b.completed ?? 0) + (b.failed ?? 0), b.total, `batch ${b.id} progress`,
        b.failed ? ` (${fmtNum(b.failed)} failed)` : ''),
      timeEl(b.created_at),
    ],
  }));
  fillTable('batches', rows, 'No batch in progress.');
}

function renderPipelines(s) {
  const rows = (s.pipelines ?? []).map((p) => ({
    attrs: { 'data-testid': 'pipeline', 'data-pipeline': p.id },
    cells: [
      el('span', { className: 'mono wrap-any' }, p.id),
      p.tenant ?? '—',
      p.status,
      progressBar(p.steps_done, p.steps_total, `pipeline ${p.id} steps`),
      progressBar(p.tasks_done, p.tasks_total, `pipeline ${p.id} tasks`),
      timeEl(p.created_at),
    ],
  }));
  fillTable('pipelines', rows, 'No pipeline in progress.');
}

function renderFailures(s) {
  const rows = (s.failures ?? []).map((f) => ({
    attrs: { 'data-testid': 'failure', 'data-code': f.code },
    cells: [
      el('code', {}, f.code ?? '—'),
      f.model ?? '—',
      f.provider ?? '—',
      { content: fmtNum(f.count), num: true },
      timeEl(f.last_at),
      taskLink(f.last_task),
      el('span', { className: 'wrap-any' }, f.last_message ?? ''),
    ],
  }));
  fillTable('failures', rows, 'No failures in the last hour.');
}

/** Keeps the 1 s state samples of the last hour for the chart's live tail (bounded). */
function recordLive(s) {
  if (!isNum(s.now)) return;
  const queues = {};
  for (const q of s.queues ?? []) queues[queueKey(q)] = q.depth;
  app.live.push({ t: s.now, queues, live: true });
  const from = s.now - HOUR_S;
  while (app.live.length > 0 && (app.live.length > LIVE_SAMPLES_MAX || app.live[0].t < from)) app.live.shift();
}

/** The chart's points: the history, then the live samples newer than its last point. */
function chartPoints() {
  const hist = (app.history?.points ?? []).filter((p) => isNum(p.t) && p.queues && typeof p.queues === 'object');
  const lastT = hist.length > 0 ? hist[hist.length - 1].t : -Infinity;
  return hist.concat(app.live.filter((p) => p.t > lastT));
}

function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** Draws the queue-depth lines (SVG, one polyline per alias|priority) and the legend. */
function renderChart() {
  const chart = $('queue-chart');
  const points = chartPoints();
  const w = Math.max(200, Math.round(chart.clientWidth || 800));
  const h = Math.max(120, Math.round(chart.clientHeight || 240));
  chart.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const pad = { l: 44, r: 10, t: 10, b: 22 };
  const keys = new Set();
  for (const p of points) for (const k of Object.keys(p.queues)) keys.add(k);
  const series = [...keys].sort();
  const nodes = [];
  const tMax = points.length > 0 ? points[points.length - 1].t : 0;
  const tMin = points.length > 0 ? Math.max(points[0].t, tMax - HOUR_S) : 0;
  const span = Math.max(60, tMax - tMin);
  let yMaxRaw = 0;
  for (const p of points) for (const v of Object.values(p.queues)) if (isNum(v)) yMaxRaw = Math.max(yMaxRaw, v);
  const yMax = niceMax(yMaxRaw);
  const x = (t) => pad.l + ((t - (tMax - span)) / span) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    nodes.push(svg('line', { class: 'grid', x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) }));
    const label = svg('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = fmtNum(v);
    nodes.push(label);
  }
  nodes.push(svg('line', { class: 'axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: h - pad.b }));
  if (points.length > 0) {
    for (const [t, anchor] of [[tMax - span, 'start'], [tMax, 'end']]) {
      const label = svg('text', { x: x(t), y: h - 6, 'text-anchor': anchor });
      label.textContent = fmtClock(t);
      nodes.push(label);
    }
  }
  // A state sample lists every queue with work: a queue missing from it is empty (0).
  const depthAt = (p, key) => (isNum(p.queues[key]) ? p.queues[key] : p.live ? 0 : null);
  const legend = [];
  series.forEach((key, i) => {
    const pts = points.filter((p) => p.t >= tMax - span && depthAt(p, key) !== null)
      .map((p) => `${x(p.t).toFixed(1)},${y(depthAt(p, key)).toFixed(1)}`);
    if (pts.length === 1) pts.push(pts[0].replace(/^[^,]+/, (v) => String(Number(v) + 2)));
    nodes.push(svg('polyline', { class: `series c${i % 8}`, points: pts.join(' '), 'data-series': key }));
    const last = [...points].reverse().find((p) => depthAt(p, key) !== null);
    legend.push(el('li', {}, el('span', { className: `swatch c${i % 8}`, 'aria-hidden': 'true' }),
      `${key}: ${fmtNum(last ? depthAt(last, key) : null)}`));
  });
  chart.replaceChildren(...nodes);
  $('chart-legend').replaceChildren(...legend);
  const minutes = points.length > 0 ? Math.round(span / 60) : 0;
  $('chart-caption').textContent = series.length === 0
    ? 'Queue depth per alias and priority over the last hour: no samples yet.'
    : `Queue depth per alias and priority over the last ${minutes} min (highest ${fmtNum(yMaxRaw)}); ` +
      'the current depths are in the table below.';
}

function renderState(s) {
  $('scope').textContent = scopeText(s.scope);
  $('f-tenant-wrap').hidden = !s.scope?.admin;
  renderTotals(s);
  renderQueues(s);
  renderDeployments(s);
  renderTenants(s);
  renderBatches(s);
  renderPipelines(s);
  renderFailures(s);
  recordLive(s);
  renderChart();
}

async function pollState() {
  const session = app.session;
  clearTimeout(app.stateTimer);
  try {
    const { json } = await api('/v1/dashboard/state');
    if (session !== app.session) return;
    app.state = json;
    renderState(json);
    setStatus(`Live. ${scopeText(json.scope)}.`);
    $('updated').textContent = `Updated ${fmtClock(json.now)}`;
  } catch (e) {
    if (e instanceof AuthError || session !== app.session) return;
    setStatus(`Cannot load the dashboard state (${e.message}); retrying.`);
  }
  if (session === app.session) app.stateTimer = setTimeout(pollState, STATE_MS);
}

async function pollHistory() {
  const session = app.session;
  clearTimeout(app.historyTimer);
  try {
    const { json } = await api(`/v1/dashboard/history?seconds=${HOUR_S}`);
    if (session !== app.session) return;
    app.history = json;
    renderChart();
  } catch (e) {
    if (e instanceof AuthError || session !== app.session) return;
    // the 1 s state poll reports connection trouble in the status line
  }
  if (session === app.session) app.historyTimer = setTimeout(pollHistory, HISTORY_MS);
}

// ---------------------------------------------------------------------------------------------
// Task list and task page

function tasksQuery(params) {
  const q = new URLSearchParams();
  for (const k of ['status', 'model', 'tenant']) if (params.get(k)) q.set(k, params.get(k));
  q.set('limit', '50');
  return q.toString();
}

async function loadTaskList(params) {
  const session = app.session;
  $('f-status').value = params.get('status') ?? '';
  $('f-model').value = params.get('model') ?? '';
  $('f-tenant').value = params.get('tenant') ?? '';
  try {
    const { json } = await api(`/v1/dashboard/tasks?${tasksQuery(params)}`);
    if (session !== app.session || app.route.view !== 'tasks') return;
    const rows = (json?.data ?? []).map((t) => ({
      attrs: { 'data-testid': 'task-row', 'data-task-id': t.id },
      cells: [taskLink(t.id), t.model, statusBadge(t.status), t.priority,
        { content: `${fmtNum(t.attempts)} / ${fmtNum(t.max_attempts)}`, num: true }, timeEl(t.created_at)],
    }));
    fillTable('tasks', rows, 'No tasks match.');
  } catch (e) {
    if (!(e instanceof AuthError)) setStatus(`Cannot load the task list (${e.message}).`);
  }
}

function statusBadge(status) {
  const tone = status === 'completed' ? 'ok' : (status === 'failed' || status === 'expired') ? 'bad' : 'warn';
  return badge(String(status), tone, { 'data-testid': 'task-status' });
}

function jsonText(v) {
  return v === undefined ? '' : JSON.stringify(v, null, 2);
}

function fact(dt, ...dd) {
  return [el('dt', {}, dt), el('dd', {}, ...dd)];
}

function renderFacts(t) {
  const items = [
    fact('Status', statusBadge(t.status)),
    fact('Kind', t.kind),
    fact('Alias', t.model),
    fact('Priority', t.priority),
    fact('Attempts', `${fmtNum(t.attempts)} of ${fmtNum(t.max_attempts)}`),
  ];
  if (t.tenant) items.push(fact('Tenant', t.tenant));
  if (t.provider) {
    items.push(fact('Provider', `${t.provider.name ?? '—'} · ${t.provider.model ?? '—'}`,
      t.provider.upstream_id ? note(`upstream id ${t.provider.upstream_id}`) : null));
  }
  if (isNum(t.queue_position)) items.push(fact('Queue position', fmtNum(t.queue_position)));
  if (isNum(t.eta_seconds)) items.push(fact('Estimated wait', fmtAge(t.eta_seconds)));
  if (isNum(t.progress)) items.push(fact('Progress', `${fmtNum(t.progress)} %`));
  if (t.usage) items.push(fact('Usage', el('code', {}, JSON.stringify(t.usage))));
  if (t.cost) items.push(fact('Cost', `${fmtUsd(t.cost.amount)} ${t.cost.currency ?? ''}`.trim()));
  if (t.batch_id) items.push(fact('Batch', el('span', { className: 'mono' }, t.batch_id), note(`custom_id ${t.custom_id ?? ''}`)));
  if (t.cached) items.push(fact('Cache', 'served from the cache'));
  $('task-facts').replaceChildren(...items.flat());
}

function timelineItem(t, tone, testid, title, ...details) {
  return el('li', { className: tone, 'data-testid': testid }, timeEl(t), el('strong', {}, title), ...details);
}

/** queued → claimed/started → each upstream attempt → the end → webhook deliveries. */
function renderTimeline(t) {
  const items = [timelineItem(t.created_at, '', 'tl-queued', 'Queued (accepted)')];
  if (isNum(t.started_at)) items.push(timelineItem(t.started_at, '', 'tl-started', 'Claimed by a worker, started'));
  for (const a of Array.isArray(t.attempt_log) ? t.attempt_log : []) {
    const ok = isNum(a.status) && a.status >= 200 && a.status < 300;
    const where = [a.provider, a.model].filter(Boolean).join(' · ');
    const dep = a.deployment !== undefined && a.deployment !== null ? ` (deployment ${a.deployment})` : '';
    const details = [note(`${where}${dep}: HTTP ${a.status ?? '—'} in ${fmtMs(a.latency_ms)}, ${a.outcome ?? '—'}`)];
    if (a.error) details.push(note(`${a.error.code ? `${a.error.code}: ` : ''}${a.error.message ?? ''}`));
    items.push(el('li', { className: ok ? 'ok' : 'bad', 'data-testid': 'attempt', 'data-status': a.status ?? '' },
      timeEl(a.at), el('strong', {}, `Upstream attempt ${a.attempt ?? '?'}`), ...details));
  }
  if (TERMINAL.has(t.status)) {
    const tone = t.status === 'completed' ? 'ok' : 'bad';
    const why = t.error ? note(`${t.error.code ?? t.error.type ?? ''} ${t.error.message ?? ''}`.trim()) : null;
    items.push(timelineItem(t.completed_at, tone, 'tl-end', t.status[0].toUpperCase() + t.status.slice(1), why));
  }
  for (const w of Array.isArray(t.webhook_attempts) ? t.webhook_attempts : []) {
    const ok = isNum(w.status) && w.status >= 200 && w.status < 300;
    const details = [note(`HTTP ${w.status ?? '—'} in ${fmtMs(w.latency_ms)}, ${w.outcome ?? '—'}`)];
    if (w.error) details.push(note(typeof w.error === 'string' ? w.error : JSON.stringify(w.error)));
    items.push(el('li', { className: ok ? 'ok' : 'bad', 'data-testid': 'webhook-attempt' }, timeEl(w.at),
      el('strong', {}, `Webhook ${w.event ?? ''} delivery ${w.attempt ?? ''}`.replace(/\s+/g, ' ')), ...details));
  }
  $('timeline').replaceChildren(...items);
}

function releaseMedia() {
  for (const u of app.mediaUrls) URL.revokeObjectURL(u);
  app.mediaUrls = [];
  app.mediaFor = null;
  $('media').replaceChildren();
  $('media-section').hidden = true;
}

/**
 * Image and video previews: each artifact is fetched with the key (an <img src> cannot send a
 * Bearer header) and shown from a blob: URL, which the CSP allows for img and media.
 */
async function loadMedia(t) {
  const arts = (Array.isArray(t.artifacts) ? t.artifacts : [])
    .filter((a) => /^(image|video)\//.test(String(a.content_type ?? '')));
  if (arts.length === 0 || app.mediaFor === t.id) return;
  app.mediaFor = t.id;
  const session = app.session;
  $('media-section').hidden = false;
  for (const a of arts.slice(0, MEDIA_MAX)) {
    const index = Number.isInteger(a.index) ? a.index : 0;
    const caption = el('figcaption', {}, `Artifact ${index} · ${a.content_type}${isNum(a.bytes) ? ` · ${fmtNum(a.bytes)} bytes` : ''}`);
    const fig = el('figure', { 'data-testid': 'media' }, caption);
    $('media').append(fig);
    if (isNum(a.bytes) && a.bytes > MEDIA_MAX_BYTES) {
      fig.append(note('too large to preview here'));
      continue;
    }
    try {
      const res = await api(`/v1/dashboard/tasks/${encodeURIComponent(t.id)}/content/${index}`, { asBlob: true });
      if (session !== app.session || app.mediaFor !== t.id) return;
      if (res.status !== 200) {
        fig.append(note('not available'));
        continue;
      }
      const url = URL.createObjectURL(res.blob);
      app.mediaUrls.push(url);
      const media = a.content_type.startsWith('image/')
        ? el('img', { src: url, alt: `Image artifact ${index} of task ${t.id}` })
        : el('video', { src: url, controls: true, preload: 'metadata', 'aria-label': `Video artifact ${index} of task ${t.id}` });
      fig.prepend(media);
    } catch (e) {
      if (!(e instanceof AuthError)) fig.append(note(`could not load: ${e.message}`));
    }
  }
}

async function loadTask(id) {
  const session = app.session;
  clearTimeout(app.taskTimer);
  if (app.mediaFor !== id) releaseMedia();
  $('task-h').textContent = `Task ${id}`;
  if (!TASK_ID_RE.test(id)) {
    $('task-missing').hidden = false;
    $('task-body').hidden = true;
    return;
  }
  try {
    const { status, json: t } = await api(`/v1/dashboard/tasks/${encodeURIComponent(id)}`);
    if (session !== app.session || app.route.view !== 'task' || app.route.id !== id) return;
    $('task-missing').hidden = status !== 404;
    $('task-body').hidden = status === 404;
    if (status === 404) return;
    renderFacts(t);
    renderTimeline(t);
    $('task-input').textContent = 'input' in t ? jsonText(t.input) : 'The server did not include the input.';
    $('task-result').textContent = t.result === null || t.result === undefined ? 'No result yet.' : jsonText(t.result);
    $('error-section').hidden = !t.error;
    $('task-error').textContent = t.error ? jsonText(t.error) : '';
    loadMedia(t);
    if (!TERMINAL.has(t.status)) app.taskTimer = setTimeout(() => loadTask(id), TASK_REFRESH_MS);
  } catch (e) {
    if (e instanceof AuthError || session !== app.session) return;
    setStatus(`Cannot load task ${id} (${e.message}).`);
    app.taskTimer = setTimeout(() => loadTask(id), TASK_REFRESH_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Routing, sign-in and sign-out

function parseRoute() {
  const raw = location.hash.replace(/^#/, '');
  const [path, query = ''] = raw.split('?');
  const params = new URLSearchParams(query);
  const m = /^\/tasks\/([^/]+)$/.exec(path);
  if (m) return { view: 'task', id: decodeURIComponent(m[1]) };
  if (path === '/tasks') return { view: 'tasks', params };
  return { view: 'overview' };
}

function showRoute(focus) {
  const route = parseRoute();
  app.route = route;
  clearTimeout(app.taskTimer);
  for (const v of ['overview', 'tasks', 'task']) $(`view-${v}`).hidden = route.view !== v;
  for (const a of document.querySelectorAll('[data-nav]')) {
    const current = a.dataset.nav === (route.view === 'task' ? 'tasks' : route.view);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = route.view === 'task' ? `Task ${route.id} · sluice` : route.view === 'tasks' ? 'Tasks · sluice' : 'sluice dashboard';
  if (route.view !== 'task') releaseMedia();
  if (route.view === 'tasks') loadTaskList(route.params);
  if (route.view === 'task') loadTask(route.id);
  if (route.view === 'overview') renderChart();
  if (focus) $('main').focus();
}

function signedIn() {
  return app.key !== null;
}

function start(key) {
  app.key = key;
  app.session += 1;
  app.live = [];
  app.history = null;
  $('login').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  setStatus('Loading…');
  showRoute(false);
  pollState();
  pollHistory();
}

/** Empties everything the views show, so nothing of one key's data is left for the next. */
function clearViews() {
  for (const body of document.querySelectorAll('main tbody')) body.replaceChildren();
  for (const id of ['totals', 'queue-chart', 'chart-legend', 'task-facts', 'timeline', 'task-input',
    'task-result', 'task-error']) {
    $(id).replaceChildren();
  }
  app.tableShown = new WeakMap();
  app.live = [];
  app.history = null;
}

function signOut(message = '') {
  sessionStorage.removeItem(KEY_STORE);
  app.key = null;
  app.session += 1;
  app.state = null;
  clearTimeout(app.stateTimer);
  clearTimeout(app.historyTimer);
  clearTimeout(app.taskTimer);
  releaseMedia();
  clearViews();
  for (const v of ['overview', 'tasks', 'task']) $(`view-${v}`).hidden = true;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('scope').textContent = '';
  $('updated').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message;
  setStatus(message ? 'Signed out.' : 'Signed out. Enter a key to open the dashboard.');
  $('key').value = '';
  $('key').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const key = $('key').value.trim();
  if (key === '') return;
  $('login-error').textContent = '';
  try {
    const res = await fetch('/v1/dashboard/state', {
      headers: { authorization: `Bearer ${key}` },
      cache: 'no-store',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    await res.arrayBuffer();
    if (res.status === 401 || res.status === 403) {
      $('login-error').textContent = `This key was refused (HTTP ${res.status}).`;
      return;
    }
  } catch (e) {
    $('login-error').textContent = `Cannot reach sluice: ${e.message}`;
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $('key').value = '';
  start(key);
}

function onFilter(ev) {
  ev.preventDefault();
  const id = $('f-id').value.trim();
  if (id !== '') {
    $('f-id').value = '';
    location.hash = `#/tasks/${encodeURIComponent(id)}`;
    return;
  }
  const q = new URLSearchParams();
  for (const k of ['status', 'model', 'tenant']) {
    const v = $(`f-${k}`).value.trim();
    if (v !== '') q.set(k, v);
  }
  const next = `#/tasks${q.toString() ? `?${q}` : ''}`;
  if (location.hash === next) loadTaskList(q);
  else location.hash = next;
}

function init() {
  $('login-form').addEventListener('submit', onLogin);
  $('task-filter').addEventListener('submit', onFilter);
  $('signout').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', () => { if (signedIn()) showRoute(true); });
  window.addEventListener('resize', () => { if (signedIn() && app.route.view === 'overview') renderChart(); });
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) start(key);
  else signOut('');
}

init();
