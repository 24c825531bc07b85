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
    signature: tuple = ()

    def hparam_values(self):
        values = [self.optimizer.hyper_values(g) for g in self.optimizer.param_groups]
        return {name: np.array(values[gi][key], np.float64) for name, gi, key in self.hparams}

    def random_feeds(self, dims, seed, step):
        """The `random/<k>` inputs for a step, given the sizes of the data inputs' named dims."""
        return {name: _random.host_uniform(seed, step, draw, tuple(d if isinstance(d, int) else dims[d] for d in shape),
                                           dtype) for name, shape, dtype, draw in self.random}

    def data_dims(self, arrays):
        """{dim name: size} read from the data and target arrays."""
        model_inputs = {i.name: i for i in self.training_model.graph.input}
        dims = {}
        for name, arr in zip(self.data + [self.target], arrays):
            for d, n in zip(model_inputs[name].type.tensor_type.shape.dim, np.shape(arr)):
                if d.dim_param:
                    dims[d.dim_param] = n
        return dims

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
        trainable = {id(p) for _, key, p in self.params if key in self.trainable}
        for p in self.optimizer.state:
            if id(p) in trainable:
                self.optimizer.state[p]["step"] = step
        return float(outputs["loss"])


def state_leaf(optimizer, p, slot):
    """The optimizer's state Tensor for (p, slot), created by the rule's initializer when missing."""
    group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
    return optimizer.ensure_state(p, group)[slot]


def _as_input(x, name, batch_dim):
    if isinstance(x, Tensor) and x.kind == "input":
        return x
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected a batch (an array with a leading batch dim), got a scalar")
    return Input(name, (batch_dim,) + tuple(arr.shape[1:]), arr.dtype)


def _dims_of(tensors):
    return {d for t in tensors for d in t._shape if isinstance(d, str)}


def _is_frozen(name, frozen):
    return any(fnmatch.fnmatchcase(name, pat) for pat in frozen)


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


def _update_graph(optimizer, entries, step, clip_grad_norm, clip_grad_value, norm_type):
    """Append clipping and the optimizer's rule. entries: [(key, p Tensor, g Tensor, Parameter)].
    Returns (outputs [(name, Tensor)], state [(in, out, Parameter, slot)], hparams, declared inputs)."""
    with no_grad():
        grads = [g for _, _, g, _ in entries]
        if clip_grad_value is not None:
            grads = [clamp(g, -float(clip_grad_value), float(clip_grad_value)) for g in grads]
        if clip_grad_norm is not None and grads:
            grads = clip_by_total_norm(grads, float(clip_grad_norm), get_total_norm(grads, norm_type))
        step_f = cast(step, np.float64)
        outputs, state, hparams, declared_state, declared_h = [], [], [], [], []
        by_param = {id(p): (key, pt, g) for (key, pt, _, p), g in zip(entries, grads)}
        for gi, group in enumerate(optimizer.param_groups):
            h = {}
            for name in optimizer.hyper_values(group):
                full = f"hparams/{gi}/{name}"
                h[name] = Input(full, (), np.float64)
                hparams.append((full, gi, name))
                declared_h.append((full, np.float64, ()))
            items, owners = [], []
            for p in group["params"]:
                if id(p) not in by_param:
                    continue
                key, pt, g = by_param[id(p)]
                st = {}
                for slot in optimizer.slots(group):
                    name = f"state/{key}/{slot}"
                    st[slot] = Input(name, p._shape, p.dtype)
                    state.append((name, f"updated/{name}", p, slot))
                    declared_state.append((name, p.dtype, p._shape))
                items.append((pt, g, st))
                owners.append(key)
            for key, (new_p, new_state) in zip(owners, optimizer.build_updates(group, h, step_f, items)):
                outputs.append((f"updated/params/{key}", new_p))
                outputs += [(f"updated/state/{key}/{slot}", v) for slot, v in new_state.items()]
    return outputs, state, hparams, declared_state + declared_h


def build_training_model(model, loss_fn, optimizer, inputs, target, *, frozen=(), clip_grad_norm=None,
                         clip_grad_value=None, norm_type=2.0, stages=False, batch_dim="N"):
    """Trace `loss_fn(model(*inputs), target)` in train mode with the parameters as graph inputs,
    differentiate it, append the optimizer's update and emit the step as one ModelProto (plus the
    eval model, and with stages=True the gradient and update stages). `inputs` / `target` are
    example batches or ok.Inputs; the batch dim becomes `batch_dim`. Parameters matching a `frozen`
    fnmatch pattern, with requires_grad=False or outside the optimizer are inputs without updates."""
    inputs = [inputs] if not isinstance(inputs, (list, tuple)) else list(inputs)
    data = [_as_input(x, "input" if len(inputs) == 1 else f"input_{i}", batch_dim) for i, x in enumerate(inputs)]
    target_in = _as_input(target, "target", batch_dim)
    names = [t.name for t in data] + [target_in.name]
    if len(set(names)) != len(names):
        raise ValueError(f"input names must be unique, got {names}")
    named_params = list(model.named_parameters())
    named_buffers = [(k, b) for k, b in model.named_buffers()]
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    model_ids = {id(p) for _, p in named_params}
    stray = [i for i, g in enumerate(optimizer.param_groups) for p in g["params"] if id(p) not in model_ids]
    if stray:
        raise ValueError(f"the optimizer holds parameters that are not in the model (groups {sorted(set(stray))})")
    trainable = [(k, p) for k, p in named_params
                 if id(p) in in_optimizer and p.requires_grad and not _is_frozen(k, frozen)]
    trainable_ids = {id(p) for _, p in trainable}
    fed = {id(p): f"params/{k}" for k, p in named_params}
    fed.update({id(b): f"buffers/{k}" for k, b in named_buffers})
    buffer_names = {id(b): k for k, b in named_buffers}
    step, seed = Input("step", (), np.int64), Input("seed", (), np.int64)

    saved = [(p, p.requires_grad) for _, p in named_params]
    was_training = model.training
    try:
        for _, p in named_params:
            p.requires_grad = id(p) in trainable_ids
        model.train(True)
        with enable_grad(), _random.graph_rng(seed, step, _dims_of(data + [target_in])) as random_inputs:
            out = model(*data)
            loss = loss_fn(out, target_in)
        if not isinstance(loss, Tensor) or loss._shape != ():
            raise ValueError(f"loss_fn must return a scalar Tensor, got {loss!r}")
        grads = _grad(loss, [p for _, p in trainable], allow_unused=True) if trainable else ()
        nodes, _ = topo([loss])
        buffer_updates = []
        for n in nodes:
            for leaf, new in n.effects or ():
                if id(leaf) not in buffer_names:
                    raise ValueError(f"{n.op_type} node {n.scope!r} updates a tensor that is not a registered buffer")
                buffer_updates.append((f"updated/buffers/{buffer_names[id(leaf)]}", leaf, new))
        entries = [(k, p, g, p) for (k, p), g in zip(trainable, grads) if g is not None]
        updated, state, hparams, declared_opt = _update_graph(optimizer, entries, step, clip_grad_norm,
                                                              clip_grad_value, norm_type)
    finally:
        for p, rg in saved:
            p.requires_grad = rg
        model.train(was_training)

    declared_data = [(t.name, t.dtype, t._shape) for t in data + [target_in]]
    declared_params = [(f"params/{k}", p.dtype, p._shape) for k, p in named_params]
    declared_buffers = [(f"buffers/{k}", b.dtype, b._shape) for k, b in named_buffers]
    declared_tail = [("step", np.int64, ()), ("seed", np.int64, ())]
    updated.sort(key=lambda o: not o[0].startswith("updated/params/"))  # params, then optimizer state
    outs = [("loss", loss)] + updated[:len(entries)] + [(name, new) for name, _, new in buffer_updates] + \
        updated[len(entries):]
    step_model, _ = build_model([t for _, t in outs], output_names=[n for n, _ in outs], fed=fed,
                                graph_name="training_step")
    declared = declared_data + declared_params + declared_buffers + declared_opt + declared_tail
    step_model = _finish(step_model, declared)

    gradient_model = update_model = None
    if stages:
        gouts = [("loss", loss)] + [(f"grads/{k}", g) for k, _, g, _ in entries] + \
                [(name, new) for name, _, new in buffer_updates]
        gradient_model, _ = build_model([t for _, t in gouts], output_names=[n for n, _ in gouts], fed=fed,
                                        graph_name="gradient_step")
        gradient_model = _finish(gradient_model, declared_data + declared_params + declared_buffers + declared_tail)
        p_ins = [(k, Input(f"params/{k}", p._shape, p.dtype), Input(f"grads/{k}", p._shape, p.dtype), p)
                 for k, _, _, p in entries]
        ustep = Input("step", (), np.int64)
        u_out, _, _, u_declared = _update_graph(optimizer, p_ins, ustep, clip_grad_norm, clip_grad_value, norm_type)
        update_model, _ = build_model([t for _, t in u_out], output_names=[n for n, _ in u_out],
                                      graph_name="update_step")
        update_model = _finish(update_model, [(f"params/{k}", p.dtype, p._shape) for k, _, _, p in entries] +
                               [(f"grads/{k}", p.dtype, p._shape) for k, _, _, p in entries] + u_declared +
                               [("step", np.int64, ())])

    eval_model, outputs = build_eval_model(model, data, fed)
    keys = {id(p): k for k, p in named_params}
    leaves = {f"updated/params/{keys[id(p)]}": p for _, p in trainable}
    updates = [(name, leaves[name]) for name, _ in updated if name in leaves] + \
              [(name, leaf) for name, leaf, _ in buffer_updates]
    return TrainingModels(
        training_model=step_model, eval_model=eval_model, gradient_model=gradient_model, update_model=update_model,
        data=[t.name for t in data], target=target_in.name,
        params=[(f"params/{k}", k, p) for k, p in named_params], trainable=[k for k, _, _, _ in entries],
        buffers=[(f"buffers/{k}", k, b) for k, b in named_buffers], state=state, hparams=hparams,
        updates=updates, random=list(random_inputs), outputs=outputs, optimizer=optimizer,
        signature=optimizer.signature())


def build_eval_model(model, data, fed):
    """The eval-mode forward with parameters and buffers as inputs (`params/..`, `buffers/..`)."""
    was = model.training
    try:
        model.eval()
        with no_grad():
            ins = [Input(t.name, t._shape, t.dtype) for t in data]
            out = model(*ins)
    finally:
        model.train(was)
    outs = [out] if isinstance(out, Tensor) else list(out)
    names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    m, _ = build_model(outs, output_names=names, fed=fed, graph_name="eval")
    return _finish(m, [(t.name, t.dtype, t._shape) for t in data]), names
