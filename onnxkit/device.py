"""Devices named as torch names them (`ok.device("cuda:0")`) and where lazy evaluation runs.

A Tensor's value lives wherever onnxruntime computes it and always comes back to host memory, so
placement is one setting for the process (`runtime.default_device`), not a property of each tensor:
`.to("cuda")` / `.cuda()` / `ok.set_default_device("cuda")` make evaluation run on the GPU,
`.cpu()` returns the tensor as it is (its values are read into host memory anyway)."""
from .tensor import Tensor

TYPES = ("cpu", "cuda")


class device:
    """A device as torch.device: `device("cpu")`, `device("cuda")`, `device("cuda:0")`, `device("cuda", 0)`,
    `device(0)` (CUDA device 0); has `.type` and `.index` and prints like torch's."""
    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type
        name = str(type)  # also reads torch.device objects without importing torch
        if ":" in name:
            if index is not None:
                raise ValueError(f"type (string) must not include an index because index was passed explicitly: "
                                 f"{name}")
            name, _, idx = name.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: {str(type)!r}")
            index = int(idx)
        if name not in TYPES:
            raise RuntimeError(f"Expected one of {', '.join(TYPES)} device type at start of device string: {name}")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise RuntimeError(f"Device index must be a non-negative integer, got {index!r}")
        self.type, self.index = name, index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __eq__(self, other):
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


def as_device(d):
    """`d` as a device when it names one (a device, torch.device, "cuda:0", an int index), else None."""
    if isinstance(d, device):
        return d
    if isinstance(d, (str, int)) and not isinstance(d, bool) or type(d).__name__ == "device":
        try:
            return device(d)
        except (RuntimeError, ValueError):
            return None
    return None


def is_available():
    """True when onnxruntime's CUDA provider is installed and a CUDA device is usable (torch.cuda.is_available)."""
    from .runtime import cuda_available
    return cuda_available()


def current():
    """The device evaluation runs on: CUDA when runtime.default_device allows it and a GPU is usable, else CPU."""
    from . import runtime
    return device("cuda" if runtime.default_device != "cpu" and is_available() else "cpu")


get_default_device = current


def set_default_device(d):
    """Run lazy evaluation on `d` ("cpu", "cuda", a device; None restores "auto"); CUDA needs a usable GPU.
    Sessions compiled for the previous device are dropped when the device changes."""
    from . import runtime
    if d is None or d == "auto":
        new = "auto"
    else:
        dev = d if isinstance(d, device) else device(d)
        if dev.type == "cuda":
            require_cuda(f"device {dev}")
            if dev.index not in (None, 0):
                raise RuntimeError(f"onnxkit evaluates on CUDA device 0 only, got {dev}")
        new = dev.type
    runtime.default_device = new  # compiled sessions are cached per device


def require_cuda(what="CUDA"):
    """Raise as torch does when CUDA is asked for but unusable."""
    if not is_available():
        raise RuntimeError(f"{what} was asked for but CUDA is not available: onnxruntime's CUDAExecutionProvider is "
                           "not installed or no CUDA device is usable (install onnxruntime-gpu and a CUDA driver, "
                           "or leave the device on 'cpu'/'auto')")


def place(d):
    """Where a `.to(d)` / `.cuda()` call puts evaluation: CUDA switches evaluation to the GPU (or raises
    without one); CPU leaves it as it is, since values always come back to host memory."""
    d = as_device(d)
    if d is not None and d.type == "cuda":
        set_default_device(d)


def split_to_args(args, kwargs):
    """torch's `.to(...)` arguments (device, dtype, other tensor, in any order or as device=/dtype=): places
    evaluation for a device and returns what to cast to (a dtype-like, or None)."""
    dtype = None
    for a in (*args, kwargs.get("device"), kwargs.get("dtype")):
        if a is None or isinstance(a, bool) or isinstance(a, str) and a == "auto":  # "auto": Session's word
            continue
        d = as_device(a)
        if d is not None:
            place(d)
        elif isinstance(a, Tensor):
            dtype = a.dtype
        else:
            dtype = a
    return dtype


class cuda:
    """`ok.cuda.is_available()` as torch.cuda.is_available()."""
    is_available = staticmethod(is_available)

    @staticmethod
    def device_count():
        """1 when CUDA is usable (onnxkit evaluates on device 0), else 0."""
        return int(is_available())
