"""Reading untrusted `.onnx` files for every subcommand: one-line errors for truncated, garbage or
foreign files, external data read only from inside the model's directory, validation with
onnx.checker and strict shape inference before onnxruntime sees the model, and a watchdog so a
hostile file cannot hang the command."""
import contextlib
import os
import sys
import threading

from onnxkit import model_files
from onnxkit.model_files import graphs as _graphs, one_line as _one_line, problems  # noqa: F401

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


def read_model(path, external_data=True):
    """onnxkit.model_files.read_model under the watchdog."""
    with watchdog(f"reading {path}"):
        return model_files.read_model(path, external_data)


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
