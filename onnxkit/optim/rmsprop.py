"""RMSprop with momentum and the centered variant (torch.optim.RMSprop)."""
from .. import ops
from .optimizer import Optimizer, regularized


class RMSprop(Optimizer):
    """s <- alpha s + (1 - alpha) g^2; a = sqrt(s - gbar^2) (centered, gbar <- lerp(gbar, g, 1 - alpha))
    or sqrt(s), plus eps; p <- p - lr * g / a, or through a momentum buffer b <- momentum b + g / a."""
    hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum")
    flags = ("centered", "maximize")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        for name, v in (("learning rate", lr), ("epsilon value", eps), ("momentum value", momentum),
                        ("weight_decay value", weight_decay), ("alpha value", alpha)):
            if v < 0:
                raise ValueError(f"Invalid {name}: {v}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, capturable=capturable, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable))

    def slots(self, group):
        return (("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    def coefficients(self, h, step, group):
        return {"alpha": h["alpha"], "one_minus_alpha": 1.0 - h["alpha"], "eps": h["eps"],
                "weight_decay": h["weight_decay"], "momentum": h["momentum"], "neg_lr": -h["lr"]}

    def update(self, p, g, state, k, group):
        p, g = regularized(p, g, k, group)
        sq = state["square_avg"] * k("alpha") + k("one_minus_alpha") * (g * g)
        new = {"square_avg": sq}
        if group["centered"]:
            ga = new["grad_avg"] = state["grad_avg"] + k("one_minus_alpha") * (g - state["grad_avg"])
            avg = ops.sqrt(sq - ga * ga)
        else:
            avg = ops.sqrt(sq)
        avg = avg + k("eps")
        if group["momentum"] > 0:
            buf = new["momentum_buffer"] = state["momentum_buffer"] * k("momentum") + g / avg
            return p + k("neg_lr") * buf, new
        return p + k("neg_lr") * (g / avg), new
