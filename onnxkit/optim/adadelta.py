"""Adadelta (torch.optim.Adadelta)."""
from .. import ops
from .optimizer import Optimizer, regularized


class Adadelta(Optimizer):
    """v <- rho v + (1 - rho) g^2; d <- sqrt(u + eps) / sqrt(v + eps) * g; u <- rho u + (1 - rho) d^2;
    p <- p - lr d."""
    hyperparameters = ("lr", "rho", "eps", "weight_decay")
    flags = ("maximize",)

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        for name, v in (("learning rate", lr), ("epsilon value", eps), ("weight_decay value", weight_decay)):
            if v < 0:
                raise ValueError(f"Invalid {name}: {v}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach,
                                      capturable=capturable, maximize=maximize, differentiable=differentiable))

    def slots(self, group):
        return ("square_avg", "acc_delta")

    def coefficients(self, h, step, group):
        return {"rho": h["rho"], "one_minus_rho": 1.0 - h["rho"], "eps": h["eps"], "neg_lr": -h["lr"],
                "weight_decay": h["weight_decay"]}

    def update(self, p, g, state, k, group):
        p, g = regularized(p, g, k, group)
        v = state["square_avg"] * k("rho") + k("one_minus_rho") * (g * g)
        delta = ops.sqrt(state["acc_delta"] + k("eps")) / ops.sqrt(v + k("eps")) * g
        u = state["acc_delta"] * k("rho") + k("one_minus_rho") * (delta * delta)
        return p + k("neg_lr") * delta, {"square_avg": v, "acc_delta": u}
