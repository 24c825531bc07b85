#!/usr/bin/env node
// Run the browser demo headless: serve js/ and DIR on 127.0.0.1, open /demo/ in Chromium (Debian's, via
// playwright-core), train N steps with onnxruntime-web's WASM backend, draw a digit with the mouse when the
// page has its drawing canvas (digit artifacts), and print the results as JSON:
//   node js/demo/browser-run.js DIR [--steps N] [--chromium PATH] [--screenshot PNG] [--save STATE] [--timeout S]
// {"losses": [...], "accuracy": a, "ms_per_step": t, "ep": "wasm", "page": {...}, "drawn": {...} | null}.
// Everything it starts stops when it ends.
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
  let drawn = null;
  if (await page.evaluate(() => window.onnxkitDemo.canDraw && !window.onnxkitDemo.error)) {
    // a "7" with the mouse: a bar across the top, then down to the lower left (pointer events, as a user's)
    const box = await page.locator('#draw').boundingBox();
    const pt = (u, v) => [box.x + u * box.width, box.y + v * box.height];
    await page.mouse.move(...pt(0.25, 0.2));
    await page.mouse.down();
    await page.mouse.move(...pt(0.75, 0.2), { steps: 8 });
    await page.mouse.move(...pt(0.4, 0.85), { steps: 12 });
    await page.mouse.up();
    await page.waitForFunction(() => window.onnxkitDemo.prediction || window.onnxkitDemo.error, null,
      { timeout: 10000 });
    drawn = await page.evaluate(() => ({ ...window.onnxkitDemo.prediction,
      text: document.getElementById('prediction').textContent,
      rows: document.getElementById('probs').querySelectorAll('.bar').length }));
  }
  const r = await page.evaluate(async () => {
    const d = window.onnxkitDemo;
    const visible = (id) => {
      const e = document.getElementById(id);
      return !!e && e.getBoundingClientRect().width > 0;
    };
    return { losses: d.losses, accuracy: d.accuracy, ms_per_step: d.msPerStep, ep: d.ep, error: d.error,
      crossOriginIsolated: window.crossOriginIsolated,
      page: { lossPoints: d.losses.length, accuracyText: document.getElementById('accuracy').textContent,
        accuracyLabel: document.getElementById('accuracy-label').textContent,
        status: document.getElementById('status').textContent, canvases: document.querySelectorAll('canvas').length,
        canDraw: d.canDraw,
        elements: Object.fromEntries(['loss', 'accuracy', 'draw', 'clear', 'preview', 'prediction', 'probs', 'train',
          'download'].map((id) => [id, visible(id)])) },
      state: d.error ? null : await d.exportStateBase64() };
  });
  r.drawn = drawn;
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
