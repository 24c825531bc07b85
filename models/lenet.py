"""LeNet-5 for 1x28x28 images (LeCun et al. 1998, with ReLU and max pooling as usually trained today)."""
from onnxkit import nn


class LeNet5(nn.Module):
    """conv 5x5 (6, padding 2) -> pool -> conv 5x5 (16) -> pool -> 120 -> 84 -> num_classes."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
