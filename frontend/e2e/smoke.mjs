// Browser smoke test for the built site.
//
// Serves build/ from a tiny node:http server on 127.0.0.1 (free port). Any
// request under /api/ is answered by destroying the socket, so the chat
// widget's fetch fails exactly like an unreachable backend. Drives headless
// Chromium with playwright-core and checks the home page, one chapter, and
// the widget's "backend unreachable" state. Run after `npm run build`.

import {createServer} from 'node:http';
import {createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const BUILD_DIR = path.join(ROOT, 'build');
const ARTIFACTS_DIR = path.resolve(ROOT, process.env.E2E_ARTIFACTS_DIR || 'e2e/artifacts');
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 30000);
// Set to a running local stack (`invoke up`): the question then gets a real, cited answer.
const STACK_URL = process.env.E2E_STACK_URL || '';

const SITE_TITLE = 'Physical AI & Humanoid Robotics';
const CHAPTER_PATH = '/docs/kinematics';
const CHAPTER_H1 = 'Robot Kinematics and Dynamics';
const UNREACHABLE_TEXT = 'The assistant backend is unreachable';

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

async function main() {
  if (!STACK_URL && !existsSync(path.join(BUILD_DIR, 'index.html'))) {
    fail(`no build found at ${BUILD_DIR}; run \`npm run build\` first`);
    return;
  }
  if (!existsSync(CHROMIUM_PATH)) {
    fail(`Chromium not found at ${CHROMIUM_PATH}; install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
    return;
  }
  mkdirSync(ARTIFACTS_DIR, {recursive: true});

  const apiHits = [];
  const server = STACK_URL ? null : await startServer(apiHits);
  const base = STACK_URL ? STACK_URL.replace(/\/$/, '') : `http://127.0.0.1:${server.address().port}`;
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'e2e-chromium-'));
  const pageErrors = [];
  let context;

  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
      viewport: {width: 1280, height: 900},
    });
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (err) => pageErrors.push(err.message));

    await check('home page renders its title', async () => {
      const response = await page.goto(`${base}/`, {waitUntil: 'load'});
      if (!response || response.status() !== 200) {
        throw new Error(`GET / returned ${response ? response.status() : 'no response'}`);
      }
      const h1 = page.locator('h1', {hasText: SITE_TITLE});
      await h1.first().waitFor({state: 'visible'});
    });

    await check(`chapter page ${CHAPTER_PATH} renders its h1`, async () => {
      const response = await page.goto(`${base}${CHAPTER_PATH}`, {waitUntil: 'load'});
      if (!response || response.status() !== 200) {
        throw new Error(`GET ${CHAPTER_PATH} returned ${response ? response.status() : 'no response'}`);
      }
      const text = (await page.locator('article h1').first().textContent({timeout: TIMEOUT_MS})) || '';
      if (text.trim() !== CHAPTER_H1) {
        throw new Error(`expected h1 "${CHAPTER_H1}", got "${text.trim()}"`);
      }
    });

    await check('chat widget opens with focus in the question input', async () => {
      await page.getByRole('button', {name: 'Open textbook assistant'}).click();
      await page.getByRole('dialog', {name: 'Ask the textbook'}).waitFor({state: 'visible'});
      const focusedLabel = await page.evaluate(() => {
        const el = globalThis.document.activeElement; // runs in the browser
        return el && el.labels && el.labels[0] ? el.labels[0].textContent : null;
      });
      if (focusedLabel !== 'Your question') {
        throw new Error(`expected focus in "Your question" input, got ${JSON.stringify(focusedLabel)}`);
      }
    });

    if (STACK_URL) {
      await check('a question about a chapter gets an answer citing that chapter', async () => {
        await page.getByLabel('Your question').fill('What is forward kinematics?');
        await page.keyboard.press('Enter');
        const dialog = page.getByRole('dialog', {name: 'Ask the textbook'});
        await dialog.locator('a[href*="/docs/kinematics"]').first().waitFor({state: 'visible'});
      });
      const shot = path.join(ARTIFACTS_DIR, 'stack-cited-answer.png');
      await page.screenshot({path: shot, fullPage: false});
      console.log(`ok - screenshot saved to ${shot}`);
      if (pageErrors.length > 0) {
        throw new Error(`uncaught page errors: ${pageErrors.join(' | ')}`);
      }
      console.log('E2E stack round trip passed');
      return;
    }

    await check('asking a question shows the backend-unreachable message', async () => {
      await page.getByLabel('Your question').fill('What is the zero moment point?');
      await page.keyboard.press('Enter');
      await page.getByText(UNREACHABLE_TEXT).waitFor({state: 'visible'});
      if (!apiHits.some((hit) => hit === 'POST /api/v1/query')) {
        throw new Error(`expected a POST /api/v1/query request, saw ${JSON.stringify(apiHits)}`);
      }
    });

    const screenshot = path.join(ARTIFACTS_DIR, 'smoke-widget-unreachable.png');
    await page.screenshot({path: screenshot, fullPage: false});
    console.log(`ok - screenshot saved to ${screenshot}`);

    if (pageErrors.length > 0) {
      throw new Error(`uncaught page errors: ${pageErrors.join(' | ')}`);
    }
    console.log('E2E smoke test passed');
  } catch (err) {
    fail(err.message);
  } finally {
    if (context) {
      await context.close().catch(() => {});
    }
    if (server) {
      await new Promise((resolve) => server.close(resolve));
      server.closeAllConnections?.();
    }
    rmSync(userDataDir, {recursive: true, force: true});
  }
}

main().catch((err) => fail('unexpected error', err));
