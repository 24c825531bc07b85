"""ok.export: trace a Module or function on symbolic Inputs and emit a checked onnx.ModelProto."""
import os

import numpy as np
import onnx
from onnx import helper

from .emit import build_model
from .tensor import Tensor, Input, no_grad, OPSET

_PROTO_LIMIT = 2 ** 31 - 2 ** 26  # protobuf's 2 GB limit, less headroom for the graph itself


def _as_inputs(inputs, names=None):
    """Export inputs as symbolic Inputs: Inputs pass, arrays and value Tensors give static ones, named
    from `names` (an imported model's own input names) or `input` / `input_0..`."""
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = [inputs]
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.kind == "input":
            out.append(x)
        elif isinstance(x, (np.ndarray, Tensor)):
            arr = x.numpy() if isinstance(x, Tensor) else x
            name = names[i] if names is not None and i < len(names) else \
                f"input_{i}" if len(inputs) > 1 else "input"
            out.append(Input(name, arr.shape, arr.dtype))
        else:
            raise TypeError(f"export inputs must be ok.Input(...) or arrays, got {type(x).__name__} at position {i}")
    names = [x.name for x in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"export: input name(s) {repeated} are used more than once; give each Input its own name")
    return out


def _name_leaves(module):
    """Initializers carry the parameter and buffer names of the module (torch's state_dict keys)."""
    from .nn import Module
    if isinstance(module, Module):
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            t.name = name


def trace(fn, inputs, training=False):
    """Call fn on the Inputs (eval mode unless training) and return the output Tensors."""
    from .nn import Module
    was = None
    if isinstance(fn, Module):
        was = fn.training
        fn.train(training)
        _name_leaves(fn)
    try:
        with no_grad():
            out = fn(*inputs)
    finally:
        if was is not None:
            fn.train(was)
    outs = [out] if isinstance(out, Tensor) else list(out)
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"output {i} of the traced function is a {type(o).__name__}, not a Tensor")
    return outs


def export(module_or_fn, inputs=None, path=None, opset=OPSET, training=False, output_names=None, check=True):
    """Emit the eval-mode forward graph (train-mode with training=True) as an onnx.ModelProto;
    inputs named from the Inputs, outputs `output` or `output_0..`, symbolic dims kept; written
    to `path` when given (external data for models over 2 GB). A model imported by ok.load keeps
    its own input and output names (and its declared inputs when `inputs` is None)."""
    from .importer import ImportedModule
    imported = module_or_fn if isinstance(module_or_fn, ImportedModule) else None
    if inputs is None:
        if imported is None:
            raise TypeError("export needs `inputs` (ok.Input(...) or example arrays) for a module or function")
        inputs = imported.graph_inputs()
    inputs = _as_inputs(inputs, imported.input_names if imported is not None else None)
    outs = trace(module_or_fn, inputs, training)
    if output_names is None and imported is not None and len(imported.output_names) == len(outs):
        output_names = list(imported.output_names)
    if output_names is None:
        output_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    if len(output_names) != len(outs):
        raise ValueError(f"output_names has {len(output_names)} names for {len(outs)} outputs")
    model, _ = build_model(outs, output_names=output_names, graph_name=type(module_or_fn).__name__)
    declared = {x.name for x in model.graph.input}
    missing = [i.name for i in inputs if i.name not in declared]
    if missing:
        raise ValueError(f"export: the outputs do not depend on input(s) {missing}")
    order = {i.name: k for k, i in enumerate(inputs)}
    ins = sorted(model.graph.input, key=lambda v: order.get(v.name, len(order)))
    del model.graph.input[:]
    model.graph.input.extend(ins)
    if opset != OPSET:
        from onnx import version_converter
        model = version_converter.convert_version(model, opset)
        model.ir_version = min(model.ir_version, 10)
    large = _initializer_bytes(model) > _PROTO_LIMIT
    if check and not large:
        onnx.checker.check_model(model, full_check=True)
    if path is not None:
        save(model, path, large)
    return model


def save(model, path, external=None):
    """Write atomically (temp file + rename, see checkpoint.atomic_path); external data when the
    model is over 2 GB."""
    from .checkpoint import atomic_path
    path = os.fspath(path)
    if external is None:
        external = _initializer_bytes(model) > _PROTO_LIMIT
    with atomic_path(path) as tmp:
        if external:
            onnx.save_model(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=os.path.basename(path) + ".data", size_threshold=1024)
        else:
            onnx.save_model(model, tmp)


def _initializer_bytes(model):
    """Size of the model's initializers, from their shapes (no copies)."""
    return sum(int(np.prod(t.dims, dtype=np.int64)) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in model.graph.initializer)
