"""The Open Inference Protocol (KServe v2) wire format: datatypes, JSON tensors and Triton's
binary-tensor extension (a JSON header of `Inference-Header-Content-Length` bytes, then the raw
tensors in order). Pure functions over bytes and numpy arrays; no web framework here."""
import json

import numpy as np

try:  # orjson (in the [serve] extra) parses and writes number arrays several times faster
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

HEADER_LENGTH = "inference-header-content-length"

DATATYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
             "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
             "FP32": np.float32, "FP64": np.float64}
_BY_DTYPE = {np.dtype(v): k for k, v in DATATYPES.items()}


class BadRequest(Exception):
    """A request the server refuses with a 4xx status and {"error": reason}."""

    def __init__(self, reason, status=400):
        super().__init__(reason)
        self.status = status


def datatype_of(dtype):
    """KServe datatype name of a numpy dtype ("FP32"); BYTES for strings/objects."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    return _BY_DTYPE[dtype]


def split_body(body, header_length):
    """(request dict, binary tail) of a request body; malformed JSON is a BadRequest."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 <= n <= len(body):
            raise BadRequest(f"{HEADER_LENGTH} {n} lies outside the {len(body)}-byte body")
        head, tail = body[:n], body[n:]
    else:
        head, tail = body, b""
    try:
        req = _orjson.loads(head) if _orjson is not None else json.loads(head)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BadRequest(f"malformed JSON: {e}") from None
    if not isinstance(req, dict):
        raise BadRequest("the request must be a JSON object")
    return req, tail


def _shape(t, name):
    shape = t.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    return shape


def decode_inputs(req, tail, expected):
    """{name: array} from the request's "inputs", checked against `expected` {name: (datatype,
    shape with -1 for a dynamic dim)}: names, datatypes, ranks, static dims and element counts."""
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("the request needs a non-empty 'inputs' list")
    feeds, offset = {}, 0
    for t in inputs:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise BadRequest("each input needs a 'name'")
        name = t["name"]
        if name not in expected:
            raise BadRequest(f"unknown input {name!r}; the model takes {sorted(expected)}")
        if name in feeds:
            raise BadRequest(f"input {name!r} is given twice")
        want_type, want_shape = expected[name]
        dt = t.get("datatype")
        if dt != want_type:
            raise BadRequest(f"input {name!r}: datatype {dt!r} is not the model's {want_type}")
        shape = _shape(t, name)
        if len(shape) != len(want_shape) or any(w >= 0 and w != g for w, g in zip(want_shape, shape)):
            raise BadRequest(f"input {name!r}: shape {shape} does not fit the model's {want_shape}")
        count = int(np.prod(shape, dtype=np.int64))
        np_type = np.dtype(DATATYPES[dt])
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequest(f"input {name!r}: 'parameters' must be an object")
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise BadRequest(f"input {name!r}: binary_data_size {size!r} overruns the binary data")
            if size != count * np_type.itemsize:
                raise BadRequest(f"input {name!r}: {size} bytes of binary data for shape {shape} of {dt}")
            arr = np.frombuffer(tail, np_type, count, offset).reshape(shape)
            offset += size
        else:
            if "data" not in t:
                raise BadRequest(f"input {name!r} has no 'data'")
            try:
                arr = np.asarray(t["data"], dtype=np_type)
            except (TypeError, ValueError, OverflowError) as e:
                raise BadRequest(f"input {name!r}: data is not {dt}: {e}") from None
            if arr.size != count:
                raise BadRequest(f"input {name!r}: {arr.size} values for shape {shape}")
            arr = arr.reshape(shape)
        feeds[name] = arr
    missing = sorted(set(expected) - set(feeds))
    if missing:
        raise BadRequest(f"missing input(s) {missing}")
    if offset != len(tail):
        raise BadRequest(f"{len(tail) - offset} bytes of binary data belong to no input")
    return feeds


def requested_outputs(req, available):
    """[(name, binary?)] of the outputs to return (all when the request names none)."""
    params = req.get("parameters") or {}
    default_binary = bool(isinstance(params, dict) and params.get("binary_data_output", False))
    outs = req.get("outputs")
    if outs is None:
        return [(n, default_binary) for n in available]
    if not isinstance(outs, list):
        raise BadRequest("'outputs' must be a list")
    chosen = []
    for o in outs:
        if not isinstance(o, dict) or o.get("name") not in available:
            raise BadRequest(f"unknown output {o.get('name') if isinstance(o, dict) else o!r}; "
                             f"the model returns {list(available)}")
        p = o.get("parameters") or {}
        chosen.append((o["name"], bool(p.get("binary_data", default_binary)) if isinstance(p, dict) else default_binary))
    return chosen


def encode_response(model_name, results, chosen, request_id=None):
    """(body bytes, JSON header length or None): JSON tensors, or Triton's binary layout when an
    output asks for binary data."""
    outputs, blobs = [], []
    for name, binary in chosen:
        v = np.ascontiguousarray(results[name])
        entry = {"name": name, "datatype": datatype_of(v.dtype), "shape": list(v.shape)}
        if binary:
            raw = v.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = v.ravel() if _orjson is not None and v.dtype != np.float16 else v.ravel().tolist()
        outputs.append(entry)
    resp = {"model_name": model_name, "model_version": "1", "outputs": outputs}
    if request_id is not None:
        resp["id"] = request_id
    head = (_orjson.dumps(resp, option=_orjson.OPT_SERIALIZE_NUMPY) if _orjson is not None
            else json.dumps(resp).encode())
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
