"""Trainer: runs a Module's one-graph training step (onnxkit.training) on onnxruntime.

Parameters, buffers and optimizer state stay in device buffers between steps: two sets bound through
two IOBindings, one read and one written per step, swapped afterwards, so a step copies only the
batch in and the loss out. On the CPU the buffers are numpy arrays shared with onnxruntime and the
Module's Parameters point at the current set, so `model.state_dict()` and eager code read the trained
values with no copy; on CUDA they are copied back when state is read (state_dict, save, fit's end).
A value replaced from outside (load_state_dict, `p -= ...`) is uploaded before the next step."""
import math
import sys
import time

import numpy as np

from . import checkpoint, runtime
from .tensor import Input, Tensor, rng as _host_rng
from . import random as _random
from .training import build_training_model, state_leaf
from .emit import build_model

__all__ = ["Trainer"]


class _Slot:
    """One model or optimizer value held on the device. `get()` returns the leaf Tensor that owns it;
    rotating slots (those the step updates) have two buffers, static ones one."""
    __slots__ = ("name", "out", "get", "arr", "ov", "seen")

    def __init__(self, name, out, get):
        self.name, self.out, self.get = name, out, get
        self.arr, self.ov, self.seen = [None, None], [None, None], None


class Trainer:
    """Trainer(model, loss_fn, optimizer, device="auto", scheduler=None): `step(*inputs, target)`
    runs one compiled training step and returns the loss; `fit`, `evaluate`, `predict`, `save`,
    `load`. `scheduler_interval` is "epoch" (fit steps the scheduler after each epoch) or "step"
    (after each training step, e.g. OneCycleLR). `spinning` keeps onnxruntime's threads busy-waiting
    between steps (faster loops; turn it off when other work shares the cores). `random_in_graph`
    hashes dropout masks in the graph from seed and step, as `ok.training_artifacts` does, so the
    Trainer and any runtime driving the artifacts follow the same trajectory. `distributed=True` gives
    onnxkit.distributed's data-parallel trainer over the launcher's ranks (docs/distributed.md)."""

    _stages = False  # build the gradient and update stages too (onnxkit.distributed's trainer runs them)

    def __new__(cls, *args, distributed=False, **kwargs):
        if distributed and cls is Trainer:  # data-parallel over the launcher's ranks: onnxkit.distributed
            from .distributed.trainer import DistributedTrainer
            cls = DistributedTrainer
        return super().__new__(cls)

    def __init__(self, model, loss_fn, optimizer, device="auto", scheduler=None, *, frozen=(), clip_grad_norm=None,
                 clip_grad_value=None, seed=None, scheduler_interval="epoch", spinning=True, distributed=False,
                 random_in_graph=False):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn, optimizer, scheduler
        self.scheduler_interval, self.spinning = scheduler_interval, spinning
        self.random_in_graph = random_in_graph  # dropout hashed in the graph, as in training artifacts
        self.frozen = (frozen,) if isinstance(frozen, str) else tuple(frozen)
        self.clip_grad_norm, self.clip_grad_value = clip_grad_norm, clip_grad_value
        self.providers = runtime.providers_for(device)
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.seed = int(_host_rng().integers(2 ** 31)) if seed is None else int(seed)
        self._float_dtype = next((p.dtype for p in model.parameters() if p.dtype.kind == "f"), None)
        steps = [st.get("step", 0) for st in optimizer.state.values()]
        self.step_count = max(steps, default=0)
        self.epoch = 0
        self.history = {}
        self._graph = self._sess = self._eval_sess = self._loss_sess = None
        self._sig = None
        self._stale = False
        optimizer._before_read = self.sync
        object.__setattr__(model, "_before_state_read", self.sync)

    # ----- graphs ------------------------------------------------------------------------------
    @property
    def training_model(self):
        """The one-graph training step (onnx.ModelProto); built by the first step(), fit() or build()."""
        return self._built().training_model

    @property
    def eval_model(self):
        """The eval-mode forward with parameters and buffers as inputs (`params/<name>`, `buffers/<name>`);
        ok.export(model, ...) gives a standalone file with the trained weights."""
        return self._built().eval_model

    def _built(self):
        if self._graph is None:
            raise RuntimeError("the training graph is built from the first batch: call step(), fit() or "
                               "build(*inputs, target) first")
        return self._graph

    def build(self, *inputs_and_target):
        """Build the training and eval graphs from an example batch (arrays or ok.Inputs)."""
        *xs, y = [a if isinstance(a, Tensor) else np.asarray(a) for a in inputs_and_target]
        self._ensure(xs, y, force=True)
        return self._graph

    def _signature(self, xs, y, values=None):
        return (tuple((a.shape[1:], a.dtype) for a in list(xs) + [y]), self.optimizer.signature(values),
                self.model.training)

    def _ensure(self, xs, y, force=False, values=None):
        """(Re)build the graphs when the batch's trailing shapes or dtypes, the optimizer's structure
        (options, zero hyperparameters) or the train/eval mode differ from the built ones."""
        if isinstance(y, Tensor) or any(isinstance(a, Tensor) for a in xs):
            sig = None
        else:
            sig = self._signature(xs, y, values)
            if sig == self._sig and not force:
                return
        if self._graph is not None:
            self.sync()
        g = build_training_model(self.model, self.loss_fn, self.optimizer, xs, y, frozen=self.frozen,
                                 clip_grad_norm=self.clip_grad_norm, clip_grad_value=self.clip_grad_value,
                                 random_in_graph=self.random_in_graph, stages=self._stages)
        self._graph, self._sig = g, sig
        for _, _, p, slot in g.state:
            state_leaf(self.optimizer, p, slot)
        self._setup_device(g)

    def _state_slots(self, g, outputs):
        """A _Slot per parameter, buffer and optimizer-state input of g; `outputs` are the graph outputs
        that update them (a frozen parameter's slot has none)."""
        leaf_of = {name: p for name, _, p in g.params}
        leaf_of.update({name: b for name, _, b in g.buffers})
        slots = []
        for name, leaf in leaf_of.items():
            out = "updated/" + name
            slots.append(_Slot(name, out if out in outputs else None, (lambda leaf=leaf: leaf)))
        opt = self.optimizer
        for name, out, p, slot in g.state:
            slots.append(_Slot(name, out, (lambda p=p, slot=slot: opt.state[p][slot])))
        return slots

    def _setup_device(self, g):
        """Compile the step, put every parameter, buffer and state value in its slot and bind all inputs
        and outputs once; step() then binds only the batch."""
        import onnxruntime as ort
        self._sess = runtime.make_inference_session(g.training_model, self.device, spinning=self.spinning)
        self._eval_sess = self._loss_sess = None
        self._slots = self._state_slots(g, {o.name for o in g.training_model.graph.output})
        self._cur = 0
        self._bindings = [self._sess.io_binding(), self._sess.io_binding()]
        for s in self._slots:
            self._upload(s, s.get())
        self._scalars = {name: np.zeros((), np.float64) for name, _, _ in g.hparams}
        self._scalars["step"] = np.zeros((), np.int64)
        self._scalars["seed"] = np.zeros((), np.int64)
        self._loss = np.zeros((), self._output_dtype(g.training_model, "loss"))
        self._loss_ov = ort.OrtValue.ortvalue_from_numpy(self._loss)
        for b in self._bindings:
            for name, arr in self._scalars.items():
                b.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr))
            b.bind_ortvalue_output("loss", self._loss_ov)
        self._bind_slots()
        self._hp_index = [(self._scalars[name], gi, key) for name, gi, key in g.hparams]
        self._data_names = g.data + [g.target]
        self._bound = [[None] * len(self._data_names) for _ in self._bindings]

    @staticmethod
    def _output_dtype(model, name):
        """The numpy dtype of the model's output `name`."""
        from onnx.helper import tensor_dtype_to_np_dtype
        out = next(o for o in model.graph.output if o.name == name)
        return tensor_dtype_to_np_dtype(out.type.tensor_type.elem_type)

    def _bind_slots(self):
        """Bind each slot on both IOBindings: binding j reads buffer j and writes buffer 1 - j."""
        for j, b in enumerate(self._bindings):
            for s in self._slots:
                b.bind_ortvalue_input(s.name, s.ov[j] if s.out else s.ov[0])
                if s.out:
                    b.bind_ortvalue_output(s.out, s.ov[1 - j])

    def _upload(self, s, leaf):
        """Copy a leaf's host value into the slot's current buffer (allocating both on first use)."""
        import onnxruntime as ort
        value = np.asarray(leaf._value, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        j = self._cur if s.out else 0
        if self.device == "cpu":
            if s.arr[j] is None:
                s.arr = [np.array(value, copy=True), np.empty_like(value) if s.out else None]
                s.ov = [ort.OrtValue.ortvalue_from_numpy(a) if a is not None else None for a in s.arr]
            else:
                np.copyto(s.arr[j], value)
            leaf._value = s.arr[j]
            s.seen = s.arr[j]
        else:
            if s.ov[0] is None:
                s.ov = [ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0), None]
                if s.out:
                    s.ov[1] = ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0)
            else:
                s.ov[j].update_inplace(value)
            s.seen = leaf._value

    def _refresh(self):
        """Upload values replaced from outside since the last step (identity check per slot);
        returns the slots' leaves."""
        if runtime._pending:
            runtime.flush_pending()
        leaves = [s.get() for s in self._slots]
        for s, leaf in zip(self._slots, leaves):
            if leaf._value is not s.seen:
                self._upload(s, leaf)
        return leaves

    def sync(self):
        """Bring the device values back into the Module and optimizer (a no-op copy-wise on the CPU,
        where they share memory); also records the step count in the optimizer state."""
        if self._graph is None:
            return
        if self._stale:
            for s in self._slots:
                if s.out:
                    arr = s.ov[self._cur].numpy()
                    s.get()._value = arr
                    s.seen = arr
            self._stale = False
        self._graph.record_step(self.step_count)

    # ----- one step --------------------------------------------------------------------------
    def _batch(self, a):
        """A batch as a contiguous numpy array. Float data takes the model's float dtype: numpy makes
        float64 by default and the graph's data inputs have the parameters' dtype."""
        arr = np.asarray(a.numpy() if isinstance(a, Tensor) else a)
        if arr.dtype.kind == "f" and self._float_dtype is not None and arr.dtype != self._float_dtype:
            arr = arr.astype(self._float_dtype)
        return np.asarray(arr, order="C")

    def _prepare_step(self, example):
        """Build (or reuse) the graph for batches like `example` ([*inputs, target]), refresh the bound
        values and write this step's hyperparameters, step and seed; returns (leaves, graph, step)."""
        values = [self.optimizer.hyper_values(group) for group in self.optimizer.param_groups]
        self._ensure(example[:-1], example[-1], values=values)
        leaves = self._refresh()
        step = self.step_count + 1
        for arr, gi, key in self._hp_index:
            arr[...] = values[gi][key]
        self._scalars["step"][...] = step
        self._scalars["seed"][...] = self.seed
        return leaves, self._graph, step

    def step(self, *inputs_and_target):
        """One training step on a batch (the last argument is the target); returns the loss.
        A non-finite loss raises FloatingPointError and leaves the values of before the step."""
        if len(inputs_and_target) < 2:
            raise TypeError("step(*inputs, target) needs at least one input and the target")
        arrays = [self._batch(a) for a in inputs_and_target]
        leaves, g, step = self._prepare_step(arrays)
        b = self._bindings[self._cur]
        self._bind_batch(b, self._bound[self._cur], arrays, g, step)
        self._sess.run_with_iobinding(b)
        loss = float(self._loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss} at step {step}; the parameters and optimizer state keep "
                                     "their values from before this step")
        self._cur ^= 1
        if self.device == "cpu":  # the Module and optimizer now read the buffers just written
            for s, leaf in zip(self._slots, leaves):
                if s.out:
                    leaf._value = s.seen = s.arr[self._cur]
        else:
            self._stale = True
        self.step_count = step
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        return loss

    def _bind_batch(self, b, bound, arrays, g, step):
        """Bind the batch (and the step's random inputs) to IOBinding `b`; `bound` remembers what each data
        input holds, since the binding keeps a reference: rebinding the same array is skipped."""
        for k, (name, arr) in enumerate(zip(self._data_names, arrays)):
            if bound[k] is not arr:
                b.bind_cpu_input(name, arr)
                bound[k] = arr
        if g.random:
            for name, arr in g.random_feeds(g.data_dims(arrays), self.seed, step).items():
                b.bind_cpu_input(name, arr)

    # ----- evaluation --------------------------------------------------------------------------
    def _eval_feeds(self):
        """{input name: current OrtValue} of the parameters, buffers and optimizer state."""
        return {s.name: (s.ov[self._cur] if s.out else s.ov[0]) for s in self._slots}

    def _forward(self, xs):
        """Eval-mode outputs for one batch, with the parameters bound from the device buffers."""
        g = self._built()
        if self._eval_sess is None:
            self._eval_sess = runtime.make_inference_session(g.eval_model, self.device)
            self._eval_inputs = {i.name for i in self._eval_sess.get_inputs()}
        self._refresh()
        b = self._eval_sess.io_binding()
        for name, ov in self._eval_feeds().items():
            if name in self._eval_inputs:
                b.bind_ortvalue_input(name, ov)
        for name, arr in zip(g.data, xs):
            b.bind_cpu_input(name, np.asarray(arr, order="C"))
        for name in g.outputs:
            b.bind_output(name, "cpu")
        self._eval_sess.run_with_iobinding(b)
        outs = [o.numpy() for o in b.get_outputs()]
        return outs[0] if len(outs) == 1 else outs

    def _loss_of(self, out, y):
        """loss_fn(out, y) as a float, from a small loss-only session built once."""
        if self._loss_sess is None:
            o = Input("output", ("N",) + tuple(np.shape(out)[1:]), np.asarray(out).dtype)
            t = Input("target", ("N",) + tuple(np.shape(y)[1:]), np.asarray(y).dtype)
            m, _ = build_model([self.loss_fn(o, t)], output_names=["loss"], graph_name="loss")
            self._loss_sess = runtime.Session(m, device="cpu")
        return float(self._loss_sess.run({"output": out, "target": y})["loss"])

    def predict(self, *inputs, batch_size=256):
        """Eval-mode outputs for all rows of the inputs, in batches (numpy)."""
        arrays = [self._batch(a) for a in inputs]
        if self._graph is None:
            raise RuntimeError("predict needs the graphs: call step(), fit() or build(*inputs, target) first")
        n = len(arrays[0])
        outs = [self._forward([a[i:i + batch_size] for a in arrays]) for i in range(0, n, batch_size)]
        if isinstance(outs[0], list):
            return [np.concatenate(parts) for parts in zip(*outs)]
        return np.concatenate(outs)

    def evaluate(self, *inputs_and_target, batch_size=256):
        """{"loss": mean loss, "accuracy": ...} in eval mode; accuracy (argmax over dim 1) when the
        target holds integer class indices."""
        *xs, y = [self._batch(a) for a in inputs_and_target]
        if self._graph is None:
            self.build(*[a[:1] for a in xs], y[:1])
        total, correct, n = 0.0, 0, len(y)
        for i in range(0, n, batch_size):
            yb = y[i:i + batch_size]
            out = self._forward([a[i:i + batch_size] for a in xs])
            total += self._loss_of(out, yb) * len(yb)
            if y.dtype.kind in "iu" and np.ndim(out) >= 2:
                correct += int((np.argmax(out, axis=1) == yb).sum())
        result = {"loss": total / n}
        if y.dtype.kind in "iu":
            result["accuracy"] = correct / n
        return result

    # ----- fit ---------------------------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation=None, verbose=True):
        """Train for `epochs` over (x, y) in batches, shuffled with the trainer's seed; prints a
        progress bar and one line per epoch to stderr. `x` is an array or a tuple of arrays,
        `validation` an (x, y) pair. Returns the history {"loss": [...], "val_loss": [...], ...}.
        A non-finite loss stops it with FloatingPointError; the completed epochs' records stay in
        `trainer.history` and come with the error as `exc.history`."""
        xs = [self._batch(a) for a in (x if isinstance(x, (list, tuple)) else [x])]
        y = self._batch(y)
        n = len(y)
        if any(len(a) != n for a in xs):
            raise ValueError(f"inputs and target have different lengths: {[len(a) for a in xs]} vs {n}")
        history = {}
        batches = math.ceil(n / batch_size)
        live = verbose and sys.stderr.isatty()  # the redrawn bar only on a terminal; epoch lines always
        for _ in range(epochs):
            self.epoch += 1
            t0, shown = time.perf_counter(), 0.0
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if shuffle else None
            ex = [a[order] for a in xs] if shuffle else xs
            ey = y[order] if shuffle else y
            total = 0.0
            for b in range(batches):
                sl = slice(b * batch_size, min(n, (b + 1) * batch_size))
                try:
                    loss = self.step(*[a[sl] for a in ex], ey[sl])
                except FloatingPointError as e:  # keep what the completed epochs recorded
                    self.sync()
                    e.history = history
                    raise
                total += loss * (sl.stop - sl.start)
                now = time.perf_counter()
                if live and (now - shown > 0.1 or b == batches - 1):
                    shown = now
                    done = int(20 * (b + 1) / batches)
                    sys.stderr.write(f"\repoch {self.epoch} [{'=' * done}{'.' * (20 - done)}] {b + 1}/{batches} "
                                     f"loss {total / sl.stop:.4f}")
                    sys.stderr.flush()
            record = {"loss": total / n}
            if validation is not None:
                vx, vy = validation
                vx = list(vx) if isinstance(vx, (list, tuple)) else [vx]
                record.update({f"val_{k}": v for k, v in self.evaluate(*vx, vy).items()})
            if self.scheduler is not None and self.scheduler_interval == "epoch":
                self.scheduler.step()
            for k, v in record.items():
                history.setdefault(k, []).append(v)
                self.history.setdefault(k, []).append(v)
            if verbose:
                line = " - ".join(f"{k} {v:.4f}" for k, v in record.items())
                sys.stderr.write(f"\repoch {self.epoch}: {line} ({time.perf_counter() - t0:.1f} s)".ljust(60) + "\n")
        self.sync()
        return history

    # ----- checkpoints -------------------------------------------------------------------------
    def save(self, path):
        """Parameters, buffers, optimizer state, scheduler state, step, epoch, seed and the host
        random streams, as safetensors + JSON metadata, written atomically."""
        self.sync()
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        osd = self.optimizer.state_dict()
        steps = {}
        for idx, st in osd["state"].items():
            for slot, v in st.items():
                if isinstance(v, np.ndarray):
                    tensors[f"optimizer/{idx}/{slot}"] = v
            steps[str(idx)] = st.get("step", 0)
        meta = {"format": "onnxkit.Trainer", "version": 1, "step": self.step_count, "epoch": self.epoch,
                "seed": self.seed, "optimizer": {"param_groups": osd["param_groups"], "steps": steps},
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "rng": {"tensor": _host_rng().bit_generator.state, "random": _random.generator().bit_generator.state},
                "history": self.history}
        checkpoint.save(path, tensors, meta)

    def load(self, path):
        """Restore everything `save` wrote; the next step continues the saved trajectory exactly."""
        tensors, meta = checkpoint.load(path)
        if meta.get("format") != "onnxkit.Trainer":
            raise ValueError(f"{path} is not a Trainer checkpoint")
        self.model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        state = {int(i): {"step": s} for i, s in meta["optimizer"]["steps"].items()}
        for k, v in tensors.items():
            if k.startswith("optimizer/"):
                _, idx, slot = k.split("/", 2)
                state.setdefault(int(idx), {})[slot] = v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
        if self.scheduler is not None and meta["scheduler"] is not None:
            self.scheduler.load_state_dict(meta["scheduler"])
        self.step_count, self.epoch, self.seed = meta["step"], meta["epoch"], meta["seed"]
        self.history = meta.get("history", {})
        _host_rng().bit_generator.state = meta["rng"]["tensor"]
        _random.generator().bit_generator.state = meta["rng"]["random"]
        self._stale = False
        if self._graph is not None:  # slots the checkpoint lacks start from the rule's initial state
            for _, _, p, slot in self._graph.state:
                state_leaf(self.optimizer, p, slot)
