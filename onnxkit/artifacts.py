"""Portable training artifacts (DESIGN.md "Training artifacts"): DIR/training.onnx (one standard-op
training step), DIR/eval.onnx, DIR/state.safetensors (keyed by the step's input names) and DIR/meta.json,
enough for any ONNX runtime (onnxruntime in Python, Node or a browser) to drive the training loop
without onnxkit. Dropout masks are hashed in the graph from the `seed` and `step` inputs, so a driver
only feeds values: data, target, step, seed, hyperparameters and the state it gets back each step."""
import json
import os

import numpy as np
import onnx

from .checkpoint import atomic_path
from .training import build_training_model, state_leaf

FORMAT = "onnxkit-training/1"


def training_artifacts(model, loss_fn, optimizer, inputs, target, path, *, seed=0, frozen=(), clip_grad_norm=None,
                       clip_grad_value=None):
    """Write the artifacts of `loss_fn(model(*inputs), target)` trained by `optimizer` to the folder
    `path` (example batches or ok.Inputs give the data shapes; their first dim stays symbolic) and
    return the meta dict. LR schedulers are not baked in: the learning rate is a hyperparameter input."""
    g = build_training_model(model, loss_fn, optimizer, inputs, target, frozen=frozen, clip_grad_norm=clip_grad_norm,
                             clip_grad_value=clip_grad_value, random_in_graph=True)
    outputs = {o.name for o in g.training_model.graph.output}
    state, values = [], {}
    for name, key, p in g.params:
        out = f"updated/{name}"
        state.append({"input": name, "output": out if out in outputs else None, "key": key, "kind": "parameter"})
        values[name] = p.numpy()
    for name, key, b in g.buffers:
        out = f"updated/{name}"
        state.append({"input": name, "output": out if out in outputs else None, "key": key, "kind": "buffer"})
        values[name] = b.numpy()
    keys = {id(p): k for _, k, p in g.params}
    for name, out, p, slot in g.state:
        state.append({"input": name, "output": out, "key": f"{keys[id(p)]}/{slot}", "kind": "optimizer"})
        values[name] = state_leaf(g.optimizer, p, slot).numpy()
    meta = {"format": FORMAT, "training_model": "training.onnx", "eval_model": "eval.onnx",
            "state_file": "state.safetensors", "data": list(g.data), "target": g.target, "loss": "loss",
            "eval_outputs": list(g.outputs),
            "step": {"input": "step", "first": 1}, "seed": {"input": "seed", "value": int(seed)},
            "hyperparameters": {name: float(v) for name, v in g.hparam_values().items()},
            "state": state, "random": []}
    os.makedirs(path, exist_ok=True)
    _write_model(g.training_model, os.path.join(path, "training.onnx"))
    _write_model(g.eval_model, os.path.join(path, "eval.onnx"))
    from .serialization import save
    save(values, os.path.join(path, "state.safetensors"))
    with atomic_path(os.path.join(path, "meta.json")) as tmp, open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def _write_model(model, path):
    """onnx.save through a temp file and a rename."""
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)
