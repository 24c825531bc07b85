"""A convolutional autoencoder for small images: strided Conv2d encoder down to a bottleneck,
ConvTranspose2d decoder back up. Reconstruction is the seed's regression row: no activation on the
last layer and MSELoss against the input itself (the decoder's last ConvTranspose2d is the head)."""
from onnxkit import nn


class ConvAutoencoder(nn.Module):
    """ConvAutoencoder(in_channels=1, channels=(16, 32)): each encoder stage halves the image
    (conv 3x3 stride 2), each decoder stage doubles it (ConvTranspose2d 4x4 stride 2); image sides
    must be divisible by 2 ** len(channels). forward(x) -> reconstruction of x; encode(x) -> code."""

    def __init__(self, in_channels=1, channels=(16, 32)):
        super().__init__()
        channels = list(channels)
        enc, c = [], in_channels
        for out in channels:
            enc += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.ReLU()]
            c = out
        self.encoder = nn.Sequential(*enc)
        dec = []
        for out in channels[-2::-1] + [in_channels]:
            dec += [nn.ConvTranspose2d(c, out, 4, stride=2, padding=1), nn.ReLU()]
            c = out
        self.decoder = nn.Sequential(*dec[:-1])   # no activation after the last layer (regression head)
        self.loss = nn.MSELoss()

    def encode(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.decoder(self.encoder(x))
