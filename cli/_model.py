"""Reading untrusted `.onnx` files for every subcommand: one-line errors for truncated, garbage or
foreign files, external data read only from inside the model's directory, validation with
onnx.checker and strict shape inference before onnxruntime sees the model, and a watchdog so a
hostile file cannot hang the command."""
import contextlib
import os
import sys
import threading

import onnx

LOAD_TIMEOUT_S = float(os.environ.get("ONNXKIT_LOAD_TIMEOUT", "120"))


class InvalidModel(ValueError):
    """The file parses as ONNX but onnx.checker or strict shape inference rejects it."""


@contextlib.contextmanager
def watchdog(what, seconds=None):
    """Ends the process with one error line and exit 2 when the block runs longer than `seconds`.
    A thread, not SIGALRM, because a hang inside protobuf or onnxruntime never returns to Python."""
    seconds = LOAD_TIMEOUT_S if seconds is None else seconds

    def expire():
        sys.stderr.write(f"error: {what} took longer than {seconds:g} s (set ONNXKIT_LOAD_TIMEOUT to allow more)\n")
        sys.stderr.flush()
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _graphs(graph):
    """The graph and every subgraph inside it (If/Loop/Scan bodies), depth first."""
    yield graph
    for n in graph.node:
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                yield from _graphs(sub)


def _tensors(model):
    """Every TensorProto in the model: initializers, sparse initializers and tensor attributes,
    subgraphs and local functions included."""
    graphs = list(_graphs(model.graph))
    nodes = [n for g in graphs for n in g.node] + [n for f in model.functions for n in f.node]
    for g in graphs:
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
            yield s.indices
    for n in nodes:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            elif a.type == onnx.AttributeProto.SPARSE_TENSOR:
                yield a.sparse_tensor.values
                yield a.sparse_tensor.indices
            yield from a.tensors


def check_external_data(model, base):
    """Refuse, before any read, external data whose location is absolute, contains `..`, or resolves
    (through a symlink) outside `base`, is not a regular file, or whose offset/length overrun it."""
    base = os.path.realpath(base)
    for t in _tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        where = f"external data {loc!r} of tensor {t.name!r}"
        if not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")) or ".." in loc.replace("\\", "/").split("/") \
                or ":" in loc or "\x00" in loc:
            raise ValueError(f"{where} is not a plain relative path inside the model's directory; refusing to read it")
        full = os.path.realpath(os.path.join(base, loc))
        if os.path.commonpath([full, base]) != base:
            raise ValueError(f"{where} resolves outside the model's directory; refusing to read it")
        if not os.path.isfile(full):
            raise ValueError(f"{where} is missing (looked for {full})")
        try:
            offset, length = int(info.get("offset", 0) or 0), int(info.get("length", 0) or 0)
        except ValueError:
            raise ValueError(f"{where} has a non-integer offset or length") from None
        size = os.path.getsize(full)
        if offset < 0 or length < 0 or offset + length > size:
            raise ValueError(f"{where}: offset {offset} + length {length} lies beyond its file ({size} bytes)")


def read_model(path, external_data=True):
    """The ModelProto at `path` with its external data (unless external_data=False: locations are
    still checked, nothing is read), read safely (see the module docstring). Raises
    ValueError/FileNotFoundError with a one-line reason; nothing is unpickled."""
    from onnxkit.importer import _parse
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file")
    with watchdog(f"reading {path}"):
        model = _parse(path)
        base = os.path.dirname(os.path.abspath(path))
        check_external_data(model, base)
        if not external_data:
            return model
        try:
            onnx.load_external_data_for_model(model, base)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path}: cannot read its external data: {e}") from None
    return model


def problems(model):
    """Every problem onnx finds: checker (full) and strict shape inference, as one-line strings."""
    errors = []
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        errors.append(f"checker: {_one_line(e)}")
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # noqa: BLE001
        errors.append(f"shape inference: {_one_line(e)}")
    return errors


def validate(model, path="the model"):
    """Raise InvalidModel naming the first problem; runs before onnxruntime loads a file in-process."""
    with watchdog(f"validating {path}"):
        errs = problems(model)
    if errs:
        raise InvalidModel(f"{path} is not a valid ONNX model ({errs[0]}); `onnx-run check` lists every problem")


def session(model, device="auto", path="the model", **kw):
    """An ok.Session over a validated ModelProto (external data already inside it)."""
    import onnxkit as ok
    validate(model, path)
    with watchdog(f"loading {path} into onnxruntime"):
        try:
            return ok.Session(model, device=device, **kw)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"onnxruntime cannot load {path}: {_one_line(e)}") from None


def _one_line(e):
    return " ".join(str(e).split())
