"""The porting story for a Transformer encoder classifier as PyTorch tutorials write it: Embedding
scaled by sqrt(d_model), a sinusoidal positional-encoding buffer built by item assignment and sliced
by the sequence length, nn.TransformerEncoder with a key padding mask, masked mean pooling, a Linear
head, AdamW + clip_grad_norm_. The model source is written once and run under torch and onnxkit by
changing the imports; both follow the same loss trajectory, and the export (symbolic batch and
sequence) matches torch at two lengths."""
import math

import numpy as np
import pytest
import torch

import onnxkit as ok

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's enable_nested_tensor notice

VOCAB, D_MODEL, HEADS, D_HID, LAYERS, CLASSES, MAX_LEN = 20, 16, 2, 32, 2, 3, 32


def make_model(lib, nn, F, dropout=0.0):
    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=5000):
            super().__init__()
            self.dropout = nn.Dropout(p=dropout)
            position = lib.arange(max_len).unsqueeze(1)
            div_term = lib.exp(lib.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
            pe = lib.zeros(max_len, 1, d_model)
            pe[:, 0, 0::2] = lib.sin(position * div_term)
            pe[:, 0, 1::2] = lib.cos(position * div_term)
            self.register_buffer("pe", pe)

        def forward(self, x):
            """x: (seq_len, batch, d_model)."""
            x = x + self.pe[:x.size(0)]
            return self.dropout(x)

    class TransformerClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.d_model = D_MODEL
            self.embedding = nn.Embedding(VOCAB, D_MODEL)
            self.pos_encoder = PositionalEncoding(D_MODEL, dropout, MAX_LEN)
            layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_HID, dropout)
            self.transformer_encoder = nn.TransformerEncoder(layer, LAYERS)
            self.classifier = nn.Linear(D_MODEL, CLASSES)

        def forward(self, src, src_key_padding_mask):
            """src: (seq_len, batch) token ids; src_key_padding_mask: (batch, seq_len), True at padding."""
            x = self.embedding(src) * math.sqrt(self.d_model)
            x = self.pos_encoder(x)
            x = self.transformer_encoder(x, src_key_padding_mask=src_key_padding_mask)
            keep = (~src_key_padding_mask).transpose(0, 1).unsqueeze(-1).float()
            pooled = (x * keep).sum(0) / keep.sum(0)
            return self.classifier(F.relu(pooled))

    return TransformerClassifier()


def batch(rng, n, seq):
    lengths = rng.integers(2, seq + 1, n)
    lengths[0] = seq
    src = rng.integers(1, VOCAB, (seq, n))
    pad = np.arange(seq)[None, :] >= lengths[:, None]
    src[pad.T] = 0
    return src, pad, rng.integers(0, CLASSES, n)


def train(lib, nn, optim, clip, model, data, steps):
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for step in range(steps):
        src, pad, y = data[step % len(data)]
        opt.zero_grad()
        loss = loss_fn(model(lib.tensor(src), lib.tensor(pad)), lib.tensor(y))
        loss.backward()
        clip(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def test_positional_encoding_buffer_matches_torch():
    torch.manual_seed(0)
    t = make_model(torch, torch.nn, torch.nn.functional)
    o = make_model(ok, ok.nn, ok.nn.functional)
    np.testing.assert_allclose(o.pos_encoder.pe.numpy(), t.pos_encoder.pe.numpy(), rtol=1e-6, atol=1e-6)
    assert list(o.state_dict()) == list(t.state_dict())


def test_classifier_same_trajectory_and_export():
    rng = np.random.default_rng(0)
    data = [batch(rng, 4, 7), batch(rng, 4, 5), batch(rng, 4, 9)]  # the sequence length changes per batch
    torch.manual_seed(0)
    tm = make_model(torch, torch.nn, torch.nn.functional)
    om = make_model(ok, ok.nn, ok.nn.functional)
    om.load_state_dict(tm.state_dict())
    t = train(torch, torch.nn, torch.optim, torch.nn.utils.clip_grad_norm_, tm, data, 6)
    o = train(ok, ok.nn, ok.optim, ok.nn.utils.clip_grad_norm_, om, data, 6)
    np.testing.assert_allclose(o, t, rtol=2e-4, atol=2e-5)
    for k, v in tm.state_dict().items():
        got, want = om.state_dict()[k], v.numpy()
        if k.endswith("in_proj_bias"):  # the key bias has an exactly-zero gradient (softmax is shift
            got, want = np.delete(got, np.s_[D_MODEL:2 * D_MODEL]), np.delete(want, np.s_[D_MODEL:2 * D_MODEL])
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, err_msg=k)  # invariant): Adam amplifies noise
    tm.eval()
    model = ok.export(om, [ok.Input("src", ("S", "N"), "int64"), ok.Input("pad", ("N", "S"), "bool")])
    sess = ok.Session(model)
    for n, seq in ((3, 11), (2, 4)):
        src, pad, _ = batch(rng, n, seq)
        with torch.no_grad():
            want = tm(torch.tensor(src), torch.tensor(pad)).numpy()
        np.testing.assert_allclose(sess.run({"src": src, "pad": pad})["output"], want, rtol=1e-4, atol=1e-5)


def test_classifier_trains_with_dropout_in_trainer():
    """With dropout the same source trains through ok.Trainer (one standard-op graph per step)."""
    ok.manual_seed(0)
    om = make_model(ok, ok.nn, ok.nn.functional, dropout=0.1)
    tr = ok.Trainer(om, ok.nn.CrossEntropyLoss(), ok.optim.AdamW(om.parameters(), lr=3e-3))
    src, pad, y = batch(np.random.default_rng(1), 8, 6)
    losses = [tr.step(src, pad, y) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert not {n.domain for n in tr.training_model.graph.node} - {"", "ai.onnx"}
