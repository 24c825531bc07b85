// The browser demo: fetch the artifacts and batches, train with onnxruntime-web, chart the loss, show the
// accuracy of eval.onnx, and classify digits drawn on a canvas (when the folder has digits.json, as
// make_artifacts.py writes). Query: ?artifacts=URL (default /data/), steps=N, auto=1 (train on load),
// threads=N (WASM threads), ep=webgpu. window.onnxkitDemo exposes the results.
import { loadTrainer, ort } from '../src/web.js';
import { readBatches } from './batches.js';
import { bitmapToInput, drawingToBitmap, softmax } from './digits.js';

const q = new URLSearchParams(location.search);
const base = new URL(q.get('artifacts') || '/data/', location.href);
const $ = (id) => document.getElementById(id);
const demo = { ready: false, done: false, error: null, losses: [], accuracy: null, ep: window.ONNXKIT_EP,
  canDraw: false, prediction: null };
window.onnxkitDemo = demo;
const EPOCHS = 5;

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

/** Accuracy of eval.onnx on the held-out split when the batch file has one, else on all training batches. */
async function accuracy(trainer, batches) {
  const sets = batches.test ? [batches.test] : Array.from({ length: batches.count }, (_, i) => batches.at(i));
  let right = 0, total = 0;
  for (const { batch, target } of sets) {
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

async function fetchBytes(name) {
  const r = await fetch(new URL(name, base));
  if (!r.ok) throw new Error(`GET ${name}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** The drawing canvas: pointer strokes (mouse, touch, pen); `onStroke` runs when a stroke ends. */
function setUpDrawing(prep, onStroke) {
  const c = $('draw'), g = c.getContext('2d', { willReadFrequently: true });
  g.lineCap = g.lineJoin = 'round';
  g.lineWidth = Math.round(c.width / 8); // thick, like the digits' strokes
  g.strokeStyle = '#000';
  let last = null;
  const at = (ev) => {
    const r = c.getBoundingClientRect();
    return [((ev.clientX - r.left) * c.width) / r.width, ((ev.clientY - r.top) * c.height) / r.height];
  };
  c.addEventListener('pointerdown', (ev) => {
    c.setPointerCapture(ev.pointerId);
    last = at(ev);
    g.beginPath(); g.moveTo(...last); g.lineTo(...last); g.stroke();
  });
  c.addEventListener('pointermove', (ev) => {
    if (!last) return;
    const p = at(ev);
    g.beginPath(); g.moveTo(...last); g.lineTo(...p); g.stroke();
    last = p;
  });
  const end = () => { if (last) { last = null; onStroke(); } };
  c.addEventListener('pointerup', end);
  c.addEventListener('pointercancel', end);
  $('clear').onclick = () => {
    g.clearRect(0, 0, c.width, c.height);
    $('preview').getContext('2d').clearRect(0, 0, prep.size, prep.size);
    $('prediction').textContent = '–';
    $('probs').replaceChildren();
    demo.prediction = null;
  };
  /** The drawing's alpha channel (ink), or null when the canvas is empty. */
  return () => {
    const rgba = g.getImageData(0, 0, c.width, c.height).data;
    const alpha = new Uint8ClampedArray(c.width * c.height);
    for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
    return drawingToBitmap(alpha, c.width, c.height, prep);
  };
}

function showInput(input, prep) {
  const c = $('preview'), g = c.getContext('2d'), img = g.createImageData(prep.size, prep.size);
  for (let i = 0; i < input.length; i++) {
    const v = 255 - Math.round(255 * Math.min(1, Math.max(0, input[i] * prep.std + prep.mean)));
    img.data.set([v, v, v, 255], 4 * i);
  }
  g.putImageData(img, 0, 0);
}

function showPrediction(probs, classes) {
  const best = probs.indexOf(Math.max(...probs));
  $('prediction').textContent = classes[best];
  $('probs').replaceChildren(...probs.flatMap((p, k) => {
    const [label, bar, pct] = ['span', 'div', 'span'].map((tag) => document.createElement(tag));
    label.textContent = classes[k];
    bar.className = k === best ? 'bar top' : 'bar';
    bar.style.width = `${Math.max(1, Math.round(120 * p))}px`;
    pct.textContent = `${(100 * p).toFixed(1)} %`;
    return [label, bar, pct];
  }));
  return best;
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
  const batches = readBatches(await fetchBytes('batches.safetensors'), trainer.meta);
  const first = batches.at(0);
  const batchSize = (Array.isArray(first.batch) ? first.batch[0] : first.batch).dims[0];
  // digits.json (make_artifacts.py) says how a drawing becomes an input; other artifacts have no drawing panel
  const prep = await fetchBytes('digits.json').then((b) => JSON.parse(new TextDecoder().decode(b)), () => null);
  $('data').textContent = `${prep ? prep.dataset : 'batches.safetensors'}, ${batches.count} batches of ${batchSize}` +
    (batches.test ? `, ${batches.test.target.dims[0]} held out` : '');
  $('accuracy-label').textContent = batches.test
    ? `accuracy (eval.onnx, ${batches.test.target.dims[0]} held-out images)` : 'accuracy (eval.onnx, all batches)';
  $('steps').value = q.get('steps') || EPOCHS * batches.count;
  const showEpochs = () => {
    $('epochs').textContent = `(${(Number($('steps').value) / batches.count).toFixed(1)} epochs)`;
  };
  $('steps').oninput = showEpochs;
  showEpochs();

  let readDrawing = () => null;
  const classify = async () => {
    const bitmap = readDrawing();
    if (!bitmap) return null;
    const { input } = bitmapToInput(bitmap, prep);
    showInput(input, prep);
    const out = await trainer.evaluate({ data: input, dims: [1, 1, prep.size, prep.size] });
    const probabilities = softmax(out.data);
    const label = showPrediction(probabilities, prep.classes);
    demo.prediction = { label, probabilities, ink: bitmap.reduce((a, b) => a + b, 0) };
    return demo.prediction;
  };
  if (prep) {
    readDrawing = setUpDrawing(prep, () => classify().catch(fail));
    demo.canDraw = true;
    demo.classify = classify;
  } else {
    $('draw-panel').title = 'drawing needs digit artifacts (digits.json from js/demo/make_artifacts.py)';
    $('draw-panel').style.opacity = 0.4;
  }

  const refresh = async () => {
    demo.accuracy = await accuracy(trainer, batches);
    $('accuracy').textContent = `${(100 * demo.accuracy).toFixed(1)} %`;
    await classify();
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
      if (i % 5 === 4 || i === steps - 1) {
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
  $('train').disabled = false;
  $('status').textContent = 'ready';
  demo.ready = true;
  if (q.get('auto')) await train(Number($('steps').value));
  demo.done = true;
}

function fail(e) {
  demo.error = String(e && e.stack ? e.stack : e);
  $('status').textContent = `error: ${e}`;
  demo.done = true;
}

main().catch(fail);
