"""Adagrad with learning-rate decay (torch.optim.Adagrad)."""
import numpy as np

from .. import ops
from .optimizer import Optimizer, regularized


class Adagrad(Optimizer):
    """s <- s + g^2 (s starts at initial_accumulator_value); p <- p - clr * g / (sqrt(s) + eps)
    with clr = lr / (1 + (t - 1) * lr_decay)."""
    hyperparameters = ("lr", "lr_decay", "weight_decay", "eps")
    flags = ("maximize",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        for name, v in (("learning rate", lr), ("lr_decay value", lr_decay), ("weight_decay value", weight_decay),
                        ("initial_accumulator_value value", initial_accumulator_value), ("epsilon value", eps)):
            if v < 0:
                raise ValueError(f"Invalid {name}: {v}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, fused=fused))

    def slots(self, group):
        return ("sum",)

    def initial_state(self, group, slot, p):
        return np.full(p._shape, group["initial_accumulator_value"], p.dtype)

    def coefficients(self, h, step, group):
        return {"neg_clr": -(h["lr"] / (1.0 + (step - 1.0) * h["lr_decay"])), "weight_decay": h["weight_decay"],
                "eps": h["eps"]}

    def update(self, p, g, state, k, group):
        p, g = regularized(p, g, k, group)
        s = state["sum"] + g * g
        return p + k("neg_clr") * (g / (ops.sqrt(s) + k("eps"))), {"sum": s}
