"""Embedding and EmbeddingBag (torch/nn/modules/sparse.py): weight (num_embeddings, embedding_dim),
init N(0, 1) with the padding row zeroed. `sparse=True` is accepted; gradients are dense."""
import numpy as np

from .. import ops
from ..ops.sparse import check_padding_idx
from . import init
from .module import Module, ShapeError, _set_value, shape_errors
from .parameter import Parameter, _array

__all__ = ["Embedding", "EmbeddingBag"]


def _make_weight(module, _weight, dtype):
    """The given weight, or N(0, 1) with the padding row zeroed (torch's reset_parameters)."""
    shape = (module.num_embeddings, module.embedding_dim)
    if _weight is None:
        module.weight = Parameter(np.zeros(shape, np.dtype(dtype or np.float32)))
        _reset(module)
        return
    module.weight = Parameter(_weight)
    if tuple(module.weight._shape) != shape:
        raise ValueError(f"_weight of shape {tuple(module.weight._shape)} does not match (num_embeddings, "
                         f"embedding_dim) = {shape}")


def _reset(module):
    """torch's reset_parameters: N(0, 1), then the padding row zeroed."""
    init.normal_(module.weight)
    if module.padding_idx is not None:
        arr = module.weight.numpy().copy()
        arr[module.padding_idx] = 0
        _set_value(module.weight, arr)


def _pretrained(cls, embeddings, freeze, **kwargs):
    """cls holding a copy of the 2-D `embeddings` (numpy, onnxkit or torch), frozen unless freeze=False."""
    arr = _array(embeddings)
    if arr.ndim != 2:
        raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got shape {arr.shape}")
    m = cls(arr.shape[0], arr.shape[1], _weight=arr, **kwargs)
    m.weight.requires_grad = not freeze
    return m


def _optional_repr(module, names):
    """torch's repr entries for the lookup options that differ from their defaults."""
    defaults = {"padding_idx": None, "max_norm": None, "norm_type": 2, "scale_grad_by_freq": False, "sparse": False}
    return "".join(f", {n}={getattr(module, n)!r}" for n in names if getattr(module, n) != defaults[n])


def _check_indices(x, num_embeddings):
    """Out-of-range indices of a value input fail here, with the bad index, instead of in onnxruntime."""
    if x.kind == "value" and x._value is not None and x._value.size:
        v = x._value
        if v.max() >= num_embeddings or v.min() < 0:
            bad = int(v.max() if v.max() >= num_embeddings else v.min())
            raise ShapeError(f"index {bad} is out of range for an embedding with {num_embeddings} rows")


class Embedding(Module):
    """A lookup table: input indices (any shape) -> rows of weight."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = check_padding_idx(padding_idx, num_embeddings)
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        _make_weight(self, _weight, dtype)
        self.weight.requires_grad = not _freeze

    def reset_parameters(self):
        _reset(self)

    def forward(self, input):
        x = ops.as_tensor(input)
        _check_indices(x, self.num_embeddings)
        return ops.embedding(x, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                             self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding holding `embeddings` (2-D), frozen unless freeze=False."""
        return _pretrained(cls, embeddings, freeze, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                           scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + _optional_repr(
            self, ("padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"))


class EmbeddingBag(Module):
    """Sums, means or maxima over bags of embeddings, without materializing the per-index rows'
    sequence: 2-D input (one bag per row) or 1-D input with `offsets`."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None,
                 device=None, dtype=None):
        super().__init__()
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode has to be one of 'sum', 'mean' or 'max', got {mode!r}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset
        self.padding_idx = check_padding_idx(padding_idx, num_embeddings)
        _make_weight(self, _weight, dtype)

    def reset_parameters(self):
        _reset(self)

    def forward(self, input, offsets=None, per_sample_weights=None):
        x = ops.as_tensor(input)
        _check_indices(x, self.num_embeddings)
        with shape_errors():
            return ops.embedding_bag(x, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                                     self.mode, self.sparse, per_sample_weights, self.include_last_offset,
                                     self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                        mode="mean", sparse=False, include_last_offset=False, padding_idx=None):
        """An EmbeddingBag holding `embeddings` (2-D), frozen unless freeze=False."""
        return _pretrained(cls, embeddings, freeze, max_norm=max_norm, norm_type=norm_type,
                           scale_grad_by_freq=scale_grad_by_freq, mode=mode, sparse=sparse,
                           include_last_offset=include_last_offset, padding_idx=padding_idx)

    def extra_repr(self):
        return (f"{self.num_embeddings}, {self.embedding_dim}"
                + _optional_repr(self, ("max_norm", "norm_type", "scale_grad_by_freq"))
                + f", mode={self.mode!r}" + _optional_repr(self, ("padding_idx",)))
