"""One served model: an ok.Session, its KServe metadata, request validation, and whether its
requests can be batched (every input's and output's first dim symbolic and the same)."""
import threading

import numpy as np

from .protocol import BadRequest, datatype_of


def _dims(shape):
    return [d if isinstance(d, int) and d >= 0 else -1 for d in (shape or [])]


class ServedModel:
    """Runs feeds through onnxkit's Session; counts inferences (rows) and executions (runs)."""

    def __init__(self, model, name, device="auto"):
        import onnxkit as ok
        from onnxkit.runtime import _ORT_TYPES
        self.name = name
        self.session = ok.Session(model, device=device)
        ort = self.session.ort_session
        self.inputs = {}
        for i in ort.get_inputs():
            dt = _ORT_TYPES.get(i.type)
            if dt is None:
                raise ValueError(f"input {i.name!r} has type {i.type}, which the server does not take")
            self.inputs[i.name] = (datatype_of(dt), _dims(i.shape), i.shape)
        self.outputs = {}
        for o in ort.get_outputs():
            dt = _ORT_TYPES.get(o.type)
            self.outputs[o.name] = (datatype_of(dt) if dt is not None else "BYTES", _dims(o.shape), o.shape)
        self.batchable = self._batchable()
        self.stats = {"inference_count": 0, "execution_count": 0}
        self._lock = threading.Lock()

    def _batchable(self):
        """First dims all symbolic (named alike when named) on every input and output."""
        firsts = [raw[0] if raw else 0 for _, _, raw in list(self.inputs.values()) + list(self.outputs.values())]
        if not firsts or any(isinstance(d, int) for d in firsts):
            return False
        named = {d for d in firsts if isinstance(d, str)}
        return len(named) <= 1

    @property
    def expected(self):
        return {n: (dt, dims) for n, (dt, dims, _) in self.inputs.items()}

    def metadata(self):
        return {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": [{"name": n, "datatype": dt, "shape": dims} for n, (dt, dims, _) in self.inputs.items()],
                "outputs": [{"name": n, "datatype": dt, "shape": dims} for n, (dt, dims, _) in self.outputs.items()]}

    def run(self, feeds):
        """One onnxruntime run; an input onnxruntime rejects is a BadRequest."""
        try:
            out = self.session.run(feeds)
        except (ValueError, TypeError) as e:
            raise BadRequest(str(e)) from None
        except Exception as e:  # noqa: BLE001  onnxruntime's InvalidArgument, Fail, ...
            text = " ".join(str(e).split())
            raise BadRequest(f"inference failed: {text}", 400 if "INVALID_ARGUMENT" in text else 500) from None
        rows = next(iter(feeds.values())).shape[0] if self.batchable else 1
        with self._lock:
            self.stats["execution_count"] += 1
            self.stats["inference_count"] += int(rows)
        return out

    def run_batch(self, items):
        """Run several requests' feeds as one batch (concatenated on dim 0) and split the outputs
        back; falls back to one run per request when the outputs do not follow the batch or the
        batch fails. Each entry of the result is a dict of outputs or a BadRequest."""
        if len(items) == 1:
            return [self._attempt(items[0])]
        sizes = [next(iter(f.values())).shape[0] for f in items]
        feeds = {n: np.concatenate([f[n] for f in items]) for n in items[0]}
        try:
            out = self.run(feeds)
        except BadRequest:  # one request's values were bad: the others still get answers
            return [self._attempt(f) for f in items]
        total = sum(sizes)
        if any(np.ndim(v) == 0 or np.shape(v)[0] != total for v in out.values()):
            return [self._attempt(f) for f in items]
        bounds = np.cumsum([0] + sizes)
        return [{n: v[a:b] for n, v in out.items()} for a, b in zip(bounds[:-1], bounds[1:])]

    def _attempt(self, feeds):
        """The outputs of one run, or the exception it raised (returned, for run_batch's callers)."""
        try:
            return self.run(feeds)
        except BadRequest as e:
            return e
