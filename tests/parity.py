"""The shared parity harness: one row per layer configuration, checked against torch (the oracle).

A row builds the torch module and the onnxkit module from the same constructor call, copies
torch's weights in with load_state_dict, then checks:
  1. forward outputs (train and/or eval mode),
  2. gradients w.r.t. the inputs and every parameter (ok.grad vs torch.autograd),
  3. export with a symbolic batch dim: full ONNX checker, default domain only, onnxruntime run at
     another batch size equal to torch.
Add a layer by adding rows; see tests/test_layers_core.py for examples."""
import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import onnx
import torch

import onnxkit as ok
from onnxkit import nn


@dataclasses.dataclass
class Row:
    name: str                        # test id, e.g. "Conv2d-stride2-groups2"
    ctor: str                        # class name in both torch.nn and onnxkit.nn
    args: tuple = ()                 # constructor positional args
    kwargs: dict = dataclasses.field(default_factory=dict)
    shapes: Sequence[tuple] = ((2, 3),)  # input shapes; the first dim is the batch
    modes: Sequence[str] = ("eval",)     # "train" and/or "eval"
    grad: bool = True                # compare gradients
    export: bool = True              # export with a symbolic batch and run at batch+1
    int_inputs: Optional[dict] = None  # {input index: (low, high)} for integer inputs (targets, indices)
    make_inputs: Optional[Callable] = None  # rng, batch -> list of numpy inputs (overrides shapes)
    rtol: float = 1e-4
    atol: float = 1e-5
    dynamic_batch: bool = True       # the batch dim of every input is symbolic in the export
    output_index: Optional[int] = None  # compare only this output of a tuple


def _inputs(row, rng, batch):
    if row.make_inputs is not None:
        return [np.asarray(a) for a in row.make_inputs(rng, batch)]
    out = []
    for i, s in enumerate(row.shapes):
        s = (batch,) + tuple(s[1:]) if s else s
        if row.int_inputs and i in row.int_inputs:
            lo, hi = row.int_inputs[i]
            out.append(rng.integers(lo, hi, size=s).astype(np.int64))
        else:
            out.append(rng.standard_normal(s).astype(np.float32))
    return out


def _torch_out(tm, xs):
    tx = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
    y = tm(*tx)
    return tx, y


def _pick(y, row):
    if isinstance(y, (tuple, list)):
        return y[row.output_index or 0]
    return y


def build(row):
    torch.manual_seed(0)
    tm = getattr(torch.nn, row.ctor)(*row.args, **row.kwargs)
    om = getattr(nn, row.ctor)(*row.args, **row.kwargs)
    om.load_state_dict(tm.state_dict())
    return tm, om


def check_row(row):
    tm, om = build(row)
    rng = np.random.default_rng(0)
    batch = row.shapes[0][0] if row.shapes and row.shapes[0] else 2
    for mode in row.modes:
        tm.train(mode == "train"), om.train(mode == "train")
        xs = _inputs(row, rng, batch)
        tx, ty = _torch_out(tm, xs)
        ty = _pick(ty, row)
        ox = [ok.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
        oy = _pick(om(*ox), row)
        np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=row.rtol, atol=row.atol,
                                   err_msg=f"{row.name} [{mode}] forward")
        if row.grad and ty.requires_grad:
            g = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(np.float32)
            wrt_t = [t for t in tx if t.requires_grad] + [p for p in tm.parameters() if p.requires_grad]
            wrt_o = [t for t in ox if t.requires_grad] + [p for p in om.parameters() if p.requires_grad]
            tg = torch.autograd.grad(ty, wrt_t, torch.tensor(g), allow_unused=True)
            og = ok.grad(oy, wrt_o, grad_outputs=ok.tensor(g), allow_unused=True)
            names = [f"input{i}" for i, t in enumerate(tx) if t.requires_grad] + \
                    [n for n, p in tm.named_parameters() if p.requires_grad]
            for name, a, b in zip(names, og, tg):
                if b is None:
                    assert a is None or np.allclose(a.numpy(), 0), f"{row.name} [{mode}] grad {name}: torch has none"
                    continue
                assert a is not None, f"{row.name} [{mode}] grad {name}: onnxkit has none"
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=row.rtol * 10, atol=row.atol * 10,
                                           err_msg=f"{row.name} [{mode}] grad {name}")
    if row.export:
        check_export(row, tm, om)


def check_export(row, tm, om):
    """Export in eval mode with a symbolic batch, check, run at another batch size."""
    tm.eval(), om.eval()
    rng = np.random.default_rng(2)
    batch = (row.shapes[0][0] if row.shapes and row.shapes[0] else 2) + 1
    xs = _inputs(row, rng, batch)
    names = [f"x{i}" for i in range(len(xs))]
    inputs = [ok.Input(n, (("N",) + x.shape[1:]) if (row.dynamic_batch and x.ndim) else x.shape, x.dtype)
              for n, x in zip(names, xs)]
    model = ok.export(om, inputs)
    onnx.checker.check_model(model, full_check=True)
    bad = {n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")}
    assert not bad, f"{row.name}: non-standard domains {bad}"
    out = ok.Session(model).run(dict(zip(names, xs)))
    first = out[model.graph.output[0].name] if row.output_index is None else out[model.graph.output[row.output_index].name]
    with torch.no_grad():
        ty = _pick(tm(*[torch.tensor(x) for x in xs]), row)
    np.testing.assert_allclose(first, ty.numpy(), rtol=row.rtol, atol=row.atol, err_msg=f"{row.name} export")


def ids(rows):
    return [r.name for r in rows]
