#!/usr/bin/env node
// Train onnxkit artifacts in Node with onnxruntime-node:
//   node js/demo/node-demo.js DIR [--steps N] [--batches FILE] [--resume STATE] [--save STATE] [--json]
// DIR holds training.onnx, eval.onnx, state.safetensors, meta.json (ok.training_artifacts) and, unless
// --batches names another file, batches.safetensors (js/demo/make_artifacts.py writes both).
// --json prints {"losses": [...], "eval": [...], "accuracy": a | null, ...} instead of one line per step;
// accuracy is eval.onnx's on the batch file's held-out split (`test/...`, as make_artifacts.py writes).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTrainer } from '../src/node.js';
import { readBatches } from './batches.js';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    steps: { type: 'string', default: '20' }, batches: { type: 'string' }, resume: { type: 'string' },
    save: { type: 'string' }, json: { type: 'boolean', default: false },
  },
});
const dir = positionals[0];
if (!dir) {
  console.error('usage: node-demo.js DIR [--steps N] [--batches FILE] [--resume STATE] [--save STATE] [--json]');
  process.exit(2);
}
const trainer = await loadTrainer(dir, { state: opt.resume });
const batches = readBatches(await readFile(opt.batches ?? join(dir, 'batches.safetensors')), trainer.meta);
const losses = [];
const t0 = performance.now();
for (let i = 0; i < Number(opt.steps); i++) {
  const step = trainer.nextStep;
  const { batch, target } = batches.at(step - trainer.meta.step.first);
  const loss = await trainer.step(batch, target);
  losses.push(loss);
  if (!opt.json) console.log(`step ${step}  loss ${loss.toFixed(6)}`);
}
const ms = (performance.now() - t0) / Math.max(1, losses.length);
const { batch } = batches.at(0);
const out = await trainer.evaluate(batch);
let accuracy = null;
if (batches.test) {
  const o = await trainer.evaluate(batches.test.batch), [n, k] = o.dims, t = batches.test.target.data;
  let right = 0;
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (o.data[r * k + j] > o.data[r * k + best]) best = j;
    right += best === Number(t[r]);
  }
  accuracy = right / n;
}
if (opt.save) await writeFile(opt.save, await trainer.exportState());
if (opt.json) {
  console.log(JSON.stringify({ losses, eval: Array.from(out.data, Number), eval_dims: out.dims, accuracy,
    ms_per_step: ms }));
} else {
  console.log(`${losses.length} steps, ${ms.toFixed(2)} ms/step; eval output ${JSON.stringify(out.dims)}` +
    (accuracy === null ? '' : `; held-out accuracy ${(100 * accuracy).toFixed(1)} %`));
  if (opt.save) console.log(`state saved to ${opt.save}`);
}
await trainer.release();
