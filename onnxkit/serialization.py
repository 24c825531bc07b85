"""ok.save / ok.load_state_dict_file: state dicts on disk the way torch users keep them, without
pickle. `ok.save(sd, path)` writes safetensors (numpy `.npz` when the path ends in `.npz`),
atomically (temp file + rename); `ok.load_state_dict_file(path)` reads either format back as an
OrderedDict[str, np.ndarray] in the saved order. PyTorch's pickle files (`torch.save`) are refused
with the one-line conversion to run in torch."""
import collections
import io
import json
import os
import struct
import zipfile

import numpy as np

from . import checkpoint

__all__ = ["save", "load_state_dict_file", "STATE_DICT_SUFFIXES"]

_ORDER_KEY = "onnxkit.keys"  # safetensors sorts its header; the saved key order lives in the metadata
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_CONVERT = ("convert it once in PyTorch: `from safetensors.torch import save_file; "
            "save_file({k: v.contiguous() for k, v in torch.load(PATH).items()}, 'weights.safetensors')`")


def _to_array(key, v):
    """A numpy array from a numpy array or number, an onnxkit Tensor or a torch tensor (torch is not imported)."""
    from .tensor import Tensor
    if isinstance(v, np.ndarray):
        arr = v
    elif isinstance(v, Tensor):
        arr = v.numpy()
    elif hasattr(v, "detach") and hasattr(v, "cpu") and hasattr(v, "numpy"):  # a torch tensor
        t = v.detach().cpu()
        if str(getattr(t, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16: go through float32 (exact)
            import ml_dtypes
            arr = t.float().numpy().astype(ml_dtypes.bfloat16)
        else:
            arr = t.numpy()
    elif isinstance(v, (np.generic, bool, int, float)):
        arr = np.asarray(v)
    elif isinstance(v, collections.abc.Mapping):
        raise TypeError(f"ok.save stores a flat {{name: tensor}} mapping (a state_dict); {key!r} holds a "
                        f"{type(v).__name__}. Save a whole training state with Trainer.save")
    else:
        raise TypeError(f"ok.save: {key!r} holds a {type(v).__name__}; expected a numpy array, an ok.Tensor "
                        "or a torch tensor (onnxkit stores tensors only: no pickle)")
    if arr.dtype.kind not in "biufc" and arr.dtype.name != "bfloat16":
        raise TypeError(f"ok.save: {key!r} has dtype {arr.dtype}; only numeric and bool tensors can be stored")
    return np.asarray(arr, order="C")  # C order without ascontiguousarray's 0-d -> 1-d


def _arrays(state_dict):
    if not isinstance(state_dict, collections.abc.Mapping):
        hint = "; pass model.state_dict()" if hasattr(state_dict, "state_dict") else ""
        raise TypeError(f"ok.save expects a mapping of names to tensors (a state_dict), got "
                        f"{type(state_dict).__name__}{hint}")
    out = collections.OrderedDict()
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"ok.save: keys must be strings, got {k!r}")
        out[k] = _to_array(k, v)
    return out


def _write_npz(f, arrays):
    """np.savez without its keyword clashes (a key named `file`): one `.npy` member per entry."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, arr in arrays.items():
            with zf.open(k + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save(obj, f):
    """Write a state dict ({name: numpy array | ok.Tensor | torch tensor}) to `f` (a path or a binary
    file object) as safetensors, or as `.npz` when the path ends in `.npz`. A path is written to a
    temporary file and renamed, so a crash never leaves a half-written file. No pickle."""
    arrays = _arrays(obj)
    if hasattr(f, "write"):
        from safetensors.numpy import save as to_bytes
        f.write(to_bytes(dict(arrays), metadata={_ORDER_KEY: json.dumps(list(arrays))}))
        return
    path = os.fspath(f)
    with checkpoint.atomic_path(path) as tmp:
        if path.lower().endswith(".npz"):
            with open(tmp, "wb") as fh:
                _write_npz(fh, arrays)
        else:
            from safetensors.numpy import save_file
            save_file(dict(arrays), tmp, metadata={_ORDER_KEY: json.dumps(list(arrays))})


# ----- reading ------------------------------------------------------------------------------------
def sniff(head):
    """The format of a file from its first bytes: "empty", "zip", "pickle", "safetensors" or None."""
    if not head:
        return "empty"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < struct.unpack("<Q", head[:8])[0] < 100_000_000:
        return "safetensors"
    return None


def _zip_kind(src):
    """"npz" or "pickle" (torch.save's zip holds data.pkl) for a zip archive."""
    with zipfile.ZipFile(src) as zf:
        names = zf.namelist()
    if any(n.endswith(".pkl") for n in names):
        return "pickle"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return None


def _ordered(tensors, metadata):
    """The tensors in their saved order (kept in the metadata by ok.save), else the file's order."""
    try:
        order = json.loads((metadata or {}).get(_ORDER_KEY, "null"))
    except ValueError:
        order = None
    if isinstance(order, list) and sorted(order) == sorted(tensors):
        return collections.OrderedDict((k, tensors[k]) for k in order)
    return collections.OrderedDict(tensors)


def _read_safetensors(path, data):
    if data is not None:
        from safetensors.numpy import load
        tensors = load(data)
        n = struct.unpack("<Q", data[:8])[0]
        metadata = json.loads(data[8:8 + n]).get("__metadata__")
        return _ordered(tensors, metadata)
    from safetensors import safe_open
    with safe_open(path, "np") as sf:
        return _ordered({k: sf.get_tensor(k) for k in sf.keys()}, sf.metadata())


def _read_npz(src):
    with np.load(src, allow_pickle=False) as z:
        return collections.OrderedDict((k, z[k]) for k in z.files)


def load_state_dict_file(f):
    """A state dict saved by ok.save, safetensors (e.g. a Hugging Face `model.safetensors`) or numpy
    `.npz` (read with allow_pickle=False), as an OrderedDict[str, np.ndarray]; feed it to
    `model.load_state_dict`. PyTorch pickle files are refused: onnxkit never unpickles."""
    if hasattr(f, "read"):
        data, path, name = f.read(), None, getattr(f, "name", "the file object")
        head = data[:16]
    else:
        path = name = os.fspath(f)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no state dict file at {path!r}")
        data = None
        with open(path, "rb") as fh:
            head = fh.read(16)
    kind = sniff(head)
    src = io.BytesIO(data) if data is not None else path
    try:
        if kind == "zip":
            kind = _zip_kind(src)
            if isinstance(src, io.BytesIO):
                src.seek(0)
        if kind == "empty":
            raise ValueError(f"{name} is empty: it holds no state dict")
        if kind == "pickle":
            raise ValueError(f"{name} is a PyTorch pickle file (torch.save); onnxkit never unpickles. "
                             + _CONVERT.replace("PATH", repr(name))
                             + ", then ok.load_state_dict_file('weights.safetensors')")
        if kind == "npz":
            return _read_npz(src)
        if kind == "safetensors":
            return _read_safetensors(path, data)
    except ValueError as e:
        if name in str(e):
            raise
        raise ValueError(f"{name} could not be read as a state dict (truncated or corrupt?): {e}") from None
    except Exception as e:  # noqa: BLE001  zipfile/safetensors errors do not name the file
        raise ValueError(f"{name} could not be read as a state dict (truncated or corrupt?): {e}") from None
    hint = " (it looks like an ONNX model: use ok.load)" if name.lower().endswith(".onnx") else ""
    raise ValueError(f"{name} is neither a safetensors nor an .npz file{hint}; ok.load_state_dict_file reads "
                     "what ok.save writes")


def state_dict_file_error(path):
    """The error for handing a weights file (not an ONNX model) to ok.load."""
    how = ("read it with `sd = ok.load_state_dict_file(path)` and copy it into an onnxkit model built with "
           "the same layers: `model.load_state_dict(sd)`")
    if not path.lower().endswith(".safetensors"):
        how += f"; if it is a PyTorch pickle (torch.save), {_CONVERT.replace('PATH', repr(path))} first"
    return ValueError(f"{path} is a state dict (weights), not an ONNX model: ok.load imports .onnx files; {how}")
