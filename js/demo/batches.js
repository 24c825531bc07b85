// The demos' batch file: a safetensors file holding, for each of meta.data and meta.target, the batches
// stacked on a leading axis ([B, N, ...]); step i trains on batch i % B. Optional `test/<name>` tensors
// ([T, ...], unbatched) hold a held-out split.
import { parseSafetensors } from '../src/safetensors.js';

/**
 * @param {Uint8Array} bytes the batch file
 * @param {import('../src/index').Meta} meta
 * @returns {{count: number, at: (i: number) => {batch: object | object[], target: object},
 *   test: {batch: object | object[], target: object} | null}} test: the held-out split, when the file has one
 */
export function readBatches(bytes, meta) {
  const { tensors } = parseSafetensors(bytes);
  const get = (name) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`batch file has no ${name}`);
    return t;
  };
  const slice = (t, i) => {
    const dims = t.dims.slice(1);
    const n = dims.reduce((a, b) => a * b, 1);
    return { type: t.type, dims, data: t.data.subarray(i * n, (i + 1) * n) };
  };
  const data = meta.data.map(get);
  const target = get(meta.target);
  const count = target.dims[0];
  const held = [...meta.data, meta.target].map((name) => tensors.get(`test/${name}`));
  const test = held.every(Boolean)
    ? { batch: held.length === 2 ? held[0] : held.slice(0, -1), target: held.at(-1) } : null;
  return {
    count,
    test,
    at(i) {
      const k = i % count;
      const batch = data.map((t) => slice(t, k));
      return { batch: batch.length === 1 ? batch[0] : batch, target: slice(target, k) };
    },
  };
}
