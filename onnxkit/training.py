"""Training graphs: one ONNX model for a whole training step (forward, loss, gradients, optimizer
update), or two stages (gradients; update) so gradient accumulation or an all-reduce can sit between
them. Standard ops only, so they run on stock onnxruntime and on onnx.reference.

The step model's inputs, in order:
  data inputs (names from the Inputs, else `input` / `input_0..`), `target`,
  `params/<name>` (every parameter; frozen ones get no update), `buffers/<name>`,
  `state/<param>/<slot>` (optimizer state), `hparams/<group>/<name>` (float64 scalars: lr, momentum,
  beta1, beta2, weight_decay...: schedulers change them without a rebuild), `step` (int64, the
  1-based number of the step being taken), `seed` (int64), and `random/<k>` (uniform draws fed by
  `onnxkit.random.host_uniform(seed, step, k, shape)`; see onnxkit/random.py);
outputs: `loss`, `updated/params/<name>`, `updated/buffers/<name>` (BatchNorm running stats),
`updated/state/<param>/<slot>`. The gradient stage outputs `loss`, `grads/<name>` and the buffer
updates; the update stage maps `params/..`, `grads/..`, state, hparams and `step` to the updates."""
import dataclasses
import fnmatch
from typing import Optional

import numpy as np
import onnx

from . import dtypes, random as _random
from .autodiff import grad as _grad
from .emit import build_model, topo
from .nn.utils.clip_grad import get_total_norm, clip_by_total_norm
from .ops import cast, clamp
from .tensor import Input, Tensor, enable_grad, no_grad

__all__ = ["TrainingModels", "build_training_model"]


@dataclasses.dataclass
class TrainingModels:
    """The emitted models and the names that tie their inputs and outputs to the Module and the
    optimizer. `feeds()` and `apply()` run a step by hand (any runtime); the Trainer binds the same
    names to device buffers."""
    training_model: onnx.ModelProto
    eval_model: onnx.ModelProto
    gradient_model: Optional[onnx.ModelProto]
    update_model: Optional[onnx.ModelProto]
    data: list       # data input names
    target: str
    params: list     # (input name, state_dict key, Parameter) for every parameter
    trainable: list  # state_dict keys of the parameters that get updates
    buffers: list    # (input name, state_dict key, buffer Tensor)
    state: list      # (input name, output name, Parameter, slot)
    hparams: list    # (input name, group index, hyperparameter name)
    updates: list    # (output name, leaf Tensor it replaces) for params and buffers
    random: list     # (input name, shape with dim names, dtype, draw index)
    outputs: list    # eval model output names
    optimizer: object = None
    _dim_positions: Optional[list] = dataclasses.field(default=None, repr=False)  # cache for data_dims

    def hparam_values(self):
        """The `hparams/<group>/<name>` inputs from the optimizer's current groups (float64 scalars)."""
        values = [self.optimizer.hyper_values(g) for g in self.optimizer.param_groups]
        return {name: np.array(values[gi][key], np.float64) for name, gi, key in self.hparams}

    def random_feeds(self, dims, seed, step):
        """The `random/<k>` inputs for a step, given the sizes of the data inputs' named dims."""
        return {name: _random.host_uniform(seed, step, draw, tuple(d if isinstance(d, int) else dims[d] for d in shape),
                                           dtype) for name, shape, dtype, draw in self.random}

    def data_dims(self, arrays):
        """{dim name: size} read from the data and target arrays."""
        if self._dim_positions is None:
            shapes = {i.name: i.type.tensor_type.shape.dim for i in self.training_model.graph.input}
            self._dim_positions = [(k, a, d.dim_param) for k, name in enumerate(self.data + [self.target])
                                   for a, d in enumerate(shapes[name]) if d.dim_param]
        return {name: np.shape(arrays[k])[a] for k, a, name in self._dim_positions}

    def feeds(self, inputs, target, step=1, seed=0):
        """Every input of training_model for one step, from the current Module and optimizer values."""
        inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        arrays = [np.asarray(a) for a in inputs] + [np.asarray(target)]
        f = dict(zip(self.data + [self.target], arrays))
        f.update({name: p.numpy() for name, _, p in self.params})
        f.update({name: b.numpy() for name, _, b in self.buffers})
        f.update({name: state_leaf(self.optimizer, p, slot).numpy() for name, _, p, slot in self.state})
        f.update(self.hparam_values())
        f["step"], f["seed"] = np.array(step, np.int64), np.array(seed, np.int64)
        f.update(self.random_feeds(self.data_dims(arrays), seed, step))
        return f

    def apply(self, outputs, step):
        """Write a step's outputs ({name: array}) back into the Module and optimizer; returns the loss."""
        for name, leaf in self.updates:
            leaf._become_value(np.array(outputs[name], copy=True))
        for _, out, p, slot in self.state:
            state_leaf(self.optimizer, p, slot)._become_value(np.array(outputs[out], copy=True))
        self.record_step(step)
        return float(outputs["loss"])

    def record_step(self, step):
        """Set the optimizer's step count of every trained parameter to `step` (steps taken so far)."""
        trainable = {id(p) for _, key, p in self.params if key in self.trainable}
        for p, st in self.optimizer.state.items():
            if id(p) in trainable:
                st["step"] = step


def state_leaf(optimizer, p, slot):
    """The optimizer's state Tensor for (p, slot), created by the rule's initializer when missing."""
    group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
    return optimizer.ensure_state(p, group)[slot]


def _as_input(x, name, batch_dim):
    """x as a graph Input named `name` whose first dim is `batch_dim` (an Input passes through)."""
    if isinstance(x, Tensor) and x.kind == "input":
        return x
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected a batch (an array with a leading batch dim), got a scalar")
    return Input(name, (batch_dim,) + tuple(arr.shape[1:]), arr.dtype)


def _leading_size(x):
    """The first dim of an example batch (None for an Input, whose dims are its own)."""
    if isinstance(x, Tensor) and x.kind == "input":
        return None
    shape = np.shape(x.numpy() if isinstance(x, Tensor) else x)
    return shape[0] if shape else None


def _dims_of(tensors):
    """The symbolic dim names of the tensors' shapes."""
    return {d for t in tensors for d in t._shape if isinstance(d, str)}


def _finish(model, declared):
    """Put the graph inputs in the documented order; declared inputs the graph does not read are
    still declared, so the interface does not depend on which options are zero."""
    have = {i.name: i for i in model.graph.input}
    ordered = [have.pop(name, None) or onnx.helper.make_tensor_value_info(name, dtypes.to_onnx(dt), list(shape))
               for name, dt, shape in declared]
    del model.graph.input[:]
    model.graph.input.extend(ordered + list(have.values()))  # random/<k> draws last
    onnx.checker.check_model(model, full_check=True)
    return model


def _emit(outs, fed, declared, name):
    """A checked ModelProto computing the (name, Tensor) pairs, inputs in the documented order."""
    model, _ = build_model([t for _, t in outs], output_names=[n for n, _ in outs], fed=fed or None,
                           graph_name=name)
    return _finish(model, declared)


def _optimizer_updates(optimizer, entries, step, clip):
    """Clip the gradients and append the optimizer's rule, per group. entries: [(key, p Tensor,
    g Tensor, Parameter)]; clip: (max_norm, clip_value, norm_type). Returns the new parameters and
    the new state as (output name, Tensor) lists, the state and hparam bindings, and the declared
    state and hparam inputs."""
    max_norm, clip_value, norm_type = clip
    with no_grad():
        grads = [g for _, _, g, _ in entries]
        if clip_value is not None:
            grads = [clamp(g, -float(clip_value), float(clip_value)) for g in grads]
        if max_norm is not None and grads:
            grads = clip_by_total_norm(grads, float(max_norm), get_total_norm(grads, norm_type))
        step_f = cast(step, np.float64)
        new_params, new_state, state, hparams, declared_state, declared_h = [], [], [], [], [], []
        by_param = {id(p): (key, pt, g) for (key, pt, _, p), g in zip(entries, grads)}
        for gi, group in enumerate(optimizer.param_groups):
            h = {}
            for name in optimizer.hyper_values(group):
                h[name] = Input(f"hparams/{gi}/{name}", (), np.float64)
                hparams.append((h[name].name, gi, name))
                declared_h.append((h[name].name, np.float64, ()))
            items, keys = [], []
            for p in (q for q in group["params"] if id(q) in by_param):
                key, pt, g = by_param[id(p)]
                st = {slot: Input(f"state/{key}/{slot}", p._shape, p.dtype) for slot in optimizer.slots(group)}
                state += [(t.name, f"updated/{t.name}", p, slot) for slot, t in st.items()]
                declared_state += [(t.name, p.dtype, p._shape) for t in st.values()]
                items.append((pt, g, st))
                keys.append(key)
            for key, (new_p, new_st) in zip(keys, optimizer.build_updates(group, h, step_f, items)):
                new_params.append((f"updated/params/{key}", new_p))
                new_state += [(f"updated/state/{key}/{slot}", v) for slot, v in new_st.items()]
    return new_params, new_state, state, hparams, declared_state + declared_h


def _trace_loss(model, loss_fn, data, target, trainable, seed, step, random_in_graph=False):
    """Run the model and loss on the Inputs with gradients recorded for `trainable` only (the other
    parameters' requires_grad is lowered meanwhile); random draws come from the graph RNG.
    Returns (loss, gradients, buffer effects [(leaf, new Tensor)], fed random inputs)."""
    ids = {id(p) for _, p in trainable}
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad = id(p) in ids
        dims = None if random_in_graph else _dims_of(data + [target])
        with enable_grad(), _random.graph_rng(seed, step, dims) as random_inputs:
            loss = loss_fn(model(*data), target)
        if not isinstance(loss, Tensor) or loss._shape != ():
            raise ValueError(f"loss_fn must return a scalar Tensor, got {loss!r}")
        grads = _grad(loss, [p for _, p in trainable], allow_unused=True) if trainable else ()
    finally:
        for p, rg in saved:
            p.requires_grad = rg
    effects = [e[:2] for n in topo([loss])[0] for e in (n.effects or ())]
    return loss, grads, effects, list(random_inputs)


def build_training_model(model, loss_fn, optimizer, inputs, target, *, frozen=(), clip_grad_norm=None,
                         clip_grad_value=None, norm_type=2.0, stages=False, batch_dim="N",
                         random_in_graph=False):
    """Trace `loss_fn(model(*inputs), target)` with the parameters as graph inputs (in the model's
    mode, as torch would run it), differentiate it, append the optimizer's update and emit the step
    as one ModelProto, with the eval model and (stages=True) the gradient and update stages.
    `inputs` / `target` are example batches or ok.Inputs; their first dim becomes `batch_dim`.
    Parameters matching a `frozen` fnmatch pattern, with requires_grad=False or outside the
    optimizer are inputs without updates. random_in_graph: every random draw is hashed in the graph
    from `seed` and `step` (no `random/<k>` inputs), so any runtime can drive the step."""
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    names = ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]
    lengths = [_leading_size(x) for x in inputs + [target]]
    # examples whose first dim differs from the first input's (a target flattened over a sequence)
    # get a dim of their own: one name for both would tell shape inference they are equal
    dims = [batch_dim if n == lengths[0] else f"{batch_dim}_{name}" for n, name in zip(lengths, names + ["target"])]
    data = [_as_input(x, name, d) for x, name, d in zip(inputs, names, dims)]
    target = _as_input(target, "target", dims[-1])
    if len({t.name for t in data + [target]}) != len(data) + 1:
        raise ValueError(f"input names must be unique, got {[t.name for t in data + [target]]}")
    named_params, named_buffers = list(model.named_parameters()), list(model.named_buffers())
    key_of = {id(t): k for k, t in named_params + named_buffers}
    stray = sorted({i for i, g in enumerate(optimizer.param_groups) for p in g["params"] if id(p) not in key_of})
    if stray:
        raise ValueError(f"the optimizer holds parameters that are not in the model (groups {stray})")
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    trainable = [(k, p) for k, p in named_params if id(p) in in_optimizer and p.requires_grad
                 and not any(fnmatch.fnmatchcase(k, pat) for pat in frozen)]
    step, seed = Input("step", (), np.int64), Input("seed", (), np.int64)
    clip = (clip_grad_norm, clip_grad_value, norm_type)

    loss, grads, effects, random_inputs = _trace_loss(model, loss_fn, data, target, trainable, seed, step,
                                                      random_in_graph)
    bad = [leaf for leaf, _ in effects if id(leaf) not in key_of]
    if bad:
        raise ValueError(f"the forward updates {len(bad)} tensor(s) that are not registered buffers of the model")
    buffer_updates = [(f"updated/buffers/{key_of[id(leaf)]}", leaf, new) for leaf, new in effects]
    entries = [(k, p, g, p) for (k, p), g in zip(trainable, grads) if g is not None]
    new_params, new_state, state, hparams, declared_opt = _optimizer_updates(optimizer, entries, step, clip)

    fed = {id(p): f"params/{k}" for k, p in named_params}
    fed.update({id(b): f"buffers/{k}" for k, b in named_buffers})
    declared_io = [(t.name, t.dtype, t._shape) for t in data + [target]] + \
        [(f"params/{k}", p.dtype, p._shape) for k, p in named_params] + \
        [(f"buffers/{k}", b.dtype, b._shape) for k, b in named_buffers]
    tail = [("step", np.int64, ()), ("seed", np.int64, ())]
    buffer_outs = [(name, new) for name, _, new in buffer_updates]
    step_model = _emit([("loss", loss)] + new_params + buffer_outs + new_state, fed, declared_io + declared_opt + tail,
                       "training_step")
    gradient_model = update_model = None
    if stages:
        gradient_model = _emit([("loss", loss)] + [(f"grads/{k}", g) for k, _, g, _ in entries] + buffer_outs, fed,
                               declared_io + tail, "gradient_step")
        ins = [(k, Input(f"params/{k}", p._shape, p.dtype), Input(f"grads/{k}", p._shape, p.dtype), p)
               for k, _, _, p in entries]
        u_params, u_state, _, _, u_declared = _optimizer_updates(optimizer, ins, Input("step", (), np.int64), clip)
        update_model = _emit(u_params + u_state, None, [(t.name, t.dtype, t._shape) for _, pt, gt, _ in ins
                                                         for t in (pt, gt)] + u_declared + tail[:1], "update_step")
    eval_model, outputs = build_eval_model(model, data, fed)
    return TrainingModels(
        training_model=step_model, eval_model=eval_model, gradient_model=gradient_model, update_model=update_model,
        data=[t.name for t in data], target=target.name,
        params=[(f"params/{k}", k, p) for k, p in named_params], trainable=[k for k, _, _, _ in entries],
        buffers=[(f"buffers/{k}", k, b) for k, b in named_buffers], state=state, hparams=hparams,
        updates=[(f"updated/params/{k}", p) for k, _, _, p in entries] + [(n, leaf) for n, leaf, _ in buffer_updates],
        random=random_inputs, outputs=outputs, optimizer=optimizer)


def build_eval_model(model, data, fed):
    """The eval-mode forward with parameters and buffers as inputs (`params/..`, `buffers/..`);
    outputs `output` (or `output_0..`)."""
    was = model.training
    try:
        model.eval()
        with no_grad():
            out = model(*[Input(t.name, t._shape, t.dtype) for t in data])
    finally:
        model.train(was)
    outs = [out] if isinstance(out, Tensor) else list(out)
    names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    return _emit(list(zip(names, outs)), fed, [(t.name, t.dtype, t._shape) for t in data], "eval"), names
