// onnxkit-train for Node: load an artifacts folder from disk and train it with onnxruntime-node (CPU).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Trainer } from './trainer.js';

export * from './trainer.js';
export { ort };

/**
 * Load DIR/meta.json, its training and eval models and its state file.
 * @param {string} dir the artifacts folder written by `ok.training_artifacts`
 * @param {import('./index').LoadOptions} [options] `state`: a safetensors file (path or bytes) to resume from
 * @returns {Promise<Trainer>}
 */
export async function loadTrainer(dir, { state, sessionOptions } = {}) {
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  const bytes = state instanceof Uint8Array ? state : await readFile(state ?? join(dir, meta.state_file));
  return Trainer.create(ort, {
    meta,
    trainingModel: join(dir, meta.training_model),
    evalModel: meta.eval_model ? join(dir, meta.eval_model) : null,
    state: bytes,
  }, sessionOptions);
}
