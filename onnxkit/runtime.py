"""onnxruntime execution: device selection, the public Session, and lazy evaluation of Tensors
with compiled sessions cached by graph structure."""
import collections
import ctypes
import os

import numpy as np

from .dims import format_shape
from .emit import build_model, structure_key, topo
from .macro import expand_macros, unkeyable
from .ops.norm import _latest_update, unapplied_updates
from .tensor import Node, Tensor

_providers_cache = {}


def cuda_available():
    """True when the CUDA provider is installed and a CUDA driver with a device is present.
    Probed without creating a session, so nothing is printed on a CPU-only machine."""
    if "cuda" not in _providers_cache:
        ok = False
        try:
            import onnxruntime as ort
            if "CUDAExecutionProvider" in ort.get_available_providers():
                lib = ctypes.CDLL("libcuda.so.1")
                count = ctypes.c_int(0)
                ok = lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
        except OSError:
            ok = False
        _providers_cache["cuda"] = ok
    return _providers_cache["cuda"]


def providers_for(device):
    """onnxruntime providers for "auto" | "cpu" | "cuda"; "cuda" without a usable GPU raises."""
    device = (device or "auto").lower()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu" or (device == "auto" and not cuda_available()):
        return ["CPUExecutionProvider"]
    if device == "cuda" and not cuda_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA device is usable "
                           "(install onnxruntime-gpu and a CUDA driver, or use device='auto')")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def session_options(spinning=False, threads=None):
    """Thread settings that let several sessions share a process: spinning off (an idle spinning
    session slows its neighbours by up to 40 %, see PERF_NOTES), intra-op threads = cores."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def make_inference_session(model, device="auto", spinning=False, optimization=None):
    """An onnxruntime.InferenceSession for a ModelProto, serialized bytes or a path, on `device`."""
    import onnxruntime as ort
    so = session_options(spinning)
    if optimization is not None:
        so.graph_optimization_level = optimization
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    sess = ort.InferenceSession(data, sess_options=so, providers=providers_for(device))
    if (device or "").lower() == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise RuntimeError("the CUDA provider did not load for this session")
    return sess


class Session:
    """Runs an ONNX model (path or ModelProto) on onnxruntime; `run(feeds)` -> {name: array}.
    Feeds are checked against the model's inputs first so errors name the input."""

    def __init__(self, model, device="auto", spinning=False, optimization=None):
        import onnx
        if not isinstance(model, (str, os.PathLike, bytes)) and not isinstance(model, onnx.ModelProto):
            raise TypeError(f"Session takes a path or an onnx.ModelProto, got {type(model).__name__}")
        self._sess = make_inference_session(model, device, spinning, optimization)
        self.device = "cuda" if "CUDAExecutionProvider" in self._sess.get_providers() else "cpu"
        self.providers = self._sess.get_providers()
        self.inputs = [(i.name, i.type, i.shape) for i in self._sess.get_inputs()]
        self.input_names = [i[0] for i in self.inputs]
        self.output_names = [o.name for o in self._sess.get_outputs()]
        self._expect = {name: (_ORT_TYPES.get(typ), shape) for name, typ, shape in self.inputs}
        self._binding = None

    def check_feeds(self, feeds):
        """Feeds as numpy arrays, checked against the model's input names, dtypes and static dims."""
        missing = [n for n in self.input_names if n not in feeds]
        extra = [n for n in feeds if n not in self._expect]
        if missing or extra:
            parts = ([f"missing input(s) {missing}"] if missing else []) + ([f"unexpected input(s) {extra}"] if extra else [])
            raise ValueError(f"bad feeds: {'; '.join(parts)}; the model's inputs are {self.input_names}")
        out = {}
        for name, v in feeds.items():
            v = _to_numpy(v)
            want_dtype, want_shape = self._expect[name]
            if want_dtype is not None and v.dtype != want_dtype:
                if v.dtype.kind == want_dtype.kind == "f" or (v.dtype.kind in "iu" and want_dtype.kind in "iu"):
                    raise TypeError(f"input {name!r}: expected dtype {want_dtype}, got {v.dtype} "
                                    f"(convert with .astype(np.{want_dtype.name}))")
                raise TypeError(f"input {name!r}: expected dtype {want_dtype}, got {v.dtype}")
            if want_shape is not None:
                if len(want_shape) != v.ndim:
                    raise ValueError(f"input {name!r}: expected rank {len(want_shape)} {format_shape(want_shape)}, "
                                     f"got shape {v.shape}")
                for i, (w, g) in enumerate(zip(want_shape, v.shape)):
                    if isinstance(w, int) and w != g:
                        raise ValueError(f"input {name!r}: expected shape {format_shape(want_shape)}, got {v.shape} "
                                         f"(dim {i} must be {w})")
            out[name] = v
        return out

    def run(self, feeds, output_names=None):
        """Run once: {input name: array} -> {output name: array} (all outputs unless output_names)."""
        feeds = self.check_feeds(feeds)
        names = output_names or self.output_names
        return dict(zip(names, self._sess.run(names, feeds)))

    def run_bound(self, feeds):
        """Repeated-run path: binds inputs and outputs as OrtValues on the session's device through
        IOBinding and returns OrtValues (call .numpy() on them)."""
        import onnxruntime as ort
        dev = "cuda" if self.device == "cuda" else "cpu"
        b = self._binding or self._sess.io_binding()
        self._binding = b
        for name, v in feeds.items():
            if isinstance(v, ort.OrtValue):
                b.bind_ortvalue_input(name, v)
            else:
                b.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.asarray(v, order="C"), dev, 0))
        for name in self.output_names:
            b.bind_output(name, dev)
        self._sess.run_with_iobinding(b)
        return dict(zip(self.output_names, b.get_outputs()))

    @property
    def ort_session(self):
        return self._sess

    def random_feeds(self, given=None, dims=None, batch=None, seed=0):
        """Feeds for every input: the `given` arrays, seeded random data for the rest (standard normal
        floats, random bools, zeros for integers, safe as indices). A named dim takes its size from
        `dims`, else `batch` in first place, else 1; so does an unknown dim."""
        rng = np.random.default_rng(seed)
        feeds = dict(given or {})
        for name, typ, shape in self.inputs:
            if name in feeds:
                continue
            size = _input_shape(shape, dims or {}, batch)
            dt = _ORT_TYPES.get(typ)
            if dt is None:
                raise ValueError(f"input {name!r} has type {typ}, which needs a given value")
            if dt.kind == "f":
                feeds[name] = rng.standard_normal(size).astype(dt)
            elif dt.kind == "b":
                feeds[name] = rng.random(size) < 0.5
            else:
                feeds[name] = np.zeros(size, dt)
        return feeds


_ORT_TYPES = {f"tensor({k})": np.dtype(v) for k, v in {
    "float": "float32", "double": "float64", "float16": "float16", "int64": "int64", "int32": "int32",
    "int16": "int16", "int8": "int8", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
    "uint64": "uint64", "bool": "bool"}.items()}


def _input_shape(shape, dims, batch):
    """Concrete sizes for an input's shape: ints stay; a named dim from `dims`, else `batch` for the
    first dim when given, else 1; an unknown (None) dim is `batch` in first place, else 1."""
    out = []
    for i, d in enumerate(shape or ()):
        if isinstance(d, int) and d >= 0:
            out.append(d)
        elif isinstance(d, str) and d in dims:
            out.append(dims[d])
        else:
            out.append(batch if (i == 0 and batch is not None) else 1)
    return out


def _to_numpy(v):
    """A feed as a numpy array (numpy, torch tensors without importing torch, ok.Tensor, lists)."""
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        return v.detach().cpu().numpy()
    if hasattr(v, "numpy") and not isinstance(v, (list, tuple)):
        return np.asarray(v.numpy())
    return np.asarray(v)


# ----- lazy evaluation of Tensors -----------------------------------------------------------
_CACHE_SIZE = 256
_compiled = collections.OrderedDict()  # structure key -> _Compiled
_pending = {}  # id(leaf) -> (leaf, Tensor): deferred in-place assignments (w -= lr * g)
_assigned_at = {}  # id(leaf) -> Node.seq when its pending assignment was made
stats = collections.Counter()  # cache hits/misses and runs, for tests and benchmarks
default_device = "auto"


class _Compiled:
    """A cached session for one graph structure, with what decides whether its threads spin."""
    __slots__ = ("sess", "fed", "model", "spins")

    def __init__(self, sess, fed, model):
        self.sess, self.fed, self.model, self.spins = sess, fed, model, None  # spins: None undecided


PROMOTE_AFTER = 8  # runs of one session in a row after which its threads may spin
_streak = [None, 0]  # the session entry of the last run and how many times in a row it ran
_before_last = [None]  # the entry of the run before that


def _tune_spinning(entry):
    """Spinning intra-op threads make a session that runs again and again faster (LeNet-5 define-by-run
    step 6.6 -> 5.2 ms), but slow down another session run while they spin (two sessions alternating:
    9.3 -> 12.5 ms). So a session starts without spinning, is recreated with it once it has run
    PROMOTE_AFTER times in a row, and goes back for good when another session runs fewer times than
    that between two of its runs (interleaved; a train phase, then an eval phase, then training again
    keeps it). Returns the session to run."""
    last, count = _streak
    if entry is last:
        _streak[1] = count + 1
    else:
        if entry.spins and _before_last[0] is entry and count < PROMOTE_AFTER:  # entry, other, entry
            entry.sess, entry.spins = make_inference_session(entry.model, default_device, spinning=False), False
        _before_last[0] = last
        _streak[:] = [entry, 1]
    if entry.spins is None and _streak[1] >= PROMOTE_AFTER:
        entry.sess, entry.spins = make_inference_session(entry.model, default_device, spinning=True), True
    return entry.sess


def defer_assign(leaf, new):
    """Give `leaf` the value of `new` (cast and broadcast to it): now when `new` already has a value,
    else at the next evaluation, in the same onnxruntime run as what is evaluated then."""
    if id(leaf) in _pending:
        flush_pending()
    if new.__class__ is not Tensor:
        from .ops import as_tensor
        new = as_tensor(new, leaf.dtype)
    if new.dtype != leaf.dtype:
        new = new.astype(leaf.dtype)
    if new._shape != leaf._shape:
        from .ops import expand
        new = expand(new, leaf.shape)
    if new.node is None or (new._value is not None and new.kind != "input"):
        leaf._become_value(np.array(new.numpy(), leaf.dtype, copy=True))
        return
    leaf._split_version()  # what was built so far (`new` included) reads the value before the update
    _pending[id(leaf)] = (leaf, new)
    _assigned_at[id(leaf)] = next(Node._ids)


def flush_pending():
    """Apply every deferred assignment and buffer update now (one onnxruntime run)."""
    if _pending or _latest_update:
        evaluate([])


def flush_if_pending(t):
    """Apply the deferred assignments and buffer updates when `t` has one pending."""
    if id(t) in _pending or id(t) in _latest_update:
        evaluate([])


def _compile(outputs, nodes, leaves):
    """A session for the graph (ReferenceEvaluator where onnxruntime lacks a kernel) and the input
    names of the fed leaves in leaf order."""
    fed = {id(t): f"in{i}" for i, t in enumerate(leaves) if t.kind != "const"}
    fed_order = [fed[id(t)] for t in leaves if id(t) in fed]  # the order evaluate feeds them in
    unbound = [t.name for t in leaves if t.kind == "input"]
    if unbound:
        raise ValueError(f"cannot evaluate: the result depends on the unbound Input(s) {unbound}; "
                         "run it through ok.export(...) and ok.Session, or call the model on ok.tensor values")
    if expand_macros(nodes):  # first run of this structure: build what its macros stand for
        nodes, leaves_now = topo(outputs, cut_evaluated=True)
        baked = [t for t in leaves_now if t.kind != "const" and id(t) not in fed]
        if baked:  # they would become initializers of a session that other graphs of this structure reuse
            raise RuntimeError(f"internal error: a macro expansion read {len(baked)} value(s) that are not "
                               "inputs of the macro")
        now = {id(t) for t in leaves_now}  # fed leaves the real graph no longer reads stay graph inputs
        leaves = leaves_now + [t for t in leaves if id(t) in fed and id(t) not in now]
    model, _ = build_model(outputs, fed=fed, cut_evaluated=True, declare_output_shapes=False,
                           nodes_leaves=(nodes, leaves))
    data = model.SerializeToString()
    try:
        sess = make_inference_session(data, default_device)
    except Exception as e:
        if "NOT_IMPLEMENTED" not in str(e):
            raise RuntimeError(f"onnxruntime rejected the graph: {e}") from None
        # onnxruntime's CPU provider lacks some kernels (float64 Relu, Conv, Erf, ...): evaluate
        # this graph with the ONNX reference evaluator instead, slowly but correctly.
        import warnings
        from onnx.reference import ReferenceEvaluator
        warnings.warn(f"onnxruntime has no kernel for part of this graph ({str(e).split(':')[-1].strip()}); "
                      "evaluating it with onnx.reference.ReferenceEvaluator (slow)", RuntimeWarning, stacklevel=4)
        return _Compiled(ReferenceEvaluator(model), fed_order, None)
    return _Compiled(sess, fed_order, data)


def _in_order(targets, assigns):
    """Apply deferred assignments one run at a time in the order they were made, when one of them was
    built after another that it reads (`a.copy_(..); b -= a * lr`: b's update must see a's new value,
    which a single run, feeding every leaf's old value, would not); then evaluate the targets."""
    for leaf, new, seq in sorted(assigns, key=lambda a: a[2]):
        _pending[id(leaf)], _assigned_at[id(leaf)] = (leaf, new), seq
        evaluate([])
    return evaluate(targets)


def _read_after_update(targets, leaves, effects):
    """Whether a target is an updated buffer, or a node of the graph built after an update reads it."""
    ids, read = {id(t) for t in targets}, {id(t) for t in leaves}
    for buf, _, seq in effects:
        if id(buf) in ids:
            return True
        if id(buf) in read and any((n := r()) is not None and n.seq > seq for r in buf._consumers or ()):
            return True
    return False


def evaluate(targets):
    """Run the sub-DAG for `targets` (and any deferred assignments and buffer updates) in one
    onnxruntime call; returns the target values and memoizes them on the tensors."""
    targets = list(targets)
    # (leaf, new value, seq): nodes built before seq read the leaf's old value, later ones the new
    assigns = [(leaf, new, _assigned_at[key]) for key, (leaf, new) in _pending.items()]
    outputs = targets + [new for _, new, _ in assigns]
    nodes, leaves = topo(outputs, cut_evaluated=True)
    if assigns and any(id(t) in _pending for t in leaves):  # read after its update (readers before: snapshots)
        if targets:
            evaluate([])  # a target (or an update) built after an in-place update it reads: apply them first
            return evaluate(targets)
        _pending.clear()
        _assigned_at.clear()
        return _in_order(targets, assigns)  # one update was built after another it reads
    _pending.clear()
    _assigned_at.clear()
    holders = [n for n in nodes if n.effects]
    if _latest_update:  # train-mode forwards whose results nothing evaluated: their updates apply now too
        holders += unapplied_updates({id(n) for n in holders})
    if holders:
        effects = [e for n in holders for e in n.effects]
        if targets and _read_after_update(targets, leaves, effects):
            evaluate([])  # apply the updates first: a target reads a buffer as of after its update
            return evaluate(targets)
        for n in holders:
            n.effects = None
        assigns += effects
        outputs = targets + [new for _, new, _ in assigns]
        nodes, leaves = topo(outputs, cut_evaluated=True)
    if not outputs:
        return []
    if expand_macros(unkeyable(nodes)):
        nodes, leaves = topo(outputs, cut_evaluated=True)
    key = (default_device, structure_key(nodes, leaves, outputs))  # sessions hold their device's provider
    entry = _compiled.get(key)
    if entry is None:
        stats["miss"] += 1
        entry = _compile(outputs, nodes, leaves)
        _compiled[key] = entry
        if len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    else:
        stats["hit"] += 1
        _compiled.move_to_end(key)
    sess = _tune_spinning(entry) if entry.model is not None else entry.sess
    fed_names = entry.fed
    feeds = dict(zip(fed_names, (t._value if t._value.flags.c_contiguous else np.asarray(t._value, order="C")
                                 for t in leaves if t.kind != "const")))
    stats["run"] += 1
    values = sess.run(None, feeds)
    for t, v in zip(targets, values):
        if t.node is not None:
            t._value = v
    for (leaf, new, seq), v in zip(assigns, values[len(targets):]):
        leaf._become_value(v, built_before=seq)
        if new.node is not None:  # graphs built on the new value (spectral_norm's u) keep seeing it
            new._value = v
    return [t._value if t.node is not None else v for t, v in zip(targets, values[:len(targets)])]
