"""The seed's two-layer network (D_in=1000 -> H=100 -> ReLU -> D_out=10), and an MLP for digits."""
from onnxkit import nn


def seed_mlp(d_in=1000, hidden=100, d_out=10):
    """The slides' example model: Linear -> ReLU -> Linear, trained with MSE on random data."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def digits_mlp(hidden=128, num_classes=10):
    """Flatten 1x28x28 -> hidden -> ReLU -> num_classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
