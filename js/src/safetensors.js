// safetensors read/write without dependencies: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the raw
// little-endian buffers. Tensors come back as plain {type, dims, data} records whose `type` is an
// onnxruntime-js tensor type ('float32', 'int64', ...), so `new ort.Tensor(type, data, dims)` takes them.

/** safetensors dtype -> [onnxruntime-js type, TypedArray constructor]. */
const DTYPES = {
  F64: ['float64', Float64Array],
  F32: ['float32', Float32Array],
  F16: ['float16', Uint16Array], // raw half-precision bits
  I64: ['int64', BigInt64Array],
  I32: ['int32', Int32Array],
  I16: ['int16', Int16Array],
  I8: ['int8', Int8Array],
  U64: ['uint64', BigUint64Array],
  U32: ['uint32', Uint32Array],
  U16: ['uint16', Uint16Array],
  U8: ['uint8', Uint8Array],
  BOOL: ['bool', Uint8Array],
};
const TO_DTYPE = Object.fromEntries(Object.entries(DTYPES).map(([k, [t]]) => [t, k]));

/** The key under which onnxkit keeps the saved key order (safetensors writers sort the header). */
export const ORDER_KEY = 'onnxkit.keys';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('onnxkit-train: safetensors buffers are little-endian; this platform is big-endian');
}

/**
 * Parse safetensors bytes.
 * @param {ArrayBuffer | ArrayBufferView} bytes
 * @returns {{tensors: Map<string, import('./index').TensorRecord>, metadata: Record<string, string>}}
 *   tensors in their saved order (onnxkit's `onnxkit.keys` metadata when present, else the header's order).
 */
export function parseSafetensors(bytes) {
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes)
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (u8.byteLength < 8) throw new Error('safetensors: file shorter than its 8-byte header length');
  const n = Number(new DataView(u8.buffer, u8.byteOffset, 8).getBigUint64(0, true));
  if (n <= 0 || 8 + n > u8.byteLength) throw new Error(`safetensors: bad header length ${n}`);
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + n)));
  const metadata = header.__metadata__ || {};
  delete header.__metadata__;
  const base = 8 + n;
  let order = Object.keys(header);
  try {
    const saved = JSON.parse(metadata[ORDER_KEY] || 'null');
    if (Array.isArray(saved) && saved.length === order.length && saved.every((k) => k in header)) order = saved;
  } catch { /* keep the header's order */ }
  const tensors = new Map();
  for (const name of order) {
    const { dtype, shape, data_offsets: [begin, end] } = header[name];
    const spec = DTYPES[dtype];
    if (!spec) throw new Error(`safetensors: ${name}: dtype ${dtype} is not supported`);
    const [type, Ctor] = spec;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * Ctor.BYTES_PER_ELEMENT || base + end > u8.byteLength) {
      throw new Error(`safetensors: ${name}: data_offsets [${begin}, ${end}] do not fit ${dtype}${JSON.stringify(shape)}`);
    }
    // slice() copies into a fresh, aligned buffer that the tensor owns
    const data = new Ctor(u8.slice(base + begin, base + end).buffer);
    tensors.set(name, { type, dims: shape.slice(), data });
  }
  return { tensors, metadata };
}

/**
 * Serialize tensors to safetensors bytes, in the given order (kept in the `onnxkit.keys` metadata).
 * @param {Map<string, import('./index').TensorRecord> | Record<string, import('./index').TensorRecord>} tensors
 *   records or onnxruntime Tensors (anything with `type`, `dims` and a CPU `data` typed array)
 * @param {Record<string, string>} [metadata]
 * @returns {Uint8Array}
 */
export function serializeSafetensors(tensors, metadata = {}) {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header = { __metadata__: { ...metadata, [ORDER_KEY]: JSON.stringify(entries.map(([k]) => k)) } };
  let offset = 0;
  const parts = [];
  for (const [name, t] of entries) {
    const dtype = TO_DTYPE[t.type];
    if (!dtype) throw new Error(`safetensors: ${name}: tensor type ${t.type} is not supported`);
    const d = t.data;
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    header[name] = { dtype, shape: [...t.dims], data_offsets: [offset, offset + bytes.byteLength] };
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8); // align the data to 8 bytes
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let at = 8 + head.byteLength;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}
