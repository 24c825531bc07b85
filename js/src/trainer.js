// onnxkit-train: drive onnxkit's portable training artifacts (DESIGN.md "Training artifacts") with a stock
// onnxruntime for JavaScript. One training step is one `session.run` of training.onnx: it is fed the batch,
// the target, `step`, `seed`, the hyperparameters and every state tensor (parameters, buffers, optimizer
// slots); each state output becomes that input for the next step. Dropout masks are hashed inside the graph
// from `seed` and `step`, so the losses equal any other runtime's on the same batches.
//
// This module is runtime-neutral: pass the onnxruntime namespace (onnxruntime-node or onnxruntime-web).
// `onnxkit-train/node` and `onnxkit-train/web` wrap it with file and URL loading.

import { ORDER_KEY, parseSafetensors, serializeSafetensors } from './safetensors.js';

export { ORDER_KEY, parseSafetensors, serializeSafetensors };

/** The artifacts format this driver understands. */
export const FORMAT = 'onnxkit-training/1';
/** safetensors metadata key holding the step the exported state will run next. */
export const NEXT_STEP_KEY = 'onnxkit-train.next_step';

const TYPED = [
  [Float32Array, 'float32'], [Float64Array, 'float64'], [BigInt64Array, 'int64'], [Int32Array, 'int32'],
  [Uint8Array, 'uint8'], [Int8Array, 'int8'], [Int16Array, 'int16'], [Uint16Array, 'uint16'],
  [Uint32Array, 'uint32'], [BigUint64Array, 'uint64'],
];
const CTOR = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
  uint8: Uint8Array, int8: Int8Array, int16: Int16Array, uint16: Uint16Array, uint32: Uint32Array,
  uint64: BigUint64Array, bool: Uint8Array };

/** Drives training.onnx / eval.onnx; create it with {@link Trainer.create} or the node/web `loadTrainer`. */
export class Trainer {
  /**
   * @param {typeof import('onnxruntime-common')} ort the onnxruntime namespace
   * @param {import('./index').Meta} meta parsed meta.json
   * @param {import('onnxruntime-common').InferenceSession} training
   * @param {import('onnxruntime-common').InferenceSession | null} evaluation
   * @param {Map<string, import('onnxruntime-common').Tensor>} state every state input's current value
   * @param {number} nextStep the step number the next `step()` feeds
   */
  constructor(ort, meta, training, evaluation, state, nextStep) {
    this.ort = ort;
    this.meta = meta;
    this.training = training;
    this.evaluation = evaluation;
    this.state = state;
    this.nextStep = nextStep;
    /** Hyperparameter inputs (float64 scalars), e.g. `hparams/0/lr`; change them between steps. */
    this.hyperparameters = { ...meta.hyperparameters };
    this._fetches = [meta.loss, ...meta.state.filter((e) => e.output).map((e) => e.output)];
  }

  /**
   * Create a trainer from the artifacts' contents.
   * @param {typeof import('onnxruntime-common')} ort onnxruntime-node or onnxruntime-web
   * @param {import('./index').ArtifactSources} src
   * @param {import('onnxruntime-common').InferenceSession.SessionOptions} [sessionOptions]
   */
  static async create(ort, { meta, trainingModel, evalModel, state }, sessionOptions = {}) {
    if (meta.format !== FORMAT) throw new Error(`onnxkit-train: expected format ${FORMAT}, got ${meta.format}`);
    if (meta.random && meta.random.length) {
      throw new Error('onnxkit-train: these artifacts need host-drawn random inputs; re-export them with onnxkit >= #12');
    }
    const training = await ort.InferenceSession.create(trainingModel, sessionOptions);
    const evaluation = evalModel ? await ort.InferenceSession.create(evalModel, sessionOptions) : null;
    const { tensors, metadata } = parseSafetensors(state);
    const values = new Map();
    for (const e of meta.state) {
      const t = tensors.get(e.input);
      if (!t) throw new Error(`onnxkit-train: ${meta.state_file} has no tensor ${e.input}`);
      values.set(e.input, new ort.Tensor(t.type, t.data, t.dims));
    }
    const next = Number(metadata[NEXT_STEP_KEY] ?? meta.step.first);
    return new Trainer(ort, meta, training, evaluation, values, next);
  }

  /**
   * Run one training step on a batch; the parameters, buffers and optimizer state advance.
   * @param {import('./index').Batch} batch the data input (or an array of them, one per `meta.data` name)
   * @param {import('./index').TensorLike} target
   * @returns {Promise<number>} the loss of this batch (before the update)
   */
  async step(batch, target) {
    const { meta, ort } = this;
    const feeds = this._dataFeeds(this.training, batch);
    feeds[meta.target] = this._tensor(this.training, meta.target, target);
    feeds[meta.step.input] = new ort.Tensor('int64', BigInt64Array.of(BigInt(this.nextStep)), []);
    feeds[meta.seed.input] = new ort.Tensor('int64', BigInt64Array.of(BigInt(meta.seed.value)), []);
    for (const [name, v] of Object.entries(this.hyperparameters)) {
      feeds[name] = new ort.Tensor('float64', Float64Array.of(v), []);
    }
    for (const [name, t] of this.state) feeds[name] = t;
    const out = await this.training.run(feeds, this._fetches);
    for (const e of meta.state) if (e.output) this.state.set(e.input, out[e.output]);
    this.nextStep += 1;
    return Number(out[meta.loss].data[0]);
  }

  /**
   * Run eval.onnx (dropout off, BatchNorm on running statistics) with the current state.
   * @param {import('./index').Batch} batch
   * @returns {Promise<import('onnxruntime-common').Tensor>} the model's output (`meta.eval_outputs[0]`)
   */
  async evaluate(batch) {
    if (!this.evaluation) throw new Error('onnxkit-train: created without eval.onnx');
    const feeds = this._dataFeeds(this.evaluation, batch);
    for (const name of this.evaluation.inputNames) {
      if (!(name in feeds)) {
        const t = this.state.get(name);
        if (!t) throw new Error(`onnxkit-train: eval.onnx input ${name} is neither data nor state`);
        feeds[name] = t;
      }
    }
    const out = await this.evaluation.run(feeds);
    return out[(this.meta.eval_outputs || this.evaluation.outputNames)[0]];
  }

  /** Set every `.../lr` hyperparameter (a learning-rate schedule lives in the host). @param {number} lr */
  setLearningRate(lr) {
    for (const name of Object.keys(this.hyperparameters)) if (name.endsWith('/lr')) this.hyperparameters[name] = lr;
  }

  /**
   * The current state by its onnxkit key (`0.weight`, `3.running_mean`, `0.weight/exp_avg`, ...).
   * @param {'parameter' | 'buffer' | 'optimizer'} [kind] only entries of this kind
   * @returns {Map<string, import('onnxruntime-common').Tensor>}
   */
  stateDict(kind) {
    return new Map(this.meta.state.filter((e) => !kind || e.kind === kind).map((e) => [e.key, this.state.get(e.input)]));
  }

  /**
   * The state as safetensors bytes keyed like state.safetensors (the training inputs), so it replaces that
   * file to resume; the step to run next is kept in the metadata (`onnxkit-train.next_step`).
   * @returns {Promise<Uint8Array>}
   */
  async exportState() {
    const records = new Map();
    for (const [name, t] of this.state) {
      const data = t.location && t.location !== 'cpu' ? await t.getData() : t.data;
      records.set(name, { type: t.type, dims: t.dims, data });
    }
    return serializeSafetensors(records, { [NEXT_STEP_KEY]: String(this.nextStep) });
  }

  /** Release both sessions. */
  async release() {
    await this.training.release();
    if (this.evaluation) await this.evaluation.release();
  }

  _dataFeeds(session, batch) {
    const names = this.meta.data;
    const list = names.length > 1 ? batch : [batch];
    if (!Array.isArray(list) || list.length !== names.length) {
      throw new Error(`onnxkit-train: expected ${names.length} data inputs (${names.join(', ')})`);
    }
    return Object.fromEntries(names.map((n, i) => [n, this._tensor(session, n, list[i])]));
  }

  /** A Tensor for input `name`: a Tensor passes; {data, dims} or a typed array is cast to the input's type. */
  _tensor(session, name, x) {
    const { ort } = this;
    if (x instanceof ort.Tensor) return x;
    const data = x && !ArrayBuffer.isView(x) && !Array.isArray(x) ? x.data : x;
    const dims = x && x.dims ? x.dims : [data.length];
    const md = session.inputMetadata && session.inputMetadata.find((m) => m.name === name);
    let type = md && md.isTensor ? md.type : (TYPED.find(([C]) => data instanceof C) || [])[1];
    if (!type) throw new Error(`onnxkit-train: cannot tell the type of input ${name}`);
    const Ctor = CTOR[type];
    let arr = data;
    if (!(data instanceof Ctor)) {
      const big = Ctor === BigInt64Array || Ctor === BigUint64Array;
      arr = Ctor.from(data, big ? (v) => BigInt(Math.trunc(Number(v))) : (v) => Number(v));
    }
    return new ort.Tensor(type, arr, dims);
  }
}
