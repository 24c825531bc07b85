"""torch.nn.utils equivalents (being written)."""
