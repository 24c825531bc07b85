"""Spectral normalization (torch.nn.utils.spectral_norm, the original API): weight = weight_orig / sigma,
sigma estimated by power iteration with the buffers weight_u and weight_v. In training the
iteration's new u and v are buffer effects applied when the forward result is first evaluated."""
import numpy as np

from ... import ops
from ...ops.norm import add_buffer_updates, buffer_value
from ...tensor import no_grad
from ..conv import _ConvTranspose
from ..parameter import Parameter
from .. import init as _init
from ._reparam import parameter_to_reparametrize, remove_reparametrization

__all__ = ["spectral_norm", "remove_spectral_norm"]


# Note: W^T u is written u @ W: onnxruntime 1.31's Transpose+MatMul fusion (optimization level
# EXTENDED and up) computes Transpose(W) @ vector wrongly when the second operand is 1-D.


def _normalize(x, eps):
    """x / max(||x||, eps) (torch.nn.functional.normalize of a vector)."""
    return x / ops.clamp(ops.norm(x, 2), min=eps)


class SpectralNorm:
    """The forward pre-hook: sets module.<name> from <name>_orig, <name>_u, <name>_v."""

    def __init__(self, name="weight", n_power_iterations=1, dim=0, eps=1e-12):
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations={n_power_iterations}")
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def reshape_weight_to_matrix(self, weight):
        """`dim` first, the rest flattened: (weight.shape[dim], -1)."""
        if self.dim != 0:
            r = len(weight._shape)
            d = self.dim % r
            weight = ops.permute(weight, [d] + [i for i in range(r) if i != d])
        return ops.reshape(weight, weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration):
        """<name>_orig / sigma, sigma = u . (W v) after n_power_iterations updates of u and v (in training;
        their new values become buffer updates of the result)."""
        weight = getattr(module, self.name + "_orig")
        u_buf, v_buf = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        mat = self.reshape_weight_to_matrix(weight)
        u, v = u_buf, v_buf
        if do_power_iteration:
            with no_grad():
                u, v = buffer_value(u_buf), buffer_value(v_buf)
                for _ in range(self.n_power_iterations):
                    v = _normalize(ops.matmul(u, mat), self.eps)  # u @ W = W^T u (see the note above)
                    u = _normalize(ops.mv(mat, v), self.eps)
        sigma = ops.dot(u, ops.mv(mat, v))
        out = weight / sigma
        if do_power_iteration:
            add_buffer_updates(out, [(u_buf, u), (v_buf, v)])
        return out

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    @staticmethod
    def apply(module, name, n_power_iterations, dim, eps):
        """Rename parameter <name> to <name>_orig, add the u and v buffers (random unit vectors) and the hook."""
        weight = parameter_to_reparametrize(module, SpectralNorm, name, "spectral_norm")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        with no_grad():
            h, w = (int(d) for d in fn.reshape_weight_to_matrix(weight)._shape)
            rng = _init._rng(None)
            u = _normalize(ops.as_tensor(rng.standard_normal(h).astype(weight.dtype)), eps).numpy()
            v = _normalize(ops.as_tensor(rng.standard_normal(w).astype(weight.dtype)), eps).numpy()
        del module._parameters[name]
        module.register_parameter(name + "_orig", weight)
        setattr(module, name, weight.detach())
        module.register_buffer(name + "_u", np.array(u))
        module.register_buffer(name + "_v", np.array(v))
        fn.handle = module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        """Back to one parameter <name> holding the current normalized weight."""
        weight = self.compute_weight(module, do_power_iteration=False).numpy()
        self.handle.remove()
        for store, key in ((module._parameters, "_orig"), (module._buffers, "_u"), (module._buffers, "_v")):
            del store[self.name + key]
        module.__dict__.pop(self.name, None)
        module.register_parameter(self.name, Parameter(weight))


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Divide module.<name> by its largest singular value (power iteration; `dim` is the output dim,
    1 for ConvTranspose layers, else 0). Adds <name>_orig (parameter), <name>_u and <name>_v (buffers)."""
    if dim is None:
        dim = 1 if isinstance(module, _ConvTranspose) else 0
    SpectralNorm.apply(module, name, n_power_iterations, dim, eps)
    return module


def remove_spectral_norm(module, name="weight"):
    """Fold the normalization back into one parameter <name>. Returns the module."""
    return remove_reparametrization(module, SpectralNorm, name, "spectral_norm")
