"""Gradient rules for convolution, pooling, normalization, resize and other NN ops (being written)."""
