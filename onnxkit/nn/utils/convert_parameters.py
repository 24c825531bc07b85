"""parameters_to_vector / vector_to_parameters (torch.nn.utils.convert_parameters)."""
from ... import ops
from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D tensor (Reshape + Concat)."""
    return ops.cat([ops.reshape(p, -1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Give each parameter its slice of the 1-D `vec` as its new value (applied at the next evaluation)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected an onnxkit Tensor, but got: {type(vec).__name__}")
    parameters = list(parameters)
    total = sum(int(p.numel()) for p in parameters)
    if len(vec._shape) != 1 or vec._shape[0] != total:
        raise ValueError(f"vec must be 1-D with {total} elements (the parameters' total), got shape {tuple(vec._shape)}")
    start = 0
    for p in parameters:
        n = int(p.numel())
        p.data = ops.reshape(vec[start:start + n], p.shape)
        start += n
