"""Weight normalization (torch.nn.utils.weight_norm, the original API): `weight` is recomputed as
g * v / ||v|| from the parameters `weight_g` and `weight_v` before every forward call."""
from ... import ops
from ..parameter import Parameter
from ._reparam import parameter_to_reparametrize, remove_reparametrization

__all__ = ["weight_norm", "remove_weight_norm", "norm_except_dim"]


def norm_except_dim(v, pow=2, dim=0):
    """The p-norm of v over every dim except `dim`, kept as size-1 dims; dim=-1: over the whole tensor
    (torch's convention for this function)."""
    v = ops.as_tensor(v)
    if dim == -1:
        return ops.norm(v, pow)
    d = dim % len(v._shape)
    others = [a for a in range(len(v._shape)) if a != d]
    return ops.norm(v, pow, others, keepdim=True) if others else ops.abs(v)  # 1-D: each element its own norm


class WeightNorm:
    """The forward pre-hook: sets module.<name> from <name>_g and <name>_v."""

    def __init__(self, name, dim):
        self.name, self.dim = name, -1 if dim is None else dim

    def compute_weight(self, module):
        """g * v / ||v|| from the module's <name>_g and <name>_v."""
        g, v = getattr(module, self.name + "_g"), getattr(module, self.name + "_v")
        return v * (g / norm_except_dim(v, 2, self.dim))

    @staticmethod
    def apply(module, name, dim):
        """Replace parameter <name> by <name>_g and <name>_v and register the hook."""
        weight = parameter_to_reparametrize(module, WeightNorm, name, "weight_norm")
        fn = WeightNorm(name, dim)
        del module._parameters[name]
        module.register_parameter(name + "_g", Parameter(norm_except_dim(weight, 2, fn.dim).numpy()))
        module.register_parameter(name + "_v", Parameter(weight.numpy()))
        setattr(module, name, fn.compute_weight(module))
        fn.handle = module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        """Back to one parameter <name> holding the current normalized weight."""
        weight = self.compute_weight(module).numpy()
        self.handle.remove()
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        module.__dict__.pop(self.name, None)
        module.register_parameter(self.name, Parameter(weight))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name="weight", dim=0):
    """Reparameterize module.<name> as g * v / ||v|| (norm over all dims but `dim`; dim=None: the
    whole tensor), with parameters <name>_g and <name>_v. Returns the module."""
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name="weight"):
    """Fold the reparameterization back into one parameter <name>. Returns the module."""
    return remove_reparametrization(module, WeightNorm, name, "weight_norm")
