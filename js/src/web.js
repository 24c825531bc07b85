// onnxkit-train for the browser: fetch an artifacts folder by URL and train it with onnxruntime-web
// (WASM by default; pass sessionOptions.executionProviders to try 'webgpu' first).
// The page maps the bare specifier 'onnxruntime-web' (an import map or a bundler).
import * as ort from 'onnxruntime-web';
import { Trainer } from './trainer.js';

export * from './trainer.js';
export { ort };

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`onnxkit-train: GET ${url}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/**
 * Fetch BASE/meta.json, its training and eval models and its state file.
 * @param {string | URL} base the artifacts folder's URL (relative URLs resolve against the page)
 * @param {import('./index').LoadOptions} [options] `state`: a safetensors URL or bytes to resume from
 * @returns {Promise<Trainer>}
 */
export async function loadTrainer(base, { state, sessionOptions = { executionProviders: ['wasm'] } } = {}) {
  const root = new URL(String(base).endsWith('/') ? String(base) : `${base}/`, globalThis.location?.href);
  const meta = JSON.parse(new TextDecoder().decode(await bytes(new URL('meta.json', root))));
  const [trainingModel, evalModel, st] = await Promise.all([
    bytes(new URL(meta.training_model, root)),
    meta.eval_model ? bytes(new URL(meta.eval_model, root)) : null,
    state instanceof Uint8Array ? state : bytes(state ? new URL(state, root) : new URL(meta.state_file, root)),
  ]);
  return Trainer.create(ort, { meta, trainingModel, evalModel, state: st }, sessionOptions);
}
