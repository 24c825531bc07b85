"""Adam and AdamW (torch.optim.Adam, torch.optim.AdamW), with AMSGrad."""
from .. import ops
from .optimizer import Optimizer, regularized


class Adam(Optimizer):
    """m <- lerp(m, g, 1 - beta1); v <- beta2 v + (1 - beta2) g^2 (AMSGrad: its running max);
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps). Weight decay adds
    wd * p to g, or with decoupled_weight_decay (AdamW) scales p by 1 - lr * wd first."""
    hyperparameters = ("lr", "beta1", "beta2", "eps", "weight_decay")
    flags = ("amsgrad", "maximize", "decoupled_weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def slots(self, group):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def coefficients(self, h, step, group):
        lr, b1, b2 = h["lr"], h["beta1"], h["beta2"]
        return {"one_minus_beta1": 1.0 - b1, "beta2": b2, "one_minus_beta2": 1.0 - b2,
                "neg_step_size": -(lr / (1.0 - b1 ** step)), "bias_correction2_sqrt": ops.sqrt(1.0 - b2 ** step),
                "eps": h["eps"], "weight_decay": h["weight_decay"], "decay": 1.0 - lr * h["weight_decay"]}

    def update(self, p, g, state, k, group):
        p, g = regularized(p, g, k, group)
        m = state["exp_avg"] + k("one_minus_beta1") * (g - state["exp_avg"])
        v = state["exp_avg_sq"] * k("beta2") + k("one_minus_beta2") * (g * g)
        new = {"exp_avg": m, "exp_avg_sq": v}
        if group["amsgrad"]:
            v = new["max_exp_avg_sq"] = ops.maximum(state["max_exp_avg_sq"], v)
        denom = ops.sqrt(v) / k("bias_correction2_sqrt") + k("eps")
        return p + k("neg_step_size") * (m / denom), new


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2), as torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
