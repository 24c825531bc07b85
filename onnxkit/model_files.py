"""Reading `.onnx` files safely (they may come from anyone): one-line errors that name the file for
empty, truncated, garbage or weights files; external data read only from plain relative paths inside
the model's directory, checked before anything is read; and the problems onnx.checker and strict
shape inference find. ok.load and every onnx-run subcommand read files through here."""
import os

import onnx


def parse(path):
    """The ModelProto in the file at `path` (external data not loaded); a weights file, an empty,
    truncated or foreign file raises an error that names it."""
    from .serialization import STATE_DICT_SUFFIXES, sniff, state_dict_file_error
    with open(path, "rb") as f:
        head = f.read(16)
    kind = sniff(head)
    if path.lower().endswith(STATE_DICT_SUFFIXES) or kind in ("pickle", "safetensors"):
        raise state_dict_file_error(path)
    if kind == "empty":
        raise ValueError(f"{path} is empty: not an ONNX model")
    if kind == "zip":
        raise ValueError(f"{path} is a zip archive (an .npz or a PyTorch checkpoint?), not an ONNX model; "
                         "read weights with ok.load_state_dict_file(path) and model.load_state_dict(...)")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001  protobuf's decode errors do not name the file
        raise ValueError(f"{path} is not a readable ONNX model (truncated or not an ONNX file): {e}") from None
    missing = [what for what, bad in (("an IR version", model.ir_version <= 0),
                                      ("graph outputs", not model.graph.output),
                                      ("opset imports", model.ir_version >= 3 and not model.opset_import)) if bad]
    if missing:
        raise ValueError(f"{path} is not a complete ONNX model (no {' and no '.join(missing)}): "
                         "the file is truncated or not an ONNX model")
    return model


def graphs(graph):
    """The graph and every subgraph inside it (If/Loop/Scan bodies), depth first."""
    yield graph
    for n in graph.node:
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                yield from graphs(sub)


def tensors(model):
    """Every TensorProto in the model: initializers, sparse initializers and tensor attributes,
    subgraphs and local functions included."""
    subgraphs = list(graphs(model.graph))
    nodes = [n for g in subgraphs for n in g.node] + [n for f in model.functions for n in f.node]
    for g in subgraphs:
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
    for t in tensors(model):
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
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no ONNX model at {path!r} (no such file)")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file")
    model = parse(path)
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
        errors.append(f"checker: {one_line(e)}")
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # noqa: BLE001
        errors.append(f"shape inference: {one_line(e)}")
    return errors


def one_line(e):
    """An exception's message on one line."""
    return " ".join(str(e).split())
