// Browser smoke test and accessibility audit of the built site.
//
// Serves build/ from a tiny node:http server on 127.0.0.1 (free port). Any request under /api/
// is answered by destroying the socket, so the chat widget's fetch fails exactly like an
// unreachable backend. Drives headless Chromium (see browser.mjs for which one) with
// playwright-core and checks:
//   - the home page and a chapter render;
//   - the widget's keyboard behaviour: Tab reaches the toggle with a visible focus ring,
//     Enter and Space open the dialog with focus in the input, Escape and × close it and return
//     focus, aria-expanded/aria-controls follow;
//   - the widget's "backend unreachable" state;
//   - an axe-core audit of every page in the sitemap, with the widget closed and open (showing
//     its error), in the light and dark themes, at desktop and phone (390×844) sizes. Any
//     violation fails the run, naming the rule, the page and the element.
// Run after `npm run build`. With E2E_STACK_URL (a running `invoke up`), it asks a question
// instead and checks the answer cites the chapter.

import {createServer} from 'node:http';
import {createReadStream, existsSync, mkdirSync, readdirSync, statSync} from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';
import {resolveChromium} from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const BUILD_DIR = path.join(ROOT, 'build');
const DOCS_DIR = path.join(ROOT, 'docs');
const ARTIFACTS_DIR = path.resolve(ROOT, process.env.E2E_ARTIFACTS_DIR || 'e2e/artifacts');
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 30000);
// Set to a running local stack (`invoke up`): the question then gets a real, cited answer.
const STACK_URL = process.env.E2E_STACK_URL || '';
const AXE_SCRIPT = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const SITE_TITLE = 'Physical AI & Humanoid Robotics';
const CHAPTER_PATH = '/docs/kinematics';
const CHAPTER_H1 = 'Robot Kinematics and Dynamics';
const UNREACHABLE_TEXT = 'The assistant cannot be reached right now';
const TOGGLE_NAME = 'Ask the book';
const CLOSE_NAME = 'Close textbook assistant';
const DIALOG_NAME = 'Ask the textbook';
const INPUT_LABEL = 'Your question';
const WIDGET = '[data-chat-widget]';
// The most Tab presses from the top of a chapter to the toggle (the last control on the page).
const MAX_TABS = 400;

const THEMES = ['light', 'dark'];
const SIZES = {
  desktop: {viewport: {width: 1280, height: 900}},
  phone: {viewport: {width: 390, height: 844}, isMobile: true, hasTouch: true},
};

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml; charset=utf-8',
  '.woff2': 'font/woff2',
};

function fail(message, err) {
  console.error(`E2E FAILED: ${message}`);
  if (err) {
    console.error(err && err.stack ? err.stack : String(err));
  }
  process.exitCode = 1;
}

function resolveFile(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  const candidate = path.normalize(path.join(BUILD_DIR, decoded));
  if (!candidate.startsWith(BUILD_DIR)) {
    return null; // path traversal
  }
  const options = [candidate, path.join(candidate, 'index.html'), `${candidate}.html`];
  for (const option of options) {
    if (existsSync(option) && statSync(option).isFile()) {
      return option;
    }
  }
  return null;
}

function startServer(apiHits) {
  const server = createServer((req, res) => {
    const urlPath = new URL(req.url, 'http://127.0.0.1').pathname;
    if (urlPath.startsWith('/api/')) {
      apiHits.push(`${req.method} ${urlPath}`);
      req.socket.destroy(); // behave like an unreachable backend
      return;
    }
    const file = resolveFile(urlPath);
    if (!file) {
      const notFound = path.join(BUILD_DIR, '404.html');
      res.writeHead(404, {'Content-Type': MIME['.html']});
      if (existsSync(notFound)) {
        createReadStream(notFound).pipe(res);
      } else {
        res.end('Not found');
      }
      return;
    }
    res.writeHead(200, {'Content-Type': MIME[path.extname(file)] || 'application/octet-stream'});
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (err) {
    throw new Error(`${name}: ${err.message}`);
  }
}

/** Every page the build lists in its sitemap (paths), checked to cover every doc source. */
async function sitePages(base) {
  const response = await fetch(`${base}/sitemap.xml`);
  if (!response.ok) {
    throw new Error(`GET /sitemap.xml returned ${response.status}: cannot list the pages to audit`);
  }
  const xml = await response.text();
  const pages = [...xml.matchAll(/<loc>([^<]+)<\/loc>/g)].map((match) => new URL(match[1]).pathname);
  const docSources = readdirSync(DOCS_DIR).filter((name) => /\.mdx?$/.test(name));
  const docPages = pages.filter((page) => page.startsWith('/docs/'));
  if (docPages.length < docSources.length) {
    throw new Error(
      `the sitemap lists ${docPages.length} doc pages for ${docSources.length} doc sources`,
    );
  }
  return pages;
}

async function goto(page, url) {
  const response = await page.goto(url, {waitUntil: 'load'});
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${url} returned ${response ? response.status() : 'no response'}`);
  }
  // React has hydrated once Docusaurus marks the root element; before that, clicks do nothing.
  await page.locator('html[data-has-hydrated="true"]').waitFor({state: 'attached'});
}

/** What document.activeElement is, in words a failure message can show. */
function describeFocus(page) {
  return page.evaluate(() => {
    const el = globalThis.document.activeElement; // runs in the browser
    if (!el) {
      return 'nothing';
    }
    const label = el.labels && el.labels[0] ? ` labelled "${el.labels[0].textContent}"` : '';
    return `<${el.tagName.toLowerCase()}${el.id ? ` id="${el.id}"` : ''}>` +
      `${label} "${(el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 40)}"`;
  });
}

async function expectFocus(page, locator, what) {
  const focused = await locator.evaluate((el) => el === globalThis.document.activeElement);
  if (!focused) {
    throw new Error(`expected focus on ${what}, it is on ${await describeFocus(page)}`);
  }
}

async function expectAttribute(locator, name, expected, what) {
  const actual = await locator.getAttribute(name);
  if (actual !== expected) {
    throw new Error(`${what}: expected ${name}=${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** The toggle is expanded and controls the visible dialog, with focus in the input. */
async function expectOpen(page, toggle, how) {
  const dialog = page.getByRole('dialog', {name: DIALOG_NAME});
  await dialog.waitFor({state: 'visible'});
  await expectAttribute(toggle, 'aria-expanded', 'true', `after ${how}`);
  await expectAttribute(toggle, 'aria-controls', await dialog.getAttribute('id'), `after ${how}`);
  await expectFocus(page, page.getByLabel(INPUT_LABEL), `the "${INPUT_LABEL}" input after ${how}`);
}

/** The dialog is gone, the toggle collapsed and controlling nothing, and focused again. */
async function expectClosed(page, toggle, how) {
  await page.getByRole('dialog').waitFor({state: 'detached'});
  await expectAttribute(toggle, 'aria-expanded', 'false', `after ${how}`);
  await expectAttribute(toggle, 'aria-controls', null, `after ${how}`);
  await expectFocus(page, toggle, `the toggle after ${how}`);
}

async function keyboardChecks(page, base) {
  await goto(page, `${base}${CHAPTER_PATH}`);
  // Its name changes with its state, its aria-expanded stays: the one widget button with it.
  const toggle = page.locator(`${WIDGET} button[aria-expanded]`);
  await expectAttribute(toggle, 'aria-expanded', 'false', 'on load');
  const name = ((await toggle.getAttribute('aria-label')) || (await toggle.textContent())).trim();
  if (name !== TOGGLE_NAME) {
    throw new Error(`expected the toggle to be named "${TOGGLE_NAME}", it is "${name}"`);
  }

  await check('Tab reaches the chat toggle, which shows a visible focus ring', async () => {
    let presses = 0;
    while (!(await toggle.evaluate((el) => el === globalThis.document.activeElement))) {
      if (++presses > MAX_TABS) {
        throw new Error(`not focused after ${MAX_TABS} Tab presses`);
      }
      await page.keyboard.press('Tab');
    }
    const ring = await toggle.evaluate((el) => {
      const style = globalThis.getComputedStyle(el);
      return {
        focusVisible: el.matches(':focus-visible'),
        style: style.outlineStyle,
        width: parseFloat(style.outlineWidth),
      };
    });
    if (!ring.focusVisible || ring.style === 'none' || !(ring.width >= 2)) {
      throw new Error(`no visible focus ring: ${JSON.stringify(ring)}`);
    }
  });

  await check('Enter opens the dialog with focus in the input; Escape closes it', async () => {
    await page.keyboard.press('Enter');
    await expectOpen(page, toggle, 'Enter');
    await page.keyboard.press('Escape');
    await expectClosed(page, toggle, 'Escape');
  });

  await check('Space opens the dialog; the × button closes it', async () => {
    await page.keyboard.press('Space');
    await expectOpen(page, toggle, 'Space');
    await page.keyboard.press('Shift+Tab'); // the × button precedes the input
    await expectFocus(page, page.getByRole('button', {name: CLOSE_NAME}).first(), 'the × button');
    await page.keyboard.press('Enter');
    await expectClosed(page, toggle, '×');
  });
}

/** axe-core over the page, or over the elements matching `selector`; the violations. */
function axeViolations(page, selector) {
  return page.evaluate(async (include) => {
    const {axe} = globalThis; // runs in the browser, injected by the init script
    // Experimental rules too: label-content-name-mismatch (WCAG 2.5.3) is one.
    const experimental = axe.getRules(['experimental']).map((rule) => rule.ruleId);
    const results = await axe.run(include || globalThis.document, {
      resultTypes: ['violations'],
      rules: Object.fromEntries(experimental.map((id) => [id, {enabled: true}])),
    });
    return results.violations.map((violation) => ({
      rule: violation.id,
      impact: violation.impact,
      help: violation.help,
      elements: violation.nodes.map((node) => node.target.join(' ')),
    }));
  }, selector);
}

/**
 * The audit can fail: planted on a page, a low-contrast paragraph and a button whose name does
 * not start with its visible text (an experimental rule) are both reported.
 */
async function auditSelfCheck(page, base) {
  await check('axe reports violations planted on a page (the audit can fail)', async () => {
    await goto(page, `${base}/`);
    await page.evaluate(() => {
      const plant = globalThis.document.createElement('div');
      plant.id = 'planted';
      plant.innerHTML = '<p style="color:#aaa;background:#fff">Faint text</p>' +
        '<button type="button" aria-label="Open the assistant">Ask the book</button>';
      globalThis.document.querySelector('main').append(plant);
    });
    const rules = (await axeViolations(page, '#planted')).map((violation) => violation.rule);
    for (const expected of ['color-contrast', 'label-content-name-mismatch']) {
      if (!rules.includes(expected)) {
        throw new Error(`expected a ${expected} violation, axe reported ${JSON.stringify(rules)}`);
      }
    }
  });
}

/** Audit one page in one context: the widget closed, then open showing its error. */
async function auditPage(page, base, pagePath, theme, size, findings) {
  await goto(page, `${base}${pagePath}`);
  const shown = await page.evaluate(() => globalThis.document.documentElement.dataset.theme);
  if (shown !== theme) {
    throw new Error(`${pagePath}: expected the ${theme} theme, the page shows ${shown}`);
  }
  const record = async (state, selector) => {
    for (const violation of await axeViolations(page, selector)) {
      findings.push({...violation, where: `${pagePath} [${theme}, ${size}, widget ${state}]`});
    }
  };
  await record('closed');
  if (size === 'phone') {
    // WCAG 1.4.10 (reflow), which axe does not check: nothing pushes the page sideways.
    const widths = await page.evaluate(() => ({
      page: globalThis.document.documentElement.scrollWidth,
      screen: globalThis.innerWidth,
    }));
    if (widths.page > widths.screen) {
      findings.push({
        rule: 'reflow',
        impact: 'serious',
        help: `the page is ${widths.page}px wide on a ${widths.screen}px screen`,
        elements: ['html'],
        where: `${pagePath} [${theme}, ${size}]`,
      });
    }
  }
  await page.getByRole('button', {name: TOGGLE_NAME}).click();
  await page.getByRole('dialog', {name: DIALOG_NAME}).waitFor({state: 'visible'});
  // Open and showing its error: every element of the freshly opened widget, plus the error.
  await page.getByLabel(INPUT_LABEL).fill('What is the zero moment point?');
  await page.keyboard.press('Enter');
  await page.getByText(UNREACHABLE_TEXT).waitFor({state: 'visible'});
  await record('open, showing its error', WIDGET);
}

/** One theme at one size: its own browser context (theme, viewport), every page audited. */
async function auditContext(browser, base, pages, theme, size, pageErrors) {
  const started = Date.now();
  const findings = [];
  const context = await browser.newContext({...SIZES[size], colorScheme: theme});
  try {
    // Docusaurus reads the chosen theme from localStorage before it renders.
    await context.addInitScript((chosen) => {
      globalThis.localStorage.setItem('theme', chosen);
    }, theme);
    await context.addInitScript({path: AXE_SCRIPT});
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    if (size === 'phone') {
      await check(`on a phone (${theme}) the question input is at least 16px (no zoom on focus)`, async () => {
        await goto(page, `${base}/`);
        await page.getByRole('button', {name: TOGGLE_NAME}).click();
        const px = await page.getByLabel(INPUT_LABEL).evaluate(
          (el) => parseFloat(globalThis.getComputedStyle(el).fontSize),
        );
        if (!(px >= 16)) {
          throw new Error(`font-size is ${px}px`);
        }
      });
    }
    if (theme === THEMES[0] && size === 'desktop') {
      await auditSelfCheck(page, base);
    }
    for (const pagePath of pages) {
      await auditPage(page, base, pagePath, theme, size, findings);
    }
  } finally {
    await context.close();
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`# audited ${pages.length} pages (${theme}, ${size}) in ${seconds} s`);
  return findings;
}

/** Every page in every theme at every size: the contexts run side by side in one browser. */
async function auditSite(browser, base, pages, pageErrors) {
  const combinations = THEMES.flatMap((theme) => Object.keys(SIZES).map((size) => [theme, size]));
  const results = await Promise.all(
    combinations.map(([theme, size]) => auditContext(browser, base, pages, theme, size, pageErrors)),
  );
  return {findings: results.flat(), audited: pages.length * combinations.length};
}

function reportFindings(findings) {
  for (const finding of findings) {
    console.error(
      `axe: ${finding.rule} (${finding.impact}) on ${finding.where}: ${finding.elements.join(' | ')}` +
        ` — ${finding.help}`,
    );
  }
}

async function stackRoundTrip(page, base, pageErrors) {
  await goto(page, `${base}${CHAPTER_PATH}`);
  await check('a question about a chapter gets an answer citing that chapter', async () => {
    await page.getByRole('button', {name: TOGGLE_NAME}).click();
    await page.getByLabel(INPUT_LABEL).fill('What is forward kinematics?');
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', {name: DIALOG_NAME});
    await dialog.locator('a[href*="/docs/kinematics"]').first().waitFor({state: 'visible'});
  });
  const shot = path.join(ARTIFACTS_DIR, 'stack-cited-answer.png');
  await page.screenshot({path: shot, fullPage: false});
  console.log(`ok - screenshot saved to ${shot}`);
  if (pageErrors.length > 0) {
    throw new Error(`uncaught page errors: ${pageErrors.join(' | ')}`);
  }
  console.log('E2E stack round trip passed');
}

async function smoke(page, base, apiHits) {
  await check('home page renders its title', async () => {
    await goto(page, `${base}/`);
    await page.locator('h1', {hasText: SITE_TITLE}).first().waitFor({state: 'visible'});
  });

  await check(`chapter page ${CHAPTER_PATH} renders its h1`, async () => {
    await goto(page, `${base}${CHAPTER_PATH}`);
    const text = (await page.locator('article h1').first().textContent()) || '';
    if (text.trim() !== CHAPTER_H1) {
      throw new Error(`expected h1 "${CHAPTER_H1}", got "${text.trim()}"`);
    }
  });

  await keyboardChecks(page, base);

  await check('asking a question shows the backend-unreachable message', async () => {
    await page.getByRole('button', {name: TOGGLE_NAME}).click();
    await page.getByLabel(INPUT_LABEL).fill('What is the zero moment point?');
    await page.keyboard.press('Enter');
    await page.getByText(UNREACHABLE_TEXT).waitFor({state: 'visible'});
    if (!apiHits.some((hit) => hit === 'POST /api/v1/query')) {
      throw new Error(`expected a POST /api/v1/query request, saw ${JSON.stringify(apiHits)}`);
    }
  });

  const screenshot = path.join(ARTIFACTS_DIR, 'smoke-widget-unreachable.png');
  await page.screenshot({path: screenshot, fullPage: false});
  console.log(`ok - screenshot saved to ${screenshot}`);
}

async function main() {
  const started = Date.now();
  if (!STACK_URL && !existsSync(path.join(BUILD_DIR, 'index.html'))) {
    fail(`no build found at ${BUILD_DIR}; run \`npm run build\` first`);
    return;
  }
  let chromiumToUse;
  try {
    chromiumToUse = await resolveChromium();
  } catch (err) {
    fail(err.message);
    return;
  }
  mkdirSync(ARTIFACTS_DIR, {recursive: true});

  const apiHits = [];
  const server = STACK_URL ? null : await startServer(apiHits);
  const base = STACK_URL ? STACK_URL.replace(/\/$/, '') : `http://127.0.0.1:${server.address().port}`;
  const pageErrors = [];
  let browser;

  try {
    browser = await chromium.launch({
      executablePath: chromiumToUse.executablePath,
      env: chromiumToUse.env,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    });
    console.log(`# Chromium ${browser.version()} (${chromiumToUse.source}: ${chromiumToUse.executablePath})`);
    const context = await browser.newContext(SIZES.desktop);
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (err) => pageErrors.push(err.message));

    if (STACK_URL) {
      await stackRoundTrip(page, base, pageErrors);
      return;
    }
    await smoke(page, base, apiHits);
    await context.close();

    const pages = await sitePages(base);
    const {findings, audited} = await auditSite(browser, base, pages, pageErrors);
    const combinations = `${pages.length} pages × ${THEMES.length} themes × ${Object.keys(SIZES).length} sizes`;
    if (findings.length > 0) {
      reportFindings(findings);
      throw new Error(`axe found ${findings.length} violations over ${combinations}`);
    }
    console.log(`ok - axe: 0 violations on ${audited} page views (${combinations}), ` +
      'each with the widget closed, and open showing its error');

    if (pageErrors.length > 0) {
      throw new Error(`uncaught page errors: ${pageErrors.join(' | ')}`);
    }
    console.log(`E2E smoke test passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    fail(err.message);
  } finally {
    if (browser) {
      await browser.close().catch(() => {});
    }
    if (server) {
      await new Promise((resolve) => server.close(resolve));
      server.closeAllConnections?.();
    }
  }
}

main().catch((err) => fail('unexpected error', err));
