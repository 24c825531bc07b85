"""Checkpoint files: tensors in safetensors format with JSON metadata in its header (no pickle), written
to a temporary file in the same directory, flushed to disk and renamed over the target, so a crash
never leaves a half-written checkpoint."""
import json
import os

import numpy as np

_KEY = "onnxkit"


def _jsonable(v):
    """json.dumps' fallback for the numpy scalars and arrays in optimizer and scheduler state."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store a {type(v).__name__} in checkpoint metadata")


def save(path, tensors, metadata):
    """Write {name: array} and a JSON-able metadata dict to `path` atomically."""
    from safetensors.numpy import save_file
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    try:
        save_file(arrays, tmp, metadata={_KEY: json.dumps(metadata, default=_jsonable)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path):
    """(tensors {name: array}, metadata dict) from a file written by `save`."""
    from safetensors import safe_open
    with safe_open(os.fspath(path), "np") as f:
        meta = f.metadata() or {}
        if _KEY not in meta:
            raise ValueError(f"{path} is not an onnxkit checkpoint (no {_KEY!r} metadata in its header)")
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(meta[_KEY])
