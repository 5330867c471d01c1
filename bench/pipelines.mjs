// bench/pipelines.mjs — the client of bench/run's pipelines phase (node, no dependency).
//
//   node bench/pipelines.mjs submit --url http://127.0.0.1:PORT --n 1000 --concurrency 50 \
//        --body-file pipeline.json --auth-env VAR --ids-out ids.tsv [--timeout-s 60]
//   node bench/pipelines.mjs check --url http://127.0.0.1:PORT --ids ids.tsv --auth-env VAR \
//        --steps 3 [--expect-text TEXT] [--concurrency 16] [--timeout-s 120]
//
// submit: POSTs the pipeline in --body-file to /v1/pipelines N times, at most --concurrency
// requests in flight (keep-alive), and writes one line per accepted pipeline to --ids-out:
// "<id>\t<ms when its POST was sent>\t<ms when the 202 came back>" (Date.now(), the same clock as
// the server's on this machine). Each answer must be 202 with status "queued". Prints one line:
//   PIPELINES_SUBMIT sent= ok= bad= errors= first_sent_ms= last_answer_ms= seconds=
// and, for the first answer that was not a 202, PIPELINES_SAMPLE <status> <body>.
//
// check: GETs /v1/pipelines/{id} for every id of --ids (after the run: the clock has stopped)
// and counts each pipeline's status; a completed pipeline must have --steps steps, each
// completed with one task, and (with --expect-text) its final step's output text must be TEXT.
// Prints one line:
//   PIPELINES_CHECK n= completed= failed= cancelled= expired= other= steps_ok= text_ok= errors=
//       task_ids=<pipeline id>,<task id>,<task id>,... (the first pipeline's, for MEMORY USAGE)
// and PIPELINES_BAD <id> <json> for the first pipeline that is not completed with every step.
// Exits 0 when every request got an answer (the caller judges the counts), 1 on a usage error
// or a time limit, 2 on a bad argument.
import fs from 'node:fs';

function usage(msg) {
  if (msg) process.stderr.write(`bench/pipelines.mjs: ${msg}\n`);
  process.stderr.write('usage: node bench/pipelines.mjs submit|check --url URL [options] (see the file)\n');
  process.exit(2);
}

const mode = process.argv[2];
if (mode !== 'submit' && mode !== 'check') usage(`unknown mode '${mode ?? ''}'`);
const opt = {};
for (let i = 3; i < process.argv.length; i += 2) {
  const k = process.argv[i];
  if (!k.startsWith('--') || i + 1 >= process.argv.length) usage(`bad argument '${k}'`);
  opt[k.slice(2)] = process.argv[i + 1];
}
const intOpt = (name, def, min, max) => {
  const v = opt[name] === undefined ? def : Number(opt[name]);
  if (!Number.isInteger(v) || v < min || v > max) usage(`--${name} wants ${min}..${max}`);
  return v;
};
if (!opt.url) usage('--url is required');
const base = opt.url.replace(/\/+$/, '');
const key = opt['auth-env'] ? process.env[opt['auth-env']] : undefined;
if (opt['auth-env'] && !key) usage(`the environment variable ${opt['auth-env']} is empty`);
const headers = { 'content-type': 'application/json' };
if (key) headers.authorization = `Bearer ${key}`;
const timeoutS = intOpt('timeout-s', mode === 'submit' ? 60 : 120, 1, 3600);
const deadline = Date.now() + timeoutS * 1000;

// Runs job(i) for i in [0, n) with at most `width` running at once; every job is bounded by the
// request timeout, the whole by the deadline.
async function pool(n, width, job) {
  let next = 0;
  async function lane() {
    while (next < n) {
      if (Date.now() > deadline) throw new Error(`time limit of ${timeoutS} s reached`);
      const i = next++;
      await job(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, n) }, lane));
}

async function request(method, path, body) {
  const res = await fetch(base + path, {
    method, headers, body, signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, text };
}

async function submit() {
  const n = intOpt('n', 1000, 1, 1_000_000);
  const width = intOpt('concurrency', 50, 1, 1024);
  if (!opt['body-file'] || !opt['ids-out']) usage('submit wants --body-file and --ids-out');
  const body = fs.readFileSync(opt['body-file'], 'utf8');
  JSON.parse(body); // a bad file is a usage error, not n bad answers
  const rows = new Array(n);
  let ok = 0, bad = 0, errors = 0, sample = null, first = Infinity, last = 0;
  const t0 = Date.now();
  await pool(n, width, async (i) => {
    const sent = Date.now();
    if (sent < first) first = sent;
    let r;
    try {
      r = await request('POST', '/v1/pipelines', body);
    } catch (e) {
      errors++;
      sample ??= `transport ${e.message}`;
      return;
    }
    const got = Date.now();
    if (got > last) last = got;
    let j = null;
    try { j = JSON.parse(r.text); } catch { /* counted below */ }
    if (r.status === 202 && j?.status === 'queued' && typeof j.id === 'string') {
      ok++;
      rows[i] = `${j.id}\t${sent}\t${got}`;
    } else {
      bad++;
      sample ??= `${r.status} ${r.text.slice(0, 400)}`;
    }
  });
  fs.writeFileSync(opt['ids-out'], rows.filter(Boolean).join('\n') + '\n');
  console.log(`PIPELINES_SUBMIT sent=${n} ok=${ok} bad=${bad} errors=${errors} first_sent_ms=${first} ` +
    `last_answer_ms=${last} seconds=${((Date.now() - t0) / 1000).toFixed(2)}`);
  if (sample) console.log(`PIPELINES_SAMPLE ${sample.replace(/\s+/g, ' ')}`);
}

async function check() {
  const width = intOpt('concurrency', 16, 1, 256);
  const nSteps = intOpt('steps', 3, 1, 256);
  if (!opt.ids) usage('check wants --ids');
  const ids = fs.readFileSync(opt.ids, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t')[0]);
  const counts = { completed: 0, failed: 0, cancelled: 0, expired: 0, other: 0 };
  let stepsOk = 0, textOk = 0, errors = 0, badSample = null, taskIds = null;
  await pool(ids.length, width, async (i) => {
    let r;
    try {
      r = await request('GET', `/v1/pipelines/${ids[i]}`);
    } catch (e) {
      errors++;
      badSample ??= `${ids[i]} transport ${e.message}`;
      return;
    }
    let p = null;
    try { p = JSON.parse(r.text); } catch { /* below */ }
    if (r.status !== 200 || p === null) {
      errors++;
      badSample ??= `${ids[i]} ${r.status} ${r.text.slice(0, 400)}`;
      return;
    }
    if (p.status in counts) counts[p.status]++; else counts.other++;
    const steps = Array.isArray(p.steps) ? p.steps : [];
    const good = p.status === 'completed' && steps.length === nSteps &&
      steps.every((s) => s.status === 'completed' && s.task_ids?.length === 1);
    if (good) {
      stepsOk++;
      if (i === 0) taskIds = [p.id, ...steps.map((s) => s.task_ids[0])];
      const final = steps[steps.length - 1].id;
      if (opt['expect-text'] === undefined || p.output?.[final]?.text === opt['expect-text']) textOk++;
      else badSample ??= `${ids[i]} final text ${JSON.stringify(p.output?.[final]?.text)}`;
    } else {
      badSample ??= `${ids[i]} ${JSON.stringify(p).slice(0, 1500)}`;
    }
  });
  console.log(`PIPELINES_CHECK n=${ids.length} completed=${counts.completed} failed=${counts.failed} ` +
    `cancelled=${counts.cancelled} expired=${counts.expired} other=${counts.other} steps_ok=${stepsOk} ` +
    `text_ok=${textOk} errors=${errors} task_ids=${taskIds ? taskIds.join(',') : ''}`);
  if (badSample) console.log(`PIPELINES_BAD ${badSample.replace(/\s+/g, ' ')}`);
}

try {
  await (mode === 'submit' ? submit() : check());
} catch (e) {
  process.stderr.write(`bench/pipelines.mjs: ${e.message}\n`);
  process.exit(1);
}
