"""A CIFAR-style ResNet (He et al. 2016, section 4.2): a 3x3 stem, three stages of basic residual
blocks (BatchNorm, ReLU, identity or 1x1-projection shortcuts) at widths w, 2w, 4w with stride 2
between stages, global average pooling and the seed's baseline head. depth = 6n + 2 (ResNet-8, -20,
-32, ...); the defaults give a ResNet-8 small enough to train on a laptop CPU."""
from onnxkit import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU."""

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet(depth=8, width=16, in_channels=1, num_classes=10, task="multiclass") for 32x32 images."""

    def __init__(self, depth=8, width=16, in_channels=1, num_classes=10, task="multiclass"):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        blocks, c = [], width
        for stage, out in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(c, out, stride=2 if (stage > 0 and i == 0) else 1))
                c = out
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head, self.loss = nn.baseline_head(task, c, num_classes)

    def forward(self, x):
        return self.head(self.flatten(self.pool(self.layers(self.stem(x)))))
