"""SGD with momentum, dampening, Nesterov momentum and weight decay (torch.optim.SGD)."""
from .. import ops
from .optimizer import Optimizer, add_scaled, regularized


class SGD(Optimizer):
    """p <- p - lr * d, where d is the gradient (plus weight_decay * p), or its momentum buffer
    b <- momentum * b + (1 - dampening) * g (b starts as the first gradient), or g + momentum * b
    with nesterov. Emits Mul/Add per parameter."""
    hyperparameters = ("lr", "momentum", "dampening", "weight_decay")
    flags = ("nesterov", "maximize")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def slots(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def coefficients(self, h, step, group):
        # torch starts the buffer as a copy of the first gradient; from a zero buffer that is a
        # gradient factor of 1 on step 1 and (1 - dampening) afterwards
        return {"neg_lr": -h["lr"], "momentum": h["momentum"], "weight_decay": h["weight_decay"],
                "grad_scale": ops.where(ops.le(step, 1.0), 1.0, 1.0 - h["dampening"])}

    def update(self, p, g, state, k, group):
        p, g = regularized(p, g, k, group)
        if group["momentum"] == 0:
            return add_scaled(p, k("neg_lr"), g), {}
        decayed = state["momentum_buffer"] * k("momentum")
        if group["nesterov"]:  # g is read twice: no Gemm fusion
            buf = decayed + k("grad_scale") * g
            return p + k("neg_lr") * (g + k("momentum") * buf), {"momentum_buffer": buf}
        buf = add_scaled(decayed, k("grad_scale"), g)
        return p + k("neg_lr") * buf, {"momentum_buffer": buf}
