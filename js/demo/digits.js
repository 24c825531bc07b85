// A drawing -> a LeNet-5 input, the way make_artifacts.py scales scikit-learn's digits (digits.json holds the
// numbers). Those digits are the UCI "optdigits": 32x32 bitmaps of size-normalized handwritten digits whose
// 4x4 blocks were counted (0..16) into 8x8 images. So a drawing is cropped to its ink, scaled to fit a 32x32
// bitmap (centered, aspect kept), thresholded, counted in 4x4 blocks, divided by 16, upscaled bilinearly to
// the model's size and standardized with the training split's mean and std. Pure functions, no DOM.

/**
 * The 32x32 (`prep.bitmap`) 0/1 bitmap of the ink in an alpha channel: the ink's bounding box scaled to fit,
 * centered, each bitmap pixel on when at least half of the area it covers is ink.
 * @param {Uint8ClampedArray | Uint8Array} alpha one byte per pixel (0 = no ink), row-major
 * @param {number} width
 * @param {number} height
 * @param {{bitmap: number}} prep
 * @returns {Float32Array | null} null when nothing is drawn
 */
export function drawingToBitmap(alpha, width, height, prep) {
  const n = prep.bitmap;
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    if (alpha[y * width + x] > 0) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1, scale = n / Math.max(w, h);
  const ox = (n - w * scale) / 2, oy = (n - h * scale) / 2;
  const ink = new Float64Array(n * n), area = new Float64Array(n * n);
  for (let y = y0; y <= y1; y++) {
    const by = Math.min(n - 1, Math.floor(oy + (y - y0 + 0.5) * scale));
    for (let x = x0; x <= x1; x++) {
      const bx = Math.min(n - 1, Math.floor(ox + (x - x0 + 0.5) * scale));
      ink[by * n + bx] += alpha[y * width + x] / 255;
      area[by * n + bx] += 1;
    }
  }
  return Float32Array.from(ink, (v, i) => (area[i] > 0 && v / area[i] >= 0.5 ? 1 : 0));
}

/** (nOut, nIn) bilinear resampling weights, pixel centers aligned (onnxkit.models.data._interp_matrix). */
function interp(nIn, nOut) {
  const m = new Float64Array(nOut * nIn);
  for (let i = 0; i < nOut; i++) {
    const pos = ((i + 0.5) * nIn) / nOut - 0.5;
    const lo = Math.min(Math.max(Math.floor(pos), 0), nIn - 1), hi = Math.min(lo + 1, nIn - 1);
    const w = Math.min(Math.max(pos - lo, 0), 1);
    m[i * nIn + lo] += 1 - w;
    m[i * nIn + hi] += w;
  }
  return m;
}

/**
 * A bitmap -> the model input: 4x4 block counts / 16 (the 8x8 digit), bilinear upscale, standardize.
 * @param {ArrayLike<number>} bitmap prep.bitmap^2 values in [0, 1], row-major
 * @param {{bitmap: number, block: number, max_count: number, size: number, mean: number, std: number}} prep
 * @returns {{image: Float64Array, input: Float32Array}} the 8x8 image in [0, 1] and the 1 x size x size input
 */
export function bitmapToInput(bitmap, prep) {
  const n = prep.bitmap, b = prep.block, s = n / b, size = prep.size;
  const image = new Float64Array(s * s);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) image[Math.floor(y / b) * s + Math.floor(x / b)] += bitmap[y * n + x];
  }
  for (let i = 0; i < image.length; i++) image[i] /= prep.max_count;
  const r = interp(s, size), rows = new Float64Array(size * s); // rows = R @ image, then input = rows @ R^T
  for (let i = 0; i < size; i++) for (let h = 0; h < s; h++) {
    const wgt = r[i * s + h];
    if (wgt) for (let w = 0; w < s; w++) rows[i * s + w] += wgt * image[h * s + w];
  }
  const input = new Float32Array(size * size);
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) {
    let v = 0;
    for (let w = 0; w < s; w++) v += rows[i * s + w] * r[j * s + w];
    input[i * size + j] = (v - prep.mean) / prep.std;
  }
  return { image, input };
}

/** Softmax of one row of logits. @param {ArrayLike<number>} logits @returns {number[]} */
export function softmax(logits) {
  const max = Math.max(...logits), e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
