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


def load_training_state(folder, model, optimizer, state=None):
    """Load an artifacts folder's state (its state.safetensors, or `state`: one exported by a JS or other
    driver, keyed by the training graph's inputs) into `model` and `optimizer`, so that
    `ok.Trainer(model, loss_fn, optimizer, random_in_graph=True, seed=meta["seed"]["value"])` continues
    the trajectory. Returns the number of steps the state has taken."""
    from safetensors import safe_open
    from .serialization import load_state_dict_file
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(f"{folder} is not a training-artifacts folder (no meta.json); "
                                "ok.training_artifacts(...) writes one")
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: meta.json has format {meta.get('format')!r}, expected {FORMAT!r}")
    path = state or os.path.join(folder, meta["state_file"])
    sd = load_state_dict_file(path)
    with safe_open(os.fspath(path), "np") as f:  # drivers record the next step they would feed
        next_step = (f.metadata() or {}).get("onnxkit-train.next_step")
    taken = int(next_step) - meta["step"]["first"] if next_step is not None else 0
    entries = meta["state"]
    missing = [e["input"] for e in entries if e["input"] not in sd]
    if missing:
        raise ValueError(f"{path}: no tensor for the training input(s) {missing}")
    model.load_state_dict({e["key"]: sd[e["input"]] for e in entries if e["kind"] != "optimizer"})
    params = dict(model.named_parameters())
    index = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    slots = {}
    for e in entries:
        if e["kind"] == "optimizer":
            key, slot = e["key"].rsplit("/", 1)
            slots.setdefault(index[id(params[key])], {"step": taken})[slot] = sd[e["input"]]
    optimizer.load_state_dict({"state": slots, "param_groups": optimizer.state_dict()["param_groups"]})
    return taken
