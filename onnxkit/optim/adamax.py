"""Adamax, Adam with the infinity norm (torch.optim.Adamax)."""
from .. import ops
from .optimizer import Optimizer, regularized


class Adamax(Optimizer):
    """m <- lerp(m, g, 1 - beta1); u <- max(beta2 u, |g| + eps); p <- p - lr / (1 - beta1^t) * m / u."""
    hyperparameters = ("lr", "beta1", "beta2", "eps", "weight_decay")
    flags = ("maximize",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        for name, v in (("learning rate", lr), ("epsilon value", eps), ("weight_decay value", weight_decay)):
            if v < 0:
                raise ValueError(f"Invalid {name}: {v}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def slots(self, group):
        return ("exp_avg", "exp_inf")

    def coefficients(self, h, step, group):
        return {"one_minus_beta1": 1.0 - h["beta1"], "beta2": h["beta2"], "eps": h["eps"],
                "neg_clr": -(h["lr"] / (1.0 - h["beta1"] ** step)), "weight_decay": h["weight_decay"]}

    def update(self, p, g, state, k, group):
        p, g = regularized(p, g, k, group)
        m = state["exp_avg"] + k("one_minus_beta1") * (g - state["exp_avg"])
        u = ops.maximum(state["exp_inf"] * k("beta2"), ops.abs(g) + k("eps"))
        return p + k("neg_clr") * (m / u), {"exp_avg": m, "exp_inf": u}
