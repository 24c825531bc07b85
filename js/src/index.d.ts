// Types for onnxkit-train (src/trainer.js, src/node.js, src/web.js, src/safetensors.js).
import type { InferenceSession, Tensor } from 'onnxruntime-common';

/** One entry of meta.json's "state": a training input whose value the host keeps between steps. */
export interface StateEntry {
  /** the training graph input (and the key in state.safetensors) */
  input: string;
  /** the training graph output that becomes `input` next step; null for a frozen parameter */
  output: string | null;
  /** the onnxkit state_dict key (`fc.weight`) or `key/slot` for optimizer state */
  key: string;
  kind: 'parameter' | 'buffer' | 'optimizer';
}

/** meta.json, format "onnxkit-training/1" (DESIGN.md "Training artifacts"). */
export interface Meta {
  format: 'onnxkit-training/1';
  training_model: string;
  eval_model: string;
  state_file: string;
  data: string[];
  target: string;
  loss: string;
  eval_outputs?: string[];
  step: { input: string; first: number };
  seed: { input: string; value: number };
  /** float64 scalar inputs, e.g. {"hparams/0/lr": 0.01} */
  hyperparameters: Record<string, number>;
  state: StateEntry[];
  /** host-drawn random inputs; always empty in artifacts (dropout is hashed in-graph) */
  random: { input: string; how: string }[];
}

/** A plain tensor: an onnxruntime type name, dims and the values (BigInt64Array for int64). */
export interface TensorRecord {
  type: Tensor.Type;
  dims: readonly number[];
  data: Tensor.DataType;
}

/** A Tensor, a {data, dims} record (cast to the input's declared type) or a 1-D typed/plain array. */
export type TensorLike = Tensor | { data: ArrayLike<number | bigint>; dims: readonly number[] } | ArrayLike<number | bigint>;
/** One data input, or an array of them when meta.data names several. */
export type Batch = TensorLike | TensorLike[];

export interface ArtifactSources {
  meta: Meta;
  /** a path (Node) or the model bytes */
  trainingModel: string | Uint8Array;
  evalModel?: string | Uint8Array | null;
  /** state.safetensors bytes */
  state: Uint8Array;
}

export interface LoadOptions {
  /** resume from this safetensors state (a path/URL or bytes) instead of meta.state_file */
  state?: string | Uint8Array;
  sessionOptions?: InferenceSession.SessionOptions;
}

export const FORMAT: 'onnxkit-training/1';
/** safetensors metadata key of the step the exported state runs next */
export const NEXT_STEP_KEY: 'onnxkit-train.next_step';
export const ORDER_KEY: 'onnxkit.keys';

export class Trainer {
  constructor(ort: unknown, meta: Meta, training: InferenceSession, evaluation: InferenceSession | null,
              state: Map<string, Tensor>, nextStep: number);
  /** Create a trainer from the artifacts' contents with the given onnxruntime namespace. */
  static create(ort: unknown, sources: ArtifactSources, sessionOptions?: InferenceSession.SessionOptions): Promise<Trainer>;
  readonly meta: Meta;
  readonly training: InferenceSession;
  readonly evaluation: InferenceSession | null;
  /** current value of every state input, by input name */
  readonly state: Map<string, Tensor>;
  /** the `step` value the next step() feeds (meta.step.first at the start) */
  nextStep: number;
  /** hyperparameter inputs fed each step; change them between steps */
  hyperparameters: Record<string, number>;
  /** One training step: returns the batch's loss; parameters, buffers and optimizer state advance. */
  step(batch: Batch, target: TensorLike): Promise<number>;
  /** eval.onnx on a batch with the current parameters and buffers: the model's output. */
  evaluate(batch: Batch): Promise<Tensor>;
  /** Set every `.../lr` hyperparameter. */
  setLearningRate(lr: number): void;
  /** current state by onnxkit key, optionally of one kind */
  stateDict(kind?: StateEntry['kind']): Map<string, Tensor>;
  /** the state as safetensors bytes keyed like state.safetensors, with the next step in its metadata */
  exportState(): Promise<Uint8Array>;
  release(): Promise<void>;
}

/** Load an artifacts folder: a directory path (onnxkit-train/node) or a URL (onnxkit-train/web). */
export function loadTrainer(location: string | URL, options?: LoadOptions): Promise<Trainer>;

export function parseSafetensors(bytes: ArrayBuffer | ArrayBufferView): {
  tensors: Map<string, TensorRecord>;
  metadata: Record<string, string>;
};
export function serializeSafetensors(tensors: Map<string, TensorRecord> | Record<string, TensorRecord>,
                                     metadata?: Record<string, string>): Uint8Array;
