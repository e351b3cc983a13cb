// What a page costs to load: every request Chromium makes for it until the network is idle,
// summed as bytes on the wire (headers + body), once refusing compression and once as Chromium
// asks by default. Prints one JSON object; bench/bench_page_weight.py runs it against the API.
//
// Usage: node e2e/page-weight.mjs URL

import {chromium} from 'playwright-core';
import {resolveChromium} from './browser.mjs';

async function weigh(browser, url, extraHTTPHeaders) {
  const context = await browser.newContext({extraHTTPHeaders});
  const page = await context.newPage();
  const requests = [];
  page.on('requestfinished', (request) => requests.push(request));
  await page.goto(url, {waitUntil: 'networkidle'});
  const byType = {};
  const encodings = new Set();
  let bytes = 0;
  for (const request of requests) {
    const sizes = await request.sizes();
    const response = await request.response();
    const size = sizes.responseHeadersSize + sizes.responseBodySize;
    const type = request.resourceType();
    byType[type] = (byType[type] || 0) + size;
    encodings.add((response && (await response.headerValue('content-encoding'))) || 'identity');
    bytes += size;
  }
  await context.close();
  return {requests: requests.length, bytes, byType, encodings: [...encodings].sort()};
}

const url = process.argv[2];
if (!url) {
  console.error('usage: node e2e/page-weight.mjs URL');
  process.exit(2);
}
const found = await resolveChromium();
const browser = await chromium.launch({
  executablePath: found.executablePath,
  env: found.env,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
try {
  const uncompressed = await weigh(browser, url, {'Accept-Encoding': 'identity'});
  const compressed = await weigh(browser, url, {});
  console.log(JSON.stringify({url, uncompressed, compressed}));
} finally {
  await browser.close();
}
