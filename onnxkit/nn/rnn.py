"""Recurrent layers (torch/nn/modules/rnn.py): RNN, LSTM (with proj_size), GRU and their cells.

Parameter names, shapes, registration order and default init are torch's, so a torch state_dict loads
unchanged. Each layer runs as one ONNX LSTM/GRU/RNN node (both directions in one node) fed with the
torch weights converted in the graph (see ops/rnn.py); packed batches pass their lengths as
`sequence_lens`. While recording gradients, LSTM runs as a Scan that keeps its gates (ops.rnn.lstm_train).
LSTM with proj_size is unrolled over static time steps (a Scan for a symbolic length). Cells are plain
MatMul + elementwise graphs. Dropout between layers draws its masks like every other dropout (onnxkit's
seeded generator, not torch's), so only p = 0 and p = 1 match torch value for value in train mode."""
import math
import numbers
import warnings

import numpy as np

from .. import dtypes, ops
from ..dims import format_shape
from ..ops import rnn as F
from ..tensor import Tensor, apply, const, is_grad_enabled
from . import init
from .module import Module, ShapeError
from .parameter import Parameter
from .utils.rnn import PackedSequence

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class RNNShapeError(ShapeError, RuntimeError):
    """A bad input or state size for a recurrent layer (a RuntimeError as in torch, and a ShapeError so
    that the module path is named)."""


def _fmt(shape):
    return "?" if shape is None else format_shape(shape)


def _same(d, want):
    """A static size equal to want (symbolic sizes are not checked at build time)."""
    return not isinstance(d, int) or not isinstance(want, int) or d == want


def _zeros_state(x_like_batch, lead, size, dtype):
    """Zeros (lead, N, size) with N the batch size of time-major x (symbolic when x's is)."""
    return F.zero_state(lead, x_like_batch.shape[1], size, dtype=dtype)


class RNNBase(Module):
    """The shared machinery of RNN, LSTM and GRU (torch.nn.RNNBase)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        num_directions = 2 if bidirectional else 1
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        if not isinstance(hidden_size, int):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        gate_size = {"LSTM": 4 * hidden_size, "GRU": 3 * hidden_size, "RNN_TANH": hidden_size,
                     "RNN_RELU": hidden_size}.get(mode)
        if gate_size is None:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        dt = dtypes.as_dtype(dtype or np.float32)
        self._flat_weights_names, self._all_weights = [], []
        real_hidden = proj_size if proj_size > 0 else hidden_size
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_in = input_size if layer == 0 else real_hidden * num_directions
                shapes = [(gate_size, layer_in), (gate_size, real_hidden)]
                names = ["weight_ih_l{}{}", "weight_hh_l{}{}"]
                if bias:
                    shapes += [(gate_size,), (gate_size,)]
                    names += ["bias_ih_l{}{}", "bias_hh_l{}{}"]
                if proj_size > 0:
                    shapes.append((proj_size, hidden_size))
                    names.append("weight_hr_l{}{}")
                suffix = "_reverse" if direction == 1 else ""
                names = [n.format(layer, suffix) for n in names]
                for n, s in zip(names, shapes):
                    self.register_parameter(n, Parameter(np.zeros(s, dt)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self):
        """No-op (torch compacts cuDNN weights here; onnxkit's weights are converted in the graph)."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ----- forward -------------------------------------------------------------------------------
    def _kind(self):
        return {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}[self.mode]

    def _dirs(self):
        return 2 if self.bidirectional else 1

    def _real_hidden(self):
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def _prepare(self, input):
        """(time-major x (T, N, I), lengths or None, batched, packed)."""
        name = type(self).__name__
        if isinstance(input, PackedSequence):
            x, lens, batched = input._padded, input._lengths, True
            if x._shape is None or len(x._shape) != 3:
                raise RNNShapeError(f"{name}: a PackedSequence of rank-2 items (T, B, input_size) was expected, got "
                                    f"padded shape {_fmt(x._shape)}")
        else:
            x = ops.as_tensor(input)
            lens = None
            if x._shape is None or len(x._shape) not in (2, 3):
                r = "?" if x._shape is None else len(x._shape)
                raise RNNShapeError(f"{name}: Expected input to be 2D or 3D, got {r}D tensor instead "
                                    f"(shape {_fmt(x._shape)})")
            batched = len(x._shape) == 3
            if not batched:
                x = ops.unsqueeze(x, 1)
            elif self.batch_first:
                x = ops.transpose(x, 0, 1)
        if not dtypes.is_floating(x.dtype):
            raise RNNShapeError(f"{name}: expected a floating-point input, got {x.dtype}")
        if not _same(x._shape[-1], self.input_size):
            shown = input._shape if isinstance(input, Tensor) else x._shape
            raise RNNShapeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                                f"got {x._shape[-1]} (input shape {_fmt(shown)}"
                                f"{', batch_first=True' if self.batch_first and batched else ''})")
        return x, lens, batched, isinstance(input, PackedSequence)

    def _check_state(self, h, which, size, x, batched):
        """h as (L*D, N, size) time-major; raises torch's messages."""
        name = type(self).__name__
        h = ops.as_tensor(h)
        want_rank = 3 if batched else 2
        if h._shape is None or len(h._shape) != want_rank:
            r = "?" if h._shape is None else len(h._shape)
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RNNShapeError(f"{name}: For {kind} input, {which} should also be {want_rank}-D but got {r}-D tensor")
        if not batched:
            h = ops.unsqueeze(h, 1)
        want = (self.num_layers * self._dirs(), x._shape[1], size)
        if not all(_same(a, b) for a, b in zip(h._shape, want)):
            shown = want if batched else (want[0], want[2])
            got = h._shape if batched else (h._shape[0], h._shape[2])
            raise RNNShapeError(f"{name}: Expected {which} size {tuple(shown)}, got {_fmt(got)}")
        if h.dtype != x.dtype:
            raise RNNShapeError(f"{name}: {which} dtype {h.dtype} does not match the input dtype {x.dtype}")
        return h

    def _params(self, layer, direction):
        sfx = f"_l{layer}{'_reverse' if direction else ''}"
        get = lambda n: getattr(self, n + sfx) if self.bias or "bias" not in n else None  # noqa: E731
        ps = [get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")]
        if self.proj_size > 0:
            ps.append(getattr(self, "weight_hr" + sfx))
        return ps

    def _run(self, x, lens, h0, c0):
        """All layers over time-major x; returns output (T, N, D*H'), h_n, c_n (c_n None except LSTM)."""
        kind, D, H = self._kind(), self._dirs(), self.hidden_size
        hs, cs = [], []
        out = x
        for layer in range(self.num_layers):
            sl = slice(layer * D, (layer + 1) * D)
            h0_l = None if h0 is None else h0[sl]
            c0_l = None if c0 is None else c0[sl]
            params = [self._params(layer, d) for d in range(D)]
            if self.proj_size > 0:
                if h0_l is None:
                    h0_l = _zeros_state(out, D, self.proj_size, out.dtype)
                    c0_l = _zeros_state(out, D, H, out.dtype)
                y, h_n, c_n = F.lstm_proj_layer(out, params, lens, h0_l, c0_l, H, self.proj_size, self.bidirectional)
            else:
                W, R, B = F.onnx_weights(kind, [p[:4] for p in params], H, self.bias)
                if kind == "LSTM" and F.TRAIN_FORMULATION == "scan" and is_grad_enabled() and any(
                        t is not None and t.requires_grad for t in (out, W, R, B, h0_l, c0_l)):
                    Y, h_n, c_n = F.lstm_train(out, W, R, B, lens, h0_l, c0_l, H, self.bidirectional)
                else:
                    Y, h_n, c_n = F.onnx_rnn(kind, out, W, R, B, lens, h0_l, c0_l, H, self.bidirectional,
                                             "relu" if self.mode == "RNN_RELU" else "tanh")
                if D == 1:
                    y = ops.squeeze(Y, 1)
                else:
                    T, N = Y._shape[0], Y._shape[2]
                    y = apply("Reshape", [ops.permute(Y, 0, 2, 1, 3), const([0, 0, -1], np.int64)],
                              types=[(Y.dtype, (T, N, D * H))])
            hs.append(h_n)
            cs.append(c_n)
            if self.dropout and self.training and layer < self.num_layers - 1:
                y = ops.dropout(y, self.dropout, True)
            out = y
        h_n = hs[0] if len(hs) == 1 else ops.cat(hs, 0)
        c_n = None if cs[0] is None else (cs[0] if len(cs) == 1 else ops.cat(cs, 0))
        return out, h_n, c_n

    def _finish(self, input, out, states, batched, packed):
        if packed:
            return input._with_padded(out), states
        if not batched:
            return ops.squeeze(out, 1), tuple(ops.squeeze(s, 1) for s in states)
        if self.batch_first:
            out = ops.transpose(out, 0, 1)
        return out, states

    def forward(self, input, hx=None):
        x, lens, batched, packed = self._prepare(input)
        h0 = None if hx is None else self._check_state(hx, "hidden", self._real_hidden(), x, batched)
        out, h_n, _ = self._run(x, lens, h0, None)
        out, (h_n,) = self._finish(input, out, (h_n,), batched, packed)
        return out, h_n


class RNN(RNNBase):
    """Elman RNN with tanh or ReLU: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)
        self.nonlinearity = "tanh" if mode == "RNN_TANH" else "relu"

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity != "tanh" else "")


class LSTM(RNNBase):
    """Long short-term memory (torch gate order i, f, g, o); forward returns (output, (h_n, c_n))."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input, hx=None):
        x, lens, batched, packed = self._prepare(input)
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RNNShapeError("LSTM: hx must be a tuple (h_0, c_0)")
            h0 = self._check_state(hx[0], "hidden[0]", self._real_hidden(), x, batched)
            c0 = self._check_state(hx[1], "hidden[1]", self.hidden_size, x, batched)
        out, h_n, c_n = self._run(x, lens, h0, c0)
        out, (h_n, c_n) = self._finish(input, out, (h_n, c_n), batched, packed)
        return out, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit (torch gate order r, z, n; n uses r * (W_hn h + b_hn))."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ----- cells -------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """weight_ih (chunks*H, I), weight_hh (chunks*H, H), bias_ih, bias_hh; uniform(-1/sqrt(H), 1/sqrt(H))."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dt = dtypes.as_dtype(dtype or np.float32)
        self.weight_ih = Parameter(np.zeros((num_chunks * hidden_size, input_size), dt))
        self.weight_hh = Parameter(np.zeros((num_chunks * hidden_size, hidden_size), dt))
        if bias:
            self.bias_ih = Parameter(np.zeros((num_chunks * hidden_size,), dt))
            self.bias_hh = Parameter(np.zeros((num_chunks * hidden_size,), dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _input(self, input):
        name = type(self).__name__
        x = ops.as_tensor(input)
        if x._shape is None or len(x._shape) not in (1, 2):
            r = "?" if x._shape is None else len(x._shape)
            raise RNNShapeError(f"{name}: Expected input to be 1D or 2D, got {r}D instead (shape {_fmt(x._shape)})")
        if not _same(x._shape[-1], self.input_size):
            raise RNNShapeError(f"{name}: input has inconsistent input_size: got {x._shape[-1]}, expected "
                                f"{self.input_size}")
        batched = len(x._shape) == 2
        return (x if batched else ops.unsqueeze(x, 0)), batched

    def _state(self, h, x, batched, which=""):
        name = type(self).__name__
        if h is None:
            return F.zero_state(x.shape[0], self.hidden_size, dtype=x.dtype)
        h = ops.as_tensor(h)
        want = 2 if batched else 1
        if h._shape is None or len(h._shape) != want:
            r = "?" if h._shape is None else len(h._shape)
            raise RNNShapeError(f"{name}: Expected hidden{which} to be {want}D for {want}D input, got {r}D "
                                f"(shape {_fmt(h._shape)})")
        if not batched:
            h = ops.unsqueeze(h, 0)
        if not _same(h._shape[1], self.hidden_size):
            raise RNNShapeError(f"{name}: hidden{which} has inconsistent hidden_size: got {h._shape[1]}, expected "
                                f"{self.hidden_size}")
        if not _same(h._shape[0], x._shape[0]):
            raise RNNShapeError(f"{name}: Input batch size {x._shape[0]} doesn't match hidden{which} batch size "
                                f"{h._shape[0]}")
        return h


class RNNCell(RNNCellBase):
    """One Elman step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, batched = self._input(input)
        h = self._state(hx, x, batched)
        fn = F.rnn_tanh_cell if self.nonlinearity == "tanh" else F.rnn_relu_cell
        out = fn(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else ops.squeeze(out, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step; forward returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, batched = self._input(input)
        if hx is None:
            h = c = self._state(None, x, batched)
        else:
            h, c = self._state(hx[0], x, batched, "[0]"), self._state(hx[1], x, batched, "[1]")
        h2, c2 = F.lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not batched:
            h2, c2 = ops.squeeze(h2, 0), ops.squeeze(c2, 0)
        return h2, c2


class GRUCell(RNNCellBase):
    """One GRU step (torch gate order r, z, n)."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, batched = self._input(input)
        h = self._state(hx, x, batched)
        out = F.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else ops.squeeze(out, 0)
