// node --test: the safetensors reader/writer on its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ORDER_KEY, parseSafetensors, serializeSafetensors } from '../src/safetensors.js';

const sample = () => new Map([
  ['w', { type: 'float32', dims: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) }],
  ['step', { type: 'int64', dims: [], data: BigInt64Array.of(-7n) }],
  ['lr', { type: 'float64', dims: [1], data: Float64Array.of(1e-3) }],
  ['mask', { type: 'bool', dims: [3], data: Uint8Array.of(1, 0, 1) }],
  ['empty', { type: 'int32', dims: [0, 4], data: new Int32Array(0) }],
]);

test('round trip keeps order, dtypes, shapes and values', () => {
  const bytes = serializeSafetensors(sample(), { note: 'x' });
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual([...tensors.keys()], [...sample().keys()]);
  for (const [k, t] of sample()) {
    const u = tensors.get(k);
    assert.equal(u.type, t.type, k);
    assert.deepEqual(u.dims, t.dims, k);
    assert.deepEqual(Array.from(u.data), Array.from(t.data), k);
  }
  assert.equal(metadata.note, 'x');
  assert.deepEqual(JSON.parse(metadata[ORDER_KEY]), [...sample().keys()]);
});

test('header is little-endian length + JSON, data 8-byte aligned', () => {
  const bytes = serializeSafetensors(sample());
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header.w, { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header.step, { dtype: 'I64', shape: [], data_offsets: [24, 32] });
  assert.equal(bytes.byteLength, 8 + n + 24 + 8 + 8 + 3);
});

test('reads a view into a larger buffer and rejects bad files', () => {
  const bytes = serializeSafetensors(sample());
  const padded = new Uint8Array(bytes.byteLength + 5);
  padded.set(bytes, 5);
  assert.deepEqual(Array.from(parseSafetensors(padded.subarray(5)).tensors.get('w').data), [1, 2, 3, 4, 5, 6.5]);
  assert.throws(() => parseSafetensors(new Uint8Array(4)), /shorter/);
  assert.throws(() => parseSafetensors(bytes.subarray(0, bytes.byteLength - 1)), /data_offsets/);
  assert.throws(() => serializeSafetensors({ s: { type: 'string', dims: [1], data: ['a'] } }), /not supported/);
});
