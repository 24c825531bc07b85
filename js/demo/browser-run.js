#!/usr/bin/env node
// Run the browser demo headless: serve js/ and DIR on 127.0.0.1, open /demo/ in Chromium (Debian's, via
// playwright-core), train N steps with onnxruntime-web's WASM backend and print the results as JSON:
//   node js/demo/browser-run.js DIR [--steps N] [--chromium PATH] [--screenshot PNG] [--save STATE] [--timeout S]
// {"losses": [...], "accuracy": a, "ms_per_step": t, "ep": "wasm"}. Everything it starts stops when it ends.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { serve } from './serve.js';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    steps: { type: 'string', default: '20' }, chromium: { type: 'string' }, screenshot: { type: 'string' },
    save: { type: 'string' }, timeout: { type: 'string', default: '120' }, ep: { type: 'string', default: 'wasm' },
    threads: { type: 'string', default: '1' },
  },
});
if (!positionals[0]) {
  console.error('usage: browser-run.js DIR [--steps N] [--chromium PATH] [--screenshot PNG] [--save STATE]');
  process.exit(2);
}
const watchdog = setTimeout(() => { console.error('browser-run: timed out'); process.exit(124); },
  Number(opt.timeout) * 1000);
const server = await serve({ port: 0, data: positionals[0] });
let browser;
try {
  browser = await chromium.launch({
    executablePath: opt.chromium || process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run']  // playwright gives it a fresh temporary profile,
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  const console_ = [];
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e}`));
  const url = `http://127.0.0.1:${server.address().port}/demo/?artifacts=/data/&auto=1&steps=${opt.steps}` +
    `&threads=${opt.threads}&ep=${opt.ep}`;
  await page.goto(url);
  await page.waitForFunction(() => window.onnxkitDemo && window.onnxkitDemo.done, null,
    { timeout: Number(opt.timeout) * 1000 });
  const r = await page.evaluate(async () => {
    const d = window.onnxkitDemo;
    return { losses: d.losses, accuracy: d.accuracy, ms_per_step: d.msPerStep, ep: d.ep, error: d.error,
      crossOriginIsolated: window.crossOriginIsolated,
      page: { lossPoints: d.losses.length, accuracyText: document.getElementById('accuracy').textContent,
        status: document.getElementById('status').textContent, canvases: document.querySelectorAll('canvas').length },
      state: d.error ? null : await d.exportStateBase64() };
  });
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot, fullPage: true });
  if (opt.save && r.state) await writeFile(opt.save, Buffer.from(r.state, 'base64'));
  delete r.state;
  r.console = console_;
  console.log(JSON.stringify(r));
  process.exitCode = r.error ? 1 : 0;
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
  server.closeAllConnections?.();
  clearTimeout(watchdog);
}
