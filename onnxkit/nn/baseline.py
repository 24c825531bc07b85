"""The seed's "Baseline model" table as a helper: the last layer and the loss for common tasks.

The seed's table reads:

    Problem type                 Activation   Loss function
    Binary classification        Sigmoid      CrossEntropyLoss
    Multi-class classification   Softmax      CrossEntropyLoss
    Multi-label classification   Sigmoid      CrossEntropyLoss
    Regression                   None         MSE
    Vector regression            None         MSE

Two rows are wrong for torch (and for onnxkit, which follows it). CrossEntropyLoss applies
log_softmax over the class dim itself: on one sigmoid output (binary) the softmax of a single value
is always 1, so the loss is 0 and nothing is learned; on multi-hot float targets (multi-label)
CrossEntropyLoss reads the targets as a probability distribution over classes, which independent
yes/no labels are not. Sigmoid outputs belong with BCELoss, or better, the raw logits with
BCEWithLogitsLoss (the sigmoid folded into the loss, numerically stable). For the same reason the
multi-class head ends without a softmax: CrossEntropyLoss expects logits. Apply sigmoid / softmax
only to turn logits into probabilities at prediction time (see `BASELINE_HEADS`)."""
from .linear import Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss

__all__ = ["baseline_head", "BASELINE_HEADS"]

# task -> (loss class, activation that turns the outputs into predictions, allowed out_features)
BASELINE_HEADS = {
    "binary": (BCEWithLogitsLoss, "sigmoid", lambda n: n == 1),
    "multiclass": (CrossEntropyLoss, "softmax", lambda n: n >= 2),
    "multilabel": (BCEWithLogitsLoss, "sigmoid", lambda n: n >= 1),
    "regression": (MSELoss, None, lambda n: n == 1),
    "vector_regression": (MSELoss, None, lambda n: n >= 2),
}
_OUT_RULE = {"binary": "1", "multiclass": ">= 2 (one per class)", "multilabel": ">= 1 (one per label)",
             "regression": "1", "vector_regression": ">= 2"}


def baseline_head(task, in_features, out_features):
    """(last layer, loss) for `task`: a Linear producing logits or values, and BCEWithLogitsLoss
    (binary, multilabel), CrossEntropyLoss (multiclass) or MSELoss (regression, vector_regression)."""
    if task not in BASELINE_HEADS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(BASELINE_HEADS)}")
    loss_cls, _, allowed = BASELINE_HEADS[task]
    if not allowed(out_features):
        raise ValueError(f"task {task!r} needs out_features {_OUT_RULE[task]}, got {out_features}")
    return Linear(in_features, out_features), loss_cls()
