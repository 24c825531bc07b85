"""torch.nn.utils.rnn: PackedSequence and the pack/pad helpers.

A PackedSequence here keeps the batch padded and time-major in the caller's original order, plus the
lengths; recurrent modules hand the lengths to the ONNX ops as `sequence_lens`, so no sorting happens
in the graph and the lengths may be a graph input (`ok.Input("lengths", ("N",), "int64")`), which makes
one exported model serve any batch of lengths. torch's flat view (`data`, `batch_sizes`,
`sorted_indices`, `unsorted_indices`) is computed on request when the lengths are known at build time.
Run-time lengths (a graph input) are not validated in the graph: a length larger than the padded
sequence gives onnxruntime's error for `sequence_lens`, a zero length gives zero outputs and the initial
state as final state."""
import numpy as np

from ... import ops
from ...tensor import Tensor, apply, const, tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpack_sequence", "unpad_sequence"]


def _concrete(t):
    """The value of an int tensor known at build time, else None."""
    if isinstance(t, Tensor):
        if t.kind == "input":
            return None
        if t.node is not None:
            return None
        return np.asarray(t.numpy())
    if hasattr(t, "detach") and hasattr(t, "cpu"):  # a torch tensor
        return t.detach().cpu().numpy()
    return np.asarray(t)


def _sorted_indices(lengths):
    return np.argsort(-lengths, kind="stable").astype(np.int64)


class PackedSequence:
    """A batch of variable-length sequences (torch.nn.utils.rnn.PackedSequence). Unpacks as torch's
    namedtuple `(data, batch_sizes, sorted_indices, unsorted_indices)`."""
    _fields = ("data", "batch_sizes", "sorted_indices", "unsorted_indices")

    def __init__(self, data=None, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        self._padded = self._lengths = self._len_np = None
        self._data = None
        if data is None:
            return
        bs = _concrete(batch_sizes)
        if bs is None:
            raise ValueError("PackedSequence: batch_sizes must be known at build time")
        bs = bs.astype(np.int64)
        B, T = int(bs[0]), len(bs)
        lengths_sorted = np.array([(bs > j).sum() for j in range(B)], np.int64)
        si = np.arange(B) if sorted_indices is None else _concrete(sorted_indices).astype(np.int64)
        lengths = np.empty(B, np.int64)
        lengths[si] = lengths_sorted
        data = ops.as_tensor(data)
        flat = _flat_index(lengths, si, T)  # position in the (T*B) padded grid of each packed row
        src = np.full(T * B, len(flat), np.int64)
        src[flat] = np.arange(len(flat))
        zero = ops.mul(ops.narrow(data, 0, 0, 1), 0.0)
        grid = ops.index_select(ops.cat([data, zero], 0), 0, tensor(src))
        self._set(ops.reshape(grid, T, B, *data.shape[1:]), lengths)
        self._data = data

    def _set(self, padded, lengths):
        """padded (T, B, *) in original order; lengths a numpy array or an int Tensor."""
        self._padded = padded
        if isinstance(lengths, np.ndarray):
            self._len_np = lengths.astype(np.int64)
            self._lengths = tensor(self._len_np)
        else:
            self._len_np = None
            self._lengths = lengths
        return self

    @classmethod
    def _from_padded(cls, padded, lengths):
        return cls()._set(padded, lengths)

    def _with_padded(self, padded):
        """The same lengths with another padded time-major batch (a recurrent module's output)."""
        out = PackedSequence()
        out._padded, out._lengths, out._len_np = padded, self._lengths, self._len_np
        return out

    def _need_lengths(self, what):
        if self._len_np is None:
            raise ValueError(f"PackedSequence.{what} needs lengths known at build time; these lengths are a graph "
                             "input (use pad_packed_sequence, or feed the module the PackedSequence directly)")
        return self._len_np

    @property
    def batch_sizes(self):
        lens = self._need_lengths("batch_sizes")
        return tensor(np.array([(lens > t).sum() for t in range(int(lens.max()))], np.int64))

    @property
    def sorted_indices(self):
        return tensor(_sorted_indices(self._need_lengths("sorted_indices")))

    @property
    def unsorted_indices(self):
        return tensor(np.argsort(_sorted_indices(self._need_lengths("unsorted_indices"))).astype(np.int64))

    @property
    def data(self):
        """The packed rows (sum(lengths), *): time step by time step, longest sequence first."""
        if self._data is None:
            lens = self._need_lengths("data")
            T, B = self._padded._shape[0], len(lens)
            flat = _flat_index(lens, _sorted_indices(lens), int(lens.max()))
            grid = ops.reshape(self._padded, -1, *self._padded.shape[2:])
            if isinstance(T, int) and T * B != grid._shape[0]:
                raise ValueError("PackedSequence: padded batch and lengths disagree")
            self._data = ops.index_select(grid, 0, tensor(flat))
        return self._data

    def __iter__(self):
        return iter((self.data, self.batch_sizes, self.sorted_indices, self.unsorted_indices))

    def __getitem__(self, i):
        return tuple(self)[i]

    def __len__(self):
        return 4

    def __repr__(self):
        lens = "graph input" if self._len_np is None else self._len_np.tolist()
        return f"PackedSequence(padded={self._padded!r}, lengths={lens})"

    # torch's device/dtype helpers: graphs have no device, values keep their dtype
    def to(self, *args, **kwargs):
        return self

    def cpu(self):
        return self

    def cuda(self, *args, **kwargs):
        return self

    @property
    def is_cuda(self):
        return False

    def is_pinned(self):
        return False


def _flat_index(lengths, sorted_idx, T):
    """Row t*B + b of the padded grid for each packed row, in packed order."""
    B = len(lengths)
    rows = []
    for t in range(T):
        for b in sorted_idx:
            if lengths[b] > t:
                rows.append(t * B + b)
    return np.array(rows, np.int64)


def _check_lengths(lengths, B, T, enforce_sorted):
    if lengths.ndim != 1:
        raise ValueError(f"pack_padded_sequence: 'lengths' should be a 1-D int64 tensor, got shape {lengths.shape}")
    if len(lengths) != B:
        raise ValueError(f"pack_padded_sequence: expected {B} lengths (the batch size), got {len(lengths)}")
    if (lengths <= 0).any():
        i = int(np.argmax(lengths <= 0))
        raise ValueError(f"pack_padded_sequence: Expected sequence length to be larger than 0, got lengths[{i}] = "
                         f"{int(lengths[i])}")
    if isinstance(T, int) and (lengths > T).any():
        i = int(np.argmax(lengths > T))
        raise ValueError(f"pack_padded_sequence: lengths[{i}] = {int(lengths[i])} is longer than the sequence "
                         f"(the input has {T} time steps)")
    if enforce_sorted and (np.diff(lengths) > 0).any():
        raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can "
                           "pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this "
                           f"requirement if you do not need ONNX exportability. Got lengths {lengths.tolist()}")


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences with the given lengths.
    `lengths` may be a list, numpy array, int tensor, or a symbolic int64 graph input of shape (B,)."""
    x = ops.as_tensor(input)
    if x._shape is None or len(x._shape) < 2:
        raise ValueError(f"pack_padded_sequence: expected input with at least 2 dims, got shape {x._shape}")
    if batch_first:
        x = ops.transpose(x, 0, 1)
    T, B = x._shape[0], x._shape[1]
    lens = None if isinstance(lengths, Tensor) and lengths.kind == "input" else _concrete(lengths)
    if lens is None:
        lt = ops.as_tensor(lengths)
        if lt.dtype.kind not in "iu":
            raise ValueError(f"pack_padded_sequence: lengths must be integers, got dtype {lt.dtype}")
        return PackedSequence._from_padded(x, lt)
    lens = np.asarray(lens).astype(np.int64)
    _check_lengths(lens, B if isinstance(B, int) else len(lens), T, enforce_sorted)
    m = int(lens.max())
    if isinstance(T, int) and m < T:
        x = ops.narrow(x, 0, 0, m)
    return PackedSequence._from_padded(x, lens)


def _valid_mask(padded, lengths):
    """(T, B, 1, ...) bool: t < lengths[b]."""
    T = apply("Shape", [padded], {"start": 0, "end": 1})
    t = apply("Range", [const(0, np.int64), ops.squeeze(T, 0), const(1, np.int64)])
    m = ops.lt(ops.unsqueeze(t, 1), ops.unsqueeze(ops.cast(lengths, np.int64), 0))
    for _ in range(len(padded._shape) - 2):
        m = ops.unsqueeze(m, -1)
    return m


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Inverse of pack_padded_sequence: (padded, lengths), padded (T, B, *) (or batch-first) with
    `padding_value` after each sequence's end; T = max(lengths) or total_length."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got {type(sequence).__name__}")
    x, lens = sequence._padded, sequence._len_np
    T = x._shape[0]
    if lens is not None:
        m = int(lens.max())
        if total_length is not None:
            if total_length < m:
                raise ValueError("Expected total_length to be at least the length of the longest sequence in the "
                                 f"input, but got total_length={total_length} and max sequence length being {m}")
            want = total_length
        else:
            want = m
        if isinstance(T, int) and want < T:
            x = ops.narrow(x, 0, 0, want)
        elif isinstance(T, int) and want > T:
            pads = [0] * (2 * len(x._shape))
            pads[len(x._shape)] = want - T
            x = apply("Pad", [x, const(pads, np.int64)], {"mode": "constant"})
    elif total_length is not None:
        if isinstance(T, int) and total_length != T:
            if total_length < T:
                x = ops.narrow(x, 0, 0, total_length)
            else:
                pads = [0] * (2 * len(x._shape))
                pads[len(x._shape)] = total_length - T
                x = apply("Pad", [x, const(pads, np.int64)], {"mode": "constant"})
    else:  # run-time lengths: cut to max(lengths) in the graph
        mx = ops.reshape(ops.max(ops.cast(sequence._lengths, np.int64)), 1)
        x = apply("Slice", [x, const([0], np.int64), mx, const([0], np.int64)])
    fill = ops.as_tensor(padding_value, x.dtype)
    x = ops.where(_valid_mask(x, sequence._lengths), x, ops.cast(fill, x.dtype))
    if batch_first:
        x = ops.transpose(x, 0, 1)
    lengths = sequence._lengths if lens is None else tensor(lens)
    return x, lengths


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack variable-length tensors (L_i, *) into (T, B, *) (or (B, T, *)), padded with padding_value."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(ops.unbind(sequences, 0))
    seqs = [ops.as_tensor(s) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequence: received an empty list of sequences")
    lens = [s._shape[0] for s in seqs]
    if not all(isinstance(n, int) for n in lens):
        raise ValueError(f"pad_sequence: sequence lengths must be static, got {lens}")
    T = max(lens)
    out = []
    for s in seqs:
        if s._shape[1:] != seqs[0]._shape[1:]:
            raise ValueError(f"pad_sequence: trailing dims differ: {tuple(s._shape)} vs {tuple(seqs[0]._shape)}")
        if s._shape[0] < T:
            r = len(s._shape)
            pads = [0] * (2 * r)
            pads[0 if padding_side == "left" else r] = T - s._shape[0]
            s = apply("Pad", [s, const(pads, np.int64), ops.cast(ops.as_tensor(padding_value), s.dtype)],
                      {"mode": "constant"})
        out.append(s)
    return ops.stack(out, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_i, *) (pad_sequence + pack_padded_sequence)."""
    lengths = np.array([ops.as_tensor(s)._shape[0] for s in sequences], np.int64)
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of unpadded sequences (L_i, *) of a padded batch."""
    x = ops.as_tensor(padded_sequences)
    if not batch_first:
        x = ops.transpose(x, 0, 1)
    lens = _concrete(lengths)
    if lens is None:
        raise ValueError("unpad_sequence needs lengths known at build time")
    return [ops.narrow(x[i], 0, 0, int(n)) for i, n in enumerate(np.asarray(lens).reshape(-1))]


def unpack_sequence(packed_sequences):
    """The list of sequences (L_i, *) in a PackedSequence, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
