"""The seed's PyText-style sequence classifier: a (bi)directional, multi-layer LSTM or GRU with
dropout over a (batch, time, features) sequence, the final hidden state of the last layer (both
directions concatenated) and the seed's baseline head. The PyText config in the slides:

    "lstm": {"dropout": 0.34, "lstm dim": 164, "num_layers": 2, "bidirectional": true}

maps to SeqClassifier(hidden_size=164, num_layers=2, bidirectional=True, dropout=0.34)
(models/configs/lstm_digits_rows.json)."""
from onnxkit import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class SeqClassifier(nn.Module):
    """SeqClassifier(input_size, num_classes, hidden_size=64, num_layers=1, bidirectional=True,
    dropout=0.0, cell="lstm", task="multiclass"): input (N, T, input_size) -> logits (N, num_classes).
    `dropout` acts between stacked layers (torch's RNN argument) and on the pooled state before the head."""

    def __init__(self, input_size, num_classes, hidden_size=64, num_layers=1, bidirectional=True, dropout=0.0,
                 cell="lstm", task="multiclass"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
        self.cell = cell
        self.bidirectional = bidirectional
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        features = hidden_size * (2 if bidirectional else 1)
        self.head, self.loss = nn.baseline_head(task, features, num_classes)

    def forward(self, x):
        _, state = self.rnn(x)
        h_n = state[0] if self.cell == "lstm" else state          # (layers * directions, N, H)
        if self.bidirectional:
            import onnxkit as ok
            last = ok.cat([h_n[-2], h_n[-1]], dim=1)               # last layer, forward and backward
        else:
            last = h_n[-1]
        return self.head(self.dropout(last))
