"""ok.load: any ONNX model -> an nn.Module over the same Tensor DAG (converted to opset 21)."""
import os

import onnx
from onnx import helper, numpy_helper

from . import dtypes
from .dims import format_shape
from .tensor import OPSET, Tensor, apply, const, tensor as make_tensor
from .nn.module import Module
from .nn.parameter import Parameter


def _read(path_or_model):
    """The ModelProto with its external data, read only from inside the model's directory."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    path = os.fspath(path_or_model)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no ONNX model at {path!r}")
    model = onnx.load(path, load_external_data=False)
    base = os.path.dirname(os.path.abspath(path))
    for t in _external_tensors(model):
        loc = next(e.value for e in t.external_data if e.key == "location")
        full = os.path.realpath(os.path.join(base, loc))
        if os.path.commonpath([full, base]) != base:
            raise ValueError(f"external data {loc!r} of tensor {t.name!r} points outside the model's directory; refusing to read it")
    onnx.load_external_data_for_model(model, base)
    return model


def _external_tensors(model):
    """Initializers stored outside the file (subgraph tensors are checked by onnx itself)."""
    return [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


def _default_opset(model):
    """The model's default-domain opset (21 when it declares none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)


def _types(model):
    """name -> (dtype, shape) from ONNX shape inference over the whole model."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    out = {}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.output) + list(g.input):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.elem_type:
            continue
        try:
            dt = dtypes.from_onnx(tt.elem_type)
        except TypeError:
            continue
        shape = None if not tt.HasField("shape") else tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        out[vi.name] = (dt, shape)
    return out


def _py_attr(value):
    """An attribute value as apply() takes it: strings decoded from bytes."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _subgraph_refs(graph, defined=None):
    """Names a subgraph reads from enclosing scopes."""
    defined = set(defined or ()) | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    refs = []
    for n in graph.node:
        for i in n.input:
            if i and i not in defined and i not in refs:
                refs.append(i)
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                refs += [r for r in _subgraph_refs(sub, defined) if r not in refs]
        defined.update(n.output)
    return refs


class ImportedModule(Module):
    """An ONNX graph as a Module: call positionally in graph-input order or with input names as
    keywords; float initializers are parameters (named as in the file), others buffers."""

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, "_model", model)
        from .emit import DOMAIN_VERSIONS, FUNCTIONS
        DOMAIN_VERSIONS.update({o.domain: o.version for o in model.opset_import if o.domain not in ("", "ai.onnx")})
        FUNCTIONS.update({(f.domain, f.name): f for f in model.functions})
        g = model.graph
        inits = {t.name for t in g.initializer}
        object.__setattr__(self, "input_names", [i.name for i in g.input if i.name not in inits])
        object.__setattr__(self, "output_names", [o.name for o in g.output])
        object.__setattr__(self, "_types", _types(model))
        object.__setattr__(self, "_leaves", {})
        for t in g.initializer:
            arr = numpy_helper.to_array(t)
            if dtypes.is_floating(arr.dtype):
                p = Parameter(arr)
                p.name = t.name
                self._parameters[t.name] = p
                self._leaves[t.name] = p
            else:
                b = const(arr, arr.dtype)
                b.name = t.name
                self._buffers[t.name] = b
                self._leaves[t.name] = b
        object.__setattr__(self, "_graph_inputs", {i.name: i for i in g.input})

    def forward(self, *args, **kwargs):
        if len(args) > len(self.input_names):
            raise TypeError(f"model takes {len(self.input_names)} inputs {self.input_names}, got {len(args)}")
        feeds = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self.input_names:
                raise TypeError(f"unexpected input {k!r}; the model's inputs are {self.input_names}")
            feeds[k] = v
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise TypeError(f"missing input(s) {missing}; the model's inputs are {self.input_names}")
        env = dict(self._leaves)
        for name, v in feeds.items():
            env[name] = self._check_input(name, v if isinstance(v, Tensor) else make_tensor(v))
        for n in self._model.graph.node:
            self._replay(n, env)
        outs = [env[o] for o in self.output_names]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _check_input(self, name, t):
        """A fed tensor checked against the declared input type, so a mismatch is named here rather
        than by onnxruntime when the graph is run."""
        tt = self._graph_inputs[name].type.tensor_type
        want = dtypes.from_onnx(tt.elem_type) if tt.elem_type else t.dtype
        if t.dtype != want:
            raise TypeError(f"input {name!r}: expected dtype {want}, got {t.dtype}")
        if tt.HasField("shape") and t._shape is not None:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            bad = len(dims) != len(t._shape) or any(
                w is not None and isinstance(g, int) and w != g for w, g in zip(dims, t._shape))
            if bad:
                declared = [w if w is not None else "?" for w in dims]
                raise ValueError(f"input {name!r}: expected shape {format_shape(declared)}, "
                                 f"got {format_shape(t._shape)}")
        return t

    def _replay(self, n, env):
        """Record node `n` with apply(), reading and writing tensors in `env` by name."""
        attrs = {a.name: _py_attr(helper.get_attribute_value(a)) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and "value" in attrs:
            arr = numpy_helper.to_array(attrs["value"])
            env[n.output[0]] = const(arr, arr.dtype)
            return
        unknown = [name for name in n.input if name and name not in env]
        if unknown:
            raise ValueError(f"node {n.name or n.op_type} reads {unknown[0]!r}, which no earlier node produces")
        inputs = [env[i] if i else None for i in n.input]
        outer = None
        subs = [a for a in n.attribute if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)]
        if subs:
            refs = []
            for a in subs:
                for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    refs += [r for r in _subgraph_refs(sg) if r not in refs]
            outer = {r: env[r] for r in refs if r in env}
        types = None
        known = [self._types.get(o) for o in n.output]
        if all(k is not None and k[1] is not None for k in known):
            from .infer import fresh_dim
            types = [(dt, tuple(d if d is not None else fresh_dim() for d in shp)) for dt, shp in known]
        outs = apply(n.op_type, inputs, attrs, n_out=len(n.output), domain=n.domain if n.domain != "ai.onnx" else "",
                     types=types, outer=outer)
        outs = [outs] if isinstance(outs, Tensor) else outs
        for name, t in zip(n.output, outs):
            if name:
                env[name] = t

    def graph_inputs(self):
        """ok.Input leaves matching the model's declared inputs (for re-export)."""
        from .tensor import Input
        res = []
        for name in self.input_names:
            tt = self._graph_inputs[name].type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or f"{name}_d{i}")
                          for i, d in enumerate(tt.shape.dim))
            res.append(Input(name, shape, dtypes.from_onnx(tt.elem_type)))
        return res

    def extra_repr(self):
        return f"inputs={self.input_names}, outputs={self.output_names}, nodes={len(self._model.graph.node)}"


def load(path_or_model):
    """Read an ONNX model (path or ModelProto), convert it to opset 21 and return a Module."""
    model = _read(path_or_model)
    if _default_opset(model) != OPSET:
        from onnx import version_converter
        try:
            model = version_converter.convert_version(model, OPSET)
        except Exception as e:
            raise ValueError(f"could not convert the model from opset {_default_opset(model)} to {OPSET}: {e}") from None
    return ImportedModule(model)
