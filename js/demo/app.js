// The browser demo: fetch the artifacts and batches, train with onnxruntime-web, chart the loss, show the
// accuracy and the decision regions of eval.onnx. Query: ?artifacts=URL (default /data/), steps=N,
// auto=1 (train on load), threads=N (WASM threads), ep=webgpu. window.onnxkitDemo exposes the results.
import { loadTrainer, ort } from '../src/web.js';
import { readBatches } from './batches.js';

const q = new URLSearchParams(location.search);
const base = q.get('artifacts') || '/data/';
const $ = (id) => document.getElementById(id);
const COLORS = [[230, 85, 13], [49, 130, 189], [49, 163, 84]];
const demo = { ready: false, done: false, error: null, losses: [], accuracy: null, ep: window.ONNXKIT_EP };
window.onnxkitDemo = demo;

function drawLoss(losses) {
  const c = $('loss'), g = c.getContext('2d'), w = c.width, h = c.height, pad = 36;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#999'; g.beginPath(); g.moveTo(pad, 8); g.lineTo(pad, h - pad); g.lineTo(w - 8, h - pad); g.stroke();
  if (!losses.length) return;
  const max = Math.max(...losses), n = Math.max(losses.length - 1, 1);
  g.fillStyle = '#555'; g.font = '12px sans-serif';
  g.fillText(max.toFixed(2), 2, 14); g.fillText('0', pad - 12, h - pad); g.fillText(`step ${losses.length}`, w - 70, h - 18);
  g.strokeStyle = '#3182bd'; g.lineWidth = 2; g.beginPath();
  losses.forEach((l, i) => {
    const x = pad + (i / n) * (w - pad - 8), y = h - pad - (l / max) * (h - pad - 8);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

const argmax = (d, i, k) => { let b = 0; for (let j = 1; j < k; j++) if (d[i * k + j] > d[i * k + b]) b = j; return b; };
const toPx = (v, size) => ((v + 1.2) / 2.4) * size;

async function drawRegions(trainer, points) {
  const c = $('regions'), g = c.getContext('2d'), n = 60, cell = c.width / n;
  const grid = new Float32Array(n * n * 2);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    grid[(i * n + j) * 2] = -1.2 + (2.4 * (j + 0.5)) / n;
    grid[(i * n + j) * 2 + 1] = 1.2 - (2.4 * (i + 0.5)) / n;
  }
  const out = await trainer.evaluate({ data: grid, dims: [n * n, 2] });
  const k = out.dims[1];
  for (let i = 0; i < n * n; i++) {
    const [r, gr, b] = COLORS[argmax(out.data, i, k) % COLORS.length];
    const tint = (v) => Math.round(255 - (255 - v) * 0.3); // opaque pastel: no seams between cells
    g.fillStyle = `rgb(${tint(r)},${tint(gr)},${tint(b)})`;
    g.fillRect((i % n) * cell, Math.floor(i / n) * cell, cell + 1, cell + 1);
  }
  for (const [x, y, label] of points) {
    const [r, gr, b] = COLORS[label % COLORS.length];
    g.fillStyle = `rgb(${r},${gr},${b})`;
    g.beginPath(); g.arc(toPx(x, c.width), c.height - toPx(y, c.height), 2.2, 0, 7); g.fill();
  }
}

async function accuracy(trainer, batches) {
  let right = 0, total = 0;
  for (let i = 0; i < batches.count; i++) {
    const { batch, target } = batches.at(i);
    const out = await trainer.evaluate(batch);
    const k = out.dims[1];
    for (let r = 0; r < out.dims[0]; r++) { right += argmax(out.data, r, k) === Number(target.data[r]); total++; }
  }
  return right / total;
}

function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function main() {
  if (q.get('threads')) ort.env.wasm.numThreads = Number(q.get('threads'));
  let trainer;
  if (demo.ep === 'webgpu') {
    try { // WebGPU lacks some kernels and dtypes these graphs use: onnxruntime places those on WASM
      trainer = await loadTrainer(base, { sessionOptions: { executionProviders: ['webgpu', 'wasm'] } });
    } catch (e) { // the WebGPU bundle's WASM build lacks kernels too (Cast-21 in 1.31): reload on the WASM bundle
      console.warn(`WebGPU bundle cannot run these graphs, reloading with WASM: ${e}`);
      q.set('ep', 'wasm');
      q.set('webgpu_failed', String(e).slice(0, 200));
      location.replace(`${location.pathname}?${q}`);
      return;
    }
  }
  trainer ??= await loadTrainer(base, { sessionOptions: { executionProviders: ['wasm'] } });
  $('ep').textContent = demo.ep === 'webgpu' ? 'webgpu → wasm' : q.get('webgpu_failed') ? 'wasm (WebGPU failed)' : 'wasm';
  const batchBytes = new Uint8Array(await (await fetch(new URL('batches.safetensors', new URL(base, location.href)))).arrayBuffer());
  const batches = readBatches(batchBytes, trainer.meta);
  const points = [];
  for (let i = 0; i < batches.count; i++) {
    const { batch, target } = batches.at(i);
    if (batch.dims[1] !== 2) break; // the regions plot is for 2-D inputs
    for (let r = 0; r < batch.dims[0]; r++) points.push([batch.data[2 * r], batch.data[2 * r + 1], Number(target.data[r])]);
  }
  const twoD = points.length > 0;
  const refresh = async () => {
    demo.accuracy = await accuracy(trainer, batches);
    $('accuracy').textContent = `${(100 * demo.accuracy).toFixed(1)} %`;
    if (twoD) await drawRegions(trainer, points);
  };
  demo.exportStateBase64 = async () => toBase64(await trainer.exportState());
  demo.trainer = trainer;
  drawLoss([]);
  await refresh();

  async function train(steps) {
    $('train').disabled = true;
    let busy = 0;
    for (let i = 0; i < steps; i++) {
      const { batch, target } = batches.at(trainer.nextStep - trainer.meta.step.first);
      const t0 = performance.now();
      demo.losses.push(await trainer.step(batch, target));
      busy += performance.now() - t0;
      $('status').textContent = `step ${trainer.nextStep - 1}, loss ${demo.losses.at(-1).toFixed(4)}`;
      if (i % 10 === 9 || i === steps - 1) {
        drawLoss(demo.losses);
        await new Promise(requestAnimationFrame);
      }
    }
    demo.msPerStep = busy / steps;
    $('speed').textContent = `${demo.msPerStep.toFixed(2)} ms/step`;
    await refresh();
    $('train').disabled = false;
    $('download').disabled = false;
  }

  $('train').onclick = () => train(Number($('steps').value)).catch(fail);
  $('download').onclick = async () => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([await trainer.exportState()]));
    a.download = 'state.safetensors';
    a.click();
  };
  $('regions').onclick = async (ev) => {
    const c = $('regions'), r = c.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / c.width) * 2.4 - 1.2, y = 1.2 - ((ev.clientY - r.top) / c.height) * 2.4;
    const out = await trainer.evaluate({ data: Float32Array.of(x, y), dims: [1, 2] });
    $('picked').textContent = `(${x.toFixed(2)}, ${y.toFixed(2)}) → class ${argmax(out.data, 0, out.dims[1])}`;
  };
  $('train').disabled = false;
  $('status').textContent = 'ready';
  demo.ready = true;
  if (q.get('steps')) $('steps').value = q.get('steps');
  if (q.get('auto')) await train(Number($('steps').value));
  demo.done = true;
}

function fail(e) {
  demo.error = String(e && e.stack ? e.stack : e);
  $('status').textContent = `error: ${e}`;
  demo.done = true;
}

main().catch(fail);
