"""`ok.autodiff.Function`: a Python-level composite with its own backward (torch.autograd.Function)."""
from .. import dtypes
import weakref

from ..tensor import Tensor, no_grad, apply, is_grad_enabled, _add_consumer


class Context:
    """What forward passes to backward (torch's ctx)."""
    saved_tensors = ()

    def save_for_backward(self, *tensors):
        """Keep tensors for backward as `ctx.saved_tensors`."""
        self.saved_tensors = tensors


class Function:
    """Subclass with static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)` and call
    `.apply(*args)`. The forward graph is exported as written; its gradient comes from `backward`."""

    @classmethod
    def apply(cls, *args):
        """Run forward (not recorded) and wrap its outputs so the backward walk calls `backward`."""
        ctx = Context()
        with no_grad():
            out = cls.forward(ctx, *args)
        outs = (out,) if isinstance(out, Tensor) else tuple(out)
        call = Call(cls, ctx, args, len(outs))
        rg = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)
        wrapped = []
        for k, o in enumerate(outs):
            w = apply("Identity", [o], types=[(o.dtype, o._shape)])
            w.node.custom = (call, k)
            w.requires_grad = rg and dtypes.is_floating(o.dtype)
            wrapped.append(w)
        call.outputs = wrapped
        for a in args:  # an in-place change of an argument later must not reach this call
            if isinstance(a, Tensor):
                _add_consumer(a, weakref.ref(wrapped[0].node))
        return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)


class Call:
    """One application of a Function: collects output gradients, then runs its backward once."""

    def __init__(self, cls, ctx, args, n_out):
        self.cls, self.ctx, self.args, self.n_out = cls, ctx, args, n_out
        self.outputs = []

    def run_backward(self, grads):
        """The forward arguments' gradients; outputs without a gradient (unused) get zeros."""
        from .. import ops
        gs = [g if g is not None else ops.zeros_of(o) for g, o in zip(grads, self.outputs)]
        res = self.cls.backward(self.ctx, *gs)
        res = (res,) if not isinstance(res, (tuple, list)) else tuple(res)
        if len(res) != len(self.args):
            raise RuntimeError(f"{self.cls.__name__}.backward returned {len(res)} gradients, expected {len(self.args)} "
                               "(one per forward argument, None for non-tensors)")
        return res


class ValueOf(Function):
    """`new`'s value, with the gradient going to `path` as if it were the output (keep_gradient: torch's
    in-place changes under no_grad or through `.data`) or a zero gradient there (`h.fill_(v)`)."""

    @staticmethod
    def forward(ctx, new, path, keep_gradient):
        ctx.keep_gradient = keep_gradient
        return new

    @staticmethod
    def backward(ctx, g):
        from .. import ops
        return None, g if ctx.keep_gradient else ops.zeros_of(g), None
