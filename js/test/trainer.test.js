// node --test: the Trainer on real artifacts. tests/test_js.py writes them and sets ONNXKIT_TRAIN_ARTIFACTS
// (python js/demo/make_artifacts.py DIR writes a set by hand); without it these tests are skipped.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { NEXT_STEP_KEY, loadTrainer, parseSafetensors } from '../src/node.js';
import { readBatches } from '../demo/batches.js';

const dir = process.env.ONNXKIT_TRAIN_ARTIFACTS;
const skip = dir ? false : 'set ONNXKIT_TRAIN_ARTIFACTS to an artifacts folder with batches.safetensors';

async function setup(options) {
  const trainer = await loadTrainer(dir, options);
  const batches = readBatches(await readFile(join(dir, 'batches.safetensors')), trainer.meta);
  const run = async (n) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const { batch, target } = batches.at(trainer.nextStep - trainer.meta.step.first);
      out.push(await trainer.step(batch, target));
    }
    return out;
  };
  return { trainer, batches, run };
}

test('losses are a pure function of the artifacts and the batches', { skip }, async () => {
  const a = await setup();
  const b = await setup();
  const la = await a.run(6);
  assert.deepEqual(await b.run(6), la);
  assert.ok(la.every(Number.isFinite));
  assert.equal(new Set(la).size, la.length);
});

test('exportState resumes the same trajectory', { skip }, async () => {
  const whole = await setup();
  const all = await whole.run(8);
  const first = await setup();
  await first.run(5);
  const bytes = await first.trainer.exportState();
  assert.equal(parseSafetensors(bytes).metadata[NEXT_STEP_KEY], '6');
  const resumed = await setup({ state: bytes });
  assert.equal(resumed.trainer.nextStep, 6);
  assert.deepEqual(await resumed.run(3), all.slice(5));
});

test('evaluate, stateDict and a zero learning rate', { skip }, async () => {
  const { trainer, batches, run } = await setup();
  const { batch } = batches.at(0);
  const out = await trainer.evaluate(batch);
  assert.equal(out.dims[0], batch.dims[0]);
  const params = trainer.stateDict('parameter');
  assert.ok(params.size > 0);
  const before = new Map([...params].map(([k, t]) => [k, Array.from(t.data)]));
  trainer.setLearningRate(0);
  await run(2);
  for (const [k, t] of trainer.stateDict('parameter')) assert.deepEqual(Array.from(t.data), before.get(k), k);
  // a plain array target is cast to the graph's int64
  const { target } = batches.at(0);
  assert.ok(Number.isFinite(await trainer.step(batch, Array.from(target.data, Number))));
});
