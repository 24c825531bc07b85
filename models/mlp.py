"""The seed's two-layer network (D_in=1000 -> H=100 -> ReLU -> D_out=10), and an MLP for digits."""
from onnxkit import nn


def seed_mlp(d_in=1000, hidden=100, d_out=10):
    """The slides' example model: Linear -> ReLU -> Linear, trained with MSE on random data."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def digits_mlp(hidden=128, num_classes=10):
    """Flatten 1x28x28 -> hidden -> ReLU -> num_classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class MLP(nn.Module):
    """MLP(in_features, out_features, hidden=(64,), dropout=0.0, task="multiclass"): Flatten, then
    Linear -> ReLU (-> Dropout) per hidden width, then the seed's baseline head for `task`
    (nn.baseline_head: logits for classifiers, values for regression)."""

    def __init__(self, in_features, out_features, hidden=(64,), dropout=0.0, task="multiclass"):
        super().__init__()
        layers, c = [nn.Flatten()], in_features
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            c = h
        self.body = nn.Sequential(*layers)
        self.head, self.loss = nn.baseline_head(task, c, out_features)

    def forward(self, x):
        return self.head(self.body(x))
