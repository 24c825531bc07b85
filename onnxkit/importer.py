"""ok.load: any ONNX model -> an nn.Module over the same Tensor DAG (older opsets converted up to 21)."""
import collections
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import dtypes
from .dims import format_shape
from .tensor import OPSET, Tensor, apply, const, no_grad, tensor as make_tensor
from .nn.module import Module
from .nn.parameter import Buffer, Parameter
from .model_files import read_model


def _read(path_or_model):
    """The ModelProto with its external data, read only from inside the model's directory."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    return read_model(path_or_model)


def _default_opset(model):
    """The model's default-domain opset (21 when it declares none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)


def _types(model, others=None):
    """name -> (dtype, shape) from ONNX shape inference over the whole model; the values that are not
    tensors (sequences, maps, optionals) go into `others` as name -> onnx.TypeProto."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    out = {}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.output) + list(g.input):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            if others is not None and vi.type.WhichOneof("value") is not None:
                others[vi.name] = vi.type
            continue
        if not tt.elem_type:
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


def _is_batch_norm(n):
    return n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx")


def _running_stats(graph):
    """{buffer name: (source initializer, names bound to the buffer)} for the running statistics: the
    values a BatchNormalization reads as mean or variance, directly or through Identity nodes, that
    come from an initializer. The buffer takes the initializer's name when nothing else reads it;
    otherwise (torch's exporter shares an all-zeros running_mean with an all-zeros bias through an
    Identity named `1.running_mean`) it takes the statistic's own name and a copy of the value."""
    inits = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers = collections.defaultdict(list)
    for n in graph.node:
        for slot, name in enumerate(n.input):
            readers[name].append((n, slot))
    for name in _subgraph_refs_of_nodes(graph.node) + [o.name for o in graph.output]:
        readers[name].append((None, None))  # read by a subgraph or returned: not only a statistic

    def stat_only(name):
        """Every reader is a BatchNormalization's mean/variance slot or an Identity passing it on to one."""
        def is_stat_use(n, slot):
            if n is None:
                return False
            return (_is_batch_norm(n) and slot in (3, 4)) or (n.op_type == "Identity" and stat_only(n.output[0]))
        return bool(readers[name]) and all(is_stat_use(n, slot) for n, slot in readers[name])

    stats = {}
    for n in graph.node:
        if not _is_batch_norm(n):
            continue
        for name in n.input[3:5]:
            chain = [name]
            while chain[-1] not in inits and chain[-1] in producer and producer[chain[-1]].op_type == "Identity" \
                    and producer[chain[-1]].domain in ("", "ai.onnx"):
                chain.append(producer[chain[-1]].input[0])
            source = chain[-1]
            if source not in inits:
                continue  # computed or fed statistics stay what the graph makes them
            if stat_only(source):
                stats.setdefault(source, (source, set()))[1].update(chain)
            elif name != source:
                stats.setdefault(name, (source, set()))[1].add(name)
    return stats


def _subgraph_refs_of_nodes(nodes):
    """Names the subgraphs of `nodes` read from the enclosing scope."""
    refs = []
    for n in nodes:
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                refs += _subgraph_refs(sub)
    return refs


def _trains_batch_norm(graph):
    """Whether a BatchNormalization in the graph runs in training mode (training_mode=1)."""
    return any(a.name == "training_mode" and a.i for n in graph.node if _is_batch_norm(n) for a in n.attribute)


def _promoted_constants(graph, which, taken):
    """(output name, array) of the top-level float Constant nodes that `which` promotes to parameters:
    True takes those with more than one element (scalars such as a GELU's 0.5 or an epsilon stay
    constants), a callable `which(name, array) -> bool` decides per Constant, False takes none."""
    if not which:
        return []
    out = []
    for n in graph.node:
        if n.op_type != "Constant" or n.domain not in ("", "ai.onnx") or n.output[0] in taken:
            continue
        attr = next((a for a in n.attribute if a.name == "value"), None)
        if attr is None:
            continue
        arr = numpy_helper.to_array(attr.t)
        if not dtypes.is_floating(arr.dtype):
            continue
        if (which(n.output[0], arr) if callable(which) else arr.size > 1):
            out.append((n.output[0], arr.copy()))
    return out


def _text_as_str(v):
    """A text feed (numpy `<U`/`S` array, list of str or bytes, bytes in an object array) as an object
    array of str, the form onnxruntime reads for a string tensor (it misreads bytes); others unchanged."""
    if not isinstance(v, (np.ndarray, list, tuple, str, bytes, np.str_, np.bytes_)):
        return v
    arr = np.asarray(v)
    if arr.dtype.kind not in "USO" or (arr.dtype.kind == "O" and not any(isinstance(x, bytes) for x in arr.flat)):
        return v
    if arr.dtype.kind == "O" and not all(isinstance(x, (str, bytes)) for x in arr.flat):
        return v
    out = np.empty(arr.shape, dtype=object)
    out.reshape(-1)[:] = [x.decode() if isinstance(x, bytes) else str(x) for x in arr.reshape(-1).tolist()]
    return out


def _type_str(tp):
    """An onnx.TypeProto as ONNX writes it: seq(map(int64,tensor(float)))."""
    def elem(e):
        return helper.tensor_dtype_to_string(e).replace("TensorProto.", "").lower()
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        return f"tensor({elem(tp.tensor_type.elem_type)})"
    if kind == "sequence_type":
        return f"seq({_type_str(tp.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({_type_str(tp.optional_type.elem_type)})"
    if kind == "map_type":
        return f"map({elem(tp.map_type.key_type)},{_type_str(tp.map_type.value_type)})"
    return str(kind)


class ImportedModule(Module):
    """An ONNX graph as a Module: call positionally in graph-input order or with input names as
    keywords; float initializers are parameters (named as in the file), except a BatchNormalization's
    mean and variance, which are buffers like the other initializers. BatchNormalization follows the
    module's mode as torch's BatchNorm does: eval() uses the running statistics, train() the batch
    statistics and updates the running ones. The module starts in the file's mode: eval, unless a
    BatchNormalization has training_mode=1."""

    def __init__(self, model, trainable_constants=False):
        super().__init__()
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_opset", _default_opset(model))
        from .emit import DOMAIN_VERSIONS, FUNCTIONS
        DOMAIN_VERSIONS.update({o.domain: o.version for o in model.opset_import if o.domain not in ("", "ai.onnx")})
        FUNCTIONS.update({(f.domain, f.name): f for f in model.functions})
        g = model.graph
        inits = {t.name for t in g.initializer}
        object.__setattr__(self, "input_names", [i.name for i in g.input if i.name not in inits])
        object.__setattr__(self, "output_names", [o.name for o in g.output])
        object.__setattr__(self, "_other_types", {})
        object.__setattr__(self, "_types", _types(model, self._other_types))
        object.__setattr__(self, "_homes", {})  # graph name -> (store, key): read through the stores per call
        stats = _running_stats(g)
        values = {}
        for t in g.initializer:
            arr = values[t.name] = numpy_helper.to_array(t)
            if t.name in stats:
                continue
            if dtypes.is_floating(arr.dtype):
                p = Parameter(arr)
                p.name = t.name
                self._parameters[t.name] = p
                self._homes[t.name] = (self._parameters, t.name)
            else:
                b = const(arr, arr.dtype)
                b.name = t.name
                self._buffers[t.name] = b
                self._homes[t.name] = (self._buffers, t.name)
        for name, arr in _promoted_constants(g, trainable_constants, set(self._homes)):
            p = Parameter(arr)
            p.name = name
            self._parameters[name] = p
            self._homes[name] = (self._parameters, name)
        for name, (source, bound) in stats.items():
            b = Buffer(values[source])
            b.name = name
            self._buffers[name] = b
            self._homes.update(dict.fromkeys(bound | {name}, (self._buffers, name)))
        object.__setattr__(self, "_graph_inputs", {i.name: i for i in g.input})
        leaves = self._graph_leaves()
        object.__setattr__(self, "_initial_values", {k: v.numpy().copy() for k, v in leaves.items()
                                                     if v is not None and dtypes.is_floating(v.dtype)})
        self.training = _trains_batch_norm(g)

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
        env = self._graph_leaves()
        for name, v in feeds.items():
            env[name] = self._check_input(name, v if isinstance(v, Tensor) else make_tensor(_text_as_str(v)))
        for n in self._model.graph.node:
            self._replay(n, env)
        outs = [env[o] for o in self.output_names]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _graph_leaves(self):
        """{graph name: the parameter or buffer now}: read through the stores, so a replaced Parameter
        (load_state_dict(assign=True)) or a compiled module's replay input is what the graph reads."""
        return {name: store[key] for name, (store, key) in self._homes.items()}

    def _check_input(self, name, t):
        """A fed tensor checked against the declared input type, so a mismatch is named here rather
        than by onnxruntime when the graph is run."""
        declared = self._graph_inputs[name].type
        if declared.WhichOneof("value") not in (None, "tensor_type"):
            raise TypeError(f"input {name!r} is a {declared.WhichOneof('value').replace('_type', '')} "
                            f"({_type_str(declared)}), not a tensor: onnxkit feeds tensors only; run the model "
                            "with onnxruntime (ok.Session) to feed it")
        tt = declared.tensor_type
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
        if n.op_type in ("Identity", "Constant") and n.output[0] in self._homes:
            return  # an alias of a running statistic bound to its buffer, or a Constant promoted to a parameter
        attrs = {a.name: _py_attr(helper.get_attribute_value(a)) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and "value" in attrs:
            arr = numpy_helper.to_array(attrs["value"])
            env[n.output[0]] = const(arr, arr.dtype)
            return
        unknown = [name for name in n.input if name and name not in env]
        if unknown:
            raise ValueError(f"node {n.name or n.op_type} reads {unknown[0]!r}, which no earlier node produces")
        inputs = [env[i] if i else None for i in n.input]
        if _is_batch_norm(n):
            outs = self._batch_norm(inputs, attrs, len(n.output))
            for name, t in zip(n.output, outs):
                if name:
                    env[name] = t
            return
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
        from .tensor import name_scope
        with name_scope(n.name):  # the file's node name: errors (a missing gradient rule) and re-exports name it
            outs = apply(n.op_type, inputs, attrs, n_out=len(n.output), domain=n.domain if n.domain != "ai.onnx" else "",
                         types=types, outer=outer)
        outs = [outs] if isinstance(outs, Tensor) else outs
        for name, t in zip(n.output, outs):
            tp = self._other_types.get(name) if name else None
            if tp is not None:  # a sequence, map or optional (ZipMap's seq(map)): emitted with its own type
                from .infer import set_non_tensor_type
                set_non_tensor_type(t.node, t.index, tp)
                t.dtype, t._shape, t.requires_grad = dtypes.STRING, None, False
        if self._opset > OPSET:
            outs[0].node.opset = self._opset
        for name, t in zip(n.output, outs):
            if name:
                env[name] = t

    def _batch_norm(self, inputs, attrs, n_out):
        """BatchNormalization in the module's mode: eval, one node on the running statistics; train,
        batch statistics with the running ones updated as torch does (momentum 1 - ONNX momentum,
        unbiased variance), as buffer effects when the statistics are this module's buffers.
        Outputs: Y, and the (updated) running mean and variance when the node asks for them."""
        from .ops.norm import _blend, _normalize_per_channel, _unbiased, add_buffer_updates, buffer_value
        from .ops import squeeze
        x, scale, bias, mean, var = inputs[:5]
        eps = float(attrs.get("epsilon", 1e-5))
        if not self.training:
            y = apply("BatchNormalization", [x, scale, bias, mean, var], {"epsilon": eps},
                      types=[(x.dtype, x._shape)])
            return [y, mean, var][:n_out]
        momentum = 1.0 - float(attrs.get("momentum", 0.9))
        axes = [0] + list(range(2, len(x._shape)))
        y, m, v, count = _normalize_per_channel(x, axes, scale, bias, eps, "value per channel")
        buffers = {id(b) for b in self._buffers.values() if b is not None}
        with no_grad():
            new_mean = _blend(buffer_value(mean) if id(mean) in buffers else mean, squeeze(m, axes), momentum)
            new_var = _blend(buffer_value(var) if id(var) in buffers else var, _unbiased(squeeze(v, axes), count),
                             momentum)
            updates = [(b, new) for b, new in ((mean, new_mean), (var, new_var)) if id(b) in buffers]
            if updates:
                add_buffer_updates(y, updates)
        return [y, new_mean, new_var][:n_out]

    def map_weights(self, target):
        """Map this module's parameters and buffers back onto a source framework's weights.

        `target` is {name: array} of the source model's weights as they were exported (a torch
        `state_dict()`, `{w.path: w.numpy()}` of a Keras model). An entry is matched by name to the
        initializer of that name; failing that, by value to the one weight whose value at import time
        is that entry's value, as it is, transposed or reshaped (exporters rename and transpose weights:
        torch's `onnx::MatMul_12` holds a Linear weight transposed, tf2onnx holds a Keras HWIO kernel as
        OIHW); an entry whose value several weights share (all-ones, all-zeros) is ambiguous and not mapped.
        Returns `(state, unmapped)`: `state` {target name: current value as a numpy array in the
        target's layout, ready for `load_state_dict` / `set_weights`}, and `unmapped` the names of this
        module's float parameters that matched no target entry."""
        import itertools
        import numpy as np
        mine = dict(self.named_parameters())
        mine.update((k, v) for k, v in self.named_buffers() if k not in mine)
        initial = self._initial_values
        state, used = {}, set()
        tvals = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in target.items()}
        for k in tvals:
            if k in mine and tuple(mine[k].numpy().shape) == tvals[k].shape:
                state[k] = mine[k].numpy()
                used.add(k)
        def layout(init, tv):
            """How `init` becomes `tv`: a permutation of its axes, "reshape", or None."""
            if init.size != tv.size or init.dtype != tv.dtype:
                return None
            perm = next((pm for pm in itertools.permutations(range(init.ndim)) if init.transpose(pm).shape
                         == tv.shape and np.array_equal(init.transpose(pm), tv)), None)
            if perm is None and init.ndim != tv.ndim and np.array_equal(init.reshape(tv.shape), tv):
                perm = "reshape"
            return perm

        for k, tv in tvals.items():
            if k in state or tv.size < 2:
                continue
            found = [(name, perm) for name, init in initial.items() if name not in used and name in mine
                     for perm in [layout(init, tv)] if perm is not None]
            if len(found) != 1:
                continue  # no match, or several equal weights (all-ones, all-zeros): ambiguous, not mapped
            name, perm = found[0]
            cur = mine[name].numpy()
            state[k] = cur.reshape(tv.shape) if perm == "reshape" else cur.transpose(perm)
            used.add(name)
        unmapped = [n for n, p in self.named_parameters() if n not in used and n not in state]
        return state, unmapped

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


def load(path_or_model, trainable_constants=False):
    """Read an ONNX model (path or ModelProto), convert an older opset up to 21 (a newer one is kept, and
    what onnxkit builds on it is emitted at that opset) and return a Module (in eval
    mode unless a BatchNormalization in the file has training_mode=1). A weights file (.pth, .pt,
    .bin, .ckpt, .safetensors) raises, pointing to ok.load_state_dict_file + model.load_state_dict;
    an empty, truncated or foreign file raises an error that names it.

    trainable_constants: some exporters (jax2onnx, tf2onnx's constant folding, torch's dynamo exporter
    for lifted tensors) hold weights in Constant nodes rather than initializers. True promotes every
    top-level float Constant with more than one element to a parameter named by the Constant's output
    (scalars stay constants); a callable `(name, array) -> bool` chooses per Constant."""
    model = _read(path_or_model)
    if _default_opset(model) < OPSET:  # a newer opset is kept: its nodes carry it (Node.opset) into emitted graphs
        from onnx import version_converter
        try:
            model = version_converter.convert_version(model, OPSET)
        except Exception as e:
            raise ValueError(f"could not convert the model from opset {_default_opset(model)} to {OPSET}: {e}") from None
    return ImportedModule(model, trainable_constants=trainable_constants)
