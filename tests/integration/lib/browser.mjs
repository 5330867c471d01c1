// tests/integration/lib/browser.mjs — a headless Chromium for the browser tests.
//
// Debian's /usr/bin/chromium driven by playwright-core (an exact version in package.json; it
// downloads no browser of its own). A missing chromium or playwright-core is a test FAILURE
// with a message saying what to install, never a skip.
//
// openBrowser() → {browser, newPage(opts), close()}; each page records its console errors,
// uncaught exceptions, failed requests and Content-Security-Policy violations in page.problems
// so a test can assert the page ran clean under the server's CSP.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM_BIN = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium';

/** Where screenshots go: $SLUICE_TEST_ARTIFACTS or <tmpdir>/sluice-artifacts (created). */
export function artifactsDir() {
  const dir = process.env.SLUICE_TEST_ARTIFACTS || path.join(os.tmpdir(), 'sluice-artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

async function loadPlaywright() {
  try {
    return await import('playwright-core');
  } catch (e) {
    throw new Error('playwright-core is not installed: run `(cd tests/integration && npm ci)` ' +
      `(it is pinned in tests/integration/package.json); import failed: ${e.message}`);
  }
}

/**
 * Launches headless Chromium (the system's, no sandbox: tests run as root in CI). Throws a
 * clear error when the binary is missing.
 */
export async function openBrowser() {
  if (!fs.existsSync(CHROMIUM_BIN)) {
    throw new Error(`${CHROMIUM_BIN} not found: the browser tests need Debian's chromium ` +
      '(apt-get install chromium; scripts/install-deps.sh installs it), or set SLUICE_CHROMIUM');
  }
  const { chromium } = await loadPlaywright();
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    timeout: 30000,
  });

  /** A new page in its own context (own sessionStorage); opts go to browser.newContext. */
  async function newPage(opts = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.problems = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') page.problems.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => page.problems.push(`uncaught: ${err.message}`));
    return page;
  }

  return { browser, newPage, close: () => browser.close() };
}

/** Saves a full-page screenshot as <artifacts>/<name>.png; returns its path. */
export async function screenshot(page, name) {
  const file = path.join(artifactsDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Asserts the page recorded no console error, exception or CSP violation (Chromium reports a
 * blocked inline script/style or a refused source as a console error). `allow` are regexps of
 * messages that are expected (e.g. a 404 the test asked for).
 */
export function assertNoProblems(page, allow = []) {
  const left = page.problems.filter((p) => !allow.some((re) => re.test(p)));
  assert.deepEqual(left, [], `the page reported problems:\n${left.join('\n')}`);
}

/** {scrollWidth, clientWidth} of the document: a page without horizontal scroll has ≤. */
export function pageWidths(page) {
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
}

/**
 * WCAG contrast ratios of the visible text in the page: → [{text, ratio, fg, bg}] of elements
 * whose text colour against the first opaque background behind them is under `min`.
 */
export function lowContrast(page, min = 4.5) {
  return page.evaluate((minRatio) => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const bgOf = (el) => {
      for (let n = el; n; n = n.parentElement) {
        const c = parse(getComputedStyle(n).backgroundColor);
        if (c && c.a >= 1) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(), i = 0; n && i < 20000; n = walker.nextNode(), i++) {
      const el = n.parentElement;
      if (!el || seen.has(el) || n.textContent.trim() === '') continue;
      seen.add(el);
      const r = el.getBoundingClientRect();
      const cs = getComputedStyle(el);
      if (r.width === 0 || r.height === 0 || cs.visibility === 'hidden' || el.closest('[hidden]')) continue;
      const fg = parse(cs.color);
      const bg = bgOf(el);
      if (!fg) continue;
      const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      if (ratio < minRatio) {
        out.push({ text: n.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100,
          fg: cs.color, bg: `rgb(${bg.r}, ${bg.g}, ${bg.b})` });
      }
    }
    return out;
  }, min);
}
